//! The C API: the original component's functions and types over the sans-IO core.
//!
//! Every function checks its pointers and lengths first and returns a code; none panics.
//! The driver only moves frames between the core and the `usmp_transport_t` callbacks and
//! calls the `usmp_port_*` hooks; protocol decisions stay in [`crate::session`] and
//! [`crate::handshake`].
#![allow(non_camel_case_types)]

use core::ffi::{c_char, c_int, c_void};
use core::mem::{size_of, MaybeUninit};
use core::pin::pin;
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use zeroize::Zeroize;

use crate::driver::{self, block_on, scrub_stack, scrub_stack_connect, Bufs, Conn, RecvFail};
use crate::frame::{self, FrameType, MAX_FRAME};
use crate::handshake::DEVICE_ID_LEN;
use crate::session::{Session, MAX_MESSAGE};
use crate::{Error, Version};

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
pub const USMP_OPAQUE_WORDS: usize = 24;
/// `usmp_transport_t.flags`: the transport carries datagrams (UDP). The library then
/// acknowledges and retransmits frames itself (UTACK stop-and-wait) and uses the replay
/// window; `recv_timeout` must be set.
pub const USMP_TRANSPORT_DATAGRAM: u32 = 1;
/// Default attempts per frame on a datagram transport (`retransmit_attempts` = 0).
pub const USMP_RETRANSMIT_ATTEMPTS: u8 = 5;
/// Initial retransmission timeout on a datagram transport (ms), adapted to the measured
/// round trip unless `retransmit_timeout_ms` fixes it.
pub const USMP_RETRANSMIT_TIMEOUT_MS: u32 = 500;

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
    /// and return its length; 0 when nothing arrived within the transport's receive
    /// timeout; < 0 when the connection failed or closed.
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
    /// `USMP_TRANSPORT_DATAGRAM` for UDP-like transports, 0 for byte streams.
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
    /// Reserved, keep 0.
    pub reserved: [u8; 2],
    /// Datagram transports: fixed wait per attempt in ms, doubled per retry (0 = adaptive,
    /// starting at `USMP_RETRANSMIT_TIMEOUT_MS`).
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
}

// ---------------------------------------------------------------------------------------
// Private state inside usmp_t.opaque. Every field is plain data for which any bit pattern
// is valid, so a zeroed or garbage usmp_t never means undefined behaviour; the session is
// read only when `state` holds the established marker.

const STATE_IDLE: u32 = 0;
const STATE_ESTABLISHED: u32 = 0x5553_4D50; // "USMP"

#[repr(C)]
struct Inner {
    /// Address of the owning usmp_t, to detect copies.
    owner: u64,
    state: u32,
    conn: Conn,
    session: MaybeUninit<Session>,
}

const _: () = assert!(size_of::<Inner>() <= size_of::<[u64; USMP_OPAQUE_WORDS]>());
const _: () = assert!(core::mem::align_of::<Inner>() <= core::mem::align_of::<u64>());

impl Inner {
    fn session(&mut self) -> Option<&mut Session> {
        if self.state == STATE_ESTABLISHED {
            // SAFETY: `session` is written whenever `state` is set to STATE_ESTABLISHED.
            Some(unsafe { self.session.assume_init_mut() })
        } else {
            None
        }
    }

    /// Ends the session: zeroizes keys and counters. The transport is left alone.
    fn drop_session(&mut self) {
        if let Some(s) = self.session() {
            s.wipe();
        }
        self.state = STATE_IDLE;
        // Also wipe the raw bytes, whatever they held.
        // SAFETY: MaybeUninit<Session> is plain storage of size_of::<Session>() bytes.
        let raw = unsafe {
            core::slice::from_raw_parts_mut(
                self.session.as_mut_ptr().cast::<u8>(),
                size_of::<Session>(),
            )
        };
        raw.zeroize();
    }
}

/// The C face of the driver: one `usmp_t`'s stored transport, private state and
/// retransmission settings, with the `usmp_port_*` hooks. It only moves bytes; the
/// operations are [`crate::driver`]'s.
struct Link<'a> {
    t: &'a mut usmp_transport_s,
    st: &'a mut Inner,
    attempts: u8,
    fixed_rto_ms: u32,
}

