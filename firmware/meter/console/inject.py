# The wrappers the bench console injects faults through: power-good and the metrology source.
#
# meter.assembly puts them between the board HAL and the runtime only when the CONSOLE
# setting is on (Meter.power_good and Meter.metrology; the HAL keeps the real parts, so the
# board's sleep() still reads the real comparator). Only the console drives them, and the
# console only inside bench mode after authentication; with no injection running each
# passes the real part through unchanged (one attribute test per call, no allocation).
#
# InjectedPowerGood: while an injected failure runs, value() reads 0 and the IRQ handler the
# shell registered sees the falling edge, then the rising one at its end: the Last Gasp
# machine runs exactly as for a real failure (debounce, commit, sealed alarm, notice).
#
# InjectedLoad: while a load of `w` watts is applied, every sample the front end delivers
# carries w x its duration more energy (J, exact: the sub-joule remainder is carried in mJ),
# w more power and the current w draws at the sample's voltage (nominal when unknown); a
# front end that delivers nothing is stood in for by a sample of the elapsed time. The
# samples then go through the meter's plausibility check and the registers as a real load's
# would: the console never writes a register. `injected_j` totals what was added. The load
# is added only to a sample that passes the plausibility check and only when it still passes
# with the load (else the sample goes on as the front end gave it, counted in `clipped`): an
# injected load never gets the real energy of a sample rejected with it.
#
# An injected power failure freezes metering (the Last Gasp machine holds) while the real
# supply is on and energy still flows through the meter: the samples of a freeze that began
# during an injected failure are banked here (`bank`, per register, J) and handed to the
# registers with the samples after the freeze, within each sample's plausibility headroom,
# so an injected failure costs no real energy (the alarm and the notice both carry the E0 of
# the freeze, as for a real outage). `banked_j` totals the forward energy banked.

from micropython import const

from meter.metering.samples import NO_VALUE
from meter.ticks import elapsed_ms

NOMINAL_V_DV = const(1000)  # 100.0 V: the current of an injected load when V is unknown
_MAX_DT_MS = const(60_000)


class InjectedPowerGood:
    """inner: the board's meter.hal.PowerGood."""

    def __init__(self, inner):
        self.inner = inner
        self.low = False  # an injected failure is running
        self.caused = False  # ... or ran, and metering may still be frozen by it
        self.injected = 0  # failures injected since boot
        self._handler = None

    def value(self):
        if self.low:
            return 0
        return self.inner.value()

    def irq(self, handler):
        self._handler = handler
        self.inner.irq(handler)

    def _edge(self):
        h = self._handler
        if h is not None:
            h(self)

    def begin(self):
        if not self.low:
            self.low = True
            self.caused = True
            self.injected += 1
            self._edge()

    def end(self):
        if self.low:
            self.low = False
            self._edge()


