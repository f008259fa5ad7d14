# MicroPython ESP32 port, out-of-tree board: ESP32-C3-DevKitM-1 (ESP32-C3-MINI-1, 4 MiB flash,
# no PSRAM). Build: make -C ports/esp32 BOARD_DIR=<repo>/board/esp32_c3 (docs/boards.md).
#
# sdkconfig.board names this folder's partitions.csv as @MICROPY_BOARD_DIR@/partitions.csv:
# ESP-IDF resolves a relative CONFIG_PARTITION_TABLE_CUSTOM_FILENAME against ports/esp32, so
# the path is made absolute here, in a copy under the build directory.

set(IDF_TARGET esp32c3)

configure_file(${MICROPY_BOARD_DIR}/sdkconfig.board ${CMAKE_BINARY_DIR}/sdkconfig.board @ONLY)

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    ${SDKCONFIG_IDF_VERSION_SPECIFIC}
    boards/sdkconfig.riscv
    boards/sdkconfig.ble
    boards/sdkconfig.c3
    ${CMAKE_BINARY_DIR}/sdkconfig.board
)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
