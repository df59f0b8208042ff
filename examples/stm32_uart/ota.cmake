# stm32_ota (-DUSMP_STM32_OTA=ON): the signed-update demo, a second firmware next to
# usmp_stm32_uart built from the same board code, UART transport and port hooks, plus
# src/ota_main.c and the RAM update slot src/ota_ram_slot.c. Included by CMakeLists.txt
# after usmp_stm32_uart is defined (its compile and link settings are reused).
#
#   -DUSMP_STM32_OTA_PUBKEY_HEX=<64 hex digits>   the owner's key (`usmp ota keygen`)
#   -DUSMP_STM32_OTA_PRODUCT=stm32f405-demo       product id (<= 16 bytes)
#   -DUSMP_STM32_OTA_VERSION=1                    this firmware's version
#   -DUSMP_STM32_OTA_SLOT_SIZE=49152              RAM slot size in bytes
# SPDX-License-Identifier: Apache-2.0

set(USMP_STM32_OTA_PUBKEY_HEX "" CACHE STRING "Owner's Ed25519 public key, 64 hex digits (usmp ota keygen)")
set(USMP_STM32_OTA_PRODUCT "stm32f405-demo" CACHE STRING "Product id of this hardware (<= 16 bytes)")
set(USMP_STM32_OTA_VERSION 1 CACHE STRING "Version of this firmware (only higher ones are installed)")
set(USMP_STM32_OTA_SLOT_SIZE 49152 CACHE STRING "RAM update slot in bytes")

string(LENGTH "${USMP_STM32_OTA_PUBKEY_HEX}" _ota_key_len)
if(NOT _ota_key_len EQUAL 64)
  message(FATAL_ERROR "USMP_STM32_OTA=ON needs -DUSMP_STM32_OTA_PUBKEY_HEX=<64 hex digits> "
                      "(the .pub file of `usmp ota keygen`)")
endif()
_usmp_stm32_hex_init("${USMP_STM32_OTA_PUBKEY_HEX}" USMP_STM32_OTA_KEY_INIT _ota_key_bytes)
string(LENGTH "${USMP_STM32_OTA_PRODUCT}" _ota_product_len)
if(_ota_product_len GREATER 16 OR NOT USMP_STM32_OTA_PRODUCT MATCHES "^[A-Za-z0-9._-]+$")
  message(FATAL_ERROR "USMP_STM32_OTA_PRODUCT: 1..16 of A-Z a-z 0-9 . _ -")
endif()
foreach(_n USMP_STM32_OTA_VERSION USMP_STM32_OTA_SLOT_SIZE)
  if(NOT ${_n} MATCHES "^[0-9]+$")
    message(FATAL_ERROR "${_n} must be a decimal number, not '${${_n}}'")
  endif()
endforeach()
configure_file(src/usmp_stm32_ota_config.h.in "${_gen}/usmp_stm32_ota_config.h" @ONLY)

usmp_stm32_variant(usmp_stm32_ota src/ota_ram_slot.c src/ota_main.c)
message(STATUS "usmp_stm32_ota: product ${USMP_STM32_OTA_PRODUCT}, version ${USMP_STM32_OTA_VERSION}, "
               "RAM slot ${USMP_STM32_OTA_SLOT_SIZE} bytes")
