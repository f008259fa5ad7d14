# hosthal: host implementations of the HAL contracts in firmware/meter/hal.py, used by the
# tests and by the host simulation. They run under CPython and the MicroPython unix port.
