//! The C UART transport (src/uart/capi.rs: `usmp_transport_uart_init`) through its
//! `usmp_transport_t` callbacks, over in-memory byte hooks and the virtual clock of the
//! test port hooks: argument checks, COBS datagrams split across reads, garbage and partial
//! datagrams, a flood that never pauses, a failing port, polls (timeout 0) that return at
//! once and never hand on part of a datagram, the raw framing as a byte stream
//! (`USMP_TRANSPORT_BYTES`) and its out-of-step paths (a header that starts no frame, a
//! stall) with reconnect; and the raw framing under both APIs against the in-process
//! gateway (`usmp_nb_*`: no read ever allowed to wait).
//! The whole path with the real gateway is tests/stm32/test_stm32_bridge.py and
//! tests/stm32/test_stm32_superloop.py.
#![cfg(all(feature = "uart", feature = "capi"))]

#[path = "common/nb.rs"]
mod nb_api;
#[path = "common/port.rs"]
mod port;
#[path = "common/scripted.rs"]
mod scripted;

use std::collections::VecDeque;
use std::ffi::{c_int, c_void};

use nb_api::{nb_echo, new_nb, poll, poll_until};
use scripted::Gateway;
use usmp::ffi::{
    usmp_close, usmp_connect, usmp_event_kind_t, usmp_nb_close, usmp_nb_connect, usmp_recv,
    usmp_send, usmp_t, usmp_transport_t, USMP_TRANSPORT_BYTES, USMP_TRANSPORT_DATAGRAM,
};
use usmp::frame::{self, FrameType, MAX_FRAME};
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
    assert_eq!(
        raw.t.flags, USMP_TRANSPORT_BYTES,
        "raw framing is a byte stream that returns what is there"
    );
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
fn cobs_poll_returns_at_once_and_never_part_of_a_datagram() {
    // The datagram arrives a byte at a time between polls (timeout 0, as usmp_nb_poll
    // reads): no poll waits, none returns anything until the datagram is whole.
    let mut u = open(USMP_UART_FRAMING_COBS, 32);
    let a = frame_of(300, 1);
    let w = wire(&a);
    let mut buf = [0u8; MAX_FRAME];
    let t0 = port::now();
    for (i, b) in w.iter().enumerate() {
        u.feed(&[*b]);
        let n = u.recv(&mut buf, 0);
        if i + 1 < w.len() {
            assert_eq!(n, 0, "byte {i} of {}: part of a datagram came out", w.len());
        } else {
            assert_eq!(
                &buf[..n as usize],
                &a[..],
                "the whole datagram, at its last byte"
            );
        }
    }
    assert_eq!(u.recv(&mut buf, 0), 0);
    assert_eq!(port::now(), t0, "a poll waited");
}

/// Polls (timeout 0) until one returns 0 or less: the pieces handed on, and that last code.
fn drain_raw(u: &mut Uart, buf: &mut [u8]) -> (Vec<Vec<u8>>, c_int) {
    let mut pieces = Vec::new();
    loop {
        let n = u.recv(buf, 0);
        if n <= 0 {
            return (pieces, n);
        }
        pieces.push(buf[..n as usize].to_vec());
    }
}

