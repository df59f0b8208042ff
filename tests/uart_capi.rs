//! The C UART transport (src/uart/capi.rs: `usmp_transport_uart_init`) through its
//! `usmp_transport_t` callbacks, over in-memory byte hooks and the virtual clock of the
//! test port hooks: argument checks, COBS datagrams split across reads, garbage and partial
//! datagrams, a flood that never pauses, a failing port, and the raw framing's out-of-step
//! paths (a header that starts no frame, a stall, a frame too large) with reconnect.
//! The whole path with the real gateway is tests/stm32/test_stm32_bridge.py.
#![cfg(all(feature = "uart", feature = "capi"))]

#[path = "common/port.rs"]
mod port;

use std::collections::VecDeque;
use std::ffi::{c_int, c_void};

use usmp::ffi::{usmp_transport_t, USMP_TRANSPORT_DATAGRAM};
use usmp::frame::{self, MAX_FRAME};
use usmp::uart::capi::*;
use usmp::Version;

/// One end of a serial line: what the device reads, what it wrote.
#[derive(Default)]
struct Line {
    rx: VecDeque<u8>,
    tx: Vec<u8>,
    max_read: usize,
    fail: bool,
    closed: bool,
}

fn line<'a>(user: *mut c_void) -> &'a mut Line {
    // SAFETY: every transport in this file is set up with a `Line` as user.
    unsafe { &mut *user.cast::<Line>() }
}

/// Reads what is there (at most `max_read`); with nothing there the wait "passes" on the
/// virtual clock and 0 comes back.
unsafe extern "C" fn read(user: *mut c_void, buf: *mut u8, len: usize, timeout_ms: u32) -> c_int {
    let l = line(user);
    if l.fail {
        return -1;
    }
    if l.rx.is_empty() {
        port::advance(timeout_ms);
        return 0;
    }
    let n = len.min(l.rx.len()).min(l.max_read.max(1));
    for i in 0..n {
        // SAFETY: the transport gives `len` writable bytes.
        unsafe { *buf.add(i) = l.rx.pop_front().unwrap() };
    }
    n as c_int
}

unsafe extern "C" fn write(user: *mut c_void, data: *const u8, len: usize, _t: u32) -> c_int {
    let l = line(user);
    if l.fail {
        return -1;
    }
    // SAFETY: the transport gives `len` readable bytes.
    l.tx.extend_from_slice(unsafe { std::slice::from_raw_parts(data, len) });
    0
}

unsafe extern "C" fn close(user: *mut c_void) {
    line(user).closed = true;
}

struct Uart {
    t: usmp_transport_t,
    ctx: Box<usmp_uart_ctx_t>,
    line: Box<Line>,
}

fn io(line: &mut Line, framing: u8) -> usmp_uart_io_t {
    usmp_uart_io_t {
        read: Some(read),
        write: Some(write),
        available: None,
        close: Some(close),
        user: (line as *mut Line).cast(),
        framing,
        recv_timeout_ms: 0,
        stall_ms: 0,
    }
}

fn open(framing: u8, max_read: usize) -> Uart {
    let mut line = Box::new(Line {
        max_read,
        ..Line::default()
    });
    // SAFETY: all-zero is a valid context and transport (integers, false, None, null).
    let mut ctx: Box<usmp_uart_ctx_t> = Box::new(unsafe { std::mem::zeroed() });
    ctx.stats.frames_rx = 77; // left over from an earlier use: init must reset it
                              // SAFETY: as above.
    let mut t: usmp_transport_t = unsafe { std::mem::zeroed() };
    let io = io(&mut line, framing);
    // SAFETY: valid pointers.
    assert_eq!(
        unsafe { usmp_transport_uart_init(&mut t, &mut *ctx, &io) },
        0
    );
    assert_eq!(ctx.stats.frames_rx, 0, "init zeroes the counters");
    Uart { t, ctx, line }
}

impl Uart {
    fn recv(&mut self, buf: &mut [u8], ms: u32) -> c_int {
        let f = self.t.recv_timeout.unwrap();
        // SAFETY: the transport's own callback with a valid buffer.
        unsafe { f(&mut self.t, buf.as_mut_ptr(), buf.len(), ms) }
    }
    fn send(&mut self, d: &[u8]) -> c_int {
        let f = self.t.send.unwrap();
        // SAFETY: as above.
        unsafe { f(&mut self.t, d.as_ptr(), d.len()) }
    }
    fn feed(&mut self, bytes: &[u8]) {
        self.line.rx.extend(bytes);
    }
}

