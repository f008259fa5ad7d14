"""Serve the firmware's B-route (ECHONET Lite over UDP) from the host: the host UDP radio
module and a non-blocking server that tools/sim.py polls once per loop iteration.

    from broute_udp import BrouteUdpServer
    server = BrouteUdpServer(service, host="127.0.0.2", port=3610)
    ...
    server.poll(now)   # each loop iteration (now: meter.clock.Now); never blocks
    ...
    server.close()

The module is authenticated like any fitted radio module (meter.broute.pump): the server
provisions it with a key derived from its own master key, standing in for the A-route.
A client on the same host binds 127.0.0.1:3610 (or 0.0.0.0:3610 with SO_REUSEADDR).
"""

import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (os.path.join(ROOT, "firmware"), os.path.join(ROOT, "board", "cpython")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from meter.broute.radio import auth, registry  # noqa: E402
from meter.broute.pump import BRoute  # noqa: E402
from meter.broute.radio.ip import IpModule  # noqa: E402

DEFAULT_HOST = "127.0.0.2"
DEFAULT_PORT = 3610
SIM_MASTER_KEY = b"simulated A-route B-route master key"


class HostUdpModule(IpModule):
    """A radio module that is a UDP socket of this host (the simulation's B-route)."""

    kind = "udp"

    def __init__(self, key=None, host=DEFAULT_HOST, port=DEFAULT_PORT, group=None,
                 module_id=None, firmware="host-udp-1"):
        IpModule.__init__(self, key=key, host=host, port=port, group=group)
        self.module_id = module_id or "%s:%d" % (host, port)
        self.firmware = firmware
        self.fitted = True  # set False to emulate pulling the module out

    def identity(self):
        return (self.kind, self.module_id, self.firmware)

    def open(self):
        self._opened = True

    def close(self):
        self._drop_endpoint()
        self._opened = False

    def present(self):
        return self.fitted

    def _nic_up(self):
        return True

    def _nic_addr(self):
        return self.host


registry.register("udp", "broute_udp", "HostUdpModule")


class BrouteUdpServer:
    """The B-route of one simulated meter on a host UDP address. poll() handles what is
    pending and returns at once; serve_in_thread() runs it for tests."""

    def __init__(self, service, host=DEFAULT_HOST, port=DEFAULT_PORT, group=None,
                 master_key=SIM_MASTER_KEY, events=None):
        self.auth = auth.ModuleAuth(master_key)
        ident = ("udp", "%s:%d" % (host, port))
        key = auth.module_key(master_key, ident[0], ident[1])
        self.module = HostUdpModule(key=key, host=host, port=port, group=group)
        self.broute = BRoute(service, self.auth, self.detect, os.urandom, events=events)
        self.address = (host, port)
        self._thread = None
        self._stop = threading.Event()

    def detect(self):
        return self.module if self.module.present() else None

    def poll(self, now):
        """Handle pending requests at `now` (meter.clock.Now; its monotonic ms is replaced
        by this host's); returns the number of frames handled."""
        now.ms = int(time.monotonic() * 1000) & 0x3FFFFFFF
        return self.broute.poll(now)

    def serve_in_thread(self, now, lock=None, interval=0.005):
        """Poll from a background thread; now() -> meter.clock.Now of the meter's clock."""
        lock = lock or threading.Lock()
        with lock:  # first poll here: the module is authenticated and bound on return
            self.poll(now())

        def run():
            while not self._stop.is_set():
                with lock:
                    self.poll(now())
                time.sleep(interval)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def close(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.module.close()


def main(argv=None):
    import argparse

    from demo_meter import DemoMeter

    ap = argparse.ArgumentParser(description="Serve a simulated meter's B-route over UDP")
    ap.add_argument("--host", default=DEFAULT_HOST)
    ap.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = ap.parse_args(argv)
    meter = DemoMeter()
    lock = threading.Lock()
    server = BrouteUdpServer(meter.service, args.host, args.port)
    server.serve_in_thread(meter.now, lock)
    print("B-route (ECHONET Lite) on %s:%d" % (args.host, args.port), flush=True)
    try:
        while True:
            time.sleep(1)
            with lock:
                meter.advance(1)
    except KeyboardInterrupt:
        server.close()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