impl Link<'_> {
    fn raw_send(&mut self, d: &[u8]) -> Result<(), Error> {
        let f = self.t.send.ok_or(Error::TransportFailed)?;
        // SAFETY: the transport's own callback, called with its own struct and a valid slice.
        if unsafe { f(self.t, d.as_ptr(), d.len()) } < 0 {
            return Err(Error::TransportFailed);
        }
        Ok(())
    }

    /// One frame or datagram; Ok(0) when nothing arrived. `wait` = None uses the
    /// transport's own receive timeout; Some(ms) waits at most that long. Tells a hang-up
    /// (the transport returned < 0) from a broken transport (it claimed more bytes than it
    /// was given).
    fn raw_recv(
        &mut self,
        buf: &mut [u8; MAX_FRAME],
        wait: Option<u32>,
    ) -> Result<usize, RecvFail> {
        let rc = match (wait, self.t.recv_timeout, self.t.recv) {
            (Some(ms), Some(f), _) => {
                // SAFETY: the transport's own callback; `buf` is writable for its length.
                unsafe { f(self.t, buf.as_mut_ptr(), buf.len(), ms) }
            }
            (_, _, Some(f)) => {
                // SAFETY: as above.
                unsafe { f(self.t, buf.as_mut_ptr(), buf.len()) }
            }
            _ => return Err(RecvFail::Broken),
        };
        if rc < 0 {
            return Err(RecvFail::HangUp);
        }
        let n = rc as usize;
        if n > buf.len() {
            // A transport that claims more than it was given is broken.
            return Err(RecvFail::Broken);
        }
        Ok(n)
    }

    fn close(&mut self) {
        if let Some(f) = self.t.close {
            // SAFETY: the transport's own callback.
            unsafe { f(self.t) };
        }
    }
}

impl driver::Link for Link<'_> {
    fn datagram(&self) -> bool {
        self.t.flags & USMP_TRANSPORT_DATAGRAM != 0
    }

    fn now(&mut self) -> u32 {
        millis()
    }

    fn random(&mut self, out: &mut [u8]) -> Result<(), Error> {
        // SAFETY: valid writable slice.
        if unsafe { usmp_port_random(out.as_mut_ptr(), out.len()) } != 0 {
            return Err(Error::PortFailed);
        }
        Ok(())
    }

    fn device_id(&mut self) -> Result<[u8; DEVICE_ID_LEN], Error> {
        let mut id = [0u8; DEVICE_ID_LEN];
        // SAFETY: valid writable buffer of DEVICE_ID_LEN bytes.
        if unsafe { usmp_port_get_device_id(id.as_mut_ptr(), id.len()) } != 0 {
            return Err(Error::PortFailed);
        }
        Ok(id)
    }

    async fn send(&mut self, d: &[u8]) -> Result<(), Error> {
        self.raw_send(d)
    }

    async fn recv(
        &mut self,
        buf: &mut [u8; MAX_FRAME],
        wait: Option<u32>,
    ) -> Result<usize, RecvFail> {
        // A byte-stream transport keeps its own receive timeout (the original's behaviour).
        let wait = if driver::Link::datagram(self) {
            wait
        } else {
            None
        };
        self.raw_recv(buf, wait)
    }

    fn available(&mut self) -> Option<bool> {
        let f = self.t.available?;
        // SAFETY: the transport's own callback.
        Some(unsafe { f(self.t) } > 0)
    }

    fn attempts(&self) -> u8 {
        self.attempts
    }

    fn fixed_rto_ms(&self) -> u32 {
        self.fixed_rto_ms
    }

    fn conn(&mut self) -> &mut Conn {
        &mut self.st.conn
    }

    fn session(&mut self) -> Option<&mut Session> {
        self.st.session()
    }

    fn store_session(&mut self, s: Session) {
        self.st.drop_session();
        self.st.session.write(s);
        self.st.state = STATE_ESTABLISHED;
    }

    fn drop_session(&mut self) {
        self.st.drop_session();
    }
}

/// Runs one driver operation to completion where it stands (pinned in place, not moved),
/// with scratch buffers that are wiped when it ends.
macro_rules! run {
    ($op:expr) => {{
        let r = block_on(pin!($op));
        r
    }};
}

