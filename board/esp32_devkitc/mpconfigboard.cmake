# MicroPython ESP32 port, out-of-tree board: ESP32-DevKitC with ESP32-WROOM-32 (4 MiB flash,
# no PSRAM). Build: make -C ports/esp32 BOARD_DIR=<repo>/board/esp32_devkitc (docs/boards.md).
#
# sdkconfig.board names this folder's partitions.csv as @MICROPY_BOARD_DIR@/partitions.csv:
# ESP-IDF resolves a relative CONFIG_PARTITION_TABLE_CUSTOM_FILENAME against ports/esp32, so
# the path is made absolute here, in a copy under the build directory.

set(IDF_TARGET esp32)

configure_file(${MICROPY_BOARD_DIR}/sdkconfig.board ${CMAKE_BINARY_DIR}/sdkconfig.board @ONLY)

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    ${SDKCONFIG_IDF_VERSION_SPECIFIC}
    boards/sdkconfig.ble
    ${CMAKE_BINARY_DIR}/sdkconfig.board
)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
