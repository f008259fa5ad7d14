# Metering: energy registers, interval capture, sample accounting, front ends.
