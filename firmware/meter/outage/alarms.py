# Sealed alarm messages for the A-route uplink, other than the Last Gasp ones.
#
# Layout (big-endian, 59 bytes): u8 type 0x03 | u8 code (meter.events code of the cause) |
# 8 meter id | u32 seq | i32 wall minute (-1: clock invalid) | u8 second | i32 a | i32 b |
# 32-byte HMAC-SHA256 over the 27 bytes before it. a and b are the event's arguments (for
# BREAKER_FAULT: commanded and sensed state). The head-end decodes with decode().

from micropython import const
import struct

from meter.mac import equal

MSG_ALARM = const(0x03)
_BODY = ">BB8sIiBii"
_BODY_LEN = const(27)
LENGTH = const(59)


class AlarmSender:
    """Builds, seals and hands alarms to the uplink; seq counts every alarm built."""

    def __init__(self, meter_id, mac):
        self.meter_id = bytes(meter_id)
        self.mac = mac
        self.seq = 0
        self.buf = bytearray(LENGTH)
        self.sent = 0
        self.lost = 0  # alarms the uplink could not take

    def send(self, uplink, code, minute, second, a=0, b=0):
        struct.pack_into(_BODY, self.buf, 0, MSG_ALARM, code, self.meter_id, self.seq, minute,
                         second, a, b)
        self.seq += 1
        mv = memoryview(self.buf)
        mv[_BODY_LEN:] = self.mac.digest(mv[:_BODY_LEN])
        if uplink is not None and uplink.connected() and uplink.send("alarm", self.buf):
            self.sent += 1
            return True
        self.lost += 1
        return False


def decode(payload, mac):
    """Head-end side: verify and parse an alarm; ValueError with a code when it is not one."""
    if len(payload) != LENGTH or payload[0] != MSG_ALARM:
        raise ValueError("E_LENGTH" if len(payload) != LENGTH else "E_TYPE")
    mv = memoryview(payload)
    if not equal(mac.digest(mv[:_BODY_LEN]), mv[_BODY_LEN:]):
        raise ValueError("E_MAC")
    v = struct.unpack(_BODY, bytes(mv[:_BODY_LEN]))
    return {"type": "alarm", "code": v[1], "meter_id": v[2], "seq": v[3], "minute": v[4],
            "second": v[5], "a": v[6], "b": v[7]}
