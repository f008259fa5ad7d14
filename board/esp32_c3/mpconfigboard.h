// Smart meter on an ESP32-C3-DevKitM-1 (ESP32-C3-MINI-1, 4 MiB flash, no PSRAM).
#define MICROPY_HW_BOARD_NAME               "Smart meter ESP32-C3-DevKitM-1"
#define MICROPY_HW_MCU_NAME                 "ESP32C3"

#define MICROPY_HW_ENABLE_SDCARD            (0)
#define MICROPY_PY_MACHINE_I2S              (0)

// The console is UART0 (GPIO 20/21) through the board's USB-UART bridge.
#define MICROPY_HW_ENABLE_UART_REPL         (1)
