# The persistence contract of the control parts: save-only handles by kind, and the stores.
#
# The limiter, reservation table, command counter, drill report and audit log never see a
# store: each gets a save-only handle for its kind (meter.storage.records KIND_*),
#   handle.save(data)   data: a bytes-like blob of at most MAX_BLOB bytes; the handle copies
#                       it before returning (callers reuse their buffers). Returns True when
#                       the blob is durable (it survives a power cut from now on), False when
#                       it was refused (journal full, flash fault, nowhere to keep it); it
#                       never raises. A part whose safety rests on the blob being durable
#                       (the command counter: meter.control.command) fails closed on False;
#                       the others keep running from RAM.
# A store hands them out and reads them back at boot:
#   store.saver(kind)   -> the handle of that kind
#   store.latest(kind)  -> the newest blob of that kind (bytes), or None
#   store.all(kind)     -> every blob of that kind held, oldest first (KIND_AUDIT: one blob
#                          per audit entry, restored oldest first; the other kinds: the
#                          newest only)
# meter.control.assembly.restore_control() does the boot loading. NullStore keeps nothing
# (a meter without a journal, a test); meter.storage.store.Store keeps them in the journal.

from meter.storage.records import (  # noqa: F401  (the kinds, re-exported)
    KIND_LIMITER, KIND_RESERVATIONS, KIND_COUNTER, KIND_AUDIT, KIND_DRILL, MAX_BLOB, AUDIT_KEYS)


class NullSaver:
    """A save handle that keeps nothing: every save is refused (False), so a meter without
    a journal refuses every command (its counter can never be made durable: fail closed)."""

    def save(self, data):
        return False


NULL_SAVER = NullSaver()  # the default handle of a part built without a store


class NullStore:
    """A store that keeps nothing (a meter without a journal, or a test)."""

    def saver(self, kind):
        return NULL_SAVER

    def latest(self, kind):
        return None

    def all(self, kind):
        return []
