# usmp_rust.cmake: building the Rust core of usmp from CMake, shared by the plain CMake
# build and the ESP-IDF component (both in the root CMakeLists.txt).
#
#   usmp_rust_find_tools([WHY <text>] [INSTALL <text>])   USMP_CARGO, USMP_RUSTC (cache)
#   usmp_rust_triple_for_idf_target(<idf_target> <out_triple> <out_toolchain>)
#   usmp_rust_idf_select(<idf_target> <triple> <toolchain> <component_dir> <from_source>
#                        <out_prebuilt_lib> <out_extra_cargo_args>)
#   usmp_rust_guess_triple(<out_triple> <out_reason>)   from the CMake toolchain
#   usmp_rust_check_target(<triple> <toolchain> <out_extra_cargo_args>)
#   usmp_rust_add_staticlib(NAME <target> [ALL] SOURCE_DIR <dir> TARGET_DIR <dir>
#                           [TRIPLE <triple>] [TOOLCHAIN <toolchain>]
#                           [EXTRA_ARGS <arg>...] OUTPUT_VARIABLE <var>)
#   usmp_rust_build_std_args(<crate_dir> <extra_args_var>)   -Zbuild-std without vendor/
#   usmp_rust_source_hash(<crate_dir> <out>)      SHA-256 over Cargo.lock, Cargo.toml, src/
#   usmp_rust_find_prebuilt(<crate_dir> <out> <dir>...)   lib/<dir>/libusmp_core.a, if current
#
# The core's archive is libusmp_core.a (usmp_core.lib with MSVC): cargo names it libusmp.a
# after the crate, and the build copies it, so that it never shares a name with a C library
# called usmp (the ESP-IDF component's libusmp.a, say) in build logs and link maps.
#
# As a script, it prints the source hash (scripts/pack-component.sh stamps prebuilt cores
# with it):  cmake -DUSMP_SOURCE_HASH_OF=<crate_dir> -P cmake/usmp_rust.cmake
#
# Including the module only defines functions (and one global property), so it is safe in
# script mode as well.
#
# SPDX-License-Identifier: Apache-2.0
include_guard(GLOBAL)

# --- Tools ---------------------------------------------------------------------------------

# Finds cargo and rustc (~/.cargo/bin and $CARGO_HOME/bin are searched too, since IDEs and
# the ESP-IDF shell often start without them on PATH). -DUSMP_CARGO=... overrides.
# WHY: a sentence put in front of the "not found" message (why this build needs Rust);
# INSTALL: what to install, replacing the default advice (https://rustup.rs).
function(usmp_rust_find_tools)
  cmake_parse_arguments(A "" "WHY;INSTALL" "" ${ARGN})
  set(_why "")
  if(A_WHY)
    set(_why "${A_WHY} ")
  endif()
  set(_install "install a Rust toolchain (https://rustup.rs)")
  if(A_INSTALL)
    set(_install "${A_INSTALL}")
  endif()
  find_program(USMP_CARGO cargo HINTS "$ENV{HOME}/.cargo/bin" "$ENV{CARGO_HOME}/bin")
  if(NOT USMP_CARGO)
    message(FATAL_ERROR
      "usmp: cargo not found. ${_why}The protocol core is written in Rust: ${_install}, or "
      "point USMP_CARGO at the cargo executable (-DUSMP_CARGO=/path/to/cargo).")
  endif()
  get_filename_component(_cargo_dir "${USMP_CARGO}" DIRECTORY)
  find_program(USMP_RUSTC rustc HINTS "${_cargo_dir}" "$ENV{HOME}/.cargo/bin" "$ENV{CARGO_HOME}/bin")
  if(NOT USMP_RUSTC)
    message(FATAL_ERROR
      "usmp: found cargo (${USMP_CARGO}) but no rustc next to it. ${_why}Install a complete "
      "Rust toolchain (https://rustup.rs) or set -DUSMP_RUSTC=/path/to/rustc.")
  endif()
endfunction()

