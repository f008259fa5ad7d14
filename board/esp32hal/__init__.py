# esp32hal: the ESP32 implementations of the HAL contracts in meter/hal.py (frozen with the
# firmware). Each module wraps one device class around machine/esp32/socket and stays thin;
# factory.build_hal(board_config) creates the objects a board definition names.
#
#   clock.EspClock         time.ticks_ms, RTC wall clock, validity flag in RTC memory
#   rtcmem                 small flag slots in RTC memory (survive soft/WDT reset, deep sleep)
#   flash.PartitionFlash   raw esp32.Partition with explicit sector erase (the journal)
#   pins.PowerGoodPin      power-good comparator input, edges counted in the handler
#   pins.RelayPins         relay output with its feedback contact
#   uart.EspUart           machine.UART, non-blocking
#   s0input.PcntCounter    S0 pulses on PCNT (machine.Counter), 16-bit wrapping count()
#   s0input.EdgeRing       S0 edges by Pin.irq into a preallocated ring (chips without PCNT)
#   watchdog.Watchdog      machine.WDT
#   resetcause             machine.reset_cause() as the meter's reset kinds
