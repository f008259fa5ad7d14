# The bench console: an authenticated line protocol on the meter's serial port (sans-IO).
#
#   lines.py     bytes in, complete lines out: a preallocated line buffer with a hard limit
#   auth.py      HMAC challenge-response for privileged commands, failures rate limited
#   inject.py    the power-good and metrology wrappers the console injects faults through
#   reply.py     one reply as key/value pairs, rendered for a person or as one JSON line
#   commands.py  the commands table: read-only reports and the privileged bench actions
#   console.py   the console itself: port I/O, flood guard, bench mode, dispatch, audit
#   assembly.py  build_console(): called by meter.assembly when the CONSOLE setting is on
