// Smart meter on an ESP32-S3-DevKitC-1 (ESP32-S3-WROOM-1 N8R8: 8 MiB flash, octal PSRAM).
#define MICROPY_HW_BOARD_NAME               "Smart meter ESP32-S3-DevKitC-1 N8R8"
#define MICROPY_HW_MCU_NAME                 "ESP32S3"

// The console is UART0 (GPIO 43/44) through the board's USB-UART bridge; native USB (GPIO
// 19/20) also carries a REPL through boards/sdkconfig.usb.
#define MICROPY_HW_ENABLE_UART_REPL         (1)
