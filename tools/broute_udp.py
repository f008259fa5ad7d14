"""Serve the firmware's B-route (ECHONET Lite over UDP) from the host: the host UDP radio
module, and a server around a meter built with it (the product's own composition).

    from broute_udp import BrouteUdpServer, udp_module, SIM_MASTER_KEY
    meter = DemoMeter(radio=udp_module("127.0.0.2", 3610), broute_key=SIM_MASTER_KEY)
    server = BrouteUdpServer(meter)
    ...
    server.poll()   # each loop iteration; never blocks
    ...
    server.close()

The module is authenticated like any fitted radio module (meter.broute.pump): udp_module()
provisions it with a key derived from the master key, standing in for the A-route.
A client on the same host binds 127.0.0.1:3610 (or 0.0.0.0:3610 with SO_REUSEADDR).
The module joins the ECHONET multicast group 224.0.23.0 on the loopback interface (the
interface of its own 127.x address), so a HEMS on this host discovers it by a multicast Get
to 224.0.23.0:3610 sent with IP_MULTICAST_IF 127.0.0.1, and a listener that joined the group
on 127.0.0.1 hears its start-up instance-list announcement. group=None: unicast only.
The simulation (tools/sim.py) fits the same module into its meter.
"""

import os
import sys
import threading
import time

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hostpaths  # noqa: E402,F401  (firmware, host HAL, CPython shim)
from meter.broute.radio import auth, registry  # noqa: E402
from meter.broute.radio.ip import IpModule  # noqa: E402
from meter.broute.radio.udp import GROUP  # noqa: E402

DEFAULT_HOST = "127.0.0.2"
DEFAULT_PORT = 3610
SIM_MASTER_KEY = b"simulated A-route B-route master key"


class HostUdpModule(IpModule):
    """A radio module that is a UDP socket of this host (the simulation's B-route)."""

    kind = "udp"

    def __init__(self, key=None, host=DEFAULT_HOST, port=DEFAULT_PORT, group=GROUP,
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


def udp_module(host=DEFAULT_HOST, port=DEFAULT_PORT, master_key=SIM_MASTER_KEY, group=GROUP):
    """A host UDP module at host:port, provisioned with the key the simulated A-route derives
    from master_key (what a meter built with broute_key=master_key accepts), in the ECHONET
    multicast group (group=None: unicast only)."""
    key = auth.module_key(master_key, "udp", "%s:%d" % (host, port))
    return HostUdpModule(key=key, host=host, port=port, group=group)


class BrouteUdpServer:
    """The B-route of one meter (tools/demo_meter.DemoMeter built with a udp_module() as its
    radio) on a host UDP address. poll() handles what is pending and returns at once;
    serve_in_thread() runs it for tests."""

    def __init__(self, meter):
        self.meter = meter
        self.broute = meter.m.broute
        self.module = meter.m.hal.radio
        self.address = (self.module.host, self.module.port)
        self._thread = None
        self._stop = threading.Event()

    def poll(self):
        """Handle pending requests (the pump's monotonic ms is this host's); returns the
        number of frames handled."""
        return self.broute.poll(self.meter.now(int(time.monotonic() * 1000) & 0x3FFFFFFF))

    def serve_in_thread(self, lock=None, interval=0.005):
        """Poll from a background thread (under `lock`, shared with whoever advances the
        meter)."""
        lock = lock or threading.Lock()
        with lock:  # first poll here: the module is authenticated and bound on return
            self.poll()

        def run():
            while not self._stop.is_set():
                with lock:
                    self.poll()
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
    meter = DemoMeter(radio=udp_module(args.host, args.port), broute_key=SIM_MASTER_KEY)
    lock = threading.Lock()
    server = BrouteUdpServer(meter)
    server.serve_in_thread(lock)
    print("B-route (ECHONET Lite) on %s:%d" % (args.host, args.port), flush=True)
    try:
        while True:
            time.sleep(1)
            with lock:
                meter.advance(1)
    except KeyboardInterrupt:
        server.close()


if __name__ == "__main__":
    main()