class InjectedLoad:
    """inner: the board's meter.hal.MetrologySource; metering: the meter's
    meter.metering.samples.Metering (its freeze and plausibility check) or None; power: the
    InjectedPowerGood (a freeze it caused banks the real energy) or None."""

    def __init__(self, inner, nominal_v_dv=NOMINAL_V_DV, metering=None, power=None):
        self.inner = inner
        self.nominal_v_dv = nominal_v_dv
        self.metering = metering
        self.power = power
        self.w = 0  # watts added while > 0
        self.injected_j = 0  # J added to samples since boot
        self.clipped = 0  # samples the load was not added to (plausibility)
        self.banking = False  # metering is frozen by an injected failure: samples banked
        self.bank = [0, 0, 0, 0]  # e_fwd, e_rev, q_lag, q_lead held for after the freeze
        self.banked_j = 0  # forward J banked since boot
        self._owed = False  # the bank holds energy
        self._rem_mj = 0  # sub-joule remainder, mJ (0..999)
        self._last_ms = 0
        self._polled = False

    def start(self, w, now_ms):
        self.w = w
        if not self._polled:
            self._last_ms = now_ms
            self._polled = True

    def stop(self):
        self.w = 0

    def poll(self, sample, now_ms):
        got = self.inner.poll(sample, now_ms)
        met = self.metering
        frozen = met is not None and met.frozen
        pg = self.power
        if pg is not None and pg.caused:
            if frozen:
                self.banking = True  # an injected failure froze metering (it may be over)
            elif not pg.low:
                pg.caused = False  # over, and metering runs again
        if self.w > 0 and (self.banking or not frozen):
            got = self._add_load(sample, got, now_ms)
        else:  # no load, or a real outage froze metering: the load would not count
            self._last_ms = now_ms
            self._polled = True
        if met is None:
            return got
        if frozen:
            if self.banking and got:
                self._deposit(sample)
            return got
        self.banking = False
        if self._owed and got:
            self._withdraw(sample, met)
        return got

    def _add_load(self, sample, got, now_ms):
        met = self.metering
        if got and met is not None and not met.frozen and met.check(sample) >= 0:
            # a sample the meter rejects anyway: the load would be lost with it
            self._last_ms = now_ms
            self._polled = True
            self.clipped += 1
            return got
        w = self.w
        if not got:
            dt = elapsed_ms(now_ms, self._last_ms) if self._polled else 0
            if dt <= 0:
                return False
            if dt > _MAX_DT_MS:
                dt = _MAX_DT_MS
            sample.clear()
            sample.dt_ms = dt
        self._last_ms = now_ms
        self._polled = True
        dt = sample.dt_ms
        # w * dt / 1000 J in small ints (w <= 2**16, dt <= 60_000): whole seconds, then ms
        rem = self._rem_mj
        mj = w * (dt % 1000) + rem
        j = w * (dt // 1000) + mj // 1000
        p_w, v, i_ma = sample.p_w, sample.v_dv, sample.i_ma
        sample.e_fwd += j
        sample.p_w += w
        if v == NO_VALUE or v <= 0:
            sample.v_dv = self.nominal_v_dv
        i = w * 10_000 // sample.v_dv  # mA: W / (dV / 10) * 1000
        sample.i_ma = i if i_ma == NO_VALUE or i_ma < 0 else i_ma + i
        if met is not None and not met.frozen and met.check(sample) >= 0:
            # with the load the sample would fail the check: it goes on without the load
            self.clipped += 1
            if not got:
                return False
            sample.e_fwd -= j
            sample.p_w, sample.v_dv, sample.i_ma = p_w, v, i_ma
            return True
        self._rem_mj = mj % 1000
        self.injected_j += j
        return True

    def _deposit(self, s):
        b = self.bank
        b[0] += s.e_fwd
        b[1] += s.e_rev
        b[2] += s.q_lag
        b[3] += s.q_lead
        self.banked_j += s.e_fwd
        self._owed = b[0] > 0 or b[1] > 0 or b[2] > 0 or b[3] > 0

    def _withdraw(self, s, met):
        """Add banked energy to sample s within its plausibility headroom."""
        if met.check(s) >= 0:
            return  # rejected anyway: keep the bank for a good sample
        cap = met.limits.max_power_w * (s.dt_ms // 10) // 100
        b = self.bank
        room = cap - s.e_fwd - s.e_rev
        f = b[0] if b[0] < room else (room if room > 0 else 0)
        room -= f
        r = b[1] if b[1] < room else (room if room > 0 else 0)
        room = cap - s.q_lag - s.q_lead
        lag = b[2] if b[2] < room else (room if room > 0 else 0)
        room -= lag
        lead = b[3] if b[3] < room else (room if room > 0 else 0)
        s.e_fwd += f
        s.e_rev += r
        s.q_lag += lag
        s.q_lead += lead
        if met.check(s) >= 0:  # cannot happen within the headroom; never lose the sample
            s.e_fwd -= f
            s.e_rev -= r
            s.q_lag -= lag
            s.q_lead -= lead
            return
        b[0] -= f
        b[1] -= r
        b[2] -= lag
        b[3] -= lead
        self._owed = b[0] > 0 or b[1] > 0 or b[2] > 0 or b[3] > 0