/// Borrows the transport and private state of `ctx` after checking it is non-null and was
/// not copied.
///
/// # Safety
/// `ctx` must be null or point to a writable `usmp_t`.
unsafe fn link<'a>(ctx: *mut usmp_t) -> Result<Link<'a>, Error> {
    if ctx.is_null() {
        return Err(Error::InvalidArg);
    }
    // SAFETY: non-null and, per the contract, a valid usmp_t; `opaque` is u64-aligned and
    // large enough (checked at compile time), and Inner accepts any bit pattern.
    let st = unsafe { &mut *core::ptr::addr_of_mut!((*ctx).opaque).cast::<Inner>() };
    // SAFETY: as above; a distinct field of the same struct.
    let t = unsafe { &mut *core::ptr::addr_of_mut!((*ctx).transport) };
    // SAFETY: plain reads of the application's settings.
    let (attempts, fixed) = unsafe { ((*ctx).retransmit_attempts, (*ctx).retransmit_timeout_ms) };
    if st.state != STATE_IDLE && st.owner != ctx as usize as u64 {
        st.drop_session();
        *t = empty_transport();
        return Err(Error::ContextMoved);
    }
    Ok(Link {
        t,
        st,
        attempts: if attempts == 0 {
            USMP_RETRANSMIT_ATTEMPTS
        } else {
            attempts
        },
        fixed_rto_ms: fixed,
    })
}

