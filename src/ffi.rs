//! The C API: the original component's functions and types over the sans-IO core.
//!
//! Every function checks its pointers and lengths first and returns a code; none panics.
//! The driver only moves frames between the core and the `usmp_transport_t` callbacks and
//! calls the `usmp_port_*` hooks; protocol decisions stay in [`crate::session`] and
//! [`crate::handshake`].
#![allow(non_camel_case_types)]

use core::ffi::{c_char, c_int, c_void};
use core::mem::{size_of, MaybeUninit};
use core::sync::atomic::{AtomicU8, Ordering};

use zeroize::Zeroize;

use crate::frame::{self, FrameType, MAX_FRAME};
use crate::handshake::{DeviceHandshake, DeviceStep, DEVICE_ID_LEN};
use crate::session::{Rx, Session, MAX_DATA, PLAINTEXT_OFFSET, REKEY_SALT_LEN};
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
pub const USMP_OPAQUE_WORDS: usize = 28;

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
    USMP_LOG_LEVEL_NONE = 0,
    USMP_LOG_LEVEL_ERROR = 1,
    USMP_LOG_LEVEL_WARN = 2,
    USMP_LOG_LEVEL_INFO = 3,
    USMP_LOG_LEVEL_DEBUG = 4,
}

/// A transport: function pointers the library calls, plus the transport's own `ctx`.
/// The first seven members are those of the original, in the same order.
#[repr(C)]
pub struct usmp_transport_s {
    /// Send one whole frame. < 0 = failure; >= 0 = success.
    pub send: Option<
        unsafe extern "C" fn(t: *mut usmp_transport_s, data: *const u8, len: usize) -> c_int,
    >,
    /// Receive exactly one whole frame into `buf` (at most `max_len` bytes) and return its
    /// length; 0 when nothing arrived within the transport's receive timeout; < 0 when the
    /// connection failed or closed.
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
}

/// The transport type, under the original's name.
pub type usmp_transport_t = usmp_transport_s;

/// A session context. Zero-initialise it (`usmp_t ctx = {0};`), set `psk`, `psk_len`,
/// optionally `keepalive_ms` and `protocol_version`, then call `usmp_connect`. Do not copy
/// or move it while connected (a copy is detected and refused).
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
    /// Reserved, keep 0.
    pub reserved: [u8; 3],
    /// Library-private state. Do not touch.
    pub opaque: [u64; USMP_OPAQUE_WORDS],
}

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
    transport: usmp_transport_s,
    /// Address of the owning usmp_t, to detect copies.
    owner: usize,
    state: u32,
    last_tx_ms: u32,
    device_id: [u8; DEVICE_ID_LEN],
    version: u8,
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

    fn send(&mut self, buf: &[u8]) -> Result<(), Error> {
        let f = self.transport.send.ok_or(Error::TransportFailed)?;
        // SAFETY: the transport's own callback, called with its own struct and a valid slice.
        let rc = unsafe { f(&mut self.transport, buf.as_ptr(), buf.len()) };
        if rc < 0 {
            return Err(Error::TransportFailed);
        }
        self.last_tx_ms = millis();
        Ok(())
    }

    /// One frame from the transport: Ok(0) when nothing arrived in its timeout.
    fn recv(&mut self, buf: &mut [u8; MAX_FRAME]) -> Result<usize, Error> {
        let f = self.transport.recv.ok_or(Error::TransportFailed)?;
        // SAFETY: as above; `buf` is writable for its whole length.
        let rc = unsafe { f(&mut self.transport, buf.as_mut_ptr(), buf.len()) };
        if rc < 0 {
            return Err(Error::TransportFailed);
        }
        let n = rc as usize;
        if n > buf.len() {
            // A transport that claims more than it was given is broken.
            return Err(Error::TransportFailed);
        }
        Ok(n)
    }

    fn available(&mut self) -> Option<bool> {
        let f = self.transport.available?;
        // SAFETY: the transport's own callback.
        Some(unsafe { f(&mut self.transport) } > 0)
    }

    fn close_transport(&mut self) {
        if let Some(f) = self.transport.close {
            // SAFETY: the transport's own callback.
            unsafe { f(&mut self.transport) };
        }
    }
}

