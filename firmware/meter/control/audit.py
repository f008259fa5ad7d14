# Audit log of remote commands: every accepted and rejected command, a bounded FIFO.
#
# An entry is (seq, counter, minute, second, code, status, arg): seq numbers every entry
# ever appended (continues after a restore), counter is the command counter the request
# claimed (0 when unreadable), minute/second the wall time (-1 when invalid), code the
# command code, status its result (meter.control.status), arg the command's main argument
# (reservation id, limit A, or 0). Each append is handed to the store as one ENTRY_LEN blob
# (KIND_AUDIT); at boot the persisted entries are restored oldest first. When full the
# oldest entry is dropped (DLMS profile generic, FIFO).

from micropython import const
from array import array
import struct

from meter.storage.persist import KIND_AUDIT, NullStore

ENTRY_FMT = ">IIiBBBH"  # seq, counter, minute, second, code, status, arg
ENTRY_LEN = const(17)
ENTRIES = const(32)


class AuditLog:
    def __init__(self, store=None, entries=ENTRIES):
        self.store = store or NullStore()
        self.entries = entries
        self.seq_ = array("I", [0] * entries)
        self.counter = array("I", [0] * entries)
        self.minute = array("i", [0] * entries)
        self.second = bytearray(entries)
        self.code = bytearray(entries)
        self.status = bytearray(entries)
        self.arg = array("H", [0] * entries)
        self.n = 0
        self.head = 0  # slot of the next append
        self.seq = 0  # seq of the next append
        self.unsaved = 0  # entries appended with persist=False since boot

    def _put(self, seq, counter, minute, second, code, st, arg):
        i = self.head
        self.seq_[i] = seq
        self.counter[i] = counter
        self.minute[i] = minute
        self.second[i] = second
        self.code[i] = code
        self.status[i] = st
        self.arg[i] = arg
        self.head = (i + 1) % self.entries
        if self.n < self.entries:
            self.n += 1
        self.seq = seq + 1

    def append(self, counter, minute, second, code, st, arg, persist=True):
        """Add an entry; persist=False keeps it in RAM only (counted in `unsaved`)."""
        seq = self.seq
        self._put(seq, counter & 0xFFFFFFFF, minute, second, code, st, arg & 0xFFFF)
        if persist:
            self.store.save(KIND_AUDIT, self.entry_bytes(0))
        else:
            self.unsaved += 1
        return seq

    def get(self, k):
        """k-th newest entry as a tuple (seq, counter, minute, second, code, status, arg)."""
        if k < 0 or k >= self.n:
            return None
        i = (self.head - 1 - k) % self.entries
        return (self.seq_[i], self.counter[i], self.minute[i], self.second[i], self.code[i],
                self.status[i], self.arg[i])

    def entry_bytes(self, k):
        e = self.get(k)
        return None if e is None else struct.pack(ENTRY_FMT, *e)

    def restore(self, blob):
        """Re-insert one persisted entry (call oldest first). Invalid blobs raise
        ValueError; an entry older than the newest one held is ignored."""
        if len(blob) != ENTRY_LEN:
            raise ValueError("audit blob")
        e = struct.unpack(ENTRY_FMT, blob)
        if self.n and e[0] < self.seq:
            return False
        self._put(*e)
        return True
