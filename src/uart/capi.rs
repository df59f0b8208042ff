//! The C UART transport: `usmp_transport_uart_init` turns two byte hooks of the
//! application (read with a timeout, write) into a `usmp_transport_t`, with COBS framing
//! (a datagram transport: the library acknowledges and retransmits) or raw framing (a
//! plain byte stream, `USMP_TRANSPORT_BYTES`, for a clean line). Both serve the blocking
//! API and the non-blocking one (`usmp_nb_*`): a read with a timeout of 0 returns at once. The same code serves a bare-metal USART driver,
//! ESP-IDF's `uart_driver` (component/usmp_uart_esp32.c) and a POSIX serial port
//! (component/usmp_uart_posix.c).
//!
//! Written in Rust rather than as C glue: it shares the COBS codec (property-tested and
//! fuzzed) with the Rust API, it is in `libusmp.a` on every target (a bare-metal build
//! compiles no C glue), and `--gc-sections` removes it from a firmware that does not call
//! `usmp_transport_uart_init`.

use core::ffi::{c_int, c_void};

use super::{send_with, RxState, UartStats, RX_BUDGET};
use crate::ffi::{usmp_transport_t, USMP_TRANSPORT_BYTES, USMP_TRANSPORT_DATAGRAM};
use crate::frame::{self, HEADER_LEN};
use crate::Error;

/// `usmp_uart_io_t.framing`: COBS, one datagram per frame, `00` between datagrams (the
/// default). The transport is a datagram transport: a damaged frame is dropped and sent
/// again, and the session survives line noise. The far end is `usmp bridge` (to the
/// gateway's UDP port) or another COBS endpoint.
pub const USMP_UART_FRAMING_COBS: u8 = 0;
/// `usmp_uart_io_t.framing`: raw frames, back to back, as on TCP (`usmp bridge --raw` to
/// the gateway's TCP port). A byte stream (`USMP_TRANSPORT_BYTES`): `recv` hands on the
/// bytes that are there and the library finds the frames. One damaged byte ends the
/// session: only for clean lines.
pub const USMP_UART_FRAMING_RAW: u8 = 1;
/// Default idle receive timeout of `recv` (ms): an idle `usmp_recv` returns 0 after it.
pub const USMP_UART_DEFAULT_RECV_TIMEOUT_MS: u32 = 50;
/// Default stall limit (ms): a write, or (raw framing) the rest of a started frame, must
/// make progress within it.
pub const USMP_UART_DEFAULT_STALL_MS: u32 = 2000;

/// The application's side of a UART transport: byte hooks and settings.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct usmp_uart_io_t {
    /// Reads up to `len` bytes into `buf`, waiting at most `timeout_ms` (0 = do not wait)
    /// for the first one. Returns the count (1..=len), 0 when nothing came in time, < 0
    /// when the port failed (the transport then fails too). Line errors (framing, parity,
    /// overrun) are not failures: hand on what was received and let the framing cope.
    /// Required.
    pub read: Option<
        unsafe extern "C" fn(user: *mut c_void, buf: *mut u8, len: usize, timeout_ms: u32) -> c_int,
    >,
    /// Writes all `len` bytes of `data` (or queues them for sending) within `timeout_ms`.
    /// Returns 0 (or any value >= 0) on success, < 0 when it could not. Required.
    pub write: Option<
        unsafe extern "C" fn(
            user: *mut c_void,
            data: *const u8,
            len: usize,
            timeout_ms: u32,
        ) -> c_int,
    >,
    /// > 0 when received bytes are waiting, else 0. May be NULL.
    pub available: Option<unsafe extern "C" fn(user: *mut c_void) -> c_int>,
    /// Called by the transport's `destroy` (close the port). May be NULL.
    pub close: Option<unsafe extern "C" fn(user: *mut c_void)>,
    /// Passed to every hook.
    pub user: *mut c_void,
    /// `USMP_UART_FRAMING_COBS` (0, the default) or `USMP_UART_FRAMING_RAW`.
    pub framing: u8,
    /// Idle receive timeout of `recv`, ms (0 = `USMP_UART_DEFAULT_RECV_TIMEOUT_MS`).
    pub recv_timeout_ms: u32,
    /// Stall limit, ms (0 = `USMP_UART_DEFAULT_STALL_MS`).
    pub stall_ms: u32,
}