fn wire(d: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; usmp::cobs::encoded_len_max(d.len())];
    let n = usmp::cobs::encode(d, &mut out).unwrap();
    out.truncate(n);
    out
}

fn frame_of(len: usize, seq: u32) -> Vec<u8> {
    let mut out = vec![0u8; MAX_FRAME];
    let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
    let n = frame::encode(&mut out, Version::V2, 5, seq, &payload).unwrap();
    out.truncate(n);
    out
}

#[test]
fn init_checks_its_arguments() {
    let mut line = Line::default();
    // SAFETY: all-zero is a valid transport and context.
    let mut t: usmp_transport_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut ctx: usmp_uart_ctx_t = unsafe { std::mem::zeroed() };
    let good = io(&mut line, USMP_UART_FRAMING_COBS);
    let no_read = usmp_uart_io_t { read: None, ..good };
    let no_write = usmp_uart_io_t {
        write: None,
        ..good
    };
    let bad_framing = usmp_uart_io_t { framing: 7, ..good };
    // SAFETY: null or valid pointers, as the contract allows.
    unsafe {
        assert_eq!(
            usmp_transport_uart_init(std::ptr::null_mut(), &mut ctx, &good),
            -1
        );
        assert_eq!(
            usmp_transport_uart_init(&mut t, std::ptr::null_mut(), &good),
            -1
        );
        assert_eq!(
            usmp_transport_uart_init(&mut t, &mut ctx, std::ptr::null()),
            -1
        );
        for bad in [no_read, no_write, bad_framing] {
            assert_eq!(usmp_transport_uart_init(&mut t, &mut ctx, &bad), -1);
        }
        assert!(t.send.is_none(), "nothing changed on failure");
    }
}

#[test]
fn cobs_is_a_datagram_transport_with_defaults() {
    let mut u = open(USMP_UART_FRAMING_COBS, 32);
    assert_eq!(u.t.flags, USMP_TRANSPORT_DATAGRAM);
    assert!(u.t.recv_timeout.is_some() && u.t.reconnect.is_some());
    assert_eq!(u.ctx.io.recv_timeout_ms, USMP_UART_DEFAULT_RECV_TIMEOUT_MS);
    assert_eq!(u.ctx.io.stall_ms, USMP_UART_DEFAULT_STALL_MS);
    assert_eq!(u.send(&[1, 0, 2]), 0);
    assert_eq!(u.line.tx, [0, 2, 1, 2, 2, 0]);
    assert_eq!((u.ctx.stats.frames_tx, u.ctx.stats.bytes_tx), (1, 6));
    assert_eq!(u.send(&[]), -1, "an empty frame is no frame");
    assert_eq!(u.send(&[1u8; MAX_FRAME + 1]), -1);
    let raw = open(USMP_UART_FRAMING_RAW, 32);
    assert_eq!(raw.t.flags, 0, "raw framing is a byte stream");
}

#[test]
fn cobs_recv_across_reads_garbage_and_partial_datagrams() {
    for max_read in [1, 5, 64] {
        let mut u = open(USMP_UART_FRAMING_COBS, max_read);
        let a = frame_of(100, 1);
        let b = frame_of(480, 2);
        u.feed(&[0x13, 0x42, 0x99]); // garbage before
        u.feed(&wire(&a));
        let wb = wire(&b);
        u.feed(&wb[..200]); // half of b
        let mut buf = [0u8; MAX_FRAME];
        let n = u.recv(&mut buf, 1000);
        assert_eq!(&buf[..n as usize], &a[..]);
        assert_eq!(u.recv(&mut buf, 1000), 0, "b is incomplete: nothing yet");
        u.feed(&wb[200..]);
        let n = u.recv(&mut buf, 1000);
        assert_eq!(&buf[..n as usize], &b[..], "the partial datagram was kept");
        let s = u.ctx.stats;
        assert_eq!(
            (s.frames_rx, s.dropped, s.failures),
            (2, 1, 0),
            "max_read {max_read}"
        );
        assert!(s.idle_timeouts >= 1);
    }
}