const fn empty_transport() -> usmp_transport_s {
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

fn millis() -> u32 {
    // SAFETY: port hook with no arguments.
    unsafe { usmp_port_millis() }
}

static LOG_LEVEL: AtomicU8 = AtomicU8::new(usmp_log_level_t::USMP_LOG_LEVEL_ERROR as u8);

fn log(level: usmp_log_level_t, msg: &'static [u8]) {
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

fn code(r: Result<(), Error>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

/// The application's settings, read from the public fields.
struct Config<'a> {
    psk: &'a [u8],
    version: Version,
}

/// # Safety
/// `ctx` must point to a valid `usmp_t`.
unsafe fn config<'a>(ctx: *const usmp_t) -> Result<Config<'a>, Error> {
    // SAFETY: caller guarantees `ctx` is valid.
    let (psk, len, v) = unsafe { ((*ctx).psk, (*ctx).psk_len, (*ctx).protocol_version) };
    let version = Version::from_config(v).ok_or(Error::InvalidArg)?;
    if psk.is_null() {
        return if len == 0 {
            Err(Error::PskTooShort)
        } else {
            Err(Error::InvalidArg)
        };
    }
    if len > isize::MAX as usize {
        return Err(Error::InvalidArg);
    }
    // SAFETY: the application promises psk[..psk_len] is readable while connected.
    let psk = unsafe { core::slice::from_raw_parts(psk, len) };
    Ok(Config { psk, version })
}

fn connect_with(ctx: *mut usmp_t, l: &mut Link<'_>) -> Result<(), Error> {
    l.st.owner = ctx as usize as u64;
    // SAFETY: ctx was checked non-null by the caller.
    let r = unsafe { config(ctx) }.and_then(|cfg| {
        if driver::Link::datagram(l) && l.t.recv_timeout.is_none() {
            return Err(Error::InvalidArg);
        }
        run!(driver::handshake(l, cfg.psk, cfg.version, &mut Bufs::new()))
    });
    match r {
        Ok(()) => {
            log(
                usmp_log_level_t::USMP_LOG_LEVEL_INFO,
                b"session established\0",
            );
        }
        Err(e) => {
            l.st.drop_session();
            l.close();
            log(usmp_log_level_t::USMP_LOG_LEVEL_ERROR, e.name());
        }
    }
    r
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

/// Connects: copies `*transport` into `ctx->transport` and runs the handshake over it
/// (blocking, at most `USMP_HANDSHAKE_TIMEOUT_MS`). The transport must already be dialled.
/// Keeps the application's settings (`psk`, `psk_len`, `keepalive_ms`, `protocol_version`,
/// retransmission; those left at 0 take the `usmp_set_defaults` values); resets the rest. On failure the transport is closed and a
/// negative `usmp_err_t` is returned.
///
/// # Safety
/// `ctx` and `transport` must be null or valid pointers; `ctx->psk` must point to
/// `ctx->psk_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn usmp_connect(ctx: *mut usmp_t, transport: *mut usmp_transport_t) -> c_int {
    // SAFETY: the caller's contract, passed on.
    let r = unsafe { usmp_connect_impl(ctx, transport) };
    scrub_stack_connect();
    r
}

/// The body of [`usmp_connect`] (which wipes the stack it used afterwards).
///
/// # Safety
/// As [`usmp_connect`].
#[inline(never)]
unsafe fn usmp_connect_impl(ctx: *mut usmp_t, transport: *mut usmp_transport_t) -> c_int {
    if transport.is_null() || ctx.is_null() {
        return Error::InvalidArg.code();
    }
    // SAFETY: non-null, caller contract.
    unsafe { apply_defaults(ctx) };
    // SAFETY: caller contract. A stale copy is wiped by the first call and usable after.
    let mut l = match unsafe { link(ctx) }.or_else(|e| match e {
        Error::ContextMoved => unsafe { link(ctx) },
        e => Err(e),
    }) {
        Ok(l) => l,
        Err(e) => return e.code(),
    };
    // SAFETY: non-null, caller contract.
    let src = unsafe { &*transport };
    if src.send.is_none() || src.recv.is_none() {
        return Error::InvalidArg.code();
    }
    l.st.drop_session();
    *l.t = usmp_transport_s {
        send: src.send,
        recv: src.recv,
        close: src.close,
        reconnect: src.reconnect,
        available: src.available,
        destroy: src.destroy,
        ctx: src.ctx,
        flags: src.flags,
        recv_timeout: src.recv_timeout,
    };
    l.st.conn.reset(l.fixed_rto_ms);
    code(connect_with(ctx, &mut l))
}

/// Dials again through the stored transport's `reconnect` and runs a new handshake. Old
/// keys are zeroized first. `USMP_ERR_UNSUPPORTED` when the transport has no `reconnect`.
///
/// # Safety
/// `ctx` must be null or valid, and connected before (its stored transport is reused).
#[no_mangle]
pub unsafe extern "C" fn usmp_reconnect(ctx: *mut usmp_t) -> c_int {
    // SAFETY: the caller's contract, passed on.
    let r = unsafe { usmp_reconnect_impl(ctx) };
    scrub_stack_connect();
    r
}

/// The body of [`usmp_reconnect`] (which wipes the stack it used afterwards).
///
/// # Safety
/// As [`usmp_reconnect`].
#[inline(never)]
unsafe fn usmp_reconnect_impl(ctx: *mut usmp_t) -> c_int {
    // SAFETY: caller contract.
    let mut l = match unsafe { link(ctx) } {
        Ok(l) => l,
        Err(e) => return e.code(),
    };
    let Some(redial) = l.t.reconnect else {
        // Nothing is touched: a live session stays up.
        return if l.t.send.is_none() {
            Error::NotConnected.code()
        } else {
            Error::Unsupported.code()
        };
    };
    l.st.drop_session();
    // SAFETY: the transport's own callback.
    if unsafe { redial(l.t) } < 0 {
        return Error::TransportFailed.code();
    }
    code(connect_with(ctx, &mut l))
}

/// Closes the session: a best-effort BYE, keys zeroized, transport closed (not destroyed).
/// Safe to call twice, or on a context that never connected.
///
/// # Safety
/// `ctx` must be null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_close(ctx: *mut usmp_t) {
    // SAFETY: the caller's contract, passed on.
    unsafe { usmp_close_impl(ctx) };
    scrub_stack();
}

/// The body of [`usmp_close`] (which wipes the stack it used afterwards).
///
/// # Safety
/// As [`usmp_close`].
#[inline(never)]
unsafe fn usmp_close_impl(ctx: *mut usmp_t) {
    // SAFETY: caller contract.
    let Ok(mut l) = (unsafe { link(ctx) }) else {
        return;
    };
    run!(driver::bye(&mut l, &mut Bufs::new()));
    // Always close (also after a session ended on an error, when the socket may still be
    // open); transports must tolerate a second close, as the original's did.
    l.close();
}

/// True when `ctx` has an established session.
///
/// # Safety
/// `ctx` must be null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_is_connected(ctx: *const usmp_t) -> bool {
    if ctx.is_null() {
        return false;
    }
    // SAFETY: non-null and valid per the contract; read-only view of the private state.
    let st = unsafe { &*core::ptr::addr_of!((*ctx).opaque).cast::<Inner>() };
    st.state == STATE_ESTABLISHED && st.owner == ctx as usize as u64
}

