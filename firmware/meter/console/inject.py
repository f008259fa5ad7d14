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
# would: the console never writes a register. `injected_j` totals what was added.

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
            self.injected += 1
            self._edge()

    def end(self):
        if self.low:
            self.low = False
            self._edge()


class InjectedLoad:
    """inner: the board's meter.hal.MetrologySource."""

    def __init__(self, inner, nominal_v_dv=NOMINAL_V_DV):
        self.inner = inner
        self.nominal_v_dv = nominal_v_dv
        self.w = 0  # watts added while > 0
        self.injected_j = 0  # J added to samples since boot
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
        w = self.w
        if w <= 0:
            self._last_ms = now_ms
            self._polled = True
            return got
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
        mj = w * (dt % 1000) + self._rem_mj
        j = w * (dt // 1000) + mj // 1000
        self._rem_mj = mj % 1000
        sample.e_fwd += j
        self.injected_j += j
        sample.p_w += w
        v = sample.v_dv
        if v == NO_VALUE or v <= 0:
            v = self.nominal_v_dv
            sample.v_dv = v
        i = w * 10_000 // v  # mA: W / (dV / 10) * 1000
        sample.i_ma = i if sample.i_ma == NO_VALUE or sample.i_ma < 0 else sample.i_ma + i
        return True
