# meter: smart electricity meter firmware core (MicroPython and CPython compatible).
