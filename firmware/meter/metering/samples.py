# The metering tick: validates one metrology sample, feeds the registers and interval capture.
#
# A sample carries the energy since the previous sample (integers, J and var*s) and the
# instantaneous values. A sample that is negative or physically absurd for the board's
# ratings is rejected as a whole: it changes no register, and its reason is counted.
# Allocation-free: Sample fields are small ints reassigned in place.

from micropython import const

from meter.metering.registers import FWD, REV, LAG, LEAD

# Rejection reasons (index into Metering.rejected)
REJ_NEGATIVE = const(0)  # an energy or magnitude below zero
REJ_ENERGY = const(1)  # more energy than max power x elapsed time allows
REJ_CURRENT = const(2)  # current above the board's rating
REJ_VOLTAGE = const(3)  # voltage outside the plausible range
REJ_INTERVAL = const(4)  # elapsed time of the sample 0 or absurdly long
REJ_COUNT = const(5)
REJECT_NAMES = ("negative", "energy_spike", "current", "voltage", "interval")

REJECTED = const(64)  # tick() result bit: the sample was rejected (beside the capture bits)
NO_VALUE = const(-1)  # a field with no reading (current of an absent phase, voltage)


class Sample:
    """One metrology reading. Energies are since the previous reading."""

    def __init__(self):
        self.dt_ms = 0  # time the energies cover
        self.e_fwd = 0  # J imported
        self.e_rev = 0  # J exported
        self.q_lag = 0  # var*s lagging
        self.q_lead = 0  # var*s leading
        self.p_w = 0  # instantaneous active power, W (negative = export)
        self.i_ma = 0  # current phase R (single phase: the line), mA; NO_VALUE: none
        self.i2_ma = NO_VALUE  # current phase T, mA (single-phase 2-wire: none)
        self.v_dv = NO_VALUE  # voltage, 0.1 V

    def clear(self):
        self.dt_ms = 0
        self.e_fwd = self.e_rev = self.q_lag = self.q_lead = 0
        self.p_w = self.i_ma = 0
        self.i2_ma = self.v_dv = NO_VALUE


class Limits:
    """Plausibility limits from the board's ratings."""

    def __init__(self, max_power_w=40_000, max_current_ma=120_000, min_volt_dv=0,
                 max_volt_dv=3_000, max_dt_ms=60_000):
        self.max_power_w = max_power_w
        self.max_current_ma = max_current_ma
        self.min_volt_dv = min_volt_dv
        self.max_volt_dv = max_volt_dv
        self.max_dt_ms = max_dt_ms


class Metering:
    def __init__(self, regs, capture, limits=None):
        self.regs = regs
        self.capture = capture
        self.limits = limits or Limits()
        self.rejected = [0] * REJ_COUNT
        self.last_reject = NO_VALUE
        self.samples = 0
        # Latest accepted instantaneous values (ECHONET E7/E8, the limiter).
        self.p_w = 0
        self.i_ma = 0
        self.i2_ma = NO_VALUE
        self.v_dv = NO_VALUE
        self.frozen = False  # Last Gasp: registers frozen, samples ignored

    def check(self, s):
        """Reason code for rejecting sample s, or -1 when it is plausible."""
        lim = self.limits
        if s.dt_ms <= 0 or s.dt_ms > lim.max_dt_ms:
            return REJ_INTERVAL
        if s.e_fwd < 0 or s.e_rev < 0 or s.q_lag < 0 or s.q_lead < 0:
            return REJ_NEGATIVE
        if s.i_ma < NO_VALUE or s.i2_ma < NO_VALUE:  # NO_VALUE (-1): no current reading
            return REJ_NEGATIVE
        # energy [J] <= P_max [W] * dt [ms] / 1000, kept in small ints:
        # dt <= 60 000 ms and P_max <= 100 kW keep the product below 2**30 once split.
        cap = lim.max_power_w * (s.dt_ms // 10) // 100 + lim.max_power_w
        if s.e_fwd + s.e_rev > cap or s.q_lag + s.q_lead > cap:
            return REJ_ENERGY
        if s.p_w > lim.max_power_w or -s.p_w > lim.max_power_w:
            return REJ_ENERGY
        if s.i_ma > lim.max_current_ma or s.i2_ma > lim.max_current_ma:
            return REJ_CURRENT
        if s.v_dv != NO_VALUE and (s.v_dv < lim.min_volt_dv or s.v_dv > lim.max_volt_dv):
            return REJ_VOLTAGE
        return NO_VALUE

    def tick(self, s, now):
        """Account sample s at the step's clock reading `now` (meter.clock.Now). Returns the
        interval capture bits, with REJECTED set when the sample was refused. A refused sample
        changes no register, but the clock still drives interval capture: the registers'
        value at a boundary is known exactly whether or not this second's sample counted."""
        if self.frozen:
            return 0
        why = self.check(s)
        if why >= 0:
            self.rejected[why] += 1
            self.last_reject = why
            return self.capture.on_tick(now, NO_VALUE) | REJECTED
        regs = self.regs
        if s.e_fwd:
            regs.add(FWD, s.e_fwd)
        if s.e_rev:
            regs.add(REV, s.e_rev)
        if s.q_lag:
            regs.add(LAG, s.q_lag)
        if s.q_lead:
            regs.add(LEAD, s.q_lead)
        self.samples += 1
        self.p_w = s.p_w
        self.i_ma = s.i_ma
        self.i2_ma = s.i2_ma
        self.v_dv = s.v_dv
        return self.capture.on_tick(now, s.v_dv)

    def clock_tick(self, now):
        """Advance interval capture at `now` when no sample arrived this second (front end
        silent)."""
        if self.frozen:
            return 0
        return self.capture.on_tick(now, NO_VALUE)
