# An in-memory B-route radio module: the host HAL's stand-in for a Wi-Fi/Wi-SUN module.
#
# Provisioned like a real module (its key derived from a master key, meter.broute.radio.auth),
# it carries datagrams through two lists: `inbox` (frames a HEMS sends the meter, read by
# recvfrom_into) and `sent` ((bytes, addr) the meter sent). `opened` follows open()/close();
# sendto() on a closed module raises OSError(ENOTCONN), as a down link does. Tests, benches and
# the unix-port scenarios use it (no allocation on an idle recvfrom_into).

from meter.broute.radio import auth
from meter.broute.radio.module import RadioModule
from meter.errors import ENOTCONN

MASTER = b"host B-route master key"


class MemoryModule(RadioModule):
    def __init__(self, master=MASTER, kind="mem", module_id="M1", firmware="1.0",
                 notify="hems"):
        self.kind = kind
        self.module_id = module_id
        self.firmware = firmware
        self.key = auth.module_key(master, kind, module_id)
        self.notify = notify
        self.inbox = []
        self.sent = []
        self.opened = False
        self.fitted = True

    def identity(self):
        return (self.kind, self.module_id, self.firmware)

    def respond(self, challenge):
        return auth.response(self.key, challenge, self.kind, self.module_id, self.firmware)

    def reset(self):
        pass

    def present(self):
        return self.fitted

    def open(self):
        self.opened = True

    def close(self):
        self.opened = False

    def link_up(self):
        return self.opened

    def poll(self, now_ms):
        pass

    def notify_addr(self):
        return self.notify

    def recvfrom_into(self, buf):
        if not self.inbox:
            return 0, None
        data = self.inbox.pop(0)
        buf[:len(data)] = data
        return len(data), "hems"

    def sendto(self, buf, addr):
        if not self.opened:
            raise OSError(ENOTCONN)
        self.sent.append((bytes(buf), addr))
        return len(buf)
