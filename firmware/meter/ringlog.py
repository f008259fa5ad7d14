# Sequenced ring log: the one FIFO under the event log and the command audit log.
#
# A SeqRing holds `entries` entries in preallocated columns: the seq column (u32: the number
# of the entry among every entry ever written, so a reboot that restores the persisted
# entries continues the numbering) and one array per typed column (array typecodes, e.g.
# "iiB"). When full, writing drops the oldest entry (DLMS profile generic, sort FIFO).
# Slot k = 0 is the newest entry.
#
# Writing is claim(seq) (seq: normally self.seq), which returns the slot index, then the owner
# stores its fields into its columns at that index: no tuple, no allocation. Restoring
# persisted entries (oldest first) goes through continues(seq): an entry older than the
# newest one held is ignored, so a restore never reorders or duplicates the ring.
#
# Invariants: 0 <= n <= entries; head is the slot of the next write; the entry in slot
# (head - 1 - k) % entries has seq (self.seq - 1 - k) when the ring was written in order.

from array import array


class SeqRing:
    def __init__(self, entries, types):
        if entries < 1:
            raise ValueError("E_RING_SIZE")
        self.entries = entries
        self.seqs = array("I", [0] * entries)
        self.cols = tuple(array(t, [0] * entries) for t in types)
        self.n = 0  # entries in use
        self.head = 0  # slot of the next write
        self.seq = 0  # seq of the next entry

    def claim(self, seq):
        """Take the slot of a new entry numbered seq (dropping the oldest when full) and
        return its index; the caller fills the columns there. Allocation-free."""
        i = self.head
        self.seqs[i] = seq
        self.head = (i + 1) % self.entries
        if self.n < self.entries:
            self.n += 1
        self.seq = seq + 1
        return i

    def continues(self, seq):
        """True when a persisted entry numbered seq may be restored: the ring is empty or
        seq is not older than the next seq (restores come oldest first)."""
        return self.n == 0 or seq >= self.seq

    def slot(self, k):
        """Index of the k-th newest entry (0 = newest), or -1. Allocation-free."""
        if k < 0 or k >= self.n:
            return -1
        return (self.head - 1 - k) % self.entries

    def find(self, seq):
        """Index of the entry numbered seq, or -1 when it is not held. Allocation-free:
        the slot the in-order invariant gives is tried first, then the seq column (a
        restore from a journal with missing blocks may leave gaps in the numbering)."""
        k = self.seq - 1 - seq
        if k < 0 or self.n == 0:
            return -1
        i = self.slot(k)
        if i >= 0 and self.seqs[i] == seq:
            return i
        seqs = self.seqs
        for k in range(self.n):
            i = (self.head - 1 - k) % self.entries
            if seqs[i] == seq:
                return i
        return -1

    def row(self, k):
        """k-th newest entry as a tuple (seq, column values...), or None. Allocates."""
        i = self.slot(k)
        if i < 0:
            return None
        return (self.seqs[i],) + tuple(c[i] for c in self.cols)