/// Borrows the private state of `ctx` after checking it is non-null and was not copied.
///
/// # Safety
/// `ctx` must be null or point to a writable `usmp_t`.
unsafe fn inner<'a>(ctx: *mut usmp_t) -> Result<&'a mut Inner, Error> {
    if ctx.is_null() {
        return Err(Error::InvalidArg);
    }
    // SAFETY: non-null and, per the contract, a valid usmp_t; `opaque` is u64-aligned and
    // large enough (checked at compile time), and Inner accepts any bit pattern.
    let inner = unsafe { &mut *core::ptr::addr_of_mut!((*ctx).opaque).cast::<Inner>() };
    if inner.state != STATE_IDLE && inner.owner != ctx as usize {
        inner.drop_session();
        inner.transport = empty_transport();
        return Err(Error::ContextMoved);
    }
    Ok(inner)
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
    }
}

fn millis() -> u32 {
    // SAFETY: port hook with no arguments.
    unsafe { usmp_port_millis() }
}

fn random(out: &mut [u8]) -> Result<(), Error> {
    // SAFETY: valid writable slice.
    if unsafe { usmp_port_random(out.as_mut_ptr(), out.len()) } != 0 {
        return Err(Error::PortFailed);
    }
    Ok(())
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
    // SAFETY: `msg` literals end in NUL (all call sites below).
    unsafe { usmp_port_log(c as c_char, b"usmp\0".as_ptr().cast(), msg.as_ptr().cast()) };
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

/// Runs the device handshake over the stored transport. On success the session is stored.
fn handshake(inner: &mut Inner, cfg: &Config<'_>) -> Result<(), Error> {
    let mut id = [0u8; DEVICE_ID_LEN];
    // SAFETY: valid writable buffer of DEVICE_ID_LEN bytes.
    if unsafe { usmp_port_get_device_id(id.as_mut_ptr(), id.len()) } != 0 {
        return Err(Error::PortFailed);
    }
    inner.device_id = id;
    let mut secret = [0u8; 32];
    random(&mut secret)?;
    let hs = DeviceHandshake::new(cfg.version, cfg.psk, &id, &secret);
    secret.zeroize();
    let mut hs = hs?;
    let mut tx = [0u8; MAX_FRAME];
    let mut rx = [0u8; MAX_FRAME];
    let n = hs.hello(None, &mut tx);
    inner.send(tx.get(..n).ok_or(Error::InvalidArg)?)?;
    let start = millis();
    loop {
        let n = match inner.recv(&mut rx) {
            Ok(n) => n,
            // The gateway never explains a refusal: it hangs up. After HELLO_ACK that means
            // the PSK was refused; before CHALLENGE, the device or the version was.
            Err(_) if hs.awaiting_session_ok() => return Err(Error::AuthFailed),
            Err(_) => return Err(Error::Rejected),
        };
        if n == 0 {
            if millis().wrapping_sub(start) >= USMP_HANDSHAKE_TIMEOUT_MS {
                return Err(Error::Timeout);
            }
            continue;
        }
        let frame = rx.get(..n).ok_or(Error::BadFrame)?;
        match hs.receive(frame, &mut tx)? {
            DeviceStep::Send(m) => inner.send(tx.get(..m).ok_or(Error::InvalidArg)?)?,
            DeviceStep::Established(s) => {
                inner.session.write(s);
                inner.state = STATE_ESTABLISHED;
                return Ok(());
            }
        }
    }
}

fn connect_with(ctx: *mut usmp_t, inner: &mut Inner) -> Result<(), Error> {
    // SAFETY: ctx was checked non-null by the caller.
    let cfg = unsafe { config(ctx) }?;
    inner.owner = ctx as usize;
    let r = handshake(inner, &cfg);
    match r {
        Ok(()) => {
            inner.last_tx_ms = millis();
            log(
                usmp_log_level_t::USMP_LOG_LEVEL_INFO,
                b"session established\0",
            );
        }
        Err(e) => {
            inner.drop_session();
            inner.close_transport();
            log(usmp_log_level_t::USMP_LOG_LEVEL_ERROR, err_name(e));
        }
    }
    r
}

fn err_name(e: Error) -> &'static [u8] {
    e.name()
}