/// Raw framing: the frame going past. The transport hands the bytes on as they come (the
/// library finds the frames) and follows the frames only to count them, to hold each one
/// to the stall limit, and to notice a stream out of step. Plain data.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RawRx {
    /// The current frame's header, as far as it has come.
    head: [u8; 12],
    /// Bytes of the current frame handed on (0: between frames).
    have: u16,
    /// The current frame's length once its header is in (before: the header's).
    need: u16,
    /// When the last byte of the current frame came (ms).
    last: u32,
}
const _: () = assert!(HEADER_LEN == 12);

impl RawRx {
    const fn new() -> Self {
        Self {
            head: [0; 12],
            have: 0,
            need: HEADER_LEN as u16,
            last: 0,
        }
    }
}

/// Caller-provided storage of a UART transport (no heap). It need not be zeroed: init sets
/// everything that is read before it is written. `io` and `stats` may be read at any time;
/// the rest is private.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct usmp_uart_ctx_t {
    /// The hooks and settings, copied by `usmp_transport_uart_init` (defaults filled in).
    pub io: usmp_uart_io_t,
    /// Counters.
    pub stats: UartStats,
    /// False after `close`, a failure (raw framing) or `destroy`; `reconnect` sets it.
    pub open: bool,
    /// Private: received bytes not yet decoded, and the COBS decoder.
    pub rx: RxState,
    /// Private: raw framing's view of the frame going past.
    pub raw: RawRx,
}

extern "C" {
    /// The port hook `usmp_port_millis` (under another Rust name, so that the header
    /// does not declare it twice).
    #[link_name = "usmp_port_millis"]
    fn uart_port_millis() -> u32;
}

fn millis() -> u32 {
    // SAFETY: a port hook without arguments, defined by the application.
    unsafe { uart_port_millis() }
}

/// The context behind `t`, if both are there.
///
/// # Safety
/// `t` null or valid; `t->ctx` null or a `usmp_uart_ctx_t` set by init.
unsafe fn ctx_of<'a>(t: *mut usmp_transport_t) -> Option<&'a mut usmp_uart_ctx_t> {
    // SAFETY: caller contract.
    let t = unsafe { t.as_mut() }?;
    // SAFETY: set by usmp_transport_uart_init to the caller's storage.
    unsafe { t.ctx.cast::<usmp_uart_ctx_t>().as_mut() }
}

/// One read through the hook: the byte count, 0 for nothing, Err for a failed port or a
/// hook that claims more than it was given.
fn read_hook(io: &usmp_uart_io_t, buf: &mut [u8], timeout_ms: u32) -> Result<usize, ()> {
    let f = io.read.ok_or(())?;
    // SAFETY: the application's hook; `buf` is writable for its length.
    let rc = unsafe { f(io.user, buf.as_mut_ptr(), buf.len(), timeout_ms) };
    match usize::try_from(rc) {
        Ok(n) if n <= buf.len() => Ok(n),
        _ => Err(()),
    }
}

/// One write through the hook, bounded by the stall limit.
fn write_hook(io: &usmp_uart_io_t, data: &[u8]) -> Result<(), ()> {
    let f = io.write.ok_or(())?;
    // SAFETY: the application's hook; `data` is readable for its length.
    let rc = unsafe { f(io.user, data.as_ptr(), data.len(), io.stall_ms) };
    if rc < 0 {
        return Err(());
    }
    Ok(())
}

impl usmp_uart_ctx_t {
    fn fail(&mut self) -> c_int {
        self.stats.failures = self.stats.failures.wrapping_add(1);
        if self.io.framing == USMP_UART_FRAMING_RAW {
            // The stream is out of step: nothing more until reconnect.
            self.open = false;
            self.rx.reset();
            self.raw = RawRx::new();
        }
        -1
    }

    fn idle(&mut self) -> c_int {
        self.stats.idle_timeouts = self.stats.idle_timeouts.wrapping_add(1);
        0
    }

