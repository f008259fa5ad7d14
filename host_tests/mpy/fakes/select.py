# Fake `select` for board scenarios: asyncio's poller over the virtual clock. ipoll(timeout)
# returns the registered objects that are ready (Python streams answer ioctl(MP_STREAM_POLL),
# as asyncio.ThreadSafeFlag does); when none is, the board idles: virtual time passes up to
# the timeout or the next world event (an edge whose scheduled IRQ may make one ready), as
# the ESP32 port's main task sleeps until an ISR wakes it.

import espchip

POLLIN = 1
POLLOUT = 4
POLLERR = 8
POLLHUP = 16
_MP_STREAM_POLL = 3


class poll:
    def __init__(self):
        self._objs = {}  # id(obj) -> [obj, mask]

    def register(self, obj, mask=POLLIN | POLLOUT):
        self._objs[id(obj)] = [obj, mask]

    def modify(self, obj, mask):
        e = self._objs.get(id(obj))
        if e is None:
            raise OSError(2)
        e[1] = mask

    def unregister(self, obj):
        self._objs.pop(id(obj), None)

    def _ready(self):
        out = []
        for obj, mask in self._objs.values():
            ev = obj.ioctl(_MP_STREAM_POLL, mask)
            if ev:
                out.append((obj, ev))
        return out

    def ipoll(self, timeout=-1, flags=0):
        ready = self._ready()
        if ready or timeout == 0:
            return ready
        espchip.idle(timeout)
        for _ in range(2):
            pass  # a backward jump: scheduled IRQ handlers run here
        return self._ready()

    def poll(self, timeout=-1):
        return self.ipoll(timeout)
