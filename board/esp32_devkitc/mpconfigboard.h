// Smart meter on an ESP32-DevKitC (ESP32-WROOM-32, 4 MiB flash, no PSRAM).
#define MICROPY_HW_BOARD_NAME               "Smart meter ESP32-DevKitC (WROOM-32)"
#define MICROPY_HW_MCU_NAME                 "ESP32"
