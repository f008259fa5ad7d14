# Simulated household front end: a deterministic, integer-only load profile for the host
# simulation, the benchmarks and a board's demo mode.
#
# The household (Japan: 100 V single-phase 2-wire by default, 100/200 V single-phase 3-wire
# as an option) is a sum of components, each an active power (W) with a reactive share
# tan(phi) in permille (positive = lagging/inductive, negative = leading/capacitive):
#   standby electronics   55 W, slightly leading (switch-mode supplies' input capacitors)
#   refrigerator          compressor 130 W for 18 of every 45 minutes (fan 8 W otherwise)
#   activity              lighting, TV, PCs, cooking odds and ends: an hourly profile,
#                         interpolated per minute, with per-minute jitter and per-poll noise;
#                         lagging by day, leading at night (LED lighting, chargers)
#   appliance events      kettle, microwave, hair dryer, rice cooker, washing machine: each
#                         may start at a new minute during the hours it is used (_EVENTS)
#   air conditioner       (ac=True) compressor cycles 12 min on / 8 min off in _AC_HOURS
#   EV charger            (ev_w > 0) from 23:00 until ev_wh is delivered or 07:00
#   rooftop PV            (pv_w > 0) a parabola from 06:00 to 18:00 scaled by passing clouds
# Net active power = load - PV: positive is imported (e_fwd), negative exported (e_rev).
# Voltage = nominal + a slow random walk (+/- 3 V) - the service-line drop of the net power
# (export raises it). Current = apparent power / voltage, per wire; in 3-wire mode 100 V
# loads sit on leg R or T and 200 V loads (air conditioner, EV, PV) on both.
#
# Time: the profile follows the wall clock the caller passes in (clock.wall_minute(), minute
# of day = wall_minute % 1440); the energy of a poll is the power computed at that poll held
# over the monotonic ms since the previous poll, converted to J exactly: the sub-joule
# remainder (mJ) is carried per channel, so sum(e) * 1000 + remainder == sum(p * dt).
#
# Randomness: three small multiplicative congruential generators (L'Ecuyer's constants for
# 16-bit arithmetic) combined; every product stays below 2**23, so poll() allocates nothing
# on a 31-bit small-int port, and a seed gives the same household on every run.

from array import array

from micropython import const

from meter.errors import SettingError

from meter.metering.frontends import elapsed_ms
from meter.hal import MetrologySource
from meter.metering.samples import NO_VALUE

_M1 = const(32363)
_A1 = const(157)
_M2 = const(31727)
_A2 = const(146)
_M3 = const(31657)
_A3 = const(142)
_RAND = const(32362)  # _rand() returns 0 .. _RAND - 1

_DAY_MIN = const(1440)
_LEG_R = const(0)  # 100 V load between line R and neutral (the only leg in 2-wire mode)
_LEG_T = const(1)  # 100 V load between line T and neutral
_LEG_200 = const(2)  # 200 V load between R and T

# Reactive share tan(phi) x 1000 for the power factors used below.
_TAN_PF100 = const(0)
_TAN_PF99 = const(142)
_TAN_PF95 = const(329)
_TAN_PF92 = const(426)
_TAN_PF85 = const(620)
_TAN_LEAD97 = const(-251)

_STANDBY_W = const(55)
_FRIDGE_W = const(130)
_FRIDGE_FAN_W = const(8)
_AC_W = const(650)
_AC_FAN_W = const(35)
_WANDER_DV = const(30)  # voltage random walk bound
_DROP_W_PER_DV = const(200)  # service-line drop: 1 dV per 200 W of net power

# Activity load (W) at each hour of the day, linearly interpolated within the hour.
_PROFILE_W = (80, 50, 40, 40, 40, 60, 250, 450, 350, 200, 180, 200,
              300, 200, 180, 200, 250, 400, 650, 750, 700, 600, 400, 200)


def _hours(*hs):
    m = 0
    for h in hs:
        m |= 1 << h
    return m


# Appliance events: (W, shortest s, longest s, tan permille, hours used (bit per hour),
# chance of a start per hour of use (permille), leg in 3-wire mode).
_EVENTS = (
    (1250, 150, 240, _TAN_PF100, _hours(6, 7, 8, 15, 19, 20, 21), 450, _LEG_R),  # kettle
    (1400, 60, 300, _TAN_PF95, _hours(7, 12, 18, 19, 20), 400, _LEG_T),  # microwave
    (1200, 180, 420, _TAN_PF100, _hours(6, 7, 21, 22), 250, _LEG_T),  # hair dryer
    (700, 1800, 3000, _TAN_PF100, _hours(5, 6, 16, 17), 350, _LEG_R),  # rice cooker
    (380, 2400, 3600, _TAN_PF85, _hours(9, 10, 11), 300, _LEG_T),  # washing machine
)
_NIGHT_HOURS = _hours(22, 23, 0, 1, 2, 3, 4)
_AC_HOURS = _hours(12, 13, 14, 15, 16, 19, 20, 21, 22, 23)
_EV_START_MIN = const(23 * 60)
_EV_END_MIN = const(7 * 60)
_PV_START_MIN = const(6 * 60)
_PV_END_MIN = const(18 * 60)
_PV_SPAN2 = const(129_600)  # ((18:00 - 06:00) / 2) ** 2 in minutes**2


