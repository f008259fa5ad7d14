# The remote-control sub-assembly: breaker, reservation table, limiter, audit log, commands.
#
# build_control() wires the parts of one meter's current control from the relay (HAL), the
# event log, a store (meter.storage.persist contract: saver(kind), latest(kind), all(kind))
# and the settings; each part gets only the save handle of its own kind. Boot order:
#   ctl = build_control(...)        at construction
#   restore_control(ctl, store)     at boot, once the store is mounted
#   ctl.limiter.start(now)          then every second ctl.limiter.tick(now, i_ma, i2_ma)
# The command envelope (meter.control.command, with HMAC) is imported only when the meter
# has a key: without one no command can be authenticated and `commands` is None.

from meter.control.audit import AuditLog
from meter.control.breaker import Breaker
from meter.control.limiter import Limiter, MIN_OVER_MS, RECLOSE_MS, MAX_RECLOSES, \
    RECLOSE_RESET_MS
from meter.control.reservations import ReservationTable
from meter.storage.persist import (NullStore, KIND_LIMITER, KIND_RESERVATIONS, KIND_COUNTER,
                                   KIND_AUDIT, KIND_DRILL)


class Control:
    """The built parts: limiter (with its drill), breaker, table (reservations), commands
    (CommandProcessor, None without a key) and audit (the commands' AuditLog)."""

    def __init__(self, limiter, breaker, table, commands, audit):
        self.limiter = limiter
        self.breaker = breaker
        self.table = table
        self.commands = commands
        self.audit = audit


def build_control(relay, events, store, meter_id, key, allowed, contract_a, max_duration_min,
                  min_over_ms=MIN_OVER_MS, reclose_ms=RECLOSE_MS, max_recloses=MAX_RECLOSES,
                  reclose_reset_ms=RECLOSE_RESET_MS, ack_tamper=None, tamper_pending=None):
    """The control parts of one meter. store: None for a meter that keeps nothing (its
    commands are all refused E_NOT_DURABLE: no counter can be made durable); contract_a: 0
    for the highest allowed limit; ack_tamper(now) -> bool and tamper_pending() -> bool:
    the tamper register (Store.ack_tamper, Store.tamper_pending) the ACK_TAMPER command and
    the status block use (None: ACK_TAMPER answers E_UNSUPPORTED). Raises SettingError
    for a contract limit, timing or maximum duration out of range, or a meter id that is
    not 8 bytes."""
    if store is None:
        store = NullStore()
    table = ReservationTable(events, store.saver(KIND_RESERVATIONS), allowed,
                             max_duration_min)
    breaker = Breaker(relay, events)
    limiter = Limiter(table, breaker, events, store.saver(KIND_LIMITER), contract_a,
                      min_over_ms, reclose_ms, max_recloses, reclose_reset_ms,
                      store.saver(KIND_DRILL))
    audit = AuditLog(store.saver(KIND_AUDIT))
    commands = None
    if key:
        from meter.control.command import CommandProcessor

        commands = CommandProcessor(meter_id, key, limiter, audit, events,
                                    store.saver(KIND_COUNTER), ack_tamper, tamper_pending)
    return Control(limiter, breaker, table, commands, audit)


def restore_control(ctl, store):
    """Boot, before ctl.limiter.start(now): load what the store holds (limiter state,
    reservation table, command counter, drill report, then the audit entries oldest
    first; a store of None holds nothing). Returns the number of invalid blobs, skipped
    (each raised ValueError, which includes SettingError, and changed nothing)."""
    if store is None:
        return 0  # a meter that keeps nothing
    lim = ctl.limiter
    loads = [(KIND_LIMITER, lim.from_bytes), (KIND_RESERVATIONS, ctl.table.from_bytes)]
    if ctl.commands is not None:
        loads.append((KIND_COUNTER, ctl.commands.restore_counter))
    loads.append((KIND_DRILL, lim.drill.from_bytes))
    bad = 0
    for kind, load in loads:
        blob = store.latest(kind)
        if blob is not None:
            try:
                load(blob)
            except ValueError:
                bad += 1
    for blob in store.all(KIND_AUDIT):
        try:
            ctl.audit.restore(blob)
        except ValueError:
            bad += 1
    return bad
