//! The C API of the original component, over the connection machine ([`crate::conn`],
//! `ops`).
//!
//! - this file: the types, constants and port hooks of `usmp.h`, and the calls that need
//!   no session (names, versions, defaults, log level);
//! - `ctx`: what a call does with a `usmp_t`: the lock, the call bookkeeping, the clock,
//!   the transport callbacks, and the loop that runs an operation;
//! - [`blocking`]: the original's blocking calls (`usmp_connect`, `usmp_send`, ...);
//! - [`nb`]: the non-blocking API for superloops (`usmp_nb_*`).
//!
//! Every function checks its pointers and lengths first and returns a code; none panics.
//! No protocol decision is made here.
#![allow(non_camel_case_types)]

use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use crate::frame;
use crate::handshake::DEVICE_ID_LEN;
use crate::{Error, Version};

pub mod blocking;
mod ctx;
pub mod nb;

pub use blocking::*;
pub use nb::*;

/// Library version string.
const VERSION: &[u8] = concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes();

/// Default gateway port.
pub const USMP_DEFAULT_PORT: u16 = 9000;
/// Device id length (bytes).
pub const USMP_DEVICE_ID_LEN: usize = 6;
/// Session id length (bytes).
pub const USMP_SESSION_ID_LEN: usize = 16;
/// Session key length (bytes).
pub const USMP_SESSION_KEY_LEN: usize = 32;
/// Largest payload in one frame.
pub const USMP_MAX_PAYLOAD: usize = 480;
/// Frame header size.
pub const USMP_HEADER_SIZE: usize = 12;
/// Largest frame on the wire (header + payload) = 492.
pub const USMP_MAX_FRAME_SIZE: usize = 492;
/// Largest plaintext in one frame (480 - 12 nonce - 16 tag).
pub const USMP_MAX_DATA_LEN: usize = 452;
/// Most frames one message may span.
pub const USMP_MAX_FRAMES: usize = 4;
/// Largest message `usmp_send` accepts and `usmp_recv` can deliver (4 * 452).
pub const USMP_MAX_MESSAGE_LEN: usize = 1808;
/// `protocol_version`: wire v1 (0x01, PyPI usmp 0.5.x). Legacy: both directions share one
/// key, so AES-GCM nonces repeat across directions. Only for old gateways.
pub const USMP_PROTOCOL_V1: u8 = 1;
/// `protocol_version`: wire v2 (0x02, PyPI usmp 1.x). The default (0 means v2 as well).
pub const USMP_PROTOCOL_V2: u8 = 2;
/// How long `usmp_connect` waits for the gateway's answers (ms), like the gateway's own
/// handshake timeout.
pub const USMP_HANDSHAKE_TIMEOUT_MS: u32 = 10_000;
/// How long `usmp_recv` waits for the rest of a fragmented message (ms).
pub const USMP_REASSEMBLY_TIMEOUT_MS: u32 = 10_000;
/// Words of library-private state inside `usmp_t`.
pub const USMP_OPAQUE_WORDS: usize = 25;
/// `usmp_transport_t.flags`: the transport carries datagrams (UDP). The library then
/// acknowledges and retransmits frames itself (UTACK stop-and-wait) and uses the replay
/// window; `recv_timeout` must be set.
pub const USMP_TRANSPORT_DATAGRAM: u32 = 1;
/// `usmp_transport_t.flags`: a byte stream whose `recv` and `recv_timeout` return the bytes
/// that are there (at least 1, at most `max_len`; 0 = none within the wait) rather than
/// whole frames. The library then finds the frames itself (a frame that has started must be
/// whole within `USMP_FRAME_TIMEOUT_MS`, else the session ends); `recv_timeout` must be
/// set. The non-blocking API needs it on byte streams (TCP, a raw UART): a frame may then
/// arrive over several calls. The socket transport's TCP sets it.
pub const USMP_TRANSPORT_BYTES: u32 = 2;
/// `USMP_TRANSPORT_BYTES` streams: how long a frame that has started may take to arrive
/// whole (ms).
pub const USMP_FRAME_TIMEOUT_MS: u32 = 5_000;
/// Default attempts per frame on a datagram transport (`retransmit_attempts` = 0).
pub const USMP_RETRANSMIT_ATTEMPTS: u8 = 5;
/// Initial retransmission timeout on a datagram transport (ms), adapted to the measured
/// round trip unless `retransmit_timeout_ms` fixes it.
pub const USMP_RETRANSMIT_TIMEOUT_MS: u32 = 500;
/// Datagram transports: the longest one `usmp_recv` call takes while datagrams keep
/// arriving (ms) unless `recv_timeout_ms` says otherwise.
pub const USMP_RECV_TIMEOUT_MS: u16 = 1000;
/// How long frames under the previous key are accepted after a REKEY (ms).
pub const USMP_REKEY_GRACE_MS: u32 = 10_000;

