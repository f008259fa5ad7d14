"""Head-end decoders of the meter's outage messages: Last Gasp alarm, restoration notice, alarm.

Written from the documented wire format (firmware/meter/outage/wire.py's header), not from
the firmware's encoder, so a test that encodes in the firmware and decodes here checks both
against the documentation. Each decoder verifies the HMAC-SHA256 seal with Python's hmac
module under the meter key, then returns a dict; a message that is malformed or forged
raises ValueError with a code: E_EMPTY, E_TYPE, E_LENGTH, E_MAC.

    decode(payload, key)          any of the three, by its type byte
    decode_outage(payload, key)   a Last Gasp alarm or a restoration notice
    decode_alarm(payload, key)    an alarm (type 0x03, e.g. BREAKER_FAULT)
"""

import hashlib
import hmac
import struct

LAST_GASP = 0x01
RESTORED = 0x02
ALARM = 0x03

# flags of the Last Gasp alarm and the restoration notice
CLOCK_VALID = 0x01  # the outage start comes from a valid clock
END_VALID = 0x02  # the outage end comes from a valid clock
ALARM_LOST = 0x04  # the meter could not hand the Last Gasp alarm to its uplink
LONG = 0x08  # a long power failure
REBOOTED = 0x10  # the hold-up ran out: the meter rebooted inside the outage

SEAL = 32  # HMAC-SHA256 after the body


class Layout:
    """One message type: struct format of the body (the seal follows) and its field names."""

    def __init__(self, name, fmt, fields):
        self.name = name
        self.body = struct.Struct(fmt)
        self.fields = fields
        self.size = self.body.size + SEAL


LAYOUTS = {
    # type, flags, meter id, seq, start minute, start second, repeat, E0, E3, unit, coefficient
    LAST_GASP: Layout("last_gasp", "<B B 8s L L B B L L B L",
                      ("flags", "meter_id", "seq", "start_minute", "start_second", "repeat",
                       "e0", "e3", "unit", "coefficient")),
    # type, flags, meter id, seq, start minute, end minute, start second, end second,
    # duration s, sequence ms, failures, long failures, long duration s, E0, alarm seq,
    # suppressed, dips
    RESTORED: Layout("restored", "<B B 8s L L L B B L H L L L L L H H",
                     ("flags", "meter_id", "seq", "start_minute", "end_minute",
                      "start_second", "end_second", "duration_s", "sequence_ms", "failures",
                      "long_failures", "long_duration_s", "e0", "alarm_seq", "suppressed",
                      "dips")),
    # type, code, meter id, seq, minute (signed: -1 clock invalid), second, a, b (big-endian)
    ALARM: Layout("alarm", ">B B 8s L l B l l",
                  ("code", "meter_id", "seq", "minute", "second", "a", "b")),
}


def _verify(layout, payload, key):
    if len(payload) != layout.size:
        raise ValueError("E_LENGTH")
    n = layout.body.size
    tag = hmac.new(bytes(key), bytes(payload[:n]), hashlib.sha256).digest()
    if not hmac.compare_digest(tag, bytes(payload[n:])):
        raise ValueError("E_MAC")
    values = layout.body.unpack(bytes(payload[:n]))
    out = {"type": layout.name}
    out.update(zip(layout.fields, values[1:]))
    return out


def decode(payload, key, types=(LAST_GASP, RESTORED, ALARM)):
    """Verify and parse one message of the given types; key: the meter key (bytes)."""
    if len(payload) < 1:
        raise ValueError("E_EMPTY")
    kind = payload[0]
    if kind not in types:
        raise ValueError("E_TYPE")
    return _verify(LAYOUTS[kind], payload, key)


def decode_outage(payload, key):
    """A Last Gasp alarm ("last_gasp") or a restoration notice ("restored")."""
    return decode(payload, key, (LAST_GASP, RESTORED))


def decode_alarm(payload, key):
    """An alarm ("alarm": code, meter_id, seq, minute, second, a, b)."""
    return decode(payload, key, (ALARM,))


def describe(msg):
    """One line for a console or log."""
    kind = msg["type"]
    who = msg["meter_id"].decode("ascii", "replace")
    if kind == "last_gasp":
        return "%s LAST GASP seq %d repeat %d at minute %d:%02d E0 %d" % (
            who, msg["seq"], msg["repeat"], msg["start_minute"], msg["start_second"], msg["e0"])
    if kind == "restored":
        return "%s RESTORED seq %d after %d s (failures %d, alarm %s)" % (
            who, msg["seq"], msg["duration_s"], msg["failures"],
            "lost" if msg["flags"] & ALARM_LOST else "seq %d" % msg["alarm_seq"])
    return "%s ALARM code %d seq %d a %d b %d" % (who, msg["code"], msg["seq"], msg["a"],
                                                  msg["b"])
