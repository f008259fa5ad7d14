# ECHONET Lite request handling for the B-route: Get, SetC, SetI, INF_REQ, SetGet.
#
# handle() takes one received datagram and builds the reply (if any) in self.tx; it
# never raises on peer input and changes no state for a malformed frame. Outcomes are
# counted: parse errors by code, frames for an unknown object, replies and SNAs, frames
# dropped by the flood limit (more than flood_limit frames in one 1000 ms window) and
# frames that are not requests (responses or notifications from others are ignored).
# Reading and writing property values is the objects' business (node.py, meter_object.py).
#
# Reply size: a reply lists EVERY requested property, in request order (ECHONET Lite: a
# Get_SNA carries the readable ones, the others with PDC 0). A reply may take at most
# self.tx.limit bytes (TX_SIZE, or less: set_limit() with the radio module's largest
# datagram). A property's value is written only if it fits with 2 bytes still kept for
# each property after it; one that does not fit comes back with PDC 0 (SNA). The
# smallest conformant reply (every Get property PDC 0, every Set property echoing its
# EDT) is never longer than the request itself, so with limit >= MAX_FRAME it always
# fits; a request whose smallest reply does not fit (a link with smaller datagrams) is
# refused whole before anything is read or written: no reply (counted TOO_LARGE), never
# a partial listing; the controller times out and asks again with fewer properties.

from micropython import const

from meter.broute.echonet import codec
from meter.broute.echonet.codec import (Builder, Frame, GET, GET_RES, GET_SNA, INF, INF_REQ,
                                 INF_SNA, SET_RES, SETC, SETC_SNA, SETGET, SETGET_RES,
                                 SETGET_SNA, SETI, SETI_SNA, MAX_FRAME, OK)
from meter.broute.echonet.node import NODE_EOJ

TX_SIZE = const(1024)
_WINDOW_MS = const(1000)
_TICKS_MASK = const(0x3FFFFFFF)  # MicroPython ticks_ms period is 2**30

# counters (index into Service.count)
RECEIVED = const(0)  # datagrams handed to handle()
MALFORMED = const(1)  # rejected by the parser (see errors[] for the code)
UNKNOWN_EOJ = const(2)  # DEOJ names no object here: dropped
IGNORED = const(3)  # a response/notification, not a request: dropped
FLOOD = const(4)  # dropped by the flood limit
REPLIED = const(5)  # replies built
SNA = const(6)  # of which SNA replies
REFUSED = const(7)  # properties refused (unknown EPC, read-only, bad value, no room)
TOO_LARGE = const(8)  # requests whose smallest reply exceeds the reply limit: dropped
COUNTERS = const(9)
COUNTER_NAMES = ("received", "malformed", "unknown_eoj", "ignored", "flood", "replied",
                 "sna", "refused", "too_large")


