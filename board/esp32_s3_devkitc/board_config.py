# Board definition (data only): ESP32-S3-DevKitC-1 (ESP32-S3-WROOM-1 N8R8: 8 MiB flash).
#
# GPIO 26-32 are the module's flash and 33-37 its octal PSRAM; 19/20 are USB, 43/44 the
# console UART0; 0, 3, 45, 46 are strapping pins. All pins used here have pull-ups.
# Units: pins are GPIO numbers, levels 0/1.

BOARD = "esp32_s3_devkitc"
CHIP = "esp32s3"
FLASH_SIZE = 8 * 1024 * 1024
PSRAM = 8 * 1024 * 1024  # bytes of octal PSRAM (N8R8): the .mpy deployment fits

# Power-good comparator on the unregulated supply (push-pull output, high while mains is up)
PIN_POWER_GOOD = 4
POWER_GOOD_LEVEL = 1

# Breaker/relay driver and its auxiliary feedback contact
PIN_RELAY = 5
RELAY_CLOSED_LEVEL = 1
# 10 kOhm pull-down at the driver input: a pad that is not held (power-on, brown-out, EN)
# floats to 0 = coil de-energised = contact open, the state an unpowered meter is in anyway;
# every other reset keeps the held level (esp32hal.pins.RelayPins)
RELAY_PULL = 0
PIN_RELAY_FEEDBACK = 6
FEEDBACK_CLOSED_LEVEL = 0
FEEDBACK_PULL_UP = True

# S0 pulse input (open collector to GND, internal pull-up), counted by PCNT unit 0
PIN_S0 = 7
S0_PULL_UP = True
S0_ACTIVE_LEVEL = 0
S0_COUNTER = "pcnt"
S0_PCNT_UNIT = 0
S0_IMP_PER_KWH = 1000
S0_MIN_WIDTH_MS = 30
S0_MIN_GAP_MS = 80

# BL0942 on UART1 at 4800 8N1 (fitted as an alternative to S0)
BL0942_UART_ID = 1
PIN_BL0942_TX = 17
PIN_BL0942_RX = 18
BL0942_ADDRESS = 0
BL0942_CAL_V_DV = (425, 675_042)
BL0942_CAL_I_MA = (609, 152_989)
BL0942_CAL_P_W = (645, 402_089)
BL0942_CAL_E_J = (538_927, 801)

# Wi-SUN B-route module (SKSTACK IP, e.g. BP35C0) on UART2 at 115200 8N1
WISUN_UART_ID = 2
PIN_WISUN_TX = 15
PIN_WISUN_RX = 16
WISUN_BAUD = 115_200

# Supply: Japan, 100/200 V single-phase 3-wire, 60 Hz (west)
WIRING = "1P3W"
NOMINAL_V_DV = 2020
LINE_HZ = 60

METROLOGY = "s0"
RADIO = "wisun"

# Ethernet (RADIO = "ethernet"): the S3 has no EMAC; a W5500 on SPI2 (its IO_MUX pins 10-13,
# 20 MHz). network.LAN keywords as data (esp32hal/nic.py): pins are GPIO numbers.
LAN_ARGS = {"phy_type": "W5500", "phy_addr": 0, "cs": 10, "int": 9,
            "spi": {"id": 1, "sck": 12, "mosi": 11, "miso": 13, "baudrate": 20_000_000}}

# Hold-up: 1.0 F at 5.0 V down to 2.7 V; the Wi-SUN module sends the alarm over its mesh
# (which stays powered in an outage) at ~50 mA, the ESP32-S3 needs no Wi-Fi burst.
HOLDUP = {
    "cap_mf": 1000,
    "v_start_mv": 5000,
    "v_min_mv": 2700,
    "eff_pct": 85,
    "profile": ((20, 80), (800, 130), (200, 90), (2000, 40)),
}
HOLDUP_BUDGET_MS = 4000
LASTGASP = {"debounce_ms": 20, "restore_ms": 200, "repeats": 2, "repeat_ms": 500}

CURRENT_LIMITS_A = (10, 15, 20, 30, 40, 50, 60)
CONTRACT_LIMIT_A = 40

JOURNAL_PARTITION = "journal"
JOURNAL_SIZE = 256 * 1024

# 60 A at 200 V with margin
MAX_POWER_W = 15_000
MAX_CURRENT_MA = 120_000

WDT_TIMEOUT_MS = 10_000

# Recovery and boot (esp32hal.bootguard): the BOOT button (GPIO0, to GND) pressed right
# after a reset skips the application; /skip_app does the same. Only read, never driven.
SKIP_APP_PIN = 0
SKIP_APP_LEVEL = 0
# No meter without its journal and key: True only on a bench (RAM only, said at every boot)
ALLOW_RAM_ONLY = False
# Nonce seed (esp32hal.entropy): ADC noise of a free ADC1 pin (GPIO1, left open)
ENTROPY_ADC_PIN = 1

DEMO_SEED = 1
DEMO_PV_W = 4000
