# What the ESP-IDF branch of CMakeLists.txt decides for one chip, run without ESP-IDF:
#
#   cmake -DCOMPONENT_DIR=<unpacked component> -DIDF_TARGET=esp32c3 -P idf_select.cmake
#
# The same two calls as the component (usmp_rust_triple_for_idf_target, usmp_rust_idf_select):
# prints "usmp-select: <idf_target> triple=... toolchain=... prebuilt=<lib or empty>", or
# stops with the component's own message when the core must be built and cannot be.
# SPDX-License-Identifier: Apache-2.0
cmake_minimum_required(VERSION 3.16)
include("${COMPONENT_DIR}/cmake/usmp_rust.cmake")
usmp_rust_triple_for_idf_target("${IDF_TARGET}" _triple _toolchain)
usmp_rust_idf_select("${IDF_TARGET}" "${_triple}" "${_toolchain}" "${COMPONENT_DIR}" 0
                     _lib _extra)
message("usmp-select: ${IDF_TARGET} triple=${_triple} toolchain=${_toolchain} prebuilt=${_lib}")
