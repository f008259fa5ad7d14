# S0 / LED pulse front end: energy from a meter's pulse output (IEC 62053-31 S0, or an LED
# read by a photo transistor), in one of two modes:
#
#   edge mode     (counter=None) edge timestamps are fed in with edge(t_ms, level), or pulled
#                 from an `edges` source (drain(fn) calls fn(t_ms, level) per buffered edge,
#                 e.g. a Pin.irq ring on the board). A sans-IO debounce accepts a level only
#                 after it has held for min_width_ms; a pulse is counted when its active level
#                 is accepted, and only if it started at least min_gap_ms after the previous
#                 counted pulse. Rejections are counted: `bounces` (a level that did not hold),
#                 `too_close` (a pulse within min_gap_ms), `out_of_order` (a timestamp older
#                 than the previous edge; ignored, no state change). The input is assumed
#                 idle before its first edge.
#   counter mode  (counter given) a hardware counter (ESP32 PCNT) with count() returning a
#                 monotonically increasing 16-bit value that wraps 65535 -> 0. Debounce is the
#                 hardware's job (RC filter: the PCNT glitch filter stops at ~12.8 us); a delta
#                 larger than max_power_w allows for the elapsed time is rejected, counted in
#                 `jumps`, and the counter re-based (that interval gives no sample).
#
# Energy: one pulse is 3,600,000 / imp_per_kwh J. Any constant 10 .. 100,000 imp/kWh is
# accepted: pulses x 3,600,000 are divided by the constant and the remainder is carried, so
# n pulses always yield exactly floor(n x 3,600,000 / imp_per_kwh) J in total.
# Power: from the interval between the last two pulses (edge mode) or the pulses over the time
# since the count last changed (counter mode), as mJ per pulse / ms = W; while no pulse comes
# it decays as the bound (energy of one pulse) / (time since the last pulse) -> 0. The
# estimate is clamped to max_power_w (energy is never clamped).
# Voltage: not available from S0 (v_dv = NO_VALUE). Current: estimated as P / nominal_v_dv
# (power factor 1, so it is a lower bound of the true current); nominal_v_dv=0 reports
# NO_VALUE instead. S0 has no reactive energy (q_lag = q_lead = 0). export=True books the
# pulses as reverse energy (an export meter's output) with negative power.

from micropython import const

from meter.errors import SettingError

from meter.metering.frontends import elapsed_ms, scale
from meter.hal import MetrologySource
from meter.metering.samples import NO_VALUE

_J_PER_KWH = const(3_600_000)
_CHUNK = const(256)  # pulses converted per step: 256 x 3,600,000 + carry < 2**30
_MAX_POWER_INTERVAL_MS = const(1_000_000)  # power averaging window cap (keeps ints small)
_COUNTER_MASK = const(0xFFFF)