    /// COBS: decodes until a datagram is complete or `timeout_ms` has passed. A partial
    /// datagram stays in the decoder for the next call. Bytes that keep coming cannot hold
    /// it past the timeout; a poll (`timeout_ms` = 0) decodes at most two datagrams' worth.
    fn recv_cobs(&mut self, buf: &mut [u8], timeout_ms: u32) -> c_int {
        let start = millis();
        let mut budget = RX_BUDGET;
        let mut read_once = false;
        loop {
            if let Some(n) = self.rx.take(buf, &mut self.stats, &mut budget) {
                return n as c_int;
            }
            let spent = millis().wrapping_sub(start);
            let over = if timeout_ms == 0 {
                budget == 0
            } else {
                spent >= timeout_ms
            };
            if read_once && over {
                return self.idle();
            }
            let wait = timeout_ms.saturating_sub(spent);
            let n = match read_hook(&self.io, self.rx.chunk_mut(), wait) {
                Ok(0) => return self.idle(),
                Ok(n) => n,
                Err(()) => return self.fail(),
            };
            read_once = true;
            if self.rx.filled(n, &mut self.stats).is_err() {
                return self.fail();
            }
        }
    }

    /// Raw: the bytes that are there, up to the end of the current frame (the library puts
    /// the frames together). The first byte of a frame may take `timeout_ms`; once a frame
    /// has started, its next byte must come within stall_ms of the last (a wait here is
    /// cut to what is left of that), else the stream is out of step: -1. A header that
    /// starts no frame is -1 as well.
    fn recv_raw(&mut self, buf: &mut [u8], timeout_ms: u32) -> c_int {
        let stall = self.io.stall_ms;
        let mut wait = timeout_ms;
        if self.raw.have > 0 {
            // Bytes already waiting count even after a long pause of the caller's.
            wait = wait.min(stall.saturating_sub(millis().wrapping_sub(self.raw.last)));
        }
        let left = usize::from(self.raw.need.saturating_sub(self.raw.have));
        let Some(part) = buf.get_mut(..left.min(buf.len())).filter(|p| !p.is_empty()) else {
            return -1; // no room at all: the caller's mistake, the stream is still in step
        };
        let n = match read_hook(&self.io, part, wait) {
            Ok(0) if self.raw.have == 0 => return self.idle(),
            Ok(0) if millis().wrapping_sub(self.raw.last) >= stall => return self.stalled(),
            Ok(0) => return 0,
            Ok(n) => n,
            Err(()) => return self.fail(),
        };
        self.stats.bytes_rx = self.stats.bytes_rx.wrapping_add(n as u32);
        let r = &mut self.raw;
        r.last = millis();
        let at = usize::from(r.have);
        for (i, b) in part.iter().take(n).enumerate() {
            if let Some(h) = r.head.get_mut(at + i) {
                *h = *b;
            }
        }
        r.have = (at + n) as u16; // at most `need`, a frame's length
        if usize::from(r.have) == HEADER_LEN && usize::from(r.need) == HEADER_LEN {
            // Through the exported usmp_frame_size rather than frame::wire_len, so that
            // a link without this transport inlines the core's code as it did before.
            // SAFETY: `head` holds HEADER_LEN bytes.
            let total = unsafe { crate::ffi::usmp_frame_size(r.head.as_ptr(), HEADER_LEN) };
            match u16::try_from(total) {
                Ok(t) if usize::from(t) >= HEADER_LEN => r.need = t,
                _ => return self.fail(), // not a frame start: out of step
            }
        }
        if r.have >= r.need {
            *r = RawRx::new();
            self.stats.frames_rx = self.stats.frames_rx.wrapping_add(1);
        }
        n as c_int
    }

    /// A frame stopped coming in mid-way for `stall_ms`.
    fn stalled(&mut self) -> c_int {
        self.stats.stalls = self.stats.stalls.wrapping_add(1);
        self.fail()
    }
}

/// `recv_timeout` of the UART transport.
///
/// # Safety
/// Called by the library with a transport set up by `usmp_transport_uart_init`.
unsafe extern "C" fn uart_recv_timeout(
    t: *mut usmp_transport_t,
    buf: *mut u8,
    max_len: usize,
    timeout_ms: u32,
) -> c_int {
    // SAFETY: caller contract.
    let Some(u) = (unsafe { ctx_of(t) }) else {
        return -1;
    };
    if !u.open || buf.is_null() {
        return -1;
    }
    // SAFETY: the library passes a writable buffer of max_len bytes.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf, max_len) };
    if u.io.framing == USMP_UART_FRAMING_RAW {
        u.recv_raw(buf, timeout_ms)
    } else {
        u.recv_cobs(buf, timeout_ms)
    }
}