/// Result codes. 0 is success; errors are negative and their numbers never change.
/// −1..−9 keep the numbering of the original 1.2 `usmp_err_t`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum usmp_err_t {
    /// Success.
    USMP_OK = 0,
    /// A null pointer, a bad length or an invalid setting.
    USMP_ERR_INVALID_ARG = -1,
    /// The transport failed or the connection closed.
    USMP_ERR_TRANSPORT_FAILED = -2,
    /// The gateway's handshake MAC did not verify, or it hung up after HELLO_ACK (PSK refused).
    USMP_ERR_AUTH_FAILED = -3,
    /// No answer in time (handshake, or the rest of a fragmented message).
    USMP_ERR_TIMEOUT = -4,
    /// An authentic frame arrived out of order (replay, gap or reordering).
    USMP_ERR_REPLAY_DETECTED = -5,
    /// Message above 1808 bytes (nothing sent), or a received message larger than the
    /// caller's buffer (that message is dropped; the session stays up).
    USMP_ERR_BUFFER_OVERFLOW = -6,
    /// The session's sequence space is used up (nothing sent): reconnect.
    USMP_ERR_SEQ_EXHAUSTED = -7,
    /// AEAD tag, embedded nonce or payload size wrong, or a non-contributory X25519 key.
    USMP_ERR_CRYPTO_FAILED = -8,
    /// No session: connect (or reconnect) first.
    USMP_ERR_NOT_CONNECTED = -9,
    /// Not a frame: too short, bad magic, length above 480, or truncated.
    USMP_ERR_BAD_FRAME = -10,
    /// Frame CRC mismatch.
    USMP_ERR_BAD_CRC = -11,
    /// The frame's version byte is not the configured wire version.
    USMP_ERR_VERSION_MISMATCH = -12,
    /// Unknown frame type, or a type or payload size not valid at this point.
    USMP_ERR_UNEXPECTED_FRAME = -13,
    /// The gateway sent BYE; the session is closed.
    USMP_ERR_CLOSED_BY_PEER = -14,
    /// Too many PING/PONG/REKEY frames in one `usmp_recv` call.
    USMP_ERR_FLOOD = -15,
    /// PSK missing, or shorter than 16 bytes with wire v2.
    USMP_ERR_PSK_TOO_SHORT = -16,
    /// The gateway closed before CHALLENGE: unknown device id, other wire version, lockout
    /// after failed handshakes, or a connection limit.
    USMP_ERR_REJECTED = -17,
    /// `usmp_port_random` or `usmp_port_get_device_id` failed.
    USMP_ERR_PORT_FAILED = -18,
    /// Not available: REKEY with wire v1, or a transport without `reconnect`.
    USMP_ERR_UNSUPPORTED = -19,
    /// The `usmp_t` was copied or moved after `usmp_connect`; the copy has been wiped.
    USMP_ERR_CONTEXT_MOVED = -20,
    /// Fragmentation rule broken: more than 4 fragments, or a control frame between them.
    USMP_ERR_FRAGMENTATION = -21,
    /// Another task is connecting, reconnecting or closing this context, or is already
    /// receiving on it: call again once that call has returned.
    USMP_ERR_BUSY = -22,
}

