# usmp_libc_mem.cmake: the C library's memcpy/memset/memcmp for the Rust core (USMP_LIBC_MEM).
#
#   usmp_libc_mem_symbols(<rust triple> <out>)    the core's references to the mem functions
#   usmp_libc_mem_link(<target> <INTERFACE|PUBLIC> <symbols> [BUILD_INTERFACE])
#
# Included by the root CMakeLists.txt (plain CMake build, add_subdirectory) and, installed
# next to it, by usmpConfig.cmake (find_package): both run in the consumer's project, with
# the consumer's toolchain, which is what decides whether there is a C library.
#
# Why. A bare-metal Rust static library carries compiler_builtins' memcpy, memset, memcmp and,
# on Arm, __aeabi_memcpy*/__aeabi_memclr*/__aeabi_memset: WEAK definitions, ~2 KB on a
# Cortex-M4. The archive comes before the C library on the link line (the compiler driver
# appends -lc last), so when the linker scans it the core's references to those symbols are
# still undefined and it takes the archive's weak copies; afterwards nothing is undefined,
# so libc's members are never extracted. Even the application's own memcpy calls then land
# on compiler_builtins' copy.
#
# How. Where the toolchain has a C library, the package adds two link options, which CMake
# places ahead of the application's object files:
#     -Wl,-u,<each symbol the core references>  -lc
# -u makes those symbols undefined from the start; -lc, scanned before anything else, then
# extracts exactly their members from libc (plus what those members call: newlib-nano's
# __aeabi_memcpy calls memcpy). When the core's archive comes, the symbols are defined, so
# its weak copies are not extracted (or, extracted for another symbol of the same member,
# lose to libc's strong definitions and are dropped by --gc-sections). Only the symbols the
# core references are listed: forcing one it does not use (memmove) would add flash. A
# symbol that the C library lacks stays undefined until the core's archive, which supplies
# it as before. --specs=nano.specs turns the -lc into -lc_nano, --specs=picolibc.specs
# points it at picolibc: the application's own choice of C library decides.
#
# Why it is correct where it applies, and where it does not:
# - Cortex-M or RISC-V with newlib/picolibc (examples/stm32_uart, the tests/component
#   consumers): the configure-time check below links a program against -lc alone; it passes,
#   the options are added, and the firmware's mem functions are libc's (tests check it).
# - Bare metal with -nostdlib: the explicit -lc still finds the toolchain's libc (-nostdlib
#   only drops the driver's own libraries), so the program links, with libc's mem functions.
#   A toolchain without any C library (e.g. clang without a sysroot) fails the check: no
#   option is added and the link is exactly what it was. Placing -lc ahead of the objects
#   means that only the listed symbols are undefined when libc is scanned, so no other libc
#   function is pulled in early (a library later on the line that replaces, say, malloc's
#   locks still wins). The price: an application that defines memcpy or memcmp itself in
#   its own object files gets a "multiple definition" error; it sets USMP_LIBC_MEM=OFF.
# - Hosted builds (Linux glibc/musl, macOS, Windows): the standard library's
#   compiler_builtins has no mem functions there (the host's C library is the only one), so
#   usmp_libc_mem_symbols gives nothing and nothing is added.
# - ESP-IDF: not used (see the component branch of CMakeLists.txt). The linker scripts of
#   every chip assign memset (and memcpy/memmove/memcmp, unless the esp_libc component
#   compiles its own misalignment-friendly ones and forces them in with -u) to ROM
#   addresses; a script assignment overrides the archive's weak copies and the strong
#   esp_libc definitions win over them too. An early -lc there would even clash with
#   esp_libc's forced memcpy (two strong definitions).
#
# SPDX-License-Identifier: Apache-2.0
include_guard(GLOBAL)

# The mem symbols the core's archive for <triple> references and defines weakly: "" where the
# core has none (hosted targets) or where nothing is known about the target.
# tests/component/test_component.sh checks the list against the built archive.
function(usmp_libc_mem_symbols triple out)
  set(_s "")
  if(triple MATCHES "-none")
    if(triple MATCHES "^(thumb|arm)")
      set(_s __aeabi_memcpy __aeabi_memcpy4 __aeabi_memcpy8 __aeabi_memclr __aeabi_memclr4
             __aeabi_memclr8 __aeabi_memset memcmp)
    elseif(triple MATCHES "^(riscv|xtensa)")
      set(_s memcpy memset memcmp)
    endif()
  endif()
  set(${out} "${_s}" PARENT_SCOPE)
endfunction()

