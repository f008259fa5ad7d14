# Board definition (data only): ESP32-DevKitC with an ESP32-WROOM-32 module (4 MiB flash).
#
# GPIO 6-11 are the module's SPI flash; 16/17 are free on WROOM-32 (not on WROVER, where
# they drive PSRAM); 34-39 are inputs without internal pull-ups; 0, 2, 5, 12, 15 are
# strapping pins and stay unused. Units: pins are GPIO numbers, levels 0/1.

BOARD = "esp32_devkitc"
CHIP = "esp32"
FLASH_SIZE = 4 * 1024 * 1024
PSRAM = 0  # bytes of PSRAM (WROOM-32: none): deploy only a frozen image (docs/boards.md)

# Power-good comparator on the unregulated supply (push-pull output, high while mains is up)
PIN_POWER_GOOD = 34
POWER_GOOD_LEVEL = 1

# Breaker/relay driver and its auxiliary feedback contact
PIN_RELAY = 26
RELAY_CLOSED_LEVEL = 1
# 10 kOhm pull-down at the driver input: a pad that is not held (power-on, brown-out, EN)
# floats to 0 = coil de-energised = contact open, the state an unpowered meter is in anyway;
# every other reset keeps the held level (esp32hal.pins.RelayPins)
RELAY_PULL = 0
PIN_RELAY_FEEDBACK = 35  # external pull-up; the closed contact pulls it low
FEEDBACK_CLOSED_LEVEL = 0
FEEDBACK_PULL_UP = False  # GPIO35 has no internal pull-up: the board has one

# S0 pulse input (open collector to GND, internal pull-up), counted by PCNT unit 0
PIN_S0 = 27
S0_PULL_UP = True
S0_ACTIVE_LEVEL = 0
S0_COUNTER = "pcnt"  # "pcnt": hardware counter (RC debounce on the board); "edges": Pin.irq
S0_PCNT_UNIT = 0
S0_IMP_PER_KWH = 1000
S0_MIN_WIDTH_MS = 30
S0_MIN_GAP_MS = 80

# BL0942 on UART2 at 4800 8N1 (SSOP10: address 0); calibration of the datasheet's
# reference design (1 mOhm shunt, 5 x 390 kOhm + 0.51 kOhm divider) as (num, den)
BL0942_UART_ID = 2
PIN_BL0942_TX = 17
PIN_BL0942_RX = 16
BL0942_ADDRESS = 0
BL0942_CAL_V_DV = (425, 675_042)
BL0942_CAL_I_MA = (609, 152_989)
BL0942_CAL_P_W = (645, 402_089)
BL0942_CAL_E_J = (538_927, 801)

# Supply: Japan, 100 V single-phase 2-wire; 50 Hz east / 60 Hz west of the Fuji river
WIRING = "1P2W"
NOMINAL_V_DV = 1010
LINE_HZ = 50

# Fitted parts: metrology front end ("bl0942", "s0", "simulated") and B-route radio module
# (meter.broute.radio.registry kinds: "wifi", "wisun", "ethernet"; "none" for no B-route)
METROLOGY = "bl0942"
RADIO = "wifi"

# Ethernet (RADIO = "ethernet"): a W5500 on SPI (VSPI, 20 MHz). The ESP32's EMAC needs the
# fixed RMII pins 19, 21, 22, 25, 26, 27 and GPIO0, and this wiring has the relay on 26 and
# S0 on 27. network.LAN keywords as data (esp32hal/nic.py): pins are GPIO numbers.
LAN_ARGS = {"phy_type": "W5500", "phy_addr": 0, "cs": 4, "int": 32,
            "spi": {"id": 2, "sck": 18, "mosi": 23, "miso": 19, "baudrate": 20_000_000}}

# Hold-up: 1.5 F supercapacitor charged to 5.0 V, buck-boost to 3.3 V down to 2.7 V input.
# Last Gasp current profile at the 3.3 V rail as (ms, mA) steps: freeze and commit, the
# Wi-Fi alarm burst with repeats, radios off, then the board idling until it browns out.
HOLDUP = {
    "cap_mf": 1500,
    "v_start_mv": 5000,
    "v_min_mv": 2700,
    "eff_pct": 85,
    "profile": ((20, 80), (1500, 240), (200, 120), (2000, 45)),
}
HOLDUP_BUDGET_MS = 4000
LASTGASP = {"debounce_ms": 20, "restore_ms": 200, "repeats": 2, "repeat_ms": 500}

# Remote ampere control: allowed limits and the contract (A)
CURRENT_LIMITS_A = (10, 15, 20, 30, 40, 50, 60)
CONTRACT_LIMIT_A = 30

# Journal on a raw data partition (partitions.csv in this folder)
JOURNAL_PARTITION = "journal"
JOURNAL_SIZE = 256 * 1024

# Plausibility limits of the metering path (meter rated 60 A at 100 V, with margin)
MAX_POWER_W = 12_000
MAX_CURRENT_MA = 120_000

WDT_TIMEOUT_MS = 10_000

# Recovery and boot (esp32hal.bootguard): the BOOT button (GPIO0, to GND, external pull-up)
# pressed right after a reset skips the application; /skip_app does the same. Only read,
# never driven, after the ROM sampled the strapping pins.
SKIP_APP_PIN = 0
SKIP_APP_LEVEL = 0
# No meter without its journal and key: True only on a bench (RAM only, said at every boot)
ALLOW_RAM_ONLY = False
# Nonce seed (esp32hal.entropy): ADC noise of a free ADC1 pin (GPIO36, VP, left open)
ENTROPY_ADC_PIN = 36

# Demo mode (METROLOGY = "simulated"): the household of meter.metering.frontends.simulated
DEMO_SEED = 1
DEMO_PV_W = 0