#[test]
fn raw_hands_on_the_bytes_that_are_there() {
    for max_read in [1, 7, 64, 1000] {
        let mut u = open(USMP_UART_FRAMING_RAW, max_read);
        let a = frame_of(300, 1);
        let b = frame_of(0, 2);
        let mut buf = [0u8; MAX_FRAME];
        let t0 = port::now();
        u.feed(&a[..100]);
        let (first, rc) = drain_raw(&mut u, &mut buf);
        assert_eq!(
            (first.concat(), rc),
            (a[..100].to_vec(), 0),
            "max_read {max_read}"
        );
        u.feed(&a[100..]);
        u.feed(&b);
        let (rest, rc) = drain_raw(&mut u, &mut buf);
        assert_eq!(rc, 0);
        assert_eq!(port::now(), t0, "a poll waited");
        // The bytes as they came, no piece across the end of a frame.
        let mut at = 100;
        for p in &rest {
            assert!(p.len() <= max_read);
            assert!(
                at >= a.len() || at + p.len() <= a.len(),
                "a piece crossed a frame's end"
            );
            at += p.len();
        }
        assert_eq!(
            [first.concat(), rest.concat()].concat(),
            [a.clone(), b].concat()
        );
        let s = u.ctx.stats;
        assert_eq!((s.frames_rx, s.bytes_rx, s.failures), (2, 324, 0));
        // A short buffer gets part of a frame, the next call the rest.
        u.feed(&frame_of(100, 3));
        let n = u.recv(&mut buf[..5], 0);
        assert_eq!(n as usize, 5.min(max_read));
        assert!(u.ctx.open);
    }
    let mut u = open(USMP_UART_FRAMING_RAW, 7);
    let a = frame_of(10, 1);
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
    assert_eq!(u.recv(&mut buf, 0), -1, "closed");
    let reconnect = u.t.reconnect.unwrap();
    // SAFETY: the transport's own callback.
    assert_eq!(unsafe { reconnect(&mut u.t) }, 0);
    u.line.rx.clear();
    u.feed(&frame_of(5, 1));
    assert_eq!(
        u.recv(&mut buf, 100),
        12,
        "the header first: it says how long the frame is"
    );
    assert_eq!(u.recv(&mut buf, 100), 5);
    assert_eq!(u.ctx.stats.frames_rx, 1);
    // A stall in mid-frame, waited out in a blocking read: the wait is cut to the stall
    // limit, then -1.
    let mut u = open(USMP_UART_FRAMING_RAW, 64);
    u.feed(&frame_of(100, 1)[..40]);
    assert_eq!(u.recv(&mut buf, 100), 12);
    assert_eq!(u.recv(&mut buf, 100), 28);
    let t0 = port::now();
    assert_eq!(u.recv(&mut buf, 60_000), -1);
    assert_eq!((u.ctx.stats.stalls, u.ctx.stats.failures), (1, 1));
    assert_eq!(port::now().wrapping_sub(t0), USMP_UART_DEFAULT_STALL_MS);
    assert!(!u.ctx.open);
    // ... and seen by polls: 0 until the stall limit has passed, then -1.
    let mut u = open(USMP_UART_FRAMING_RAW, 64);
    u.feed(&frame_of(100, 1)[..40]);
    assert_eq!(drain_raw(&mut u, &mut buf).1, 0);
    port::advance(USMP_UART_DEFAULT_STALL_MS - 1);
    assert_eq!(u.recv(&mut buf, 0), 0);
    port::advance(1);
    assert_eq!(u.recv(&mut buf, 0), -1);
    assert_eq!(u.ctx.stats.stalls, 1);
    // Bytes that waited while the caller was busy are no stall.
    let mut u = open(USMP_UART_FRAMING_RAW, 64);
    let f = frame_of(100, 1);
    u.feed(&f[..40]);
    assert_eq!(drain_raw(&mut u, &mut buf).1, 0);
    u.feed(&f[40..]);
    port::advance(USMP_UART_DEFAULT_STALL_MS * 3);
    assert_eq!(u.recv(&mut buf, 0), 64);
    assert_eq!(u.recv(&mut buf, 0), 8);
    assert_eq!((u.ctx.stats.frames_rx, u.ctx.stats.stalls), (1, 0));
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

/// A serial line to the in-process gateway: the device's reads get the gateway's frames as
/// bytes in pieces of varying size; each write is one frame for the gateway.
struct GwLine {
    g: Box<Gateway>,
    rx: VecDeque<u8>,
    pieces: [usize; 10],
    k: usize,
    /// The longest wait a read was allowed.
    max_wait: u32,
    /// Frames the gateway sent.
    frames: u32,
}

unsafe extern "C" fn gw_read(
    user: *mut c_void,
    buf: *mut u8,
    len: usize,
    timeout_ms: u32,
) -> c_int {
    // SAFETY: the user pointer of these hooks is a GwLine.
    let l = unsafe { &mut *user.cast::<GwLine>() };
    l.max_wait = l.max_wait.max(timeout_ms);
    while let Some(f) = l.g.to_device.pop_front() {
        l.rx.extend(f);
        l.frames += 1;
    }
    if l.rx.is_empty() {
        port::advance(timeout_ms);
        return 0;
    }
    let n = len.min(l.rx.len()).min(l.pieces[l.k % l.pieces.len()]);
    l.k += 1;
    for i in 0..n {
        // SAFETY: the transport gives `len` writable bytes.
        unsafe { *buf.add(i) = l.rx.pop_front().unwrap() };
    }
    n as c_int
}

unsafe extern "C" fn gw_write(user: *mut c_void, data: *const u8, len: usize, _t: u32) -> c_int {
    // SAFETY: as above; `len` readable bytes.
    let (l, d) = unsafe {
        (
            &mut *user.cast::<GwLine>(),
            std::slice::from_raw_parts(data, len),
        )
    };
    assert_eq!(
        frame::wire_len(d),
        Ok(len),
        "raw framing writes one whole frame"
    );
    l.g.on_device_frame(d);
    0
}

fn gw_line() -> Box<GwLine> {
    Box::new(GwLine {
        g: Gateway::new(Version::V2, PSK),
        rx: VecDeque::new(),
        pieces: [1, 3, 12, 5, 64, 2, 200, 7, 11, 492],
        k: 0,
        max_wait: 0,
        frames: 0,
    })
}

const PSK: &[u8] = b"usmp-dev-psk-change-me-before-prod";

fn gw_uart(line: &mut GwLine) -> (usmp_transport_t, Box<usmp_uart_ctx_t>, Box<usmp_t>) {
    let io = usmp_uart_io_t {
        read: Some(gw_read),
        write: Some(gw_write),
        available: None,
        close: None,
        user: (line as *mut GwLine).cast(),
        framing: USMP_UART_FRAMING_RAW,
        recv_timeout_ms: 0,
        stall_ms: 0,
    };
    // SAFETY: all-zero is a valid transport, context and usmp_t (as in C).
    let (mut t, mut u, mut c): (usmp_transport_t, Box<usmp_uart_ctx_t>, Box<usmp_t>) = unsafe {
        (
            std::mem::zeroed(),
            Box::new(std::mem::zeroed()),
            Box::new(std::mem::zeroed()),
        )
    };
    // SAFETY: valid pointers.
    assert_eq!(unsafe { usmp_transport_uart_init(&mut t, &mut *u, &io) }, 0);
    c.psk = PSK.as_ptr();
    c.psk_len = PSK.len();
    c.protocol_version = Version::V2 as u8;
    (t, u, c)
}

fn message(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 13 + n) as u8).collect()
}

