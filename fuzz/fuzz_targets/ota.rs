//! Fuzz target: see `usmp_fuzz::targets::ota`.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The C API's port hooks and the OTA slot hooks, as an application defines them.
usmp_fuzz::port_hooks!();
usmp_fuzz::ota_hooks!();

fuzz_target!(|data: &[u8]| usmp_fuzz::targets::ota::run(data));