/// `recv`: `recv_timeout` with the context's idle timeout.
///
/// # Safety
/// As [`uart_recv_timeout`].
unsafe extern "C" fn uart_recv(t: *mut usmp_transport_t, buf: *mut u8, max_len: usize) -> c_int {
    // SAFETY: caller contract.
    let wait = match unsafe { ctx_of(t) } {
        Some(u) => u.io.recv_timeout_ms,
        None => return -1,
    };
    // SAFETY: passed on.
    unsafe { uart_recv_timeout(t, buf, max_len, wait) }
}

/// `send`: one frame (COBS: one framed datagram).
///
/// # Safety
/// As [`uart_recv_timeout`]; `data` readable for `len` bytes.
unsafe extern "C" fn uart_send(t: *mut usmp_transport_t, data: *const u8, len: usize) -> c_int {
    // SAFETY: caller contract.
    let Some(u) = (unsafe { ctx_of(t) }) else {
        return -1;
    };
    if !u.open || data.is_null() || len == 0 || len > frame::MAX_FRAME {
        return -1;
    }
    // SAFETY: readable for len bytes per the contract.
    let data = unsafe { core::slice::from_raw_parts(data, len) };
    let ok = if u.io.framing == USMP_UART_FRAMING_RAW {
        write_hook(&u.io, data).map(|()| {
            u.stats.bytes_tx = u.stats.bytes_tx.wrapping_add(len as u32);
            u.stats.frames_tx = u.stats.frames_tx.wrapping_add(1);
        })
    } else {
        let io = &u.io;
        send_with(data, &mut u.stats, |p| write_hook(io, p))
    };
    match ok {
        Ok(()) => 0,
        Err(()) => {
            u.stats.stalls = u.stats.stalls.wrapping_add(1);
            u.fail()
        }
    }
}

/// `available`: buffered bytes, or what the hook says.
///
/// # Safety
/// As [`uart_recv_timeout`].
unsafe extern "C" fn uart_available(t: *mut usmp_transport_t) -> c_int {
    // SAFETY: caller contract.
    let Some(u) = (unsafe { ctx_of(t) }) else {
        return 0;
    };
    if !u.open {
        return 0;
    }
    if u.rx.pending() {
        return 1;
    }
    match u.io.available {
        // SAFETY: the application's hook.
        Some(f) => i32::from(unsafe { f(u.io.user) } > 0),
        None => 0,
    }
}

/// `close`: stops sending and receiving until `reconnect` (the port stays open).
///
/// # Safety
/// As [`uart_recv_timeout`].
unsafe extern "C" fn uart_close(t: *mut usmp_transport_t) {
    // SAFETY: caller contract.
    if let Some(u) = unsafe { ctx_of(t) } {
        u.open = false;
        u.rx.reset();
        u.raw = RawRx::new();
    }
}

/// `reconnect`: a serial line has nothing to dial: start over with nothing buffered.
///
/// # Safety
/// As [`uart_recv_timeout`].
unsafe extern "C" fn uart_reconnect(t: *mut usmp_transport_t) -> c_int {
    // SAFETY: caller contract.
    match unsafe { ctx_of(t) } {
        Some(u) => {
            u.rx.reset();
            u.raw = RawRx::new();
            u.open = true;
            0
        }
        None => -1,
    }
}

/// `destroy`: closed for good; the `close` hook runs; `t->ctx` becomes NULL.
///
/// # Safety
/// As [`uart_recv_timeout`].
unsafe extern "C" fn uart_destroy(t: *mut usmp_transport_t) {
    // SAFETY: caller contract.
    if let Some(u) = unsafe { ctx_of(t) } {
        u.open = false;
        u.rx.reset();
        u.raw = RawRx::new();
        if let Some(f) = u.io.close {
            // SAFETY: the application's hook.
            unsafe { f(u.io.user) };
        }
    }
    // SAFETY: caller contract.
    if let Some(t) = unsafe { t.as_mut() } {
        t.ctx = core::ptr::null_mut();
    }
}

