//! The stack wipe after every blocking API call (C API, [`crate::Client`]): dead frames
//! below the caller otherwise keep the AES key schedule (`AesGcm::new`), HKDF output blocks
//! and moved copies of the session keys (tests/c/test_secrets.c). Each wipe covers the
//! deepest the library itself goes below its entry point (the transport's own frames hold
//! no keys): on 32-bit targets what painting the stack in QEMU on Cortex-M4 measures with
//! the wipe left out (`measure.py bench --rustflags '--cfg aes_compact --cfg usmp_no_scrub'`:
//! 3,172 bytes for the data path and REKEY, 3,120 for a connect) plus about 200 bytes for
//! other 32-bit code generators; on
//! 64-bit hosts what tests/c/test_secrets.c measures the same way (5,488 and 5,720) plus
//! some 400 bytes. Re-measure after changes to the call paths (BENCHMARKS.md).

use core::mem::size_of;

/// A data-path call (send, recv, ping, close, rekey).
#[cfg(target_pointer_width = "64")]
const SCRUB_BYTES: usize = 6 * 1024;
#[cfg(not(target_pointer_width = "64"))]
const SCRUB_BYTES: usize = 3392;
/// `usmp_connect`/`usmp_reconnect`.
#[cfg(target_pointer_width = "64")]
const SCRUB_CONNECT_BYTES: usize = 6 * 1024;
#[cfg(not(target_pointer_width = "64"))]
const SCRUB_CONNECT_BYTES: usize = 3328;

/// Overwrites `WORDS` words of the stack below the caller with zeros: an array of zeros
/// whose address escapes to `black_box`, so its initialisation cannot be optimised away
/// (one pass of plain stores; no `unsafe`).
///
/// `--cfg usmp_no_scrub` (measurement only: `measure.py bench --rustflags`) leaves the wipe
/// out, so that the library's own stack depth can be measured and the wipe sized to it.
#[inline(never)]
fn scrub_stack_of<const WORDS: usize>() {
    if cfg!(usmp_no_scrub) {
        return;
    }
    let mut area = [0usize; WORDS];
    core::hint::black_box(&mut area);
}

/// Wipes the stack used by a data-path call.
pub(crate) fn scrub_stack() {
    scrub_stack_of::<{ SCRUB_BYTES / size_of::<usize>() }>();
}

/// Wipes the stack used by a handshake (connect, reconnect).
pub(crate) fn scrub_stack_connect() {
    scrub_stack_of::<{ SCRUB_CONNECT_BYTES / size_of::<usize>() }>();
}
