# The household wiring behind the meter's breaker: a metrology source whose load is cut
# while the relay's contacts are open (the host simulation's relay and its load).
#
# The meter measures upstream of nothing: its current and energy flow through the breaker,
# so with the contacts open (relay.sensed() False, the feedback contact follows the main
# contacts) current, power and energy read 0 and only the supply voltage remains. The
# wrapped source keeps running (its clock and profile advance; the load it would have drawn
# is simply not connected), and each poll is judged whole at the relay state of that poll
# (1 s polls: a trip lands on the next second).

from meter.hal import MetrologySource
from meter.metering.samples import NO_VALUE


class Downstream(MetrologySource):
    """source: the household (a MetrologySource); relay: meter.hal.Relay. cut_polls counts
    the polls delivered with the load cut off."""

    def __init__(self, source, relay):
        self.source = source
        self.relay = relay
        self.cut_polls = 0

    def poll(self, s, now_ms):
        if not self.source.poll(s, now_ms):
            return False
        if self.relay.sensed():
            return True
        self.cut_polls += 1
        s.e_fwd = s.e_rev = s.q_lag = s.q_lead = 0
        s.p_w = 0
        s.i_ma = 0
        if s.i2_ma != NO_VALUE:
            s.i2_ma = 0
        return True
