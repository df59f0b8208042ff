//! USMP device client: a 4-message PSK + X25519 handshake, then AES-256-GCM frames with
//! sequence numbers, keepalive, BYE, fragmentation and (v2) REKEY.
//!
//! The crate is `no_std` and heap-free. It has two faces:
//! - a sans-IO protocol core ([`frame`], [`handshake`], [`session`]): bytes and time in,
//!   bytes and events out, no I/O, usable from Rust directly and testable in one process;
//! - the C API of the original component ([`ffi`]): `usmp_connect`, `usmp_send`,
//!   `usmp_recv`, ..., a thin driver that pumps frames between the core and a
//!   `usmp_transport_t` and calls the `usmp_port_*` hooks.
//!
//! Both wire versions run through one code path; [`Version`] carries what differs.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo
    )
)]

mod async_client;
mod client;
pub mod crypto;
pub mod datagram;
mod driver;
mod error;
#[cfg(feature = "capi")]
pub mod ffi;
pub mod frame;
pub mod handshake;
#[cfg(feature = "std")]
pub mod host;
pub mod session;

pub use async_client::{AsyncClient, AsyncClock, AsyncTransport};
pub use client::{Client, Clock, Config, Stream, Transport};
pub use driver::{Stats, HANDSHAKE_TIMEOUT_MS, REASSEMBLY_TIMEOUT_MS};
pub use error::Error;

/// Wire version. Everything that differs between v1 and v2 is a method here (data, not code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Version {
    /// Legacy wire version 0x01 (PyPI `usmp` 0.5.1). One session key for both directions,
    /// so both directions use the same AES-GCM (key, nonce) pairs: use only with old gateways.
    V1 = 1,
    /// Wire version 0x02 (PyPI `usmp` 1.x). Directional keys, prefixed transcripts, REKEY.
    V2 = 2,
}

impl Version {
    /// The version byte in every frame header.
    pub const fn byte(self) -> u8 {
        self as u8
    }
    /// HKDF info label.
    pub const fn kdf_label(self) -> &'static [u8; 7] {
        match self {
            Self::V1 => b"usmp-v1",
            Self::V2 => b"usmp-v2",
        }
    }
    /// HKDF output length: one shared key (v1) or two directional keys (v2).
    pub const fn okm_len(self) -> usize {
        match self {
            Self::V1 => 32,
            Self::V2 => 64,
        }
    }
    /// Whether the handshake transcripts start with `magic LE || version || type`.
    pub const fn prefixed_transcripts(self) -> bool {
        matches!(self, Self::V2)
    }
    /// Shortest PSK the device accepts (the v2 gateway refuses < 16; v1 refuses nothing,
    /// but an empty key authenticates nobody).
    pub const fn min_psk_len(self) -> usize {
        match self {
            Self::V1 => 1,
            Self::V2 => 16,
        }
    }
    /// Control frames (PING/PONG/REKEY) in one receive call that end the session:
    /// the 8th in v1, the 9th in v2.
    pub const fn flood_limit(self) -> u8 {
        match self {
            Self::V1 => 8,
            Self::V2 => 9,
        }
    }
    /// REKEY and HELLO_RETRY exist only in v2.
    pub const fn has_rekey(self) -> bool {
        matches!(self, Self::V2)
    }
    /// Maps the C `protocol_version` field: 0 (default) and 2 are v2, 1 is v1.
    pub const fn from_config(v: u8) -> Option<Self> {
        match v {
            0 | 2 => Some(Self::V2),
            1 => Some(Self::V1),
            _ => None,
        }
    }
}

#[cfg(all(feature = "panic-handler", not(feature = "std"), not(test)))]
#[panic_handler]
fn on_panic(_: &core::panic::PanicInfo) -> ! {
    // No code path is meant to reach this (clippy denies the panicking constructs); if one
    // does, stop hard instead of running on with broken state.
    #[cfg(not(target_os = "none"))]
    {
        extern "C" {
            fn abort() -> !;
        }
        // SAFETY: libc's abort never returns and takes no arguments.
        unsafe { abort() }
    }
    #[cfg(target_os = "none")]
    loop {
        core::hint::spin_loop();
    }
}
