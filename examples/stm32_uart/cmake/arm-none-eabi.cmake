# CMake toolchain file: bare-metal Cortex-M4F (STM32F4) with the GNU Arm Embedded toolchain
# (Debian: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi).
#
#   cmake -S examples/stm32_uart -B build/stm32 \
#         -DCMAKE_TOOLCHAIN_FILE=examples/stm32_uart/cmake/arm-none-eabi.cmake
#
# The matching Rust target of the usmp core is thumbv7em-none-eabihf (hard-float ABI,
# FPv4-SP-D16), which is why -mfloat-abi=hard: both halves must agree on the ABI.
# Set ARM_NONE_EABI_PREFIX (or the environment variable) to use another installation,
# e.g. /opt/arm-gnu-toolchain/bin/arm-none-eabi-.
# SPDX-License-Identifier: Apache-2.0

set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

if(NOT ARM_NONE_EABI_PREFIX)
  if(DEFINED ENV{ARM_NONE_EABI_PREFIX})
    set(ARM_NONE_EABI_PREFIX "$ENV{ARM_NONE_EABI_PREFIX}")
  else()
    set(ARM_NONE_EABI_PREFIX "arm-none-eabi-")
  endif()
endif()
set(ARM_NONE_EABI_PREFIX "${ARM_NONE_EABI_PREFIX}" CACHE STRING "Prefix of the arm-none-eabi tools")

set(CMAKE_C_COMPILER "${ARM_NONE_EABI_PREFIX}gcc")
set(CMAKE_ASM_COMPILER "${ARM_NONE_EABI_PREFIX}gcc")
set(CMAKE_OBJCOPY "${ARM_NONE_EABI_PREFIX}objcopy" CACHE FILEPATH "objcopy")
set(CMAKE_SIZE "${ARM_NONE_EABI_PREFIX}size" CACHE FILEPATH "size")

# No OS to link test programs against: try_compile builds static libraries only.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(_usmp_cpu_flags "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16")
set(CMAKE_C_FLAGS_INIT "${_usmp_cpu_flags} -ffunction-sections -fdata-sections")
set(CMAKE_ASM_FLAGS_INIT "${_usmp_cpu_flags}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${_usmp_cpu_flags} -Wl,--gc-sections")

# Programs (cargo, python) come from the host; headers and libraries from the toolchain.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
