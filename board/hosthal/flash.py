# A NOR flash model: erase-before-program, page limits, counted operations, injectable power cut
# and wear-out.

from meter.errors import SettingError
from meter.hal import BlockDevice


class PowerCut(Exception):
    """Raised by NorFlash when the injected power cut happens; the flash keeps what was
    physically written up to that byte."""


_STUCK = 4  # bytes a failed erase leaves at 0x00 (spread over the sector)


class NorFlash(BlockDevice):
    """sectors x 4096 bytes. program() ANDs data into the array (bits only clear) and must
    not cross a 256-byte page; erase_sector() sets 0xFF. cut_after(n) makes the n-th byte
    step from now fail: a program applies the bytes before it, an erase (counted as one
    step) leaves the sector partly erased (its first half 0xFF, the rest unchanged).

    Wear-out (deterministic; failures are silent, as on a chip: only a read-back shows them):
      fail_erase(sector)        from now on erases of the sector leave _STUCK bytes at 0x00
      fail_program(start, end)  programs leave the bytes of [start, end) unchanged
      endurance=N               sector s wears out after limit(s) erases, N <= limit(s) <=
                                1.5 N (a fixed spread, so sectors die one by one); a worn
                                sector either fails its erases (as fail_erase) or, for
                                about half the sectors, its programs (the first byte of
                                every program into it stays unchanged). 0: never wears."""

    def __init__(self, sectors=64, image=None, endurance=0):
        self.sectors = sectors
        self.size = sectors * self.SECTOR_SIZE
        if image is not None and len(image) != self.size:
            raise SettingError("E_FLASH_IMAGE_SIZE image of %d bytes, expected %d (%d sectors)"
                               % (len(image), self.size, sectors))
        self.mem = bytearray(b"\xff" * self.size) if image is None else bytearray(image)
        self.programs = 0  # page program operations
        self.erases = 0  # sector erase operations
        self.bytes_programmed = 0
        self.steps = 0  # byte steps (each programmed byte, each erase) since creation
        self._budget = -1  # byte steps left before the cut; -1 = no cut armed
        self.erase_counts = [0] * sectors
        self.endurance = endurance
        self._erase_fails = set()  # sectors whose erases leave stuck bytes
        self._program_fails = []  # [(start, end)] byte ranges where programs do not stick

    def cut_after(self, steps):
        self._budget = steps

    def disarm(self):
        self._budget = -1

    # ---- wear-out ----------------------------------------------------------------------

    def fail_erase(self, sector):
        self._erase_fails.add(sector)

    def fail_program(self, start, end):
        self._program_fails.append((start, end))

    def limit(self, sector):
        """Erase cycles sector stands under the endurance model (0: no model)."""
        e = self.endurance
        return e + (sector * 40_503 + 7) % 65_521 % (e // 2 + 1) if e else 0

    def worn(self, sector):
        return bool(self.endurance) and self.erase_counts[sector] >= self.limit(sector)

    def _wears_programs(self, sector):
        return (sector * 40_503 >> 3) & 1  # the other half fails its erases

    def _sticks(self, offset, first):
        for a, b in self._program_fails:
            if a <= offset < b:
                return False
        s = offset // self.SECTOR_SIZE
        return not (first and self.worn(s) and self._wears_programs(s))

    def _erase_fails_now(self, sector):
        return sector in self._erase_fails or (
            self.worn(sector) and not self._wears_programs(sector))

    # ---- BlockDevice -------------------------------------------------------------------

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
        faulty = self._program_fails or self.endurance
        for i in range(n):
            if self._budget == 0:
                raise PowerCut()
            if self._budget > 0:
                self._budget -= 1
            if not faulty or self._sticks(offset + i, i == 0):
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
        fails = self._erase_fails_now(sector)
        self.erases += 1
        self.erase_counts[sector] += 1
        self.steps += 1
        self.mem[start:start + self.SECTOR_SIZE] = b"\xff" * self.SECTOR_SIZE
        if fails:
            for k in range(_STUCK):
                self.mem[start + (sector * 97 + k * 1021) % self.SECTOR_SIZE] = 0

    def image(self):
        return bytes(self.mem)
