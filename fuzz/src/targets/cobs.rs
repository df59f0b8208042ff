//! COBS framing of serial links: the `cobs::Decoder` on arbitrary line bytes, and the C
//! UART transport (`usmp_transport_uart_init`, COBS and raw framing) reading them through
//! its byte hook in fuzzer-chosen pieces. Input: selector byte (bit 0: also run the C
//! transport; bit 1: its framing is raw), piece-size byte, then the line bytes.
//!
//! Invariants: byte-at-a-time and `feed` give the same events; every datagram fits
//! `MAX_DATAGRAM`, re-encodes without inner zeros and decodes back to itself; a good
//! datagram after any input is found (resynchronisation); the transport never returns more
//! than the buffer, never fails on COBS input (only its hook could make it), and its
//! counters add up (raw framing, a byte stream: the bytes handed on are the bytes read).
use std::ffi::{c_int, c_void};

use crate::Input;
use usmp::cobs::{encode, encoded_len_max, Decoder, Event, MAX_DATAGRAM};
use usmp::ffi::usmp_transport_t;
use usmp::frame::MAX_FRAME;
use usmp::uart::capi::{
    usmp_transport_uart_init, usmp_uart_ctx_t, usmp_uart_io_t, USMP_UART_FRAMING_COBS,
    USMP_UART_FRAMING_RAW,
};

fn wire(d: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; encoded_len_max(d.len())];
    let n = encode(d, &mut out).expect("encode into encoded_len_max");
    out.truncate(n);
    out
}

fn events_bytewise(line: &[u8]) -> Vec<Result<Vec<u8>, ()>> {
    let mut dec = Decoder::new();
    let mut ev = vec![];
    for &b in line {
        match dec.push(b) {
            Some(Event::Datagram(n)) => ev.push(Ok(dec.datagram(n).to_vec())),
            Some(Event::Dropped(_)) => ev.push(Err(())),
            None => {}
        }
    }
    ev
}

fn decoder(line: &[u8], piece: usize) {
    let by_byte = events_bytewise(line);
    let mut dec = Decoder::new();
    let mut fed = vec![];
    for part in line.chunks(piece) {
        let mut rest = part;
        while !rest.is_empty() {
            let (used, ev) = dec.feed(rest);
            assert!(used >= 1 && used <= rest.len());
            rest = &rest[used..];
            match ev {
                Some(Event::Datagram(n)) => fed.push(Ok(dec.datagram(n).to_vec())),
                Some(Event::Dropped(_)) => fed.push(Err(())),
                None => assert!(rest.is_empty(), "feed stops only at an event"),
            }
        }
    }
    assert_eq!(by_byte, fed, "feed and push disagree");
    for d in by_byte.iter().flatten() {
        assert!(d.len() <= MAX_DATAGRAM);
        let w = wire(d);
        assert!(w.len() <= encoded_len_max(d.len()));
        assert_eq!(w.iter().filter(|&&b| b == 0).count(), 2);
        assert_eq!(events_bytewise(&w), vec![Ok(d.clone())]);
    }
    // Whatever came before, the next good datagram is found.
    let mut more = line.to_vec();
    more.extend(wire(b"\x01\x00resync"));
    assert_eq!(
        events_bytewise(&more).last(),
        Some(&Ok(b"\x01\x00resync".to_vec()))
    );
}

struct Line<'a> {
    data: &'a [u8],
    piece: usize,
}

unsafe extern "C" fn read(user: *mut c_void, buf: *mut u8, len: usize, _t: u32) -> c_int {
    // SAFETY: the user pointer is the `Line` of `transport` below.
    let l = unsafe { &mut *user.cast::<Line>() };
    let n = len.min(l.piece).min(l.data.len());
    // SAFETY: `len` writable bytes (the transport's contract with its hook).
    unsafe { std::ptr::copy_nonoverlapping(l.data.as_ptr(), buf, n) };
    l.data = &l.data[n..];
    n as c_int
}

unsafe extern "C" fn write(_u: *mut c_void, _d: *const u8, _n: usize, _t: u32) -> c_int {
    0
}

fn transport(line: &[u8], piece: usize, raw: bool) {
    let mut l = Line { data: line, piece };
    let lp: *mut Line = &mut l;
    let io = usmp_uart_io_t {
        read: Some(read),
        write: Some(write),
        available: None,
        close: None,
        user: lp.cast(),
        framing: if raw {
            USMP_UART_FRAMING_RAW
        } else {
            USMP_UART_FRAMING_COBS
        },
        recv_timeout_ms: 0,
        stall_ms: 0,
    };
    // SAFETY: all-zero is a valid transport and context.
    let mut t: usmp_transport_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut ctx: usmp_uart_ctx_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers; `l` and `ctx` outlive the transport.
    assert_eq!(
        unsafe { usmp_transport_uart_init(&mut t, &mut ctx, &io) },
        0
    );
    let recv = t.recv_timeout.expect("recv_timeout");
    let mut buf = [0u8; MAX_FRAME];
    let (mut got, mut got_bytes, mut failed) = (0u32, 0u32, false);
    // Every call makes progress or ends the line: bounded by its length.
    for _ in 0..=line.len() + 2 {
        let cap = if raw { MAX_FRAME } else { buf.len() };
        // SAFETY: the transport's callback, a writable buffer of `cap` bytes.
        let n = unsafe { recv(&mut t, buf.as_mut_ptr(), cap, 0) };
        assert!(n <= cap as c_int);
        if n > 0 {
            got += 1;
            got_bytes += n as u32;
        }
        if n < 0 {
            assert!(raw, "COBS fails only when its hook does");
            failed = true;
            break;
        }
        // SAFETY: `l` is alive and only reached through `lp` while the transport runs.
        let drained = unsafe { (&*lp).data.is_empty() };
        if n == 0 && drained && !ctx.rx.pending() {
            break;
        }
    }
    let s = ctx.stats;
    if raw {
        // A byte stream: the bytes as they came, at most a frame's end per call (the header
        // that ends it out of step is read but not handed on).
        assert!(s.bytes_rx == got_bytes || (failed && s.bytes_rx > got_bytes));
        assert!(s.frames_rx <= got && s.frames_rx as usize * 12 <= line.len());
    } else {
        assert_eq!(s.frames_rx, got);
    }
    assert!(s.bytes_rx as usize <= line.len());
}

pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let sel = inp.u8();
    let piece = usize::from(inp.u8() % 64) + 1;
    let line = inp.take(usize::MAX);
    decoder(line, piece);
    if sel & 1 == 1 {
        transport(line, piece, sel & 2 == 2);
    }
}