/// Copies the datagram-link counters into `*out`. `USMP_ERR_INVALID_ARG` on NULL.
///
/// # Safety
/// `ctx` null or valid; `out` null or writable.
#[no_mangle]
pub unsafe extern "C" fn usmp_get_stats(ctx: *const usmp_t, out: *mut usmp_stats_t) -> c_int {
    if ctx.is_null() || out.is_null() {
        return Error::InvalidArg.code();
    }
    // SAFETY: non-null and valid per the contract.
    let st = unsafe { &*core::ptr::addr_of!((*ctx).opaque).cast::<Inner>() };
    let c = st.conn.stats;
    let stats = usmp_stats_t {
        retransmits: c.retransmits,
        duplicates: c.duplicates,
        rejected: c.rejected,
        bad_acks: c.bad_acks,
    };
    // SAFETY: non-null and writable per the contract.
    unsafe { out.write(stats) };
    0
}

/// The library version, e.g. "0.1.0".
#[no_mangle]
pub extern "C" fn usmp_get_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// Sends one message of `len` bytes (0..=1808), split into up to 4 frames of at most 452.
/// Nothing is sent when it is too long (`USMP_ERR_BUFFER_OVERFLOW`) or the sequence space
/// cannot hold it (`USMP_ERR_SEQ_EXHAUSTED`). A transport failure (or, on a datagram link,
/// no acknowledgement after every attempt: `USMP_ERR_TIMEOUT`) ends the session.
///
/// # Safety
/// `ctx` null or valid; `data` null only when `len` is 0, else `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn usmp_send(ctx: *mut usmp_t, data: *const u8, len: u16) -> c_int {
    // SAFETY: the caller's contract, passed on.
    let r = unsafe { usmp_send_impl(ctx, data, len) };
    scrub_stack();
    r
}

/// The body of [`usmp_send`] (which wipes the stack it used afterwards).
///
/// # Safety
/// As [`usmp_send`].
#[inline(never)]
unsafe fn usmp_send_impl(ctx: *mut usmp_t, data: *const u8, len: u16) -> c_int {
    // SAFETY: caller contract.
    let mut l = match unsafe { link(ctx) } {
        Ok(l) => l,
        Err(e) => return e.code(),
    };
    if data.is_null() && len != 0 {
        return Error::InvalidArg.code();
    }
    if usize::from(len) > MAX_MESSAGE {
        // Refused before `data` is looked at: the caller's buffer may be shorter than `len`.
        return code(
            l.st.session()
                .ok_or(Error::NotConnected)
                .and(Err(Error::BufferOverflow)),
        );
    }
    let data: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: non-null with `len` readable bytes per the contract.
        unsafe { core::slice::from_raw_parts(data, usize::from(len)) }
    };
    code(run!(driver::send_message(&mut l, data, &mut Bufs::new())))
}

/// Receives one message into `out`. Returns its length (> 0), 0 when no message is
/// available now (the transport timed out, or only PING/PONG/REKEY frames were handled —
/// PINGs are answered), or a negative `usmp_err_t`. An empty message also returns 0.
/// On a byte stream any protocol error ends the session (reconnect), except
/// `USMP_ERR_BUFFER_OVERFLOW` (message larger than `max_len`: that message is dropped, the
/// session stays up). On a datagram link malformed, forged and duplicate datagrams are
/// dropped and counted (`usmp_get_stats`); an authenticated BYE still closes.
///
/// # Safety
/// `ctx` null or valid; `out` must have `max_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn usmp_recv(ctx: *mut usmp_t, out: *mut u8, max_len: u16) -> c_int {
    // SAFETY: the caller's contract, passed on.
    let r = unsafe { usmp_recv_impl(ctx, out, max_len) };
    scrub_stack();
    r
}

