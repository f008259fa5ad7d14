# Status codes of remote current-control operations: the command response status byte.
#
# 0 is success; every rejection has its own code so the head-end (and the audit log) can
# tell a forged command from a replayed, expired, malformed or out-of-range one. A rejected
# operation changes no state (the audit log records it).

from micropython import const

OK = const(0)
E_MALFORMED = const(1)  # length, version or argument length wrong for the command
E_METER_ID = const(2)  # addressed to another meter
E_MAC = const(3)  # HMAC does not verify (forged or corrupted)
E_REPLAY = const(4)  # counter not above the last accepted one
E_EXPIRED = const(5)  # expiry time passed
E_UNKNOWN_CMD = const(6)  # command code not known
E_LIMIT = const(7)  # limit not among the allowed limits
E_DURATION = const(8)  # end not after start, or longer than the maximum duration
E_START_PAST = const(9)  # start not in the future
E_UNKNOWN_ID = const(10)  # no reservation with this id
E_DUPLICATE_ID = const(11)  # a live reservation already has this id
E_FULL = const(12)  # every slot holds a live reservation
E_STATE = const(13)  # the operation does not apply in the current state
E_DIGEST = const(14)  # confirmation quotes a digest that does not match the record
E_CLOCK = const(15)  # the wall clock is invalid: time-based checks impossible
E_TOO_LATE = const(16)  # confirmation after the reservation's start
E_RANGE = const(17)  # an argument outside its range (id 0, drill duration ...)
E_NOT_DURABLE = const(18)  # the command counter could not be made durable: nothing ran
E_EXPIRY_RANGE = const(19)  # expiry further ahead than command.MAX_EXPIRY_MIN
E_UNSUPPORTED = const(20)  # the command is known but this meter has no part to run it
E_REDELIVERED = const(21)  # a broker's redelivery (DUP) of the request consumed last, whose
# response a reboot lost: it ran once, nothing runs again (no TAMPER_AUTH: not an attack)

NAMES = ("ok", "malformed", "meter_id", "mac", "replay", "expired", "unknown_cmd", "limit",
         "duration", "start_past", "unknown_id", "duplicate_id", "full", "state", "digest",
         "clock", "too_late", "range", "not_durable", "expiry_range", "unsupported",
         "redelivered")
