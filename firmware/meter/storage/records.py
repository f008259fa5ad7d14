# Every record type the meter keeps on flash, in one place (the journal engine knows none).
#
# Record types are journal type numbers 1..MAX_TYPE. Each line names the owner of the
# payload format. Later parts add theirs here (REC_OUTBOX for the A-route outbox, a
# firmware-update record for the OTA pair); free numbers: 14..31.
#
# The control parts (limiter, reservations, command counter, drill, audit) do not see record
# types: they save through small handles by KIND, and the store maps kinds onto records.
# The payload formats, the kind -> record mapping and the keep map (records kept per type)
# are meter.storage.store's (keep_map()); meter.storage.assembly builds every journal with it.

from micropython import const

REC_REGISTERS = const(1)  # storage.store: registers + the partial interval (key 0)
REC_MINUTE = const(2)  # storage.store: 1-minute series blocks (key: block number)
REC_FIVE = const(3)  # storage.store: 5-minute series blocks
REC_HALF = const(4)  # storage.store: 30-minute series blocks (the long history)
REC_EVENT = const(5)  # storage.store: event-log blocks (key: seq // EVENT_BLOCK)
REC_CLOCK = const(6)  # storage.store: the last clock setting (key 0)
REC_LIMITER = const(7)  # control: limiter state (key 0), command counter (1), drill (2)
REC_RESERVATIONS = const(8)  # control.reservations: the whole table (key 0)
REC_AUDIT = const(9)  # control.audit: one command audit entry (key: entry seq)
REC_OUTBOX = const(10)  # aroute.outbox: stream cursors, boot count, alarm register (key 0)
REC_LASTGASP = const(11)  # outage.lastgasp: the Last Gasp machine's state (key 0)
REC_CONFIG = const(12)  # aroute.service: A-route settings changed by command (key 0)
REC_TAMPER = const(13)  # storage.store: the tamper register, kept until acknowledged (key 0)
FIRST_TYPE = const(1)
LAST_TYPE = const(13)  # the highest type in use (the journal keeps 1 key of each by default)

# Kinds the control parts save (through meter.storage.store.Store.saver(kind) handles)
KIND_LIMITER = const(1)  # Limiter state: contract, breaker state, re-close count
KIND_RESERVATIONS = const(2)  # ReservationTable: the whole table
KIND_COUNTER = const(3)  # CommandProcessor: the last accepted command counter
KIND_AUDIT = const(4)  # AuditLog: one audit entry
KIND_DRILL = const(5)  # DrillReport: the latest drill report
KIND_OUTBOX = const(6)  # aroute.outbox: the A-route's cursors (REC_OUTBOX)
KIND_CONFIG = const(7)  # aroute.service: the A-route's settings (REC_CONFIG)
MAX_BLOB = const(200)  # largest blob a handle takes (the journal's MAX_PAYLOAD)
AUDIT_KEYS = const(32)  # audit entries kept on flash (= meter.control.audit.ENTRIES)
