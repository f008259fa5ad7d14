# esp32hal: the ESP32 implementations of the HAL contracts in meter/hal.py (frozen with the
# firmware). Each module wraps one device class around machine/esp32/socket and stays thin;
# factory.build_hal(board_config) creates the objects a board definition names.
#
#   clock.EspClock         time.ticks_ms, RTC wall clock, validity flag in RTC memory
#   rtcmem                 flag slots + retained copy in RTC memory, magic + CRC, cleared at
#                          power-on/brown-out (survive soft/WDT reset, panic, deep sleep)
#   flash.PartitionFlash   raw esp32.Partition with explicit sector erase (the journal)
#   pins.PowerGoodPin      power-good comparator input, edges counted in the handler
#   pins.RelayPins         relay output held by the pad through resets, with its feedback
#   uart.EspUart           machine.UART, non-blocking, rxbuf sized for a 400 ms erase
#   s0input.PcntCounter    S0 pulses on PCNT (machine.Counter), 16-bit wrapping count()
#   s0input.EdgeRing       S0 edges by Pin.irq into a preallocated ring (chips without PCNT)
#   watchdog.Watchdog      machine.WDT
#   resetcause             machine.reset_cause() as the meter's reset kinds (what each means)
#   entropy.Drbg           nonces: hash DRBG over os.urandom and ADC noise (hal.random)
#   bootguard              recovery skip (/skip_app, BOOT button), crash counter, safe mode
#   supervisor.Supervisor  task check-ins gate the watchdog; failures restart, then reset
