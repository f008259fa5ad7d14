# The ESP32 board's Last Gasp collector endpoint (board/esp32hal/udpcollector.py) on real
# loopback sockets: the datagram arrives whole, a failed send raises OSError (the A-route
# counts it) and the next send makes a new socket.

import socket

import pytest

from esp32hal.udpcollector import UdpCollector


def test_a_datagram_reaches_the_collector_whole():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    port = rx.getsockname()[1]
    c = UdpCollector()
    payload = bytes(range(65))  # a Last Gasp alarm's size
    assert c.sendto(payload, ("127.0.0.1", port)) == 65
    assert rx.recvfrom(512)[0] == payload
    assert c.recvfrom_into(bytearray(8)) == (0, None)  # send-only
    c.close()
    c.close()  # twice is harmless
    assert c.sendto(b"again", ("127.0.0.1", port)) == 5  # a new socket after close
    assert rx.recvfrom(512)[0] == b"again"
    rx.close()


def test_a_send_that_fails_raises_oserror_and_drops_the_socket():
    c = UdpCollector()
    with pytest.raises(OSError):
        c.sendto(b"x" * 70_000, ("127.0.0.1", 9))  # larger than any UDP datagram
    assert c._sock is None