class Service:
    def __init__(self, node, objects, flood_limit=50):
        self.node = node
        self.objects = objects  # device objects, each with eoj/matches/size/read/write
        self.rx = bytearray(MAX_FRAME + 1)  # one spare byte reveals an oversize datagram
        self.frame = Frame()
        self.tx = Builder(TX_SIZE)
        self.count = [0] * COUNTERS
        self.errors = [0] * codec.ERROR_COUNT
        self.flood_limit = flood_limit
        self._win_start = 0
        self._win_frames = 0
        self._tid = 0
        self.to_group = False  # the reply is a notification (INF): send to the group

    # --- entry points ---------------------------------------------------------------

    def handle(self, buf, n, now):
        """Handle the datagram buf[0:n] at `now` (meter.clock.Now). Returns the length of
        the reply in self.tx.buf, 0 for no reply."""
        now_ms = now.ms
        c = self.count
        c[RECEIVED] += 1
        self.to_group = False
        if ((now_ms - self._win_start) & _TICKS_MASK) >= _WINDOW_MS:
            self._win_start = now_ms
            self._win_frames = 0
        self._win_frames += 1
        if self._win_frames > self.flood_limit:
            c[FLOOD] += 1
            return 0
        f = self.frame
        err = codec.parse(buf, n, f)
        if err != OK:
            c[MALFORMED] += 1
            self.errors[err] += 1
            return 0
        esv = f.esv
        if esv != GET and esv != SETC and esv != SETI and esv != INF_REQ and esv != SETGET:
            c[IGNORED] += 1
            return 0
        obj = self._find(f.deoj)
        if obj is None:
            c[UNKNOWN_EOJ] += 1
            return 0
        if self._smallest_reply() > self.tx.limit:
            c[TOO_LARGE] += 1
            return 0
        for o in self.objects:
            o.at(now.minute, now.second, now.valid)
        if esv == GET:
            return self._reply_get(buf, obj, 0, f.opc, GET_RES, GET_SNA)
        if esv == INF_REQ:
            self.to_group = True
            return self._reply_get(buf, obj, 0, f.opc, INF, INF_SNA)
        if esv == SETGET:
            return self._reply_setget(buf, obj)
        return self._reply_set(buf, obj, esv)

    def announce(self):
        """Build the node's instance-list notification (INF of 0xD5, node profile to node
        profile); send it to the group at start-up and whenever a radio module comes up.
        Returns the frame length in self.tx.buf."""
        self._tid = (self._tid + 1) & 0xFFFF
        tx = self.tx
        tx.start(self._tid, NODE_EOJ, NODE_EOJ, INF)
        at = tx.begin_prop(0xD5)
        tx.end_prop(self.node.read(0xD5, tx.buf, at))
        self.to_group = True
        return tx.n

    def notify(self, obj, epc):
        """Build an INF of one property of `obj` (status-change announcement, to the node
        profiles of the group). Returns the frame length, 0 when the property cannot be
        read."""
        self._tid = (self._tid + 1) & 0xFFFF
        tx = self.tx
        tx.start(self._tid, obj.eoj, NODE_EOJ, INF)
        at = tx.begin_prop(epc)
        n = obj.read(epc, tx.buf, at)
        if n < 0:
            return 0
        tx.end_prop(n)
        self.to_group = True
        return tx.n

    def set_limit(self, n):
        """Largest reply (bytes) the link carries in one datagram; capped at TX_SIZE."""
        self.tx.limit = n if 0 < n < TX_SIZE else TX_SIZE

    def counters(self):
        """Counters as a dict (allocates: for logs and the bench console)."""
        d = {}
        for i in range(COUNTERS):
            d[COUNTER_NAMES[i]] = self.count[i]
        for i in range(1, codec.ERROR_COUNT):
            d["error_" + codec.ERROR_NAMES[i]] = self.errors[i]
        return d

    # --- dispatch -------------------------------------------------------------------

    def _find(self, deoj):
        if self.node.matches(deoj):
            return self.node
        for o in self.objects:
            if o.matches(deoj):
                return o
        return None

    def _smallest_reply(self):
        """Length of the reply with every Get property PDC 0 and every Set property
        refused (echoing its EDT): what any reply to this request needs at least."""
        f = self.frame
        esv = f.esv
        n = codec.HEADER
        k = f.opc + f.opc2
        sets = 0
        if esv == SETC or esv == SETI or esv == SETGET:
            sets = f.opc
        for i in range(k):
            n += 2 + (f.pdc[i] if i < sets else 0)
        if esv == SETGET:
            n += 1  # the Get block's OPC
        return n

    def _read_props(self, buf, obj, first, count):
        """Append Get results for request properties first..first+count-1; returns the
        number refused (written with PDC 0). Each property is listed: a value is read
        only if it fits with 2 bytes kept for every property after it (handle() checked
        that the PDC-0 listing of all of them fits)."""
        f = self.frame
        tx = self.tx
        refused = 0
        last = first + count - 1
        for i in range(first, first + count):
            epc = f.epc[i]
            at = tx.begin_prop(epc)
            if at < 0:
                return refused + last + 1 - i  # unreachable after the size check
            size = obj.size(epc)
            n = -1
            if size and size <= tx.room() - 2 * (last - i):
                n = obj.read(epc, tx.buf, at)
            if n < 0:
                n = 0
                refused += 1
            tx.end_prop(n)
        return refused

    def _write_props(self, buf, obj, first, count):
        """Apply Set properties; accepted come back with PDC 0, refused ones echo their
        EDT. Returns the number refused."""
        f = self.frame
        tx = self.tx
        refused = 0
        for i in range(first, first + count):
            epc = f.epc[i]
            pdc = f.pdc[i]
            at = f.at[i]
            if pdc and obj.write(epc, buf, at, pdc):
                at = tx.begin_prop(epc)
                if at >= 0:
                    tx.end_prop(0)
            else:
                refused += 1
                tx.prop(epc, buf, at, pdc)
        return refused

    def _start(self, obj):
        f = self.frame
        self.tx.start(f.tid, obj.eoj, f.seoj, 0)

    def _finish(self, refused, ok_esv, sna_esv):
        c = self.count
        c[REPLIED] += 1
        if refused:
            c[REFUSED] += refused
            c[SNA] += 1
            self.tx.set_esv(sna_esv)
        else:
            self.tx.set_esv(ok_esv)
        return self.tx.n

    def _reply_get(self, buf, obj, first, count, ok_esv, sna_esv):
        self._start(obj)
        refused = self._read_props(buf, obj, first, count)
        return self._finish(refused, ok_esv, sna_esv)

    def _reply_set(self, buf, obj, esv):
        self._start(obj)
        refused = self._write_props(buf, obj, 0, self.frame.opc)
        if esv == SETI:
            if not refused:
                return 0  # SetI is answered only when refused
            return self._finish(refused, SET_RES, SETI_SNA)
        return self._finish(refused, SET_RES, SETC_SNA)

    def _reply_setget(self, buf, obj):
        f = self.frame
        self._start(obj)
        refused = self._write_props(buf, obj, 0, f.opc)
        self.tx.second_block()
        refused += self._read_props(buf, obj, f.opc, f.opc2)
        return self._finish(refused, SETGET_RES, SETGET_SNA)


def build(regs, metering, capture, identity, history=None, flood_limit=50):
    """The B-route ECHONET stack of one meter: node profile + smart-meter object + service.
    The smart-meter object is service.objects[0]."""
    from meter.broute.echonet.meter_object import SmartMeter
    from meter.broute.echonet.node import NodeProfile

    meter = SmartMeter(regs, metering, capture, identity, history)
    return Service(NodeProfile(identity, (meter,)), (meter,), flood_limit)