/// Connects: copies `*transport` into `ctx` and runs the handshake over it (blocking, at
/// most `USMP_HANDSHAKE_TIMEOUT_MS` of silence). The transport must already be dialled.
/// Keeps `psk`, `psk_len`, `keepalive_ms` and `protocol_version`; resets everything else.
/// On failure the transport is closed and a negative `usmp_err_t` is returned.
///
/// # Safety
/// `ctx` and `transport` must be null or valid pointers; `ctx->psk` must point to
/// `ctx->psk_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn usmp_connect(ctx: *mut usmp_t, transport: *mut usmp_transport_t) -> c_int {
    if transport.is_null() {
        return Error::InvalidArg.code();
    }
    // SAFETY: caller contract.
    let inner = match unsafe { inner(ctx) } {
        Ok(i) => i,
        Err(Error::ContextMoved) => {
            // A stale copy: its state is wiped now, so connecting it afresh is fine.
            // SAFETY: as above; now idle.
            match unsafe { inner(ctx) } {
                Ok(i) => i,
                Err(e) => return e.code(),
            }
        }
        Err(e) => return e.code(),
    };
    // SAFETY: non-null, caller contract.
    let t = unsafe { &*transport };
    if t.send.is_none() || t.recv.is_none() {
        return Error::InvalidArg.code();
    }
    inner.drop_session();
    inner.transport = usmp_transport_s {
        send: t.send,
        recv: t.recv,
        close: t.close,
        reconnect: t.reconnect,
        available: t.available,
        destroy: t.destroy,
        ctx: t.ctx,
    };
    inner.last_tx_ms = 0;
    code(connect_with(ctx, inner))
}

/// Dials again through the stored transport's `reconnect` and runs a new handshake. Old
/// keys are zeroized first. `USMP_ERR_UNSUPPORTED` when the transport has no `reconnect`.
///
/// # Safety
/// `ctx` must be null or valid, and connected before (its stored transport is reused).
#[no_mangle]
pub unsafe extern "C" fn usmp_reconnect(ctx: *mut usmp_t) -> c_int {
    // SAFETY: caller contract.
    let inner = match unsafe { inner(ctx) } {
        Ok(i) => i,
        Err(e) => return e.code(),
    };
    inner.drop_session();
    let Some(redial) = inner.transport.reconnect else {
        return if inner.transport.send.is_none() {
            Error::NotConnected.code()
        } else {
            Error::Unsupported.code()
        };
    };
    // SAFETY: the transport's own callback.
    if unsafe { redial(&mut inner.transport) } < 0 {
        return Error::TransportFailed.code();
    }
    code(connect_with(ctx, inner))
}

/// Closes the session: a best-effort BYE, keys zeroized, transport closed (not destroyed).
/// Safe to call twice, or on a context that never connected.
///
/// # Safety
/// `ctx` must be null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_close(ctx: *mut usmp_t) {
    // SAFETY: caller contract.
    let Ok(inner) = (unsafe { inner(ctx) }) else {
        return;
    };
    if let Some(s) = inner.session() {
        let mut buf = [0u8; MAX_FRAME];
        if let Ok(n) = s.seal_control(FrameType::Bye, &mut buf) {
            if let Some(f) = buf.get(..n) {
                let _ = inner.send(f);
            }
        }
    }
    inner.drop_session();
    // Always close (also after a session ended on an error, when the socket may still be
    // open); transports must tolerate a second close, as the original's did.
    inner.close_transport();
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
    let inner = unsafe { &*core::ptr::addr_of!((*ctx).opaque).cast::<Inner>() };
    inner.state == STATE_ESTABLISHED && inner.owner == ctx as usize
}