/// Log levels for `usmp_set_log_level`. The default is `USMP_LOG_LEVEL_ERROR`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum usmp_log_level_t {
    /// Nothing is logged.
    USMP_LOG_LEVEL_NONE = 0,
    /// Failures (a handshake that failed, with the error's name).
    USMP_LOG_LEVEL_ERROR = 1,
    /// Also warnings.
    USMP_LOG_LEVEL_WARN = 2,
    /// Also session events (established).
    USMP_LOG_LEVEL_INFO = 3,
    /// Everything.
    USMP_LOG_LEVEL_DEBUG = 4,
}

/// A transport: function pointers the library calls, plus the transport's own `ctx`.
/// The first seven members are those of the original, in the same order; a transport
/// written for the original (members after `ctx` zero) is a byte-stream transport.
#[repr(C)]
pub struct usmp_transport_s {
    /// Send one whole frame. < 0 = failure; >= 0 = success.
    pub send: Option<
        unsafe extern "C" fn(t: *mut usmp_transport_s, data: *const u8, len: usize) -> c_int,
    >,
    /// Receive exactly one whole frame (one datagram) into `buf` (at most `max_len` bytes)
    /// and return its length (with `USMP_TRANSPORT_BYTES`: the bytes that are there, at
    /// most `max_len`); 0 when nothing arrived within the transport's receive timeout;
    /// < 0 when the connection failed or closed.
    pub recv: Option<
        unsafe extern "C" fn(t: *mut usmp_transport_s, buf: *mut u8, max_len: usize) -> c_int,
    >,
    /// Close the connection but keep `ctx`, so `reconnect` can dial again. May be NULL.
    pub close: Option<unsafe extern "C" fn(t: *mut usmp_transport_s)>,
    /// Dial the same address again: 0 = ok, < 0 = failure. May be NULL (no reconnect).
    pub reconnect: Option<unsafe extern "C" fn(t: *mut usmp_transport_s) -> c_int>,
    /// Non-blocking: > 0 when received data is pending, 0 when none. May be NULL.
    pub available: Option<unsafe extern "C" fn(t: *mut usmp_transport_s) -> c_int>,
    /// Close and release `ctx`. Never called by the library: the application calls it after
    /// `usmp_close`.
    pub destroy: Option<unsafe extern "C" fn(t: *mut usmp_transport_s)>,
    /// Transport-private state.
    pub ctx: *mut c_void,
    /// `USMP_TRANSPORT_DATAGRAM` for UDP-like transports; 0 for byte streams whose `recv`
    /// returns whole frames (the original's contract); `USMP_TRANSPORT_BYTES` for byte
    /// streams that return what is there.
    pub flags: u32,
    /// As `recv`, but waits at most `timeout_ms` (0 = just poll). Required for datagram
    /// transports; optional otherwise.
    pub recv_timeout: Option<
        unsafe extern "C" fn(
            t: *mut usmp_transport_s,
            buf: *mut u8,
            max_len: usize,
            timeout_ms: u32,
        ) -> c_int,
    >,
}

/// The transport type, under the original's name.
pub type usmp_transport_t = usmp_transport_s;

