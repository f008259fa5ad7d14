# A NOR flash model: erase-before-program, page limits, counted operations, injectable power cut.

from meter.hal import BlockDevice


class PowerCut(Exception):
    """Raised by NorFlash when the injected power cut happens; the flash keeps what was
    physically written up to that byte."""


class NorFlash(BlockDevice):
    """sectors x 4096 bytes. program() ANDs data into the array (bits only clear) and must
    not cross a 256-byte page; erase_sector() sets 0xFF. cut_after(n) makes the n-th byte
    step from now fail: a program applies the bytes before it, an erase (counted as one
    step) leaves the sector partly erased (its first half 0xFF, the rest unchanged)."""

    def __init__(self, sectors=64, image=None):
        self.sectors = sectors
        self.size = sectors * self.SECTOR_SIZE
        self.mem = bytearray(b"\xff" * self.size) if image is None else bytearray(image)
        if len(self.mem) != self.size:
            raise ValueError("image size")
        self.programs = 0  # page program operations
        self.erases = 0  # sector erase operations
        self.bytes_programmed = 0
        self.steps = 0  # byte steps (each programmed byte, each erase) since creation
        self._budget = -1  # byte steps left before the cut; -1 = no cut armed
        self.erase_counts = [0] * sectors

    def cut_after(self, steps):
        self._budget = steps

    def disarm(self):
        self._budget = -1

    def sector_count(self):
        return self.sectors

    def read(self, offset, buf):
        n = len(buf)
        if offset < 0 or offset + n > self.size:
            raise ValueError("read out of range")
        buf[:] = self.mem[offset:offset + n]

    def program(self, offset, buf):
        n = len(buf)
        if offset < 0 or offset + n > self.size:
            raise ValueError("program out of range")
        if n == 0 or offset // self.PAGE_SIZE != (offset + n - 1) // self.PAGE_SIZE:
            raise ValueError("program crosses a page")
        self.programs += 1
        mem = self.mem
        for i in range(n):
            if self._budget == 0:
                raise PowerCut()
            if self._budget > 0:
                self._budget -= 1
            mem[offset + i] &= buf[i]
            self.bytes_programmed += 1
            self.steps += 1

    def erase_sector(self, sector):
        if sector < 0 or sector >= self.sectors:
            raise ValueError("sector out of range")
        start = sector * self.SECTOR_SIZE
        if self._budget == 0:
            half = self.SECTOR_SIZE // 2
            self.mem[start:start + half] = b"\xff" * half
            raise PowerCut()
        if self._budget > 0:
            self._budget -= 1
        self.erases += 1
        self.erase_counts[sector] += 1
        self.steps += 1
        self.mem[start:start + self.SECTOR_SIZE] = b"\xff" * self.SECTOR_SIZE

    def image(self):
        return bytes(self.mem)
