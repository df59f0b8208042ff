//! USMP device client: a 4-message PSK + X25519 handshake with the gateway, then
//! AES-256-GCM frames with sequence numbers, keepalive, BYE, fragmentation (messages up to
//! 1808 bytes) and, on wire v2, REKEY — over a byte stream (TCP, a UART) or datagrams (UDP).
//! The gateway is the Python package `usmp` from PyPI.
//!
//! `no_std`, heap-free; built without the C API (`default-features = false`) it contains no
//! `unsafe` code at all (`forbid(unsafe_code)`).
//!
//! # Quick start
//!
//! ```
//! use usmp::host::{EchoPeer, OsRng, StdClock, TcpTransport};
//! use usmp::{Client, Config, Error, Version};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let psk = b"a pre-shared key of 16+ bytes";
//! // A stand-in for the gateway, so that this example runs by itself; a real device dials
//! // the gateway (`python -m usmp`, or tests/interop/gateway.py) instead.
//! let peer = EchoPeer::bind("127.0.0.1:0", psk, Version::V2)?;
//! let addr = peer.local_addr()?;
//! let peer = peer.spawn();
//!
//! let transport = TcpTransport::connect(addr)?;
//! let config = Config::new(psk, [0x02, 0x00, 0x00, 0x00, 0x00, 0x01]); // wire v2
//! let mut client = Client::new(transport, OsRng, StdClock::new(), config);
//! client.connect()?;
//!
//! client.send(b"hello")?;
//! let mut buf = [0u8; 1808];
//! let n = client.recv(&mut buf)?;
//! assert_eq!(&buf[..n], b"hello");
//!
//! // Messages up to 1808 bytes are split into frames and put together again.
//! client.send(&[7u8; 1808])?;
//! assert_eq!(client.recv(&mut buf)?, 1808);
//!
//! // Bad input gets a named error, never a panic.
//! assert_eq!(client.send(&[0u8; 1809]), Err(Error::BufferOverflow));
//! assert_eq!(Error::BufferOverflow.code(), -6); // the C API's USMP_ERR_BUFFER_OVERFLOW
//!
//! client.close(); // BYE; the keys are zeroized
//! assert_eq!(peer.join().unwrap()?, 2);
//! # Ok(())
//! # }
//! ```
//!
//! # On a microcontroller
//!
//! Any byte stream with the `embedded-io` traits — a HAL's UART, an `embedded-nal` or
//! smoltcp TCP socket wrapper — plugs in through [`Stream`]; randomness is any
//! `rand_core` `RngCore + CryptoRng` (the chip's TRNG), time any [`Clock`]:
//!
//! ```
//! use usmp::{Client, Clock, Config, Error, Stream};
//!
//! struct Millis; // e.g. a SysTick counter
//! impl Clock for Millis {
//!     fn now_ms(&mut self) -> u32 {
//!         0 // read the counter here
//!     }
//! }
//!
//! fn run<U, R>(uart: U, trng: R) -> Result<(), Error>
//! where
//!     U: embedded_io::Read + embedded_io::Write + embedded_io::ReadReady,
//!     R: rand_core::RngCore + rand_core::CryptoRng,
//! {
//!     let config = Config::new(b"device-psk-from-secure-storage", [1, 2, 3, 4, 5, 6])
//!         .with_keepalive_ms(30_000);
//!     let mut client = Client::new(Stream(uart), trng, Millis, config);
//!     client.connect()?;
//!     let mut buf = [0u8; 256];
//!     loop {
//!         client.send(b"temperature=21.5")?;
//!         if let Some(n) = client.recv_timeout(&mut buf, 1000)? {
//!             let _reply = &buf[..n];
//!         }
//!         client.keepalive_tick()?;
//!     }
//! }
//! ```
//!
//! With embassy (or any executor), [`AsyncClient`] has the same operations as futures, over
//! `embedded-io-async` streams or an [`AsyncTransport`], with an [`AsyncClock`]:
//!
//! ```
//! use usmp::{AsyncClient, AsyncClock, Config, Error, Stream};
//!
//! async fn run<U, R, C>(socket: U, trng: R, clock: C) -> Result<(), Error>
//! where
//!     U: embedded_io_async::Read + embedded_io_async::Write,
//!     R: rand_core::RngCore + rand_core::CryptoRng,
//!     C: AsyncClock,
//! {
//!     let config = Config::new(b"device-psk-from-secure-storage", [1, 2, 3, 4, 5, 6]);
//!     let mut client = AsyncClient::new(Stream(socket), trng, clock, config);
//!     client.connect().await?;
//!     client.send(b"hello").await?;
//!     let mut buf = [0u8; 1808];
//!     let n = client.recv(&mut buf).await?;
//!     client.close().await;
//!     Ok(())
//! }
//! ```
//!
//! UDP: a datagram socket implements [`Transport`] (or [`AsyncTransport`]) with
//! `is_datagram()` true; the client then acknowledges, retransmits and filters replays as
//! the gateway's UDP mode expects. [`host::UdpTransport`] is one for `std`.
//!
//! # Wire versions
//!
//! [`Version::V2`] (the default) speaks to `usmp` 1.x gateways — what `pip install usmp`
//! installs. [`Version::V1`] speaks to the legacy `usmp` 0.5.1 gateway: one line,
//! `Config::new(..).with_version(Version::V1)`. v1 uses one key for both directions, so
//! the same AES-GCM (key, nonce) pairs occur in both: use it only where the gateway cannot
//! be upgraded.
//!
//! # Errors
//!
//! Every operation returns [`Error`], whose variants map one-to-one onto the C API's
//! `usmp_err_t` codes ([`Error::code`], [`Error::name`]).
//!
//! # Layers
//!
//! - [`Client`] and [`AsyncClient`]: the Rust API.
//! - [`ffi`] (feature `capi`, on by default): the C API of the original component
//!   (`usmp_connect`, `usmp_send`, ...; header `include/usmp.h`).
//! - Both are thin faces over one connection driver, which runs the sans-IO protocol core
//!   ([`frame`], [`handshake`], [`session`], [`datagram`]: bytes and time in, bytes and
//!   events out). The core can also be used directly.
//!
//! # Features
//!
//! - `capi` (default): the C API. It calls `usmp_port_*` hooks the application defines.
//! - `panic-handler` (default): a `#[panic_handler]` for the C static library.
//! - `std`: [`host`] adapters (TCP/UDP transports, a clock, `OsRng`, [`host::EchoPeer`]).
//! - `datagram`, `v1`, `names` (default): datagram links (UDP), wire v1, the error names;
//!   each can be left out to save flash ([`Error::Unsupported`] where it is needed).
//! - `ota` (off by default): signed firmware updates over the session (`ota`, docs/OTA.md;
//!   C header `include/usmp_ota.h`).
//! - `discovery` (off by default): [`discovery`], finding the gateway by DNS-SD over mDNS;
//!   with `capi`, `usmp_discover` (header `usmp_discovery.h`).
//! - `uart` (default): serial links with COBS framing — [`cobs`] (the sans-IO codec),
//!   [`uart::CobsUart`] (a datagram transport over any `embedded-io` UART) and the C
//!   transport `usmp_transport_uart_init`. Unused, it costs no flash (`--gc-sections`).
//!
//! Rust firmware: `usmp = { version = "0.6", default-features = false, features =
//! ["datagram", "v1", "names"] }` (without the C API and the panic handler; list the
//! protocol features it uses).
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
// Without the C API and the C library's panic handler (Rust firmware, `default-features =
// false`) the crate has no `unsafe` at all, and the compiler holds it to that.
#![cfg_attr(
    not(any(feature = "capi", feature = "panic-handler")),
    forbid(unsafe_code)
)]
#![deny(missing_docs)]
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
#[cfg(feature = "uart")]
pub mod cobs;
pub mod conn;
pub mod crypto;
pub mod datagram;
// Not for cbindgen's include/usmp.h: the C face of discovery has its own header
// (include/usmp_discovery.h, generated from src/discovery/capi.rs alone).
/// cbindgen:ignore
#[cfg(feature = "discovery")]
pub mod discovery;
mod error;
#[cfg(feature = "capi")]
pub mod ffi;
pub mod frame;
pub mod handshake;
#[cfg(feature = "std")]
pub mod host;
mod ops;
/// Signed firmware updates over the session (feature `ota`). Its C API has a header of its
/// own, `include/usmp_ota.h` (from `cbindgen-ota.toml`), so nothing of it goes into `usmp.h`.
///
/// cbindgen:ignore
#[cfg(feature = "ota")]
pub mod ota;
mod scrub;
pub mod session;
#[cfg(feature = "uart")]
pub mod uart;

pub use async_client::{AsyncClient, AsyncClock, AsyncTransport};
pub use client::{Client, Clock, Config, Stream, Transport};
pub use conn::{Stats, HANDSHAKE_TIMEOUT_MS, REASSEMBLY_TIMEOUT_MS};
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
    /// Whether this build speaks the version (feature `v1` for wire v1).
    pub const fn built_in(self) -> bool {
        matches!(self, Self::V2) || cfg!(feature = "v1")
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