# Runs `rustc [+toolchain] <args>` in the crate directory (so a rust-toolchain file there
# would apply, as it does for cargo). Sets <out> to stdout, or to "" when rustc failed.
function(_usmp_rustc out toolchain)
  set(_cmd "${USMP_RUSTC}")
  if(NOT toolchain STREQUAL "")
    list(APPEND _cmd "+${toolchain}")
  endif()
  get_property(_dir GLOBAL PROPERTY USMP_RUST_CRATE_DIR)
  execute_process(COMMAND ${_cmd} ${ARGN}
                  WORKING_DIRECTORY "${_dir}"
                  RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(_rc EQUAL 0)
    set(${out} "${_out}" PARENT_SCOPE)
  else()
    set(${out} "" PARENT_SCOPE)
  endif()
endfunction()

# --- Choosing the triple -------------------------------------------------------------------

# ESP-IDF: IDF_TARGET -> Rust triple, and the rustup toolchain to use ("" = the default one;
# "esp" = the Xtensa-enabled toolchain that espup installs). linux -> "" (the host).
function(usmp_rust_triple_for_idf_target idf_target out_triple out_toolchain)
  set(_tc "")
  if(idf_target MATCHES "^esp32c[23]$")
    set(_t riscv32imc-unknown-none-elf)
  elseif(idf_target MATCHES "^esp32(c5|c6|c61|h2|h21|h4)$")
    set(_t riscv32imac-unknown-none-elf)
  elseif(idf_target STREQUAL "esp32p4")
    set(_t riscv32imafc-unknown-none-elf)
  elseif(idf_target MATCHES "^esp32(s2|s3)?$")
    set(_t "xtensa-${idf_target}-none-elf")
    set(_tc esp)
  elseif(idf_target STREQUAL "linux")
    set(_t "")
  else()
    message(FATAL_ERROR
      "usmp: no Rust target is known for IDF_TARGET=${idf_target}. Set USMP_RUST_TARGET "
      "(and USMP_RUST_TOOLCHAIN if it needs one) in the project's CMakeLists.txt before "
      "project(), e.g. set(USMP_RUST_TARGET riscv32imac-unknown-none-elf).")
  endif()
  set(${out_triple} "${_t}" PARENT_SCOPE)
  set(${out_toolchain} "${_tc}" PARENT_SCOPE)
endfunction()

# ESP-IDF: how the component gets its core for <idf_target> (Rust <triple> with rustup
# <toolchain>, "" = the default; usmp_rust_triple_for_idf_target gives both). Sets
# <out_prebuilt_lib> to a prebuilt <component_dir>/lib/<idf_target or triple>/libusmp_core.a
# whose stamp matches (unless <from_source> is true), else to "" after checking that cargo
# and the target are there: when not, configuration stops with a message that names what
# to install for this chip (Xtensa: espup's toolchain; RISC-V: stable Rust and the target).
# <out_extra_cargo_args> as usmp_rust_check_target. Script-safe (tests/component runs it).
function(usmp_rust_idf_select idf_target triple toolchain component_dir from_source
         out_lib out_extra_args)
  set(${out_extra_args} "" PARENT_SCOPE)
  set(_lib "")
  if(NOT from_source)
    usmp_rust_find_prebuilt("${component_dir}" _lib "${idf_target}" "${triple}")
  endif()
  set(${out_lib} "${_lib}" PARENT_SCOPE)
  if(_lib)
    return()
  endif()
  if(toolchain STREQUAL "esp")
    string(CONCAT _install
      "ESP32, ESP32-S2 and ESP32-S3 (Xtensa) need Espressif's Rust toolchain: "
      "`cargo install espup --locked && espup install` (Rust itself from https://rustup.rs), "
      "then `. $HOME/export-esp.sh` in the shell that runs idf.py")
  elseif(triple STREQUAL "")
    set(_install "install Rust (https://rustup.rs)")
  else()
    string(CONCAT _install
      "install Rust (https://rustup.rs) and `rustup target add ${triple}`, or use the "
      "component archive from the registry, which ships prebuilt cores for the RISC-V chips")
  endif()
  usmp_rust_find_tools(
    WHY "IDF_TARGET ${idf_target} needs the Rust core built from source (no prebuilt core in ${component_dir}/lib fits it, or menuconfig asks for a source build)."
    INSTALL "${_install}")
  usmp_rust_check_target("${triple}" "${toolchain}" _extra)
  set(${out_extra_args} "${_extra}" PARENT_SCOPE)
endfunction()

# Plain CMake cross builds with an empty USMP_RUST_TARGET: derive the triple from the
# toolchain (CMAKE_SYSTEM_NAME, CMAKE_SYSTEM_PROCESSOR, -mcpu/-march/-mfloat-abi/-mabi in
# CMAKE_C_FLAGS, CMAKE_C_COMPILER_TARGET). Sets <out_triple> to "" when nothing applies,
# and <out_reason> to what the guess was based on (or why there is none).
function(usmp_rust_guess_triple out_triple out_reason)
  string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" _proc)
  string(TOUPPER "${CMAKE_BUILD_TYPE}" _bt)
  set(_flags " ${CMAKE_C_FLAGS} ${CMAKE_C_FLAGS_${_bt}} ")
  string(TOLOWER "${_flags}" _flags)
  set(_cpu "")
  set(_arch "")
  set(_fabi "")
  set(_abi "")
  if(_flags MATCHES "[ \t]-mcpu=([^ \t]+)")
    set(_cpu "${CMAKE_MATCH_1}")
  endif()
  if(_flags MATCHES "[ \t]-march=([^ \t]+)")
    set(_arch "${CMAKE_MATCH_1}")
  endif()
  if(_flags MATCHES "[ \t]-mfloat-abi=([^ \t]+)")
    set(_fabi "${CMAKE_MATCH_1}")
  endif()
  if(_flags MATCHES "[ \t]-mabi=([^ \t]+)")
    set(_abi "${CMAKE_MATCH_1}")
  endif()
  string(TOLOWER "${CMAKE_C_COMPILER_TARGET}" _ctarget)
  get_filename_component(_cc_name "${CMAKE_C_COMPILER}" NAME)
  string(TOLOWER "${_cc_name}" _cc_name)
  set(_basis "CMAKE_SYSTEM_NAME=${CMAKE_SYSTEM_NAME} CMAKE_SYSTEM_PROCESSOR=${CMAKE_SYSTEM_PROCESSOR}")
  foreach(_v cpu arch fabi abi)
    if(NOT _${_v} STREQUAL "")
      string(APPEND _basis " ${_v}=${_${_v}}")
    endif()
  endforeach()
  if(NOT _ctarget STREQUAL "")
    string(APPEND _basis " CMAKE_C_COMPILER_TARGET=${_ctarget}")
  endif()

  # A clang --target that already is a Rust triple (thumbv7em-none-eabihf, riscv32imac-...).
  if(_ctarget MATCHES "^(thumbv[678][^-]*-none-eabi(hf)?|riscv32[a-z]+-unknown-none-elf)$")
    set(${out_triple} "${_ctarget}" PARENT_SCOPE)
    set(${out_reason} "${_basis}" PARENT_SCOPE)
    return()
  endif()

  set(_t "")
  set(_hard OFF)
  if(_fabi STREQUAL "hard" OR _ctarget MATCHES "eabihf$")
    set(_hard ON)
  endif()
  # The core is the processor when no -mcpu says otherwise (toolchain files often set
  # CMAKE_SYSTEM_PROCESSOR to cortex-m4 and put -mcpu into the flags, or the other way).
  set(_core "${_cpu}")
  if(_core STREQUAL "")
    set(_core "${_proc}")
  endif()

  if(CMAKE_SYSTEM_NAME STREQUAL "Generic" OR CMAKE_SYSTEM_NAME STREQUAL "")
    # Bare metal: Arm Cortex-M and 32-bit RISC-V.
    if(_core MATCHES "^cortex-m(0|0plus|0\\.small-multiply|0plus\\.small-multiply|1)$"
       OR _arch MATCHES "^armv6s?-m")
      set(_t thumbv6m-none-eabi)
    elseif(_core STREQUAL "cortex-m3" OR _arch MATCHES "^armv7-m")
      set(_t thumbv7m-none-eabi)
    elseif(_core MATCHES "^cortex-m(4|7)$" OR _arch MATCHES "^armv7e-m")
      if(_hard)
        set(_t thumbv7em-none-eabihf)
      else()
        set(_t thumbv7em-none-eabi)
      endif()
    elseif(_core STREQUAL "cortex-m23" OR _arch MATCHES "^armv8-m\\.base")
      set(_t thumbv8m.base-none-eabi)
    elseif(_core MATCHES "^cortex-m(33|35p|52|55|85)$" OR _arch MATCHES "^armv8(\\.1)?-m\\.main")
      if(_hard)
        set(_t thumbv8m.main-none-eabihf)
      else()
        set(_t thumbv8m.main-none-eabi)
      endif()
    elseif(_arch MATCHES "^rv32[a-z]" OR _ctarget MATCHES "^riscv32[a-z]")
      # rv32imac_zicsr_zifencei -> "imac" (the single-letter extensions before the first _)
      if(_arch MATCHES "^rv32([a-z]+)")
        set(_ext "${CMAKE_MATCH_1}")
      else()
        string(REGEX MATCH "^riscv32([a-z]+)" _m "${_ctarget}")
        set(_ext "${CMAKE_MATCH_1}")
      endif()
      string(REGEX REPLACE "^g" "imafd" _ext "${_ext}")
      if(_ext MATCHES "^(i|im|imc|ima|imac)$")
        set(_t "riscv32${_ext}-unknown-none-elf")
      elseif(_ext MATCHES "^imafc$" AND (_abi STREQUAL "ilp32f" OR _abi STREQUAL ""))
        set(_t riscv32imafc-unknown-none-elf)
      elseif(_ext MATCHES "^imafc$" AND _abi STREQUAL "ilp32")
        # F instructions but the soft-float calling convention: the imac target links.
        set(_t riscv32imac-unknown-none-elf)
      endif()
    endif()
  elseif(CMAKE_SYSTEM_NAME STREQUAL "Linux")
    set(_libc gnu)
    if(_cc_name MATCHES "musl" OR _ctarget MATCHES "musl")
      set(_libc musl)
    endif()
    if(_proc MATCHES "^(x86_64|amd64)$")
      set(_t "x86_64-unknown-linux-${_libc}")
    elseif(_proc MATCHES "^(aarch64|arm64)$")
      set(_t "aarch64-unknown-linux-${_libc}")
    elseif(_proc MATCHES "^i[3-6]86$")
      set(_t "i686-unknown-linux-${_libc}")
    elseif(_proc MATCHES "^riscv64")
      set(_t "riscv64gc-unknown-linux-${_libc}")
    elseif(_proc MATCHES "^armv7" OR (_proc STREQUAL "arm" AND _arch MATCHES "^armv7"))
      if(_hard OR _cc_name MATCHES "gnueabihf" OR _ctarget MATCHES "eabihf")
        set(_t "armv7-unknown-linux-${_libc}eabihf")
      else()
        set(_t "armv7-unknown-linux-${_libc}eabi")
      endif()
    endif()
  endif()

  set(${out_triple} "${_t}" PARENT_SCOPE)
  set(${out_reason} "${_basis}" PARENT_SCOPE)
endfunction()

# --- Checking the toolchain ----------------------------------------------------------------

# Stops configuration with a message naming what to install when <triple> cannot be built
# with <toolchain> ("" = default). An empty triple (the host) and a target spec file
# (*.json) are not checked. Sets <out_extra_args> to the extra cargo arguments the target
# needs: -Zbuild-std=core when the toolchain has no prebuilt core for it but its source
# (the esp toolchain's Xtensa targets).
function(usmp_rust_check_target triple toolchain out_extra_args)
  set(${out_extra_args} "" PARENT_SCOPE)
  if(triple STREQUAL "" OR triple MATCHES "\\.json$")
    return()
  endif()
  if(toolchain STREQUAL "esp")
    set(_install
      "the Xtensa Rust toolchain ('esp', from espup): `cargo install espup --locked && "
      "espup install`, then `. $HOME/export-esp.sh` in the shell that runs the build "
      "(or use a RISC-V chip such as IDF_TARGET=esp32c3, which builds with stable Rust)")
  elseif(NOT toolchain STREQUAL "")
    set(_install "the Rust target: `rustup +${toolchain} target add ${triple}`")
  else()
    set(_install "the Rust target: `rustup target add ${triple}`")
  endif()
  _usmp_rustc(_sysroot "${toolchain}" --print sysroot)
  if(_sysroot STREQUAL "")
    if(NOT toolchain STREQUAL "")
      string(CONCAT _msg "usmp: the Rust toolchain '${toolchain}' is missing (`${USMP_RUSTC} "
                         "+${toolchain}` does not run); it is needed for ${triple}. Install ")
      string(CONCAT _msg "${_msg}" ${_install} ".")
      message(FATAL_ERROR "${_msg}")
    endif()
    message(FATAL_ERROR "usmp: `${USMP_RUSTC} --print sysroot` failed; is the Rust toolchain complete?")
  endif()
  if(IS_DIRECTORY "${_sysroot}/lib/rustlib/${triple}/lib")
    return()
  endif()
  if(toolchain STREQUAL "esp" AND IS_DIRECTORY "${_sysroot}/lib/rustlib/src/rust/library/core")
    set(${out_extra_args} "-Zbuild-std=core" PARENT_SCOPE)
    return()
  endif()
  string(CONCAT _msg "usmp: the Rust toolchain (${_sysroot}) cannot build for ${triple}. "
                     "Install ")
  string(CONCAT _msg "${_msg}" ${_install} ".")
  message(FATAL_ERROR "${_msg}")
endfunction()

# --- The cargo build -----------------------------------------------------------------------

# Adds a custom command that builds the crate in SOURCE_DIR as a release static library with
#   cargo [+TOOLCHAIN] rustc --release|--profile speed --lib --crate-type staticlib
#         --manifest-path SOURCE_DIR/Cargo.toml --target-dir TARGET_DIR [--target TRIPLE]
#         [EXTRA_ARGS...]
# and a custom target NAME that depends on it (part of `all` with ALL).
# `cargo rustc --crate-type staticlib` rather than `cargo build`: with the mixed
# staticlib+rlib crate-type of Cargo.toml, cargo silently drops `lto = true`. The command
# reruns when a src/*.rs file, Cargo.toml, Cargo.lock or the command line changes. Sets OUTPUT_VARIABLE to
# the archive's path (libusmp_core.a, next to cargo's libusmp.a).
function(usmp_rust_add_staticlib)
  cmake_parse_arguments(A "ALL" "NAME;SOURCE_DIR;TARGET_DIR;TRIPLE;TOOLCHAIN;PROFILE;OUTPUT_VARIABLE;WORKING_DIRECTORY"
                        "EXTRA_ARGS" ${ARGN})
  if("${A_WORKING_DIRECTORY}" STREQUAL "")
    set(A_WORKING_DIRECTORY "${A_SOURCE_DIR}")
  endif()
  # PROFILE: "size" (default: cargo's release profile) or "speed" (Cargo.toml [profile.speed]).
  if("${A_PROFILE}" STREQUAL "" OR "${A_PROFILE}" STREQUAL "size")
    set(_profile_args --release)
    set(_profile_dir release)
  elseif("${A_PROFILE}" STREQUAL "speed")
    set(_profile_args --profile speed)
    set(_profile_dir speed)
  else()
    message(FATAL_ERROR "usmp: unknown build profile '${A_PROFILE}' (size or speed)")
  endif()
  set(_cmd "${USMP_CARGO}")
  if(NOT "${A_TOOLCHAIN}" STREQUAL "")
    list(APPEND _cmd "+${A_TOOLCHAIN}")
  endif()
  list(APPEND _cmd
       rustc ${_profile_args} --lib --crate-type staticlib
       --manifest-path "${A_SOURCE_DIR}/Cargo.toml"
       --target-dir "${A_TARGET_DIR}")
  if("${A_TRIPLE}" STREQUAL "")
    set(_out "${A_TARGET_DIR}/${_profile_dir}")
  else()
    list(APPEND _cmd --target "${A_TRIPLE}")
    if(A_TRIPLE MATCHES "\\.json$")
      get_filename_component(_dirname "${A_TRIPLE}" NAME_WE)   # cargo names the dir after the file
    else()
      set(_dirname "${A_TRIPLE}")
    endif()
    set(_out "${A_TARGET_DIR}/${_dirname}/${_profile_dir}")
  endif()
  list(APPEND _cmd ${A_EXTRA_ARGS})
  if(A_TRIPLE MATCHES "-msvc$" OR ("${A_TRIPLE}" STREQUAL "" AND MSVC))
    set(_cargo_lib "${_out}/usmp.lib")
    set(_lib "${_out}/usmp_core.lib")
  else()
    set(_cargo_lib "${_out}/libusmp.a")
    set(_lib "${_out}/libusmp_core.a")
  endif()

  file(GLOB_RECURSE _sources CONFIGURE_DEPENDS "${A_SOURCE_DIR}/src/*.rs")
  set(_deps "${A_SOURCE_DIR}/Cargo.toml" ${_sources})
  if(EXISTS "${A_SOURCE_DIR}/Cargo.lock")
    list(APPEND _deps "${A_SOURCE_DIR}/Cargo.lock")
  endif()
  # The command line itself (features, profile, toolchain): rewritten only when it changes,
  # so that turning a feature on or off rebuilds the archive under every generator.
  set(_args_file "${CMAKE_CURRENT_BINARY_DIR}/${A_NAME}.cargo-args")
  set(_args_old "")
  if(EXISTS "${_args_file}")
    file(READ "${_args_file}" _args_old)
  endif()
  if(NOT _args_old STREQUAL "${_cmd}")
    file(WRITE "${_args_file}" "${_cmd}")
  endif()
  list(APPEND _deps "${_args_file}")

  set(_comment "usmp: building the Rust core (cargo, ${_profile_dir}")
  if(NOT "${A_TRIPLE}" STREQUAL "")
    string(APPEND _comment ", ${A_TRIPLE}")
  endif()
  string(APPEND _comment ")")
  add_custom_command(
    OUTPUT "${_lib}"
    BYPRODUCTS "${_cargo_lib}" "${_out}/libusmp.d"
    COMMAND ${_cmd}
    # The core under its own name (see the top of this file). cargo leaves an up-to-date
    # archive untouched; the touch keeps the build from rerunning it.
    COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${_cargo_lib}" "${_lib}"
    COMMAND "${CMAKE_COMMAND}" -E touch "${_lib}"
    DEPENDS ${_deps}
    WORKING_DIRECTORY "${A_WORKING_DIRECTORY}"
    COMMENT "${_comment}"
    USES_TERMINAL
    VERBATIM)
  if(A_ALL)
    add_custom_target(${A_NAME} ALL DEPENDS "${_lib}")
  else()
    add_custom_target(${A_NAME} DEPENDS "${_lib}")
  endif()
  set(${A_OUTPUT_VARIABLE} "${_lib}" PARENT_SCOPE)
endfunction()

# -Zbuild-std builds the standard library from its sources, whose own crates come from
# crates.io: the vendored crates of a packed component (vendor/, which .cargo/config.toml
# puts in place of crates.io) cannot serve them. When <crate_dir> has vendor/ and
# <extra_args_var> holds -Zbuild-std, cargo must run outside the crate (the variable
# USMP_RUST_CARGO_CWD in the caller's scope says where: its binary dir), with the crate's
# rustflags passed on the command line; that build needs crates.io. Otherwise a no-op.
macro(usmp_rust_build_std_args crate_dir extra_args_var)
  set(USMP_RUST_CARGO_CWD "")
  if("${${extra_args_var}}" MATCHES "-Zbuild-std" AND EXISTS "${crate_dir}/vendor")
    file(STRINGS "${crate_dir}/.cargo/config.toml" _usmp_rustflags REGEX "^rustflags *=")
    string(REGEX REPLACE "^rustflags *= *" "" _usmp_rustflags "${_usmp_rustflags}")
    if(NOT _usmp_rustflags STREQUAL "")
      list(APPEND ${extra_args_var} --config "build.rustflags=${_usmp_rustflags}")
    endif()
    set(USMP_RUST_CARGO_CWD "${CMAKE_CURRENT_BINARY_DIR}")
    message(STATUS "usmp: -Zbuild-std takes the standard library's crates from crates.io, "
                   "not from ${crate_dir}/vendor: this build needs network access")
  endif()
endmacro()

# --- Prebuilt cores -----------------------------------------------------------------------

# The sources a prebuilt core was built from, as one SHA-256: of the text made of one line
# "<sha256 of file>  <path>" for Cargo.lock, Cargo.toml and every src/**/*.rs, in byte
# order of the path (the format of `sha256sum`). A prebuilt lib/<dir>/libusmp_core.a is used
# only when lib/<dir>/usmp-source.sha256 holds the hash of the sources next to it.
function(usmp_rust_source_hash crate_dir out)
  file(GLOB_RECURSE _rs RELATIVE "${crate_dir}" "${crate_dir}/src/*.rs")
  list(SORT _rs)
  set(_text "")
  foreach(_f Cargo.lock Cargo.toml ${_rs})
    if(EXISTS "${crate_dir}/${_f}")
      file(SHA256 "${crate_dir}/${_f}" _h)
      string(APPEND _text "${_h}  ${_f}\n")
    endif()
  endforeach()
  string(SHA256 _all "${_text}")
  set(${out} "${_all}" PARENT_SCOPE)
endfunction()

# Sets <out> to the first <crate_dir>/lib/<dir>/libusmp_core.a (for each <dir> given, e.g. the
# IDF_TARGET and the triple) whose stamp matches the sources, or to "". A prebuilt core
# without a stamp was put there by hand and is taken as it is.
function(usmp_rust_find_prebuilt crate_dir out)
  set(${out} "" PARENT_SCOPE)
  foreach(_dir ${ARGN})
    set(_pre "${crate_dir}/lib/${_dir}")
    if(_dir STREQUAL "" OR NOT EXISTS "${_pre}/libusmp_core.a")
      continue()
    endif()
    if(EXISTS "${_pre}/usmp-source.sha256")
      file(STRINGS "${_pre}/usmp-source.sha256" _stamp LIMIT_COUNT 1)
      usmp_rust_source_hash("${crate_dir}" _hash)
      if(NOT _stamp STREQUAL _hash)
        message(STATUS "usmp: ${_pre}/libusmp_core.a was built from other sources; not using it")
        continue()
      endif()
    endif()
    set(${out} "${_pre}/libusmp_core.a" PARENT_SCOPE)
    return()
  endforeach()
endfunction()

# The crate directory (rustc runs there, as cargo does, so the same toolchain override applies).
get_filename_component(_usmp_crate_dir "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set_property(GLOBAL PROPERTY USMP_RUST_CRATE_DIR "${_usmp_crate_dir}")
unset(_usmp_crate_dir)

if(CMAKE_SCRIPT_MODE_FILE AND CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE
   AND DEFINED USMP_SOURCE_HASH_OF)
  usmp_rust_source_hash("${USMP_SOURCE_HASH_OF}" _usmp_hash)
  execute_process(COMMAND "${CMAKE_COMMAND}" -E echo "${_usmp_hash}")
endif()

# The cargo arguments for a build with some of the default features left out: OUT gets
# nothing when all five are on (Cargo.toml's defaults), else --no-default-features with the
# C API, the panic handler and the features that are on.
function(usmp_rust_features OUT datagram v1 names uart nb)
  if(datagram AND v1 AND names AND uart AND nb)
    set(${OUT} "" PARENT_SCOPE)
    return()
  endif()
  set(_f "capi,panic-handler")
  if(datagram)
    string(APPEND _f ",datagram")
  endif()
  if(v1)
    string(APPEND _f ",v1")
  endif()
  if(names)
    string(APPEND _f ",names")
  endif()
  if(uart)
    string(APPEND _f ",uart")
  endif()
  if(nb)
    string(APPEND _f ",nb")
  endif()
  set(${OUT} "--no-default-features;--features;${_f}" PARENT_SCOPE)
endfunction()