class S0PulseInput(MetrologySource):
    """imp_per_kwh: the meter constant. counter: a hardware counter (counter mode) or None.
    edges: a buffered edge source for edge mode (optional; edge() may be called instead).
    min_width_ms / min_gap_ms: debounce (edge mode). active_level: the pin level of a pulse.
    nominal_v_dv: voltage for the current estimate (0 = no current). max_power_w: the
    plausibility bound for counter deltas; the debounce must let this power through."""

    def __init__(self, imp_per_kwh=1000, counter=None, edges=None, min_width_ms=30,
                 min_gap_ms=80, active_level=1, nominal_v_dv=1010, max_power_w=12_000,
                 export=False):
        if not isinstance(imp_per_kwh, int) or not 10 <= imp_per_kwh <= 100_000:
            raise SettingError("E_PULSE_CONSTANT")
        if not 0 <= min_width_ms <= 1000 or not 0 <= min_gap_ms <= 10_000:
            raise SettingError("E_DEBOUNCE")
        if not 0 <= nominal_v_dv <= 3000:
            raise SettingError("E_NOMINAL_VOLTAGE")
        if not 1 <= max_power_w <= 100_000:
            raise SettingError("E_MAX_POWER")
        mj = _J_PER_KWH * 1000 // imp_per_kwh  # mJ per pulse (<= 3.6e8)
        if counter is None and max(min_gap_ms, 2 * min_width_ms) * max_power_w > mj:
            # pulses at max_power_w would come faster than the debounce lets through
            raise SettingError("E_DEBOUNCE_LIMITS_POWER")
        self.imp_per_kwh = imp_per_kwh
        self._mj_per_pulse = mj
        # most pulses plausible per started second at max_power_w (counter mode)
        self._pulses_per_s = max_power_w * imp_per_kwh // _J_PER_KWH + 1
        self._counter = counter
        self._edges = edges
        self._edge_fn = self.edge  # bound once: drain() calls it without allocating
        self.min_width_ms = min_width_ms
        self.min_gap_ms = min_gap_ms
        self._active = active_level
        self.nominal_v_dv = nominal_v_dv
        self.max_power_w = max_power_w
        self.export = export
        # debounce state (edge mode): levels are 1 = active, 0 = idle
        self._raw = 0
        self._raw_t = 0
        self._stable = 0
        self._seen_edge = False
        self._last_pulse_t = 0
        self._seen_pulse = False
        self._pending = 0  # pulses counted and not yet converted to energy
        # counter mode state
        self._count = 0
        self._change_t = 0  # poll time at which the count last changed
        # conversion and poll state
        self._carry = 0  # pulses x 3,600,000 not yet converted, < imp_per_kwh
        self._last_ms = 0
        self._started = False
        self._p_w = 0
        # counters (diagnostics)
        self.pulses = 0
        self.bounces = 0
        self.too_close = 0
        self.out_of_order = 0
        self.jumps = 0

    # --- edge mode ---------------------------------------------------------------------

    def edge(self, t_ms, level):
        """An edge of the pulse input at monotonic t_ms; level is the pin level after it."""
        act = 1 if level == self._active else 0
        if self._seen_edge and elapsed_ms(t_ms, self._raw_t) < 0:
            self.out_of_order += 1
            return
        self._settle(t_ms)
        if self._seen_edge and act == self._raw:
            return  # a repeated report of the current level: no edge
        if self._raw != self._stable:
            self.bounces += 1  # the previous change did not hold for min_width_ms
        self._raw = act
        self._raw_t = t_ms
        self._seen_edge = True

    def _settle(self, t_ms):
        """Accept the pending level if it has held for min_width_ms by t_ms."""
        if self._raw == self._stable or elapsed_ms(t_ms, self._raw_t) < self.min_width_ms:
            return
        self._stable = self._raw
        if not self._raw:
            return
        start = self._raw_t
        if self._seen_pulse:
            gap = elapsed_ms(start, self._last_pulse_t)
            if gap < self.min_gap_ms:
                self.too_close += 1
                return
            if gap > 0:
                self._p_w = self._mj_per_pulse // gap
        self._seen_pulse = True
        self._last_pulse_t = start
        self._pending += 1
        self.pulses += 1

    # --- conversion ----------------------------------------------------------------------

    def _joules(self, pulses):
        """J of `pulses` more pulses; the sub-joule remainder stays in self._carry."""
        j = 0
        imp = self.imp_per_kwh
        while pulses > 0:
            n = pulses if pulses < _CHUNK else _CHUNK
            pulses -= n
            acc = self._carry + n * _J_PER_KWH
            j += acc // imp
            self._carry = acc % imp
        return j

    def _poll_counter(self, now_ms, dt):
        """J since the previous poll from the hardware counter, or -1 for a rejected jump."""
        c = self._counter.count() & _COUNTER_MASK
        delta = (c - self._count) & _COUNTER_MASK
        self._count = c
        if delta == 0:
            return 0
        if delta > self._pulses_per_s * (dt // 1000 + 1) + 1:
            self.jumps += 1
            self._change_t = now_ms
            return -1
        j = self._joules(delta)
        self.pulses += delta
        el = elapsed_ms(now_ms, self._change_t)
        if el > _MAX_POWER_INTERVAL_MS:
            el = _MAX_POWER_INTERVAL_MS
        if self._seen_pulse and el > 0:
            self._p_w = scale(j, 1000, el)
        self._seen_pulse = True
        self._change_t = now_ms
        self._last_pulse_t = now_ms
        return j

    def poll(self, s, now_ms):
        if not self._started:
            self._started = True
            self._last_ms = now_ms
            self._change_t = now_ms
            if self._counter is not None:
                self._count = self._counter.count() & _COUNTER_MASK
            return False
        dt = elapsed_ms(now_ms, self._last_ms)
        if dt <= 0:
            return False
        self._last_ms = now_ms
        if self._counter is not None:
            j = self._poll_counter(now_ms, dt)
            if j < 0:
                return False
        else:
            if self._edges is not None:
                self._edges.drain(self._edge_fn)
            self._settle(now_ms)
            j = self._joules(self._pending)
            self._pending = 0
        p = self._p_w
        if p > self.max_power_w:
            p = self.max_power_w  # an estimate from one short interval: clamp to the rating
        if self._seen_pulse:
            since = elapsed_ms(now_ms, self._last_pulse_t)
            if since > 0 and self._mj_per_pulse // since < p:
                p = self._mj_per_pulse // since
        else:
            p = 0
        self._p_w = p
        s.dt_ms = dt
        s.q_lag = 0
        s.q_lead = 0
        if self.export:
            s.e_fwd = 0
            s.e_rev = j
            s.p_w = -p
        else:
            s.e_fwd = j
            s.e_rev = 0
            s.p_w = p
        s.i_ma = p * 10_000 // self.nominal_v_dv if self.nominal_v_dv else NO_VALUE
        s.i2_ma = NO_VALUE
        s.v_dv = NO_VALUE
        return True
