# Audit log of remote commands: every accepted and rejected command, a bounded FIFO.
#
# An entry is (seq, counter, minute, second, code, status, arg): seq numbers every entry
# ever appended (continues after a restore), counter is the command counter the request
# claimed (0 when unreadable), minute/second the wall time (-1 when invalid), code the
# command code, status its result (meter.control.status), arg the command's main argument
# (reservation id, limit A, or 0). The ring is meter.ringlog.SeqRing: when full the oldest
# entry is dropped (DLMS profile generic, FIFO). Each persisted append is packed into one
# preallocated ENTRY_LEN blob and handed to the save handle (KIND_AUDIT; the handle copies
# it; an entry it refuses stays in RAM, counted in `unsaved`); at boot the persisted
# entries are restored oldest first. append() allocates nothing itself (a counter >= 2**30
# read back for packing is a long int on a 31-bit port).

from micropython import const
import struct

from meter.errors import SettingError
from meter.ringlog import SeqRing
from meter.storage.persist import NULL_SAVER

ENTRY_FMT = ">IIiBBBH"  # seq, counter, minute, second, code, status, arg
ENTRY_LEN = const(17)
ENTRIES = const(32)


class AuditLog(SeqRing):
    def __init__(self, saver=None, entries=ENTRIES):
        SeqRing.__init__(self, entries, "IiBBBH")
        self.counter, self.minute, self.second, self.code, self.status, self.arg = self.cols
        self.saver = saver or NULL_SAVER  # save-only handle of KIND_AUDIT
        self.unsaved = 0  # entries kept in RAM only since boot (flood guard, refused saves)
        self._blob = bytearray(ENTRY_LEN)

    def _put(self, seq, counter, minute, second, code, st, arg):
        i = self.claim(seq)
        self.counter[i] = counter
        self.minute[i] = minute
        self.second[i] = second
        self.code[i] = code
        self.status[i] = st
        self.arg[i] = arg
        return i

    def append(self, counter, minute, second, code, st, arg, persist=True):
        """Add an entry; persist=False keeps it in RAM only, and so does a save the handle
        refuses (journal full): both are counted in `unsaved`."""
        seq = self.seq
        if not 0 <= counter <= 0xFFFFFFFF:  # a compare allocates nothing; an & with the
            counter &= 0xFFFFFFFF  # long 0xFFFFFFFF would on a 31-bit port (test_wasm32)
        i = self._put(seq, counter, minute, second, code, st, arg & 0xFFFF)
        if persist:
            struct.pack_into(ENTRY_FMT, self._blob, 0, seq, self.counter[i], self.minute[i],
                             self.second[i], self.code[i], self.status[i], self.arg[i])
            persist = self.saver.save(self._blob) is not False  # False: refused
        if not persist:
            self.unsaved += 1
        return seq

    def get(self, k):
        """k-th newest entry as a tuple (seq, counter, minute, second, code, status, arg)."""
        return self.row(k)

    def entry_bytes(self, k):
        e = self.row(k)
        return None if e is None else struct.pack(ENTRY_FMT, *e)

    def restore(self, blob):
        """Re-insert one persisted entry (call oldest first). Invalid blobs raise
        SettingError E_AUDIT_RECORD; an entry older than the newest one held is ignored."""
        if len(blob) != ENTRY_LEN:
            raise SettingError("E_AUDIT_RECORD")
        e = struct.unpack(ENTRY_FMT, blob)
        if not self.continues(e[0]):
            return False
        self._put(*e)
        return True
