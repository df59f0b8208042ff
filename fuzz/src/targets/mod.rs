//! The fuzz targets as plain functions: `fuzz_targets/<name>.rs` hands each libFuzzer input to
//! `<name>::run`, and `tests/replay.rs` replays seeds and regressions through the same
//! functions without libFuzzer (natively or under Miri). Targets that reach the C API need the
//! port hooks in the final binary: `port_hooks!()`.

pub mod capi;
pub mod cobs;
pub mod datagram;
pub mod discovery;
pub mod frame;
pub mod handshake;
pub mod interleave;
pub mod ota;
pub mod responder;
pub mod session_keyed;
pub mod session_raw;