/// The library version, e.g. "0.1.0".
#[no_mangle]
pub extern "C" fn usmp_get_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// Sends one message of `len` bytes (0..=1808), split into up to 4 frames of at most 452.
/// Nothing is sent when it is too long (`USMP_ERR_BUFFER_OVERFLOW`) or the sequence space
/// cannot hold it (`USMP_ERR_SEQ_EXHAUSTED`). A transport failure ends the session.
///
/// # Safety
/// `ctx` null or valid; `data` null only when `len` is 0, else `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn usmp_send(ctx: *mut usmp_t, data: *const u8, len: u16) -> c_int {
    // SAFETY: caller contract.
    let inner = match unsafe { inner(ctx) } {
        Ok(i) => i,
        Err(e) => return e.code(),
    };
    if data.is_null() && len != 0 {
        return Error::InvalidArg.code();
    }
    let data: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: non-null with `len` readable bytes per the contract.
        unsafe { core::slice::from_raw_parts(data, usize::from(len)) }
    };
    code(send_message(inner, data))
}

fn send_message(inner: &mut Inner, data: &[u8]) -> Result<(), Error> {
    let s = inner.session().ok_or(Error::NotConnected)?;
    let frames = Session::frames_for(data.len())?;
    s.check_room(frames)?;
    let mut buf = [0u8; MAX_FRAME];
    let mut chunks = data.chunks(MAX_DATA);
    for i in 0..frames {
        let chunk = chunks.next().unwrap_or(&[]);
        let ty = if i + 1 == frames {
            FrameType::Data
        } else {
            FrameType::DataFrag
        };
        let s = inner.session().ok_or(Error::NotConnected)?;
        buf.get_mut(PLAINTEXT_OFFSET..PLAINTEXT_OFFSET + chunk.len())
            .ok_or(Error::InvalidArg)?
            .copy_from_slice(chunk);
        let sealed = s.seal(ty, &mut buf, chunk.len());
        // After sealing, the buffer holds only ciphertext; on a refusal, plaintext.
        let sent = sealed.and_then(|n| send_or_drop(inner, buf.get(..n).unwrap_or(&[])));
        if sent.is_err() {
            buf.zeroize();
            return sent;
        }
    }
    Ok(())
}

/// Sends a sealed frame; a transport failure ends the session.
fn send_or_drop(inner: &mut Inner, frame: &[u8]) -> Result<(), Error> {
    let r = inner.send(frame);
    if r.is_err() {
        inner.drop_session();
    }
    r
}

/// Receives one message into `out`. Returns its length (> 0), 0 when no message is
/// available now (the transport timed out, or only PING/PONG/REKEY frames were handled —
/// PINGs are answered), or a negative `usmp_err_t`. An empty message also returns 0.
/// Any protocol error ends the session (reconnect), except `USMP_ERR_BUFFER_OVERFLOW`
/// (message larger than `max_len`: that message is dropped, the session stays up).
///
/// # Safety
/// `ctx` null or valid; `out` must have `max_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn usmp_recv(ctx: *mut usmp_t, out: *mut u8, max_len: u16) -> c_int {
    // SAFETY: caller contract.
    let inner = match unsafe { inner(ctx) } {
        Ok(i) => i,
        Err(e) => return e.code(),
    };
    if out.is_null() {
        return Error::InvalidArg.code();
    }
    // SAFETY: non-null with `max_len` writable bytes per the contract.
    let out = unsafe { core::slice::from_raw_parts_mut(out, usize::from(max_len)) };
    match recv_message(inner, out) {
        Ok(n) => n as c_int,
        Err(e) => {
            if e != Error::BufferOverflow && e != Error::NotConnected {
                inner.drop_session();
            }
            e.code()
        }
    }
}

fn recv_message(inner: &mut Inner, out: &mut [u8]) -> Result<usize, Error> {
    let mut rx = [0u8; MAX_FRAME];
    let r = recv_into(inner, out, &mut rx);
    // The frame buffer held decrypted plaintext: leave none of it on the stack.
    rx.zeroize();
    r
}

