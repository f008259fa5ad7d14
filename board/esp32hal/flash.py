# The journal's NOR flash: a raw esp32.Partition (not a filesystem), with NOR semantics.
#
# readblocks/writeblocks(block, buf, offset) address block * 4096 + offset; with an offset
# writeblocks never erases, so programming only clears bits. erase_sector() is the explicit
# ioctl(6, block) (30-45 ms typical, up to 400 ms: background compaction only). program()
# refuses a write that crosses a 256-byte page, as the HAL contract says.

from micropython import const

from meter.hal import BlockDevice

_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_BLOCK_ERASE = const(6)


class PartitionFlash(BlockDevice):
    def __init__(self, label, size=None):
        import esp32

        found = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=label)
        if not found:
            raise OSError("E_NO_PARTITION " + label)
        part = found[0]
        if part.ioctl(_IOCTL_BLOCK_SIZE, 0) != self.SECTOR_SIZE:
            raise OSError("E_PARTITION_BLOCK_SIZE")
        self._part = part
        self._sectors = part.ioctl(_IOCTL_BLOCK_COUNT, 0)
        if size is not None and size != self._sectors * self.SECTOR_SIZE:
            raise OSError("E_PARTITION_SIZE")
        self.programs = 0
        self.erases = 0

    def sector_count(self):
        return self._sectors

    def _check(self, offset, n):
        if offset < 0 or n <= 0 or offset + n > self._sectors * self.SECTOR_SIZE:
            raise ValueError("E_FLASH_RANGE")

    def read(self, offset, buf):
        self._check(offset, len(buf))
        self._part.readblocks(offset >> 12, buf, offset & 0xFFF)

    def program(self, offset, buf):
        n = len(buf)
        self._check(offset, n)
        if offset >> 8 != (offset + n - 1) >> 8:
            raise ValueError("E_PAGE_CROSS")
        self._part.writeblocks(offset >> 12, buf, offset & 0xFFF)
        self.programs += 1

    def erase_sector(self, sector):
        if not 0 <= sector < self._sectors:
            raise ValueError("E_FLASH_RANGE")
        self._part.ioctl(_IOCTL_BLOCK_ERASE, sector)
        self.erases += 1
