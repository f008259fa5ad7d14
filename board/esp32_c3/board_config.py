# Board definition (data only): ESP32-C3-DevKitM-1 (ESP32-C3-MINI-1, 4 MiB flash).
#
# The C3 has GPIO 0-21 only: 12-17 are the SPI flash, 18/19 USB, 20/21 the console UART0,
# 2, 8, 9 strapping pins. It has two UARTs (UART1 is the BL0942's, so no Wi-SUN module)
# and no PCNT: an S0 input is counted by Pin.irq edges with the software debounce.
# Units: pins are GPIO numbers, levels 0/1.

BOARD = "esp32_c3"
CHIP = "esp32c3"
FLASH_SIZE = 4 * 1024 * 1024
PSRAM = 0  # bytes of PSRAM (none): deploy only a frozen image (docs/boards.md)

PIN_POWER_GOOD = 3
POWER_GOOD_LEVEL = 1

PIN_RELAY = 4
RELAY_CLOSED_LEVEL = 1
# 10 kOhm pull-down at the driver input: a pad that is not held (power-on, brown-out, EN)
# floats to 0 = coil de-energised = contact open, the state an unpowered meter is in anyway;
# every other reset keeps the held level (esp32hal.pins.RelayPins)
RELAY_PULL = 0
PIN_RELAY_FEEDBACK = 5
FEEDBACK_CLOSED_LEVEL = 0
FEEDBACK_PULL_UP = True

PIN_S0 = 10
S0_PULL_UP = True
S0_ACTIVE_LEVEL = 0
S0_COUNTER = "edges"  # no PCNT on the C3
S0_PCNT_UNIT = 0
S0_IMP_PER_KWH = 1000
S0_MIN_WIDTH_MS = 30
S0_MIN_GAP_MS = 80

BL0942_UART_ID = 1
PIN_BL0942_TX = 7
PIN_BL0942_RX = 6
BL0942_ADDRESS = 0
BL0942_CAL_V_DV = (425, 675_042)
BL0942_CAL_I_MA = (609, 152_989)
BL0942_CAL_P_W = (645, 402_089)
BL0942_CAL_E_J = (538_927, 801)

WIRING = "1P2W"
NOMINAL_V_DV = 1010
LINE_HZ = 50

METROLOGY = "bl0942"
RADIO = "wifi"

# No Ethernet: the C3 has no EMAC, and the pins an SPI PHY needs (SCK, MOSI, MISO, CS, INT)
# are not free beside the strapping pins; RADIO = "ethernet" is refused at build_hal.
LAN_ARGS = None

# Hold-up: 1.5 F at 5.0 V down to 2.7 V; Wi-Fi alarm burst as on the ESP32
HOLDUP = {
    "cap_mf": 1500,
    "v_start_mv": 5000,
    "v_min_mv": 2700,
    "eff_pct": 85,
    "profile": ((20, 60), (1500, 220), (200, 100), (2000, 30)),
}
HOLDUP_BUDGET_MS = 4000
LASTGASP = {"debounce_ms": 20, "restore_ms": 200, "repeats": 2, "repeat_ms": 500}

CURRENT_LIMITS_A = (10, 15, 20, 30, 40, 50, 60)
CONTRACT_LIMIT_A = 30

JOURNAL_PARTITION = "journal"
JOURNAL_SIZE = 256 * 1024

MAX_POWER_W = 12_000
MAX_CURRENT_MA = 120_000

WDT_TIMEOUT_MS = 10_000

# Recovery and boot (esp32hal.bootguard): the BOOT button (GPIO9, to GND) pressed right
# after a reset skips the application; /skip_app does the same. Only read, never driven.
SKIP_APP_PIN = 9
SKIP_APP_LEVEL = 0
# No meter without its journal and key: True only on a bench (RAM only, said at every boot)
ALLOW_RAM_ONLY = False
# Nonce seed (esp32hal.entropy): ADC noise of a free ADC1 pin (GPIO1, left open)
ENTROPY_ADC_PIN = 1

DEMO_SEED = 1
DEMO_PV_W = 0
