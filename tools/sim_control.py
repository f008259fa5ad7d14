"""The simulation's control side: the head-end command port and the breaker watch of
tools/sim.py.

Command port (sim.py --commands HOST:PORT, loopback only): each UDP datagram is one signed
request as tools/headend.py builds it, raw bytes or its hex text; the meter's signed
response goes back to the sender in the same form. With the head-end CLI and netcat:

    python tools/headend.py --meter-id SIM00001 --key-hex $(xxd -p -c 64 var/meter.key) \\
        --state var/he.json --expiry <wall minute> contract --limit 20 \\
        | nc -u -w1 127.0.0.1 3611

and the hex reply can be read with `headend.py ... parse --hex <reply>`. The expiry is a
wall minute of the SIMULATED clock (minutes since 2000-01-01), printed by the sim at start.
"""

import socket

_HEX = frozenset(b"0123456789abcdefABCDEF")


def _loopback(host):
    return host.split(".")[0] == "127"


def decode_request(data):
    """(request bytes, was_hex): hex text (whitespace ignored) or raw bytes."""
    text = bytes(b for b in data if b not in b" \t\r\n")
    if text and len(text) % 2 == 0 and all(b in _HEX for b in text):
        return bytes.fromhex(text.decode()), True
    return bytes(data), False


class CommandPort:
    """A non-blocking UDP port on the loopback that hands signed head-end requests to
    Meter.command() and sends the responses back."""

    def __init__(self, spec):
        host, _, port = spec.rpartition(":")
        if not _loopback(host):
            raise SystemExit("--commands: %s is not a loopback address (127.0.0.0/8)" % host)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, int(port)))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()
        self.handled = 0
        self.unanswered = 0  # requests the meter could not answer (no key: no commands)

    def poll(self, meter, report=None):
        """Handle every pending request; report(request, response) for each answered."""
        n = 0
        while True:
            try:
                data, addr = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return n
            req, was_hex = decode_request(data)
            resp = meter.command(req)
            n += 1
            self.handled += 1
            if resp is None:
                self.unanswered += 1
                continue
            resp = bytes(resp)
            self.sock.sendto(resp.hex().encode() + b"\n" if was_hex else resp, addr)
            if report is not None:
                report(req, resp)

    def close(self):
        self.sock.close()


def describe_response(meter_id, key, resp):
    """One line for a command response (verified with the meter's own key)."""
    from headend import HeadEnd, ResponseError, describe

    try:
        return describe(HeadEnd(meter_id, key).parse(resp, check_tag=False))
    except ResponseError as e:
        return "response not authentic (%s)" % e


class BreakerWatch:
    """Reports the limiter's changes (breaker state, active limit) as printable lines."""

    def __init__(self):
        self.state = None
        self.active = None

    def poll(self, limiter):
        """A description of what changed since the previous poll, or None."""
        from meter.control.limiter import STATE_NAMES

        out = []
        if limiter.active_a != self.active:
            if self.active is not None:
                out.append("limit %d A%s" % (
                    limiter.active_a,
                    " (reservation %d)" % limiter.active_id if limiter.active_id else
                    " (contract)"))
            self.active = limiter.active_a
        st = limiter.state
        if st != self.state:
            if self.state is not None:
                out.append("breaker %s (trips %d, re-closes %d)" % (
                    STATE_NAMES[st], limiter.trips, limiter.recloses))
            self.state = st
        return "; ".join(out) if out else None