/// A UART transport over the application's byte hooks, in caller storage (no heap).
/// Copies `*io` into `ctx->io` (0 settings become the defaults), zeroes the counters, and
/// fills in every member of `*t`: with `USMP_UART_FRAMING_COBS` it is a datagram
/// transport (`flags = USMP_TRANSPORT_DATAGRAM`; the library acknowledges, retransmits
/// and drops damaged frames), with `USMP_UART_FRAMING_RAW` a byte stream
/// (`flags = USMP_TRANSPORT_BYTES`).
///
/// `recv` waits up to `recv_timeout_ms` (`recv_timeout`: the given time; 0 = do not wait,
/// for `usmp_nb_*`) and returns 0 when nothing came. COBS: one whole datagram, never part
/// of one (a partial datagram is kept for the next call); bytes that are no datagram are
/// dropped and counted (`stats.dropped`); -1 only when the read hook fails. A poll
/// (timeout 0) decodes at most two datagrams' worth: a line that never pauses cannot hold
/// it.
/// Raw (`flags = USMP_TRANSPORT_BYTES`): the bytes that are there, at most up to the end of
/// the frame under way (the library finds the frames, `USMP_FRAME_TIMEOUT_MS` per frame).
/// The transport follows the frames too: once one has started, its next byte must come
/// within `stall_ms` of the last; a stall or a header that starts no frame is -1 and the
/// transport stays closed until `reconnect` (the stream is out of step).
/// `send` writes one frame (COBS: `00`, the encoded frame, `00`; the write hook sees
/// pieces of up to 32 bytes). `close` stops the transport, `reconnect` starts it again
/// with nothing buffered, `destroy` calls the `close` hook and sets `t->ctx = NULL`.
///
/// Returns `USMP_OK`, or `USMP_ERR_INVALID_ARG` (nothing changed) for a NULL pointer,
/// a missing read or write hook, or an unknown framing.
///
/// # Safety
/// `t`, `ctx` and `io` null or valid; `*ctx` must outlive the transport and stay in place.
#[no_mangle]
pub unsafe extern "C" fn usmp_transport_uart_init(
    t: *mut usmp_transport_t,
    ctx: *mut usmp_uart_ctx_t,
    io: *const usmp_uart_io_t,
) -> c_int {
    if t.is_null() || ctx.is_null() {
        return Error::InvalidArg.code();
    }
    // SAFETY: non-null and valid per the contract.
    let Some(io) = (unsafe { io.as_ref() }).copied() else {
        return Error::InvalidArg.code();
    };
    if io.read.is_none()
        || io.write.is_none()
        || !matches!(io.framing, USMP_UART_FRAMING_COBS | USMP_UART_FRAMING_RAW)
    {
        return Error::InvalidArg.code();
    }
    let mut io = io;
    if io.recv_timeout_ms == 0 {
        io.recv_timeout_ms = USMP_UART_DEFAULT_RECV_TIMEOUT_MS;
    }
    if io.stall_ms == 0 {
        io.stall_ms = USMP_UART_DEFAULT_STALL_MS;
    }
    let datagram = io.framing == USMP_UART_FRAMING_COBS;
    // SAFETY: non-null, aligned and writable per the contract. Field by field: the old
    // contents may be uninitialised, and the byte buffers need no zeroing (never read
    // before written), which also keeps memset out of the link.
    unsafe {
        core::ptr::addr_of_mut!((*ctx).io).write(io);
        core::ptr::addr_of_mut!((*ctx).stats).write(UartStats::default());
        core::ptr::addr_of_mut!((*ctx).open).write(true);
        RxState::init_at(core::ptr::addr_of_mut!((*ctx).rx));
        core::ptr::addr_of_mut!((*ctx).raw).write(RawRx::new());
    }
    // SAFETY: as above.
    unsafe {
        t.write(usmp_transport_t {
            send: Some(uart_send),
            recv: Some(uart_recv),
            close: Some(uart_close),
            reconnect: Some(uart_reconnect),
            available: Some(uart_available),
            destroy: Some(uart_destroy),
            ctx: ctx.cast::<c_void>(),
            flags: if datagram {
                USMP_TRANSPORT_DATAGRAM
            } else {
                USMP_TRANSPORT_BYTES
            },
            recv_timeout: Some(uart_recv_timeout),
        });
    }
    0
}