/// A session context. Zero-initialise it (`usmp_t ctx = {0};`), set `psk`, `psk_len`,
/// optionally `keepalive_ms`, `protocol_version` and the retransmission settings, then call
/// `usmp_connect`. Do not copy or move it while connected (a copy is detected and refused).
///
/// Threads: one task may block in `usmp_recv` while other tasks call `usmp_send`,
/// `usmp_ping`, `usmp_keepalive_tick` or `usmp_rekey` on the same context (every frame is
/// sealed and sent under `usmp_port_lock`; a second `usmp_recv` at once returns
/// `USMP_ERR_BUSY`). `usmp_connect` must return before other tasks use the context, and
/// `usmp_reconnect`/`usmp_close` wait for the other tasks' calls to return (calls made
/// meanwhile return `USMP_ERR_BUSY`).
#[repr(C)]
pub struct usmp_t {
    /// Pre-shared key; must stay valid while the context is in use. Set by the application.
    pub psk: *const u8,
    /// PSK length in bytes (v2: at least 16; 32 random bytes recommended).
    pub psk_len: usize,
    /// Keepalive period in ms for `usmp_keepalive_tick` (0 = off).
    pub keepalive_ms: u32,
    /// Wire version: 0 = default (v2), `USMP_PROTOCOL_V1` or `USMP_PROTOCOL_V2`.
    pub protocol_version: u8,
    /// Datagram transports: attempts per frame (0 = `USMP_RETRANSMIT_ATTEMPTS`).
    pub retransmit_attempts: u8,
    /// Datagram transports: the longest one `usmp_recv` call takes (ms) while other
    /// datagrams (junk, duplicates, acknowledgements) keep arriving; with nothing arriving
    /// it returns after the transport's own receive timeout, as on a byte stream
    /// (0 = `USMP_RECV_TIMEOUT_MS`).
    pub recv_timeout_ms: u16,
    /// Datagram transports: fixed wait per attempt in ms, doubled per retry up to 60 s (a
    /// longer one stays as it is; 0 = adaptive, starting at `USMP_RETRANSMIT_TIMEOUT_MS`).
    pub retransmit_timeout_ms: u32,
    /// The transport, copied here by `usmp_connect` (as in the original). Read-only for the
    /// application.
    pub transport: usmp_transport_t,
    /// Library-private state. Do not touch.
    pub opaque: [u64; USMP_OPAQUE_WORDS],
}

/// Counters of what a datagram link went through (all zero on byte streams).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct usmp_stats_t {
    /// Frames sent again because their acknowledgement did not come in time.
    pub retransmits: u32,
    /// Authentic frames received again (acknowledged again, dropped).
    pub duplicates: u32,
    /// Datagrams dropped as malformed or unauthentic (bad CRC, bad tag, forged).
    pub rejected: u32,
    /// Acknowledgements ignored (unknown frame, bad or missing MAC).
    pub bad_acks: u32,
}

/// Process-wide defaults for the settings of a `usmp_t` that the application leaves at 0
/// (`usmp_set_defaults`). The ESP-IDF component fills them from menuconfig.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct usmp_defaults_t {
    /// Wire version for `protocol_version` = 0 (0 here = v2).
    pub protocol_version: u8,
    /// Attempts per frame for `retransmit_attempts` = 0 (0 here = `USMP_RETRANSMIT_ATTEMPTS`).
    pub retransmit_attempts: u8,
    /// Keepalive for `keepalive_ms` = 0 (0 here = off).
    pub keepalive_ms: u32,
    /// Retransmission timeout for `retransmit_timeout_ms` = 0 (0 here = adaptive).
    pub retransmit_timeout_ms: u32,
}

static DEF_VERSION: AtomicU8 = AtomicU8::new(0);
static DEF_ATTEMPTS: AtomicU8 = AtomicU8::new(0);
static DEF_KEEPALIVE: AtomicU32 = AtomicU32::new(0);
static DEF_RTO: AtomicU32 = AtomicU32::new(0);

extern "C" {
    /// Write the 6-byte device id into `out` (`len` >= 6). 0 = ok, -1 = failure.
    fn usmp_port_get_device_id(out: *mut u8, len: usize) -> c_int;
    /// Fill `out` with `len` cryptographically secure random bytes. 0 = ok, -1 = failure.
    fn usmp_port_random(out: *mut u8, len: usize) -> c_int;
    /// Sleep `ms` milliseconds.
    #[allow(dead_code)]
    fn usmp_port_delay_ms(ms: u32);
    /// Monotonic milliseconds, wrapping at 2^32.
    fn usmp_port_millis() -> u32;
    /// Log one line: level 'E', 'W', 'I' or 'D', a tag and a NUL-terminated message.
    fn usmp_port_log(level: c_char, tag: *const c_char, msg: *const c_char);
    /// Take the lock that guards the state of the context at `ctx` (blocking until it is
    /// free). The library never takes it twice, never holds two, and calls no other hook
    /// than the transport's `send` and `usmp_port_random` while holding it. Defaults
    /// (component/usmp_port_lock.c, weak): pthread mutexes on POSIX hosts, FreeRTOS mutexes
    /// on ESP-IDF, nothing on bare metal (one thread of execution).
    fn usmp_port_lock(ctx: *const c_void);
    /// Release the lock taken by `usmp_port_lock` for `ctx`.
    fn usmp_port_unlock(ctx: *const c_void);
}

