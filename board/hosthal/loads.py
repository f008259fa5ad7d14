# A scripted metrology source: a settable constant load, for tests that need exact energy.

from meter.hal import MetrologySource
from meter.ticks import elapsed_ms


class ConstantLoad(MetrologySource):
    """Delivers watts (negative = export) at volt_dv; energy is exact W*s per elapsed ms,
    the sub-joule part carried. mains=False makes it silent (no supply, no reading)."""

    def __init__(self, watts=1000, volt_dv=1010):
        self.watts = watts
        self.volt_dv = volt_dv
        self.mains = True
        self._last_ms = None
        self._rem = 0  # W*ms not yet delivered as whole joules

    def poll(self, s, now_ms):
        if not self.mains:
            self._last_ms = now_ms
            return False
        if self._last_ms is None:
            self._last_ms = now_ms
            return False
        dt = elapsed_ms(now_ms, self._last_ms)
        self._last_ms = now_ms
        w = self.watts
        wms = (w if w > 0 else -w) * dt + self._rem
        j = wms // 1000
        self._rem = wms - j * 1000
        s.clear()
        s.dt_ms = dt
        if w >= 0:
            s.e_fwd = j
        else:
            s.e_rev = j
        s.p_w = w
        s.v_dv = self.volt_dv
        s.i_ma = (w if w > 0 else -w) * 10_000 // self.volt_dv
        return True
