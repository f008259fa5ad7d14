# Remote ampere control: limiter, breaker, reservations, drill, signed commands, audit.