# Sets <out> to TRUE when a program links with -nostdlib -nostartfiles -lc and takes memcpy,
# memset and memcmp from there: the consumer's compiler, flags, linker flags and sysroot, as
# try_compile uses them. Cached per toolchain (the compiler and its flags).
function(_usmp_libc_mem_detect out)
  if(CMAKE_C_COMPILER_LOADED)
    set(_lang C)
    set(_ext c)
    set(_extern "")
  elseif(CMAKE_CXX_COMPILER_LOADED)
    set(_lang CXX)
    set(_ext cpp)
    set(_extern "extern \"C\" ")
  else()
    set(${out} FALSE PARENT_SCOPE)
    return()
  endif()
  set(_key "${CMAKE_${_lang}_COMPILER}|${CMAKE_${_lang}_FLAGS}|${CMAKE_EXE_LINKER_FLAGS}|${CMAKE_SYSROOT}|${CMAKE_${_lang}_COMPILER_TARGET}")
  if(DEFINED USMP_LIBC_MEM_CHECKED AND USMP_LIBC_MEM_CHECKED STREQUAL _key)
    set(${out} "${USMP_LIBC_MEM_FOUND}" PARENT_SCOPE)
    return()
  endif()
  set(_dir "${CMAKE_BINARY_DIR}${CMAKE_FILES_DIRECTORY}/usmp_libc_mem")
  file(WRITE "${_dir}/probe.${_ext}"
    "typedef __SIZE_TYPE__ size_t;\n"
    "${_extern}void *memcpy(void *, const void *, size_t);\n"
    "${_extern}void *memset(void *, int, size_t);\n"
    "${_extern}int memcmp(const void *, const void *, size_t);\n"
    "static char a[8], b[8];\n"
    "int main(void) {\n"
    "  volatile size_t n = sizeof a;\n"
    "  memcpy(a, b, n);\n"
    "  memset(b, 1, n);\n"
    "  return memcmp(a, b, n);\n"
    "}\n")
  # A whole program, not the static library that bare-metal toolchain files ask for.
  set(CMAKE_TRY_COMPILE_TARGET_TYPE EXECUTABLE)
  try_compile(_ok "${_dir}/build" "${_dir}/probe.${_ext}"
              COMPILE_DEFINITIONS -fno-builtin
              LINK_OPTIONS -nostdlib -nostartfiles
              LINK_LIBRARIES c
              OUTPUT_VARIABLE _log)
  file(WRITE "${_dir}/try_compile.log" "${_log}")
  if(_ok)
    set(_ok TRUE)
  else()
    set(_ok FALSE)
  endif()
  set(USMP_LIBC_MEM_CHECKED "${_key}" CACHE INTERNAL "toolchain of the USMP_LIBC_MEM check")
  set(USMP_LIBC_MEM_FOUND ${_ok} CACHE INTERNAL "the toolchain links -lc with memcpy/memset/memcmp")
  set(${out} ${_ok} PARENT_SCOPE)
endfunction()

# Adds the link options to <target> (scope INTERFACE or PUBLIC) when USMP_LIBC_MEM is on (the
# default), <symbols> is not empty and the toolchain has a C library. BUILD_INTERFACE: only
# for consumers in this build tree (the installed package decides again, in usmpConfig.cmake,
# with the consumer's toolchain).
function(usmp_libc_mem_link target scope symbols)
  cmake_parse_arguments(A "BUILD_INTERFACE" "" "" ${ARGN})
  if(symbols STREQUAL "")
    return() # hosted: the core has no mem functions of its own
  endif()
  if(DEFINED USMP_LIBC_MEM AND NOT USMP_LIBC_MEM)
    message(STATUS "usmp: USMP_LIBC_MEM=OFF: the core's own mem functions (compiler_builtins)")
    return()
  endif()
  if(NOT CMAKE_C_COMPILER_ID MATCHES "GNU|Clang" AND NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    message(STATUS "usmp: USMP_LIBC_MEM needs a GCC or Clang driver: the core's own mem functions")
    return()
  endif()
  _usmp_libc_mem_detect(_found)
  if(NOT _found)
    message(STATUS "usmp: no C library links with this toolchain (-lc, see "
                   "${CMAKE_BINARY_DIR}${CMAKE_FILES_DIRECTORY}/usmp_libc_mem/try_compile.log): "
                   "the core's own mem functions (compiler_builtins)")
    return()
  endif()
  string(REPLACE ";" ",-u," _u "${symbols}")
  set(_opts "LINKER:-u,${_u}" "-lc")
  if(A_BUILD_INTERFACE)
    set(_opts "$<BUILD_INTERFACE:LINKER:-u,${_u}>" "$<BUILD_INTERFACE:-lc>")
  endif()
  get_target_property(_have ${target} INTERFACE_LINK_OPTIONS)
  if(NOT "${_have}" MATCHES "-u,${_u}")
    target_link_options(${target} ${scope} ${_opts})
  endif()
  string(REPLACE ";" " " _list "${symbols}")
  message(STATUS "usmp: ${_list} from the C library (-lc ahead of the objects; "
                 "USMP_LIBC_MEM=OFF keeps the core's own)")
endfunction()
