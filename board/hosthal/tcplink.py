# The host's A-route link (CPython and the MicroPython unix port): the board's portable
# non-blocking TCP/TLS link, the same code the ESP32 runs (esp32hal/tcplink.py).

from esp32hal.tcplink import TcpLink, tls_context

__all__ = ["TcpLink", "tls_context"]
