# ECHONET Lite node profile object 0x0EF001: identity of the meter node and its instance list.
#
# Objects answer read(epc, buf, off) -> EDT length written (or -1 = refused) and
# write(epc, buf, off, pdc) -> True when accepted; size(epc) gives the largest EDT of a
# readable property (0 = not readable), so the service can check room before reading.

from micropython import const

from meter.broute.echonet.codec import encode_map

NODE_EOJ = const(0x0EF001)
NODE_EOJ_ALL = const(0x0EF000)  # instance 0: all node profiles

_VERSION = b"\x01\x0E\x01\x00"  # ECHONET Lite 1.14, specified message formats
_GET_MAP = b"\x80\x82\x83\x8A\x8C\x9D\x9E\x9F\xD3\xD4\xD5\xD6\xD7"
_SET_MAP = b""
_ANNOUNCE_MAP = b"\x80\xD5"


class Identity:
    """Who this meter is on the B-route: maker code (3 B), serial number (12 B ASCII),
    unique node id (13 B), product code (12 B ASCII), B-route ID (16 B)."""

    def __init__(self, maker=b"\xff\xff\xff", serial=b"000000000001", uid=None,
                 product=b"OPENMETER-01", broute_id=None):
        if len(maker) != 3 or len(serial) != 12 or len(product) != 12:
            raise ValueError("E_IDENTITY")
        self.maker = bytes(maker)
        self.serial = bytes(serial)
        self.product = bytes(product)
        if uid is None:
            uid = b"\x00" + self.serial
        if len(uid) != 13:
            raise ValueError("E_IDENTITY")
        self.uid = bytes(uid)
        if broute_id is None:
            broute_id = b"\x00" + self.maker + self.serial
        if len(broute_id) != 16:
            raise ValueError("E_IDENTITY")
        self.broute_id = bytes(broute_id)


def put_eoj(buf, off, eoj):
    buf[off] = (eoj >> 16) & 0xFF
    buf[off + 1] = (eoj >> 8) & 0xFF
    buf[off + 2] = eoj & 0xFF


class NodeProfile:
    eoj = NODE_EOJ

    def __init__(self, identity, objects):
        self.identity = identity
        self.objects = objects  # device objects (each has .eoj)

    def matches(self, deoj):
        return deoj == NODE_EOJ or deoj == NODE_EOJ_ALL

    def _classes(self):
        """Number of distinct device classes (objects are few: a linear check)."""
        n = 0
        objs = self.objects
        for i in range(len(objs)):
            c = objs[i].eoj >> 8
            seen = False
            for j in range(i):
                if objs[j].eoj >> 8 == c:
                    seen = True
                    break
            if not seen:
                n += 1
        return n

    def size(self, epc):
        if epc == 0x80:
            return 1
        if epc == 0x82:
            return 4
        if epc == 0x83:
            return 17
        if epc == 0x8A:
            return 3
        if epc == 0x8C:
            return 12
        if epc == 0x9D or epc == 0x9E or epc == 0x9F:
            return 17
        if epc == 0xD3:
            return 3
        if epc == 0xD4:
            return 2
        if epc == 0xD5 or epc == 0xD6:
            return 1 + 3 * len(self.objects)
        if epc == 0xD7:
            return 1 + 2 * len(self.objects)
        return 0

    def read(self, epc, buf, off):
        ident = self.identity
        if epc == 0x80:
            buf[off] = 0x30
            return 1
        if epc == 0x82:
            return _copy(_VERSION, buf, off)
        if epc == 0x83:
            buf[off] = 0xFE
            _copy(ident.maker, buf, off + 1)
            _copy(ident.uid, buf, off + 4)
            return 17
        if epc == 0x8A:
            return _copy(ident.maker, buf, off)
        if epc == 0x8C:
            return _copy(ident.product, buf, off)
        if epc == 0x9D:
            return encode_map(_ANNOUNCE_MAP, buf, off)
        if epc == 0x9E:
            return encode_map(_SET_MAP, buf, off)
        if epc == 0x9F:
            return encode_map(_GET_MAP, buf, off)
        n = len(self.objects)
        if epc == 0xD3:
            buf[off] = 0
            buf[off + 1] = (n >> 8) & 0xFF
            buf[off + 2] = n & 0xFF
            return 3
        if epc == 0xD4:
            c = self._classes() + 1  # the node profile class counts here
            buf[off] = (c >> 8) & 0xFF
            buf[off + 1] = c & 0xFF
            return 2
        if epc == 0xD5 or epc == 0xD6:
            buf[off] = n
            for i in range(n):
                put_eoj(buf, off + 1 + 3 * i, self.objects[i].eoj)
            return 1 + 3 * n
        if epc == 0xD7:
            k = 0
            objs = self.objects
            for i in range(n):
                c = objs[i].eoj >> 8
                dup = False
                for j in range(i):
                    if objs[j].eoj >> 8 == c:
                        dup = True
                        break
                if not dup:
                    buf[off + 1 + 2 * k] = (c >> 8) & 0xFF
                    buf[off + 2 + 2 * k] = c & 0xFF
                    k += 1
            buf[off] = k
            return 1 + 2 * k
        return -1

    def write(self, epc, buf, off, pdc):
        return False  # nothing in the node profile is writable from the B-route


def _copy(src, buf, off):
    n = len(src)
    for i in range(n):
        buf[off + i] = src[i]
    return n