#[test]
fn cobs_poll_of_a_flood_returns() {
    let mut u = open(USMP_UART_FRAMING_COBS, 32);
    u.feed(&[0x55; 20_000]);
    let mut buf = [0u8; MAX_FRAME];
    assert_eq!(u.recv(&mut buf, 0), 0);
    assert!(
        u.line.rx.len() >= 20_000 - 2 * 496 - 32,
        "a poll decoded {} bytes",
        20_000 - u.line.rx.len()
    );
    // With a timeout, the flood cannot hold recv much past it.
    let t0 = port::now();
    port::auto_tick(1);
    assert_eq!(u.recv(&mut buf, 50), 0);
    port::auto_tick(0);
    assert!(port::now().wrapping_sub(t0) < 200);
}

#[test]
fn cobs_port_failure_is_reported() {
    let mut u = open(USMP_UART_FRAMING_COBS, 32);
    u.line.fail = true;
    let mut buf = [0u8; MAX_FRAME];
    assert_eq!(u.recv(&mut buf, 10), -1);
    assert_eq!(u.send(&[1, 2, 3]), -1);
    assert_eq!(u.ctx.stats.failures, 2);
    u.line.fail = false;
    u.feed(&wire(&frame_of(10, 1)));
    assert!(
        u.recv(&mut buf, 10) > 0,
        "COBS stays open: a later datagram gets through"
    );
}

#[test]
fn raw_reads_whole_frames() {
    let mut u = open(USMP_UART_FRAMING_RAW, 7);
    let a = frame_of(300, 1);
    u.feed(&a);
    u.feed(&frame_of(0, 2));
    let mut buf = [0u8; MAX_FRAME];
    assert_eq!(u.recv(&mut buf, 100), a.len() as c_int);
    assert_eq!(&buf[..a.len()], &a[..]);
    assert_eq!(u.recv(&mut buf, 100), 12);
    assert_eq!(u.recv(&mut buf, 100), 0);
    assert_eq!(u.send(&a), 0);
    assert_eq!(u.line.tx, a, "raw: the frame as it is");
}

#[test]
fn raw_out_of_step_closes_until_reconnect() {
    let mut buf = [0u8; MAX_FRAME];
    // A header that starts no frame.
    let mut u = open(USMP_UART_FRAMING_RAW, 64);
    u.feed(b"HTTP/1.1 400 Bad Request\r\n");
    assert_eq!(u.recv(&mut buf, 100), -1);
    assert!(!u.ctx.open);
    assert_eq!(u.send(&[1]), -1, "closed");
    let reconnect = u.t.reconnect.unwrap();
    // SAFETY: the transport's own callback.
    assert_eq!(unsafe { reconnect(&mut u.t) }, 0);
    u.line.rx.clear();
    u.feed(&frame_of(5, 1));
    assert_eq!(u.recv(&mut buf, 100), 17);
    // A stall in mid-frame.
    let mut u = open(USMP_UART_FRAMING_RAW, 64);
    u.feed(&frame_of(100, 1)[..40]);
    let t0 = port::now();
    assert_eq!(u.recv(&mut buf, 100), -1);
    assert_eq!((u.ctx.stats.stalls, u.ctx.stats.failures), (1, 1));
    assert!(port::now().wrapping_sub(t0) >= USMP_UART_DEFAULT_STALL_MS);
    // A frame larger than the buffer.
    let mut u = open(USMP_UART_FRAMING_RAW, 64);
    u.feed(&frame_of(100, 1));
    assert_eq!(u.recv(&mut buf[..50], 100), -1);
}

#[test]
fn destroy_closes_the_port() {
    let mut u = open(USMP_UART_FRAMING_COBS, 32);
    let destroy = u.t.destroy.unwrap();
    // SAFETY: the transport's own callback.
    unsafe { destroy(&mut u.t) };
    assert!(u.line.closed && u.t.ctx.is_null());
    let mut buf = [0u8; 16];
    assert_eq!(u.recv(&mut buf, 0), -1, "no context: -1, no crash");
    assert_eq!(u.send(&[1]), -1);
}
