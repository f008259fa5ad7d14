# MicroPython ESP32 port, out-of-tree board: ESP32-S3-DevKitC-1 with ESP32-S3-WROOM-1 N8R8
# (8 MiB quad flash, 8 MiB octal PSRAM: the port's SPIRAM_OCT configuration, fixed here rather
# than a variant). Build: make -C ports/esp32 BOARD_DIR=<repo>/board/esp32_s3_devkitc.
#
# sdkconfig.board names this folder's partitions.csv as @MICROPY_BOARD_DIR@/partitions.csv:
# ESP-IDF resolves a relative CONFIG_PARTITION_TABLE_CUSTOM_FILENAME against ports/esp32, so
# the path is made absolute here, in a copy under the build directory.

set(IDF_TARGET esp32s3)

configure_file(${MICROPY_BOARD_DIR}/sdkconfig.board ${CMAKE_BINARY_DIR}/sdkconfig.board @ONLY)

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    ${SDKCONFIG_IDF_VERSION_SPECIFIC}
    boards/sdkconfig.usb
    boards/sdkconfig.ble
    boards/sdkconfig.spiram_sx
    boards/sdkconfig.240mhz
    boards/sdkconfig.spiram_oct
    ${CMAKE_BINARY_DIR}/sdkconfig.board
)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
