//! Fuzz target: see `usmp_fuzz::targets::interleave`.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The C API's port hooks, as an application defines them (the library may reference them).
usmp_fuzz::port_hooks!();

fuzz_target!(|data: &[u8]| usmp_fuzz::targets::interleave::run(data));
