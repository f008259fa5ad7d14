# A NOR flash whose memory lives in a file, so a killed simulation resumes like a meter.
#
# Default image: var/sim-flash.bin (relative to the working directory, the repository root
# for `make sim`). Every program and erase is written through to the file and flushed
# before the call returns, so a process killed even with SIGKILL loses nothing that was
# programmed (the data sits in the OS page cache; only an OS crash could lose it).
# blank=True starts from a blank (erased) meter. An image of another size raises
# meter.errors.SettingError("E_FLASH_IMAGE_SIZE ...") naming both sizes and leaves the file
# alone. Runs under CPython and the MicroPython unix port (plain file seek/write, no mmap).

import os

from hosthal.flash import NorFlash
from meter.errors import SettingError

DEFAULT_PATH = "var/sim-flash.bin"


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _makedirs(path):
    d = path.rpartition("/")[0]
    if d and not _exists(d):
        _makedirs(d)
        os.mkdir(d)


class FileNorFlash(NorFlash):
    """NorFlash (same semantics, power-cut injection and counters) backed by `path`."""

    def __init__(self, path=DEFAULT_PATH, sectors=64, blank=False):
        size = sectors * self.SECTOR_SIZE
        image = None
        if not blank and _exists(path):
            with open(path, "rb") as f:
                image = f.read()
            if len(image) != size:
                # A SettingError (a ValueError) with its E_ code first: the sim reports it
                # and stops, nothing is written to the image.
                raise SettingError("E_FLASH_IMAGE_SIZE %s holds %d bytes (%d sectors), "
                                   "expected %d (%d sectors): start blank or pass the "
                                   "right sector count" % (path, len(image), len(image) // 4096,
                                                           size, sectors))
        super().__init__(sectors, image)
        self.path = path
        if image is None:
            _makedirs(path)
            with open(path, "wb") as f:
                f.write(self.mem)
        self._f = open(path, "r+b")

    def _sync(self, offset, n):
        f = self._f
        f.seek(offset)
        f.write(self.mem[offset:offset + n])
        f.flush()

    def program(self, offset, buf):
        try:
            super().program(offset, buf)
        finally:
            if 0 <= offset and offset + len(buf) <= self.size:
                self._sync(offset, len(buf))

    def erase_sector(self, sector):
        try:
            super().erase_sector(sector)
        finally:
            if 0 <= sector < self.sectors:
                self._sync(sector * self.SECTOR_SIZE, self.SECTOR_SIZE)

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
