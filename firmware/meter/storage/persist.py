# The persistence contract of the limiter, reservation table and command envelope.
#
# A store is any object with save(kind, data): data is a bytes-like blob of at most
# MAX_BLOB bytes that the store must copy before returning (callers reuse their buffers).
# The newest blob of a kind is the state to restore at boot, except KIND_AUDIT, where every
# blob is one audit entry to restore oldest first. The app maps the kinds onto journal
# record types (journal.REC_LIMITER, REC_RESERVATIONS, REC_AUDIT ...).


from meter.storage.records import (  # noqa: F401  (the kinds, re-exported)
    KIND_LIMITER, KIND_RESERVATIONS, KIND_COUNTER, KIND_AUDIT, KIND_DRILL, MAX_BLOB, AUDIT_KEYS)


class NullStore:
    """A store that keeps nothing (a meter without a journal, or a test)."""

    def save(self, kind, data):
        pass


class JournalStore:
    """A store on the flash journal (meter.storage.journal API: append(rtype, payload, key),
    latest(rtype, key), records(rtype)). Kinds map to (record type, key):
      KIND_LIMITER (rec_limiter, 0), KIND_COUNTER (rec_limiter, 1), KIND_DRILL
      (rec_limiter, 2), KIND_RESERVATIONS (rec_reservations, 0), KIND_AUDIT (rec_audit,
      entry seq): the journal must keep AUDIT_KEYS keys of rec_audit and 3 of rec_limiter.
    A failed append is counted in `failed` (the app reports it) and never propagates: the
    limiter keeps protecting from RAM when flash is full or broken."""

    def __init__(self, journal, rec_limiter, rec_reservations, rec_audit):
        self.journal = journal
        self.rec_limiter = rec_limiter
        self.rec_reservations = rec_reservations
        self.rec_audit = rec_audit
        self.failed = 0
        self.last_error = None

    def _where(self, kind, data):
        if kind == KIND_AUDIT:
            seq = (data[0] << 24) | (data[1] << 16) | (data[2] << 8) | data[3]
            return self.rec_audit, seq & 0x3FFFFFFF
        if kind == KIND_RESERVATIONS:
            return self.rec_reservations, 0
        if kind == KIND_COUNTER:
            return self.rec_limiter, 1
        if kind == KIND_DRILL:
            return self.rec_limiter, 2
        return self.rec_limiter, 0

    def save(self, kind, data):
        rtype, key = self._where(kind, data)
        try:
            self.journal.append(rtype, bytes(data), key)
        except Exception as e:  # JournalFull, flash errors: keep running, report
            self.failed += 1
            self.last_error = e

    def restore(self, limiter, processor):
        """Boot: load every kind the journal holds into the limiter (its table and drill
        report), the command processor (counter) and its audit log, oldest audit entry
        first. Returns the number of blobs that were invalid (skipped, logged by none)."""
        j = self.journal
        bad = 0
        for rtype, key, load in ((self.rec_limiter, 0, limiter.from_bytes),
                                 (self.rec_reservations, 0, limiter.table.from_bytes),
                                 (self.rec_limiter, 1, processor.restore_counter),
                                 (self.rec_limiter, 2, limiter.drill.from_bytes)):
            blob = j.latest(rtype, key)
            if blob is not None:
                try:
                    load(blob)
                except ValueError:
                    bad += 1
        for _, blob in j.records(self.rec_audit):
            try:
                processor.audit.restore(blob)
            except ValueError:
                bad += 1
        return bad