fn recv_into(inner: &mut Inner, out: &mut [u8], rx: &mut [u8; MAX_FRAME]) -> Result<usize, Error> {
    inner.session().ok_or(Error::NotConnected)?.begin_receive();
    let mut waiting_since: Option<u32> = None;
    loop {
        let n = inner.recv(rx)?;
        let s = inner.session().ok_or(Error::NotConnected)?;
        if n == 0 {
            if !s.reassembling() {
                return Ok(0);
            }
            let now = millis();
            let since = *waiting_since.get_or_insert(now);
            if now.wrapping_sub(since) >= USMP_REASSEMBLY_TIMEOUT_MS {
                return Err(Error::Timeout);
            }
            continue;
        }
        waiting_since = None;
        let frame = rx.get_mut(..n).ok_or(Error::BadFrame)?;
        match s.receive(frame, out)? {
            Rx::Message(len) => return Ok(len),
            Rx::Fragment => continue,
            Rx::Ping => {
                let mut pong = [0u8; MAX_FRAME];
                let m = s.seal_control(FrameType::Pong, &mut pong)?;
                send_or_drop(inner, pong.get(..m).ok_or(Error::InvalidArg)?)?;
            }
            Rx::Pong | Rx::Rekeyed => {}
        }
        // After a control frame: return when nothing more is waiting (original behaviour).
        if inner.available() == Some(false) {
            return Ok(0);
        }
    }
}

/// Sends a PING now (the PONG is consumed by a later `usmp_recv`).
///
/// # Safety
/// `ctx` null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_ping(ctx: *mut usmp_t) -> c_int {
    // SAFETY: caller contract.
    let inner = match unsafe { inner(ctx) } {
        Ok(i) => i,
        Err(e) => return e.code(),
    };
    code(send_control(inner, FrameType::Ping))
}

fn send_control(inner: &mut Inner, ty: FrameType) -> Result<(), Error> {
    let s = inner.session().ok_or(Error::NotConnected)?;
    let mut buf = [0u8; MAX_FRAME];
    let n = s.seal_control(ty, &mut buf)?;
    send_or_drop(inner, buf.get(..n).ok_or(Error::InvalidArg)?)
}

/// Sends a PING when `keepalive_ms` have passed since the last transmission. Returns 0
/// (also when keepalive is off), or a negative code — `USMP_ERR_NOT_CONNECTED` when the
/// session is gone, so a main loop knows to call `usmp_reconnect`.
///
/// # Safety
/// `ctx` null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_keepalive_tick(ctx: *mut usmp_t) -> c_int {
    // SAFETY: caller contract.
    let inner = match unsafe { inner(ctx) } {
        Ok(i) => i,
        Err(e) => return e.code(),
    };
    if inner.state != STATE_ESTABLISHED {
        return Error::NotConnected.code();
    }
    // SAFETY: ctx is non-null (checked by `inner`).
    let period = unsafe { (*ctx).keepalive_ms };
    if period == 0 || millis().wrapping_sub(inner.last_tx_ms) < period {
        return 0;
    }
    code(send_control(inner, FrameType::Ping))
}

/// Rotates the session keys (wire v2): sends REKEY with a fresh random salt under the old
/// key and switches both directions to the new keys. `USMP_ERR_UNSUPPORTED` on v1.
///
/// # Safety
/// `ctx` null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_rekey(ctx: *mut usmp_t) -> c_int {
    // SAFETY: caller contract.
    let inner = match unsafe { inner(ctx) } {
        Ok(i) => i,
        Err(e) => return e.code(),
    };
    code(rekey(inner))
}

fn rekey(inner: &mut Inner) -> Result<(), Error> {
    let s = inner.session().ok_or(Error::NotConnected)?;
    if !s.version().has_rekey() {
        return Err(Error::Unsupported);
    }
    let mut salt = [0u8; REKEY_SALT_LEN];
    random(&mut salt)?;
    let mut buf = [0u8; MAX_FRAME];
    let n = s.start_rekey(&salt, &mut buf)?;
    send_or_drop(inner, buf.get(..n).ok_or(Error::InvalidArg)?)
}

/// The name of a result code ("USMP_OK", "USMP_ERR_AUTH_FAILED", ...), or
/// "USMP_ERR_UNKNOWN" for a number that is not one.
#[no_mangle]
pub extern "C" fn usmp_err_name(code: c_int) -> *const c_char {
    if code == 0 {
        return b"USMP_OK\0".as_ptr().cast();
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
