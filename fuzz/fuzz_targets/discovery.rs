//! Fuzz target: see `usmp_fuzz::targets::discovery`.
#![no_main]

use libfuzzer_sys::fuzz_target;

usmp_fuzz::port_hooks!();

fuzz_target!(|data: &[u8]| usmp_fuzz::targets::discovery::run(data));
