# Host retained memory (meter.hal.RetainedMemory): what RTC slow memory is to an ESP32.
#
# RamRetained: in memory, for tests; a "crash" is a new meter built on the same object (a new
# HostHal with retained=the same RamRetained), a power-off is power_off().
# FileRetained: a small file (the simulation: next to its flash image), written through at
# every write() so it outlives a process killed even with SIGKILL (the crash); power_off()
# deletes it, as a power cut clears RTC memory. Both run under CPython and the unix port.

import os

from meter.hal import RetainedMemory


class RamRetained(RetainedMemory):
    def __init__(self, size=RetainedMemory.SIZE):
        self.SIZE = size
        self.mem = None  # bytearray once written: None = nothing since power-on
        self.writes = 0

    def read(self, buf):
        if self.mem is None:
            return False
        buf[:] = self.mem
        return True

    def write(self, buf):
        if self.mem is None:
            self.mem = bytearray(self.SIZE)
        self.mem[:] = buf
        self.writes += 1

    def power_off(self):
        self.mem = None


class FileRetained(RetainedMemory):
    """Retained memory in the file `path` (created at the first write)."""

    def __init__(self, path, size=RetainedMemory.SIZE):
        self.SIZE = size
        self.path = path
        self._f = None
        self.writes = 0

    def read(self, buf):
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError:
            return False
        if len(data) != self.SIZE:
            return False  # a foreign or truncated file: as after a power-on
        buf[:] = data
        return True

    def write(self, buf):
        f = self._f
        if f is None:
            try:  # never truncate: a kill before the first write must not lose the copy
                f = open(self.path, "r+b")
            except OSError:
                f = open(self.path, "wb")
            self._f = f
        f.seek(0)
        f.write(buf)
        f.flush()
        self.writes += 1

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def power_off(self):
        """A simulated power-off: the memory is gone."""
        self.close()
        try:
            os.remove(self.path)
        except OSError:
            pass