/// A transport with no callbacks (a copied context's, once wiped).
pub(crate) const fn empty_transport() -> usmp_transport_s {
    usmp_transport_s {
        send: None,
        recv: None,
        close: None,
        reconnect: None,
        available: None,
        destroy: None,
        ctx: core::ptr::null_mut(),
        flags: 0,
        recv_timeout: None,
    }
}

static LOG_LEVEL: AtomicU8 = AtomicU8::new(usmp_log_level_t::USMP_LOG_LEVEL_ERROR as u8);

pub(crate) fn log(level: usmp_log_level_t, msg: &'static [u8]) {
    if level as u8 > LOG_LEVEL.load(Ordering::Relaxed) || level as u8 == 0 {
        return;
    }
    let c = match level {
        usmp_log_level_t::USMP_LOG_LEVEL_ERROR => b'E',
        usmp_log_level_t::USMP_LOG_LEVEL_WARN => b'W',
        usmp_log_level_t::USMP_LOG_LEVEL_INFO => b'I',
        _ => b'D',
    };
    // SAFETY: `msg` literals end in NUL (all call sites).
    unsafe { usmp_port_log(c as c_char, c"usmp".as_ptr(), msg.as_ptr().cast()) };
}

pub(crate) fn code(r: Result<(), Error>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

/// Fills the settings the application left at 0 from `usmp_set_defaults`.
///
/// # Safety
/// `ctx` must be valid.
unsafe fn apply_defaults(ctx: *mut usmp_t) {
    // SAFETY: caller contract; plain field accesses.
    unsafe {
        if (*ctx).protocol_version == 0 {
            (*ctx).protocol_version = DEF_VERSION.load(Ordering::Relaxed);
        }
        if (*ctx).retransmit_attempts == 0 {
            (*ctx).retransmit_attempts = DEF_ATTEMPTS.load(Ordering::Relaxed);
        }
        if (*ctx).keepalive_ms == 0 {
            (*ctx).keepalive_ms = DEF_KEEPALIVE.load(Ordering::Relaxed);
        }
        if (*ctx).retransmit_timeout_ms == 0 {
            (*ctx).retransmit_timeout_ms = DEF_RTO.load(Ordering::Relaxed);
        }
    }
}

/// Sets process-wide defaults for the `usmp_t` settings an application leaves at 0; they
/// are copied into the context by the next `usmp_connect`. NULL restores the library's
/// own (v2, no keepalive, 5 attempts, adaptive timeout). An invalid wire version is refused
/// with `USMP_ERR_INVALID_ARG`.
///
/// # Safety
/// `d` null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_set_defaults(d: *const usmp_defaults_t) -> c_int {
    let d = if d.is_null() {
        usmp_defaults_t::default()
    } else {
        // SAFETY: non-null and valid per the contract.
        unsafe { d.read() }
    };
    if Version::from_config(d.protocol_version).is_none() {
        return Error::InvalidArg.code();
    }
    DEF_VERSION.store(d.protocol_version, Ordering::Relaxed);
    DEF_ATTEMPTS.store(d.retransmit_attempts, Ordering::Relaxed);
    DEF_KEEPALIVE.store(d.keepalive_ms, Ordering::Relaxed);
    DEF_RTO.store(d.retransmit_timeout_ms, Ordering::Relaxed);
    0
}

