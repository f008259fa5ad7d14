# Sealed alarms for the A-route uplink for causes other than a power failure (BREAKER_FAULT).
#
# The message layout (type 0x03, 59 bytes) is outage.wire's AlarmMessage; the head-end
# decodes it with tools/headend_alarms.py. seq counts every alarm built, sent or not.

from meter.outage.wire import ALARM_LEN, AlarmMessage

LENGTH = ALARM_LEN


class AlarmSender:
    """Builds, seals and hands alarms to the uplink (meter.hal.Uplink or None)."""

    def __init__(self, meter_id, mac):
        self.message = AlarmMessage(meter_id, mac)
        self.buf = self.message.buf
        self.seq = 0
        self.sent = 0
        self.lost = 0  # alarms the uplink could not take

    def send(self, uplink, code, now, a=0, b=0):
        """Alarm `code` (a meter.events code) with its arguments, stamped with now
        (meter.clock.Now: the event minute, -1 while the clock is invalid). Returns True
        when the uplink took it."""
        self.message.pack(code, self.seq, now.ev_minute, now.second, a, b)
        self.seq += 1
        if uplink is not None and uplink.connected() and uplink.send("alarm", self.buf):
            self.sent += 1
            return True
        self.lost += 1
        return False