def _isqrt(n):
    """floor(sqrt(n)) for 0 <= n < 2**30, integers only."""
    if n < 2:
        return n
    x = n
    y = (x + 1) >> 1
    while y < x:
        x = y
        y = (x + n // x) >> 1
    return x


def _current_ma(p_w, q_var, v_dv):
    """|I| in mA (10 mA resolution) of active p_w and reactive q_var at v_dv."""
    a = p_w * 1000 // v_dv  # active component in 10 mA
    r = q_var * 1000 // v_dv  # reactive component in 10 mA
    return _isqrt(a * a + r * r) * 10


class SimulatedHousehold(MetrologySource):
    """clock: an object with wall_minute() (meter.hal.Clock). seed: any int. pv_w: PV peak
    W (0 = none). ev_w / ev_wh: EV charger power and nightly energy (0 = no EV). ac: air
    conditioner in use. three_wire: 100/200 V single-phase 3-wire (i2_ma = leg T). volts_dv:
    nominal voltage in 0.1 V (default 1010, or 2020 line to line in 3-wire mode)."""

    def __init__(self, clock, seed=1, pv_w=0, ev_w=0, ev_wh=8000, ac=True, three_wire=False,
                 volts_dv=None):
        if not 0 <= pv_w <= 20_000:
            raise SettingError("E_PV_W")
        if not 0 <= ev_w <= 8_000 or not 0 <= ev_wh <= 100_000:
            raise SettingError("E_EV")
        if volts_dv is None:
            volts_dv = 2020 if three_wire else 1010
        if not 800 <= volts_dv <= 2400:
            raise SettingError("E_VOLTS")
        self._clock = clock
        self.pv_w = pv_w
        self.ev_w = ev_w
        self.ev_wh = ev_wh
        self.ac = ac
        self.three_wire = three_wire
        self.nominal_dv = volts_dv
        seed &= 0x3FFF_FFFF
        self._s1 = 1 + seed % (_M1 - 1)
        self._s2 = 1 + (seed // 7) % (_M2 - 1)
        self._s3 = 1 + (seed // 49) % (_M3 - 1)
        self._left_ms = array("i", [0] * len(_EVENTS))  # remaining run time per event kind
        self._rem_mj = array("i", [0, 0, 0, 0])  # carried mJ: fwd, rev, lag, lead
        self._p = array("i", [0, 0, 0])  # per poll: W per leg (R, T, 200 V)
        self._q = array("i", [0, 0, 0])  # per poll: var per leg
        self._last_ms = 0
        self._started = False
        self._minute = -1
        self._mod = 0  # minute of day of self._minute
        self._act_pct = 100  # per-minute jitter of the activity profile, %
        self._wander_dv = 0
        self._cloud_pct = 100
        self._ev_left_j = 0
        self._ev_day = -1
        self.polls = 0

    # --- randomness ------------------------------------------------------------------

    def _rand(self):
        self._s1 = self._s1 * _A1 % _M1
        self._s2 = self._s2 * _A2 % _M2
        self._s3 = self._s3 * _A3 % _M3
        return (self._s1 - self._s2 + self._s3) % _RAND

    def _below(self, n):
        """A pseudo-random int in 0 .. n - 1 for 1 <= n <= 32768."""
        return self._rand() * n // _RAND

    # --- minute-level state ----------------------------------------------------------

    def _on_minute(self, wm):
        self._minute = wm
        mod = wm % _DAY_MIN
        self._mod = mod
        hour = mod // 60
        left = self._left_ms
        for k in range(len(_EVENTS)):
            ev = _EVENTS[k]
            if left[k] <= 0 and (ev[4] >> hour) & 1:
                if self._rand() < ev[5] * _RAND // 60_000:
                    left[k] = (ev[1] + self._below(ev[2] - ev[1] + 1)) * 1000
        self._act_pct = 85 + self._below(31)
        w = self._wander_dv + self._below(7) - 3
        self._wander_dv = -_WANDER_DV if w < -_WANDER_DV else (_WANDER_DV if w > _WANDER_DV
                                                                 else w)
        self._cloud_pct = (self._cloud_pct * 3 + 40 + self._below(61)) // 4
        if self.ev_w and mod >= _EV_START_MIN and self._ev_day != wm // _DAY_MIN:
            self._ev_day = wm // _DAY_MIN
            self._ev_left_j = self.ev_wh * 3600

    # --- the per-poll model ----------------------------------------------------------

    def _add(self, leg, w, tan):
        if not self.three_wire:
            leg = _LEG_R
        self._p[leg] += w
        self._q[leg] += w * tan // 1000

    def _load(self, dt):
        """Fill self._p/_q with the loads at the current minute; dt advances the events."""
        p = self._p
        q = self._q
        p[0] = p[1] = p[2] = 0
        q[0] = q[1] = q[2] = 0
        mod = self._mod
        wm = self._minute
        self._add(_LEG_R, _STANDBY_W, _TAN_LEAD97)
        self._add(_LEG_R, _FRIDGE_W if wm % 45 < 18 else _FRIDGE_FAN_W, _TAN_PF85)
        h = mod // 60
        m = mod % 60
        act = (_PROFILE_W[h] * (60 - m) + _PROFILE_W[(h + 1) % 24] * m) // 60
        act = act * self._act_pct // 100 + self._below(21) - 10
        if act > 0:
            tan = _TAN_LEAD97 if (_NIGHT_HOURS >> h) & 1 else _TAN_PF92
            self._add(_LEG_T, act // 2, tan)
            self._add(_LEG_R, act - act // 2, tan)
        left = self._left_ms
        for k in range(len(_EVENTS)):
            if left[k] > 0:
                ev = _EVENTS[k]
                self._add(ev[6], ev[0], ev[3])
                left[k] -= dt
        if self.ac and (_AC_HOURS >> h) & 1:
            self._add(_LEG_200, _AC_W if wm % 20 < 12 else _AC_FAN_W, _TAN_PF95)
        if self._ev_left_j > 0 and (mod >= _EV_START_MIN or mod < _EV_END_MIN):
            self._add(_LEG_200, self.ev_w, _TAN_PF99)
            self._ev_left_j -= self.ev_w * dt // 1000
        if self.pv_w and _PV_START_MIN < mod < _PV_END_MIN:
            shape = (mod - _PV_START_MIN) * (_PV_END_MIN - mod) * 1000 // _PV_SPAN2
            pv = self.pv_w * shape // 1000 * self._cloud_pct // 100
            self._add(_LEG_200, -pv, _TAN_PF100)

    def _energy(self, ch, w, dt):
        """J of w watts over dt ms, the sub-joule remainder carried in channel ch."""
        acc = self._rem_mj[ch] + w * (dt % 1000)
        self._rem_mj[ch] = acc % 1000
        return w * (dt // 1000) + acc // 1000

    def poll(self, s, now_ms):
        if not self._started:
            self._started = True
            self._last_ms = now_ms
            return False
        dt = elapsed_ms(now_ms, self._last_ms)
        if dt <= 0:
            return False
        self._last_ms = now_ms
        wm = self._clock.wall_minute()
        if wm != self._minute:
            self._on_minute(wm)
        self._load(dt)
        p = self._p
        q = self._q
        net_p = p[0] + p[1] + p[2]
        net_q = q[0] + q[1] + q[2]
        v = self.nominal_dv + self._wander_dv - net_p // _DROP_W_PER_DV
        s.dt_ms = dt
        s.p_w = net_p
        s.v_dv = v
        if net_p >= 0:
            s.e_fwd = self._energy(0, net_p, dt)
            s.e_rev = 0
        else:
            s.e_fwd = 0
            s.e_rev = self._energy(1, -net_p, dt)
        if net_q >= 0:
            s.q_lag = self._energy(2, net_q, dt)
            s.q_lead = 0
        else:
            s.q_lag = 0
            s.q_lead = self._energy(3, -net_q, dt)
        if self.three_wire:
            # each 100 V leg carries its own loads at v/2 plus the 200 V loads at v
            half = v >> 1
            s.i_ma = _current_ma(p[0] * v // half + p[2], q[0] * v // half + q[2], v)
            s.i2_ma = _current_ma(p[1] * v // half + p[2], q[1] * v // half + q[2], v)
        else:
            s.i_ma = _current_ma(net_p, net_q, v)
            s.i2_ma = NO_VALUE
        self.polls += 1
        return True

    def remainder_mj(self, ch):
        """Carried sub-joule energy (mJ) of channel ch: 0 fwd, 1 rev, 2 lag, 3 lead."""
        return self._rem_mj[ch]
