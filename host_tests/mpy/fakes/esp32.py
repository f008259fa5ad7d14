# Fake `esp32` for the MicroPython unix port: Partition over a simulated NOR flash with the
# board's partition table, NVS, and the few module functions the board code may call.
#
# Partition (ports/esp32/esp32_partition.c): find(type=TYPE_APP, subtype=0xff, label=None,
# block_size=4096) -> list; readblocks(block, buf[, offset]); writeblocks(block, buf) erases
# the blocks it covers first, writeblocks(block, buf, offset) only programs (NOR: bits go
# 1 -> 0 only, the result is old & new); ioctl(4) block count, ioctl(5) block size,
# ioctl(6, block) erases one block, 1-3 (init, deinit, sync) return 0. Out of range:
# OSError. Flash survives every reset (module-level state, never purged). Unwritten
# sectors read 0xFF and take no RAM (a sector is allocated on its first program).


HEAP_DATA = 1
_SECTOR = 4096
_ESP_ERR_INVALID_SIZE = 0x104
_ESP_ERR_NVS_NOT_FOUND = 0x1102

_table = []  # [(label, type, subtype, addr, size)]
_flash = {}  # absolute sector index -> bytearray(4096)
stats = {"programs": 0, "erases": 0, "not_erased": 0}  # not_erased: programs that hit 0 bits


def load_table(path):
    """The partition table of a board (board/<name>/partitions.csv, ESP-IDF's CSV)."""
    _table.clear()
    types = {"app": Partition.TYPE_APP, "data": Partition.TYPE_DATA}
    subtypes = {"factory": 0x00, "ota_0": 0x10, "ota_1": 0x11, "ota": 0x00, "phy": 0x01,
                "nvs": 0x02, "coredump": 0x03, "fat": 0x81, "spiffs": 0x82,
                "littlefs": 0x83}
    with open(path) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if not line:
                continue
            cols = [c.strip() for c in line.split(",")]
            name, typ, sub, off, size = cols[:5]
            t = types[typ] if typ in types else int(typ, 0)
            if sub in subtypes:
                s = subtypes[sub]
            else:
                s = int(sub, 0)
            _table.append((name, t, s, int(off, 0), _size(size)))


def _size(txt):
    if txt[-1] in "Kk":
        return int(txt[:-1], 0) * 1024
    if txt[-1] in "Mm":
        return int(txt[:-1], 0) * 1024 * 1024
    return int(txt, 0)


def erase_flash():
    """esptool erase_flash: every byte 0xFF."""
    _flash.clear()


def sector(addr):
    return _flash.get(addr // _SECTOR)


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=4096):
        for label, t, sub, addr, size in _table:
            if label == id or (id in (Partition.BOOT, Partition.RUNNING) and t == 0):
                self.label, self.type, self.subtype = label, t, sub
                self.addr, self.size, self.block_size = addr, size, block_size
                return
        raise OSError(2)  # ENOENT

    @staticmethod
    def find(type=TYPE_APP, subtype=0xFF, label=None, block_size=4096):
        return [Partition(e[0], block_size) for e in _table
                if e[1] == type and (subtype == 0xFF or e[2] == subtype) and
                (label is None or e[0] == label)]

    def info(self):
        return (self.type, self.subtype, self.addr, self.size, self.label, False)

    def _range(self, off, n):
        if off < 0 or n < 0 or off + n > self.size:
            raise OSError(_ESP_ERR_INVALID_SIZE, "ESP_ERR_INVALID_SIZE")

    def readblocks(self, block, buf, offset=0):
        off = block * self.block_size + offset
        n = len(buf)
        self._range(off, n)
        mv = memoryview(buf)
        i = 0
        while i < n:
            a = self.addr + off + i
            s, o = a // _SECTOR, a % _SECTOR
            k = min(n - i, _SECTOR - o)
            sec = _flash.get(s)
            if sec is None:
                for j in range(i, i + k):
                    mv[j] = 0xFF
            else:
                mv[i:i + k] = sec[o:o + k]
            i += k

    def writeblocks(self, block, buf, offset=None):
        off = block * self.block_size
        if offset is None:
            if len(buf) % self.block_size:
                raise OSError(_ESP_ERR_INVALID_SIZE, "ESP_ERR_INVALID_SIZE")
            self._range(off, len(buf))
            for b in range(len(buf) // self.block_size):
                self._erase(off + b * self.block_size, self.block_size)
        else:
            off += offset
        self._program(off, buf)

    def _program(self, off, buf):
        n = len(buf)
        self._range(off, n)
        stats["programs"] += 1
        for i in range(n):
            a = self.addr + off + i
            s = a // _SECTOR
            sec = _flash.get(s)
            if sec is None:
                sec = _flash[s] = bytearray(b"\xff" * _SECTOR)
            o = a % _SECTOR
            old = sec[o]
            if old & buf[i] != buf[i]:
                stats["not_erased"] += 1  # NOR cannot set a bit: the program is corrupt
            sec[o] = old & buf[i]

    def _erase(self, off, n):
        self._range(off, n)
        if (self.addr + off) % _SECTOR or n % _SECTOR:
            raise OSError(_ESP_ERR_INVALID_SIZE, "ESP_ERR_INVALID_SIZE")
        for s in range((self.addr + off) // _SECTOR, (self.addr + off + n) // _SECTOR):
            _flash.pop(s, None)
        stats["erases"] += 1

    def ioctl(self, cmd, arg):
        if cmd in (1, 2, 3):
            return 0
        if cmd == 4:
            return self.size // self.block_size
        if cmd == 5:
            return self.block_size
        if cmd == 6:
            self._erase(arg * self.block_size, self.block_size)
            return 0
        return None

    def get_next_update(self):
        raise OSError(2)


class NVS:
    """esp32.NVS(namespace): typed keys on the nvs partition (survive every reset)."""

    _store = {}

    def __init__(self, namespace):
        self._ns = NVS._store.setdefault(namespace, {})

    def set_i32(self, key, value):
        self._ns[key] = int(value)

    def get_i32(self, key):
        if key not in self._ns or not isinstance(self._ns[key], int):
            raise OSError(-_ESP_ERR_NVS_NOT_FOUND, "ESP_ERR_NVS_NOT_FOUND")
        return self._ns[key]

    def set_blob(self, key, value):
        self._ns[key] = bytes(value)

    def get_blob(self, key, buf):
        v = self._ns.get(key)
        if not isinstance(v, bytes):
            raise OSError(-_ESP_ERR_NVS_NOT_FOUND, "ESP_ERR_NVS_NOT_FOUND")
        buf[:len(v)] = v
        return len(v)

    def erase_key(self, key):
        if key not in self._ns:
            raise OSError(-_ESP_ERR_NVS_NOT_FOUND, "ESP_ERR_NVS_NOT_FOUND")
        del self._ns[key]

    def commit(self):
        pass


def gpio_deep_sleep_hold(enable):
    pass


def wake_on_ext0(pin, level):
    pass


def raw_temperature():
    return 120