/// The library version, e.g. "0.1.0".
#[no_mangle]
pub extern "C" fn usmp_get_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// The name of a result code ("USMP_OK", "USMP_ERR_AUTH_FAILED", ...), or
/// "USMP_ERR_UNKNOWN" for a number that is not one. A build without the error names
/// (USMP_FEATURE_NAMES=OFF, menuconfig) returns "USMP_ERR" for every error.
#[no_mangle]
pub extern "C" fn usmp_err_name(code: c_int) -> *const c_char {
    if code == 0 {
        return c"USMP_OK".as_ptr();
    }
    if !cfg!(feature = "names") {
        return c"USMP_ERR".as_ptr();
    }
    let name = Error::ALL
        .iter()
        .find(|e| e.code() == code)
        .map_or(&b"USMP_ERR_UNKNOWN\0"[..], |e| e.name());
    name.as_ptr().cast()
}

/// For byte-stream transports: given the first `len` (>= 12) bytes of a frame, returns the
/// whole frame's length (12..=492), or a negative code when the header cannot start a
/// frame (`USMP_ERR_BAD_FRAME`) or `header` is NULL/short (`USMP_ERR_INVALID_ARG`).
///
/// # Safety
/// `header` null or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn usmp_frame_size(header: *const u8, len: usize) -> c_int {
    if header.is_null() || len < frame::HEADER_LEN {
        return Error::InvalidArg.code();
    }
    // SAFETY: non-null, at least HEADER_LEN readable bytes.
    let h = unsafe { core::slice::from_raw_parts(header, frame::HEADER_LEN) };
    match frame::wire_len(h) {
        Ok(n) => n as c_int,
        Err(e) => Error::from(e).code(),
    }
}

/// Derives a stable 6-byte device id from a host secret (e.g. `/etc/machine-id`) without
/// revealing it: `HMAC-SHA256(key = "usmp device id", seed)[0..6]`, marked as a locally
/// administered unicast MAC address. For port hooks; the id itself travels in clear.
///
/// # Safety
/// `seed` null only when `len` is 0; `out` null or 6 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn usmp_device_id_from_seed(
    seed: *const u8,
    len: usize,
    out: *mut u8,
) -> c_int {
    if out.is_null() || (seed.is_null() && len != 0) || len > isize::MAX as usize {
        return Error::InvalidArg.code();
    }
    let seed: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: non-null with `len` readable bytes per the contract.
        unsafe { core::slice::from_raw_parts(seed, len) }
    };
    let mac = crate::crypto::hmac(b"usmp device id", &[seed]);
    let mut id = [0u8; DEVICE_ID_LEN];
    id.copy_from_slice(&mac[..DEVICE_ID_LEN]);
    id[0] = (id[0] | 0x02) & 0xFE;
    // SAFETY: non-null with DEVICE_ID_LEN writable bytes per the contract.
    unsafe { core::ptr::copy_nonoverlapping(id.as_ptr(), out, DEVICE_ID_LEN) };
    0
}

/// Sets the level (a `usmp_log_level_t`) up to which the library logs through
/// `usmp_port_log` (default `USMP_LOG_LEVEL_ERROR`). Out-of-range values are clamped.
#[no_mangle]
pub extern "C" fn usmp_set_log_level(level: c_int) {
    LOG_LEVEL.store(level.clamp(0, 4) as u8, Ordering::Relaxed);
}

/// The current log level.
#[no_mangle]
pub extern "C" fn usmp_get_log_level() -> usmp_log_level_t {
    match LOG_LEVEL.load(Ordering::Relaxed) {
        0 => usmp_log_level_t::USMP_LOG_LEVEL_NONE,
        1 => usmp_log_level_t::USMP_LOG_LEVEL_ERROR,
        2 => usmp_log_level_t::USMP_LOG_LEVEL_WARN,
        3 => usmp_log_level_t::USMP_LOG_LEVEL_INFO,
        _ => usmp_log_level_t::USMP_LOG_LEVEL_DEBUG,
    }
}