#[test]
fn raw_uart_under_the_nonblocking_api_never_waits() {
    port::auto_tick(0);
    let mut line = gw_line();
    let (mut t, u, mut c) = gw_uart(&mut line);
    let mut nb = new_nb();
    let mut rx = vec![0u8; 1808];
    // SAFETY: everything outlives the session.
    let rc = unsafe { usmp_nb_connect(&mut *c, &mut *nb, &mut t, rx.as_mut_ptr(), 1808) };
    assert_eq!(rc, 0);
    poll_until(
        &mut c,
        &mut nb,
        usmp_event_kind_t::USMP_EVENT_CONNECTED,
        1000,
    );
    for n in [1808, 1, 453, 0, 1000] {
        let m = message(n);
        assert_eq!(nb_echo(&mut c, &mut nb, &rx, &m, 1000), m, "echo of {n}");
    }
    // The gateway's PING, answered inside the polls.
    line.g.send_control(FrameType::Ping);
    for _ in 0..50 {
        assert_eq!(
            poll(&mut c, &mut nb).kind,
            usmp_event_kind_t::USMP_EVENT_NONE
        );
    }
    assert_eq!(line.g.pongs, 1);
    // SAFETY: the session's pointers.
    unsafe { usmp_nb_close(&mut *c, &mut *nb) };
    assert!(line.g.closed_by_device, "BYE");
    assert_eq!(
        line.max_wait, 0,
        "a read of the non-blocking API was allowed to wait"
    );
    let s = u.stats;
    assert_eq!((s.frames_rx, s.stalls, s.failures), (line.frames, 0, 0));
}

#[test]
fn raw_uart_under_the_blocking_api() {
    port::auto_tick(1);
    let mut line = gw_line();
    let (mut t, u, mut c) = gw_uart(&mut line);
    // SAFETY: everything outlives the session.
    unsafe {
        assert_eq!(usmp_connect(&mut *c, &mut t), 0);
        let mut buf = vec![0u8; 1808];
        for n in [1808, 1, 453] {
            let m = message(n);
            assert_eq!(usmp_send(&mut *c, m.as_ptr(), n as u16), 0);
            let got = usmp_recv(&mut *c, buf.as_mut_ptr(), 1808);
            assert_eq!(&buf[..got as usize], &m[..], "echo of {n}");
        }
        usmp_close(&mut *c);
    }
    port::auto_tick(0);
    assert!(line.g.closed_by_device, "BYE");
    assert_eq!((u.stats.frames_rx, u.stats.failures), (line.frames, 0));
}