/// The body of [`usmp_recv`] (which wipes the stack it used afterwards).
///
/// # Safety
/// As [`usmp_recv`].
#[inline(never)]
unsafe fn usmp_recv_impl(ctx: *mut usmp_t, out: *mut u8, max_len: u16) -> c_int {
    // SAFETY: caller contract.
    let mut l = match unsafe { link(ctx) } {
        Ok(l) => l,
        Err(e) => return e.code(),
    };
    if out.is_null() {
        return Error::InvalidArg.code();
    }
    // SAFETY: non-null with `max_len` writable bytes per the contract.
    let out = unsafe { core::slice::from_raw_parts_mut(out, usize::from(max_len)) };
    match run!(driver::recv_message(&mut l, out, None, &mut Bufs::new())) {
        Ok(n) => n.unwrap_or(0) as c_int,
        Err(e) => e.code(),
    }
}

/// Sends a PING now (the PONG is consumed by a later `usmp_recv`).
///
/// # Safety
/// `ctx` null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_ping(ctx: *mut usmp_t) -> c_int {
    // SAFETY: the caller's contract, passed on.
    let r = unsafe { usmp_ping_impl(ctx) };
    scrub_stack();
    r
}

/// The body of [`usmp_ping`] (which wipes the stack it used afterwards).
///
/// # Safety
/// As [`usmp_ping`].
#[inline(never)]
unsafe fn usmp_ping_impl(ctx: *mut usmp_t) -> c_int {
    // SAFETY: caller contract.
    let mut l = match unsafe { link(ctx) } {
        Ok(l) => l,
        Err(e) => return e.code(),
    };
    code(run!(driver::send_control(
        &mut l,
        FrameType::Ping,
        &mut Bufs::new()
    )))
}

/// Sends a PING when `keepalive_ms` have passed since the last transmission. Returns 0
/// (also when keepalive is off), or a negative code — `USMP_ERR_NOT_CONNECTED` when the
/// session is gone, so a main loop knows to call `usmp_reconnect`.
///
/// # Safety
/// `ctx` null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_keepalive_tick(ctx: *mut usmp_t) -> c_int {
    // SAFETY: the caller's contract, passed on.
    let r = unsafe { usmp_keepalive_tick_impl(ctx) };
    scrub_stack();
    r
}

/// The body of [`usmp_keepalive_tick`] (which wipes the stack it used afterwards).
///
/// # Safety
/// As [`usmp_keepalive_tick`].
#[inline(never)]
unsafe fn usmp_keepalive_tick_impl(ctx: *mut usmp_t) -> c_int {
    // SAFETY: caller contract.
    let mut l = match unsafe { link(ctx) } {
        Ok(l) => l,
        Err(e) => return e.code(),
    };
    // SAFETY: ctx is non-null (checked by `link`).
    let period = unsafe { (*ctx).keepalive_ms };
    code(run!(driver::keepalive(&mut l, period, &mut Bufs::new())).map(|_| ()))
}

/// Rotates the session keys (wire v2): sends REKEY with a fresh random salt under the old
/// key and switches both directions to the new keys. `USMP_ERR_UNSUPPORTED` on v1.
///
/// # Safety
/// `ctx` null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_rekey(ctx: *mut usmp_t) -> c_int {
    // SAFETY: the caller's contract, passed on.
    let r = unsafe { usmp_rekey_impl(ctx) };
    scrub_stack();
    r
}

/// The body of [`usmp_rekey`] (which wipes the stack it used afterwards).
///
/// # Safety
/// As [`usmp_rekey`].
#[inline(never)]
unsafe fn usmp_rekey_impl(ctx: *mut usmp_t) -> c_int {
    // SAFETY: caller contract.
    let mut l = match unsafe { link(ctx) } {
        Ok(l) => l,
        Err(e) => return e.code(),
    };
    code(run!(driver::rekey(&mut l, &mut Bufs::new())))
}

/// The name of a result code ("USMP_OK", "USMP_ERR_AUTH_FAILED", ...), or
/// "USMP_ERR_UNKNOWN" for a number that is not one.
#[no_mangle]
pub extern "C" fn usmp_err_name(code: c_int) -> *const c_char {
    if code == 0 {
        return c"USMP_OK".as_ptr();
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
