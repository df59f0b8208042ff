//! The session receive path with valid keys: a device/gateway session pair with the vector
//! keys; the fuzzer picks what the gateway seals, how the wire mangles it and when the device
//! receives (see `crate::keyed` for the oracles: authenticity, no replay, message
//! integrity, liveness of clean streams). Input: cfg (bit 0: v1, bit 1: datagram mode),
//! then ops.
use crate::keyed::Harness;
use crate::{version_from, Input};

/// One execution of the target.
pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let cfg = inp.u8();
    let version = version_from(cfg);
    Harness::new(version, cfg & 2 != 0).run(&mut inp);
}
