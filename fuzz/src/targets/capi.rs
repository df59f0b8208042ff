//! The harness of the `capi` fuzz target (also replayed under Miri by `fuzz/tests/replay.rs`):
//! the C API driver (`usmp_connect`, `usmp_recv`, `usmp_send`, `usmp_ping`,
//! `usmp_keepalive_tick`, `usmp_rekey`, `usmp_reconnect`, `usmp_close`, copied and moved
//! contexts) over an in-process transport whose every answer comes from the fuzz input: raw
//! bytes (CRC optionally repaired), replies of a real responder with the vector inputs (so
//! the handshake can complete), frames the gateway session seals (messages fragment by
//! fragment, so PING/PONG/BYE/REKEY can land between fragments; optionally mutated), replays,
//! idle (0), hang-up (-1), bogus counts, send failures, port-hook failures. The binary defines
//! the port hooks (`port_hooks!`): the vector X25519 key, a clock that advances 100 ms a call.
//!
//! Invariants: no crash, hang, leak or sanitizer report; every return value is 0, a length
//! within the caller's buffer, or one of the named codes; a NOT_CONNECTED context says so.
//!
//! Input: cfg byte (bit 0: v1, bit 1: datagram transport, bit 2: repair CRCs of raw frames,
//! bit 3: EOF (not idle) once the input is used up, bit 4: acknowledge datagrams automatically,
//! bit 5: no `available` callback, bit 6: fixed retransmission timeout, bit 7: PSK from the
//! input), then API ops interleaved with the transport's answers.

use std::collections::{HashMap, VecDeque};
use std::ffi::{c_int, c_void, CStr};

use crate::{
    fix_crc, mutate, port, seal, version_from, Input, NONCE, PSK, SERVER_PRIV, SESSION_ID,
};
use usmp::datagram;
use usmp::ffi::*;
use usmp::frame::{FrameType, MAX_FRAME};
use usmp::handshake::{Responder, ResponderStep};
use usmp::session::{Session, MAX_DATA, MAX_MESSAGE};
use usmp::{Error, Version};

pub(crate) type Keys = ([u8; 32], [u8; 32]);
/// (version, HELLO, HELLO_ACK) -> (reply, established keys).
type Memo = HashMap<(u8, Vec<u8>, Option<Vec<u8>>), Option<(Vec<u8>, Option<Keys>)>>;

thread_local! {
    /// Responder answers by (version, HELLO, HELLO_ACK): X25519 dominates the cost of an
    /// execution, and the device's HELLO is nearly always the vector one.
    static MEMO: std::cell::RefCell<Memo> = std::cell::RefCell::new(vector_memo());
}

/// The vector handshake's frames (`tests/vectors/v*/handshake.json`): HELLO, CHALLENGE,
/// HELLO_ACK, SESSION_OK.
fn vector_frames(version: Version) -> Vec<Vec<u8>> {
    let json = match version {
        Version::V1 => include_str!("../../../tests/vectors/v1/handshake.json"),
        Version::V2 => include_str!("../../../tests/vectors/v2/handshake.json"),
    };
    let at = json.find("\"frames\"").expect("frames");
    json[at..]
        .split("\"hex\": \"")
        .skip(1)
        .take(4)
        .map(|t| {
            let h = &t[..t.find('"').expect("hex")];
            (0..h.len() / 2)
                .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex"))
                .collect()
        })
        .collect()
}

/// The responder's answers to the vector handshake, known without an X25519 (which takes
/// about a minute under Miri): CHALLENGE to the vector HELLO, SESSION_OK to its HELLO_ACK
/// (the vector's, and the library's, whose seq is 0). `check_vector_memo` (run by
/// `tests/replay.rs`) checks them against the responder.
fn vector_memo() -> Memo {
    let mut m = Memo::new();
    for version in [Version::V1, Version::V2] {
        let f = vector_frames(version);
        let (dev_tx, dev_rx) = crate::vector_keys(version);
        m.insert(
            (version as u8, f[0].clone(), None),
            Some((f[1].clone(), None)),
        );
        let mut ack0 = f[2].clone();
        ack0[4..8].fill(0);
        fix_crc(&mut ack0);
        for ack in [f[2].clone(), ack0] {
            let keys = Some((dev_rx, dev_tx));
            m.insert(
                (version as u8, f[0].clone(), Some(ack)),
                Some((f[3].clone(), keys)),
            );
        }
    }
    m
}

/// Panics unless every precomputed answer is the responder's.
pub fn check_vector_memo() {
    for ((v, hello, ack), want) in vector_memo() {
        let version = if v == Version::V1 as u8 {
            Version::V1
        } else {
            Version::V2
        };
        assert_eq!(
            respond(version, &hello, ack.as_deref()),
            want,
            "{version:?} {ack:02x?}"
        );
    }
}

/// What a real responder (vector key, nonce, session id and PSK) answers to `hello` (then to
/// `hello_ack`): the reply frame and, once established, the gateway's (tx, rx) keys.
pub(crate) fn responder_step(
    version: Version,
    hello: &[u8],
    hello_ack: Option<&[u8]>,
) -> Option<(Vec<u8>, Option<Keys>)> {
    let key = (version as u8, hello.to_vec(), hello_ack.map(<[u8]>::to_vec));
    if let Some(v) = MEMO.with(|m| m.borrow().get(&key).cloned()) {
        return v;
    }
    let v = respond(version, hello, hello_ack);
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() > 4096 {
            *m = vector_memo();
        }
        m.insert(key, v.clone());
    });
    v
}

fn respond(
    version: Version,
    hello: &[u8],
    hello_ack: Option<&[u8]>,
) -> Option<(Vec<u8>, Option<Keys>)> {
    let mut out = [0u8; MAX_FRAME];
    let mut r = Responder::new(version, PSK, &SERVER_PRIV, &NONCE, &SESSION_ID).expect("responder");
    let first = match r.receive(hello, &mut out) {
        Ok(ResponderStep::Send(n)) => Some((out[..n].to_vec(), None)),
        _ => None,
    };
    match (first, hello_ack) {
        (None, _) => None,
        (f, None) => f,
        (Some(_), Some(ack)) => match r.receive(ack, &mut out) {
            Ok(ResponderStep::Established(n, s)) => {
                Some((out[..n].to_vec(), Some((*s.tx_key(), *s.rx_key()))))
            }
            _ => None,
        },
    }
}

/// The fake gateway behind the transport.
struct Fx<'a> {
    inp: Input<'a>,
    version: Version,
    datagram: bool,
    repair: bool,
    tail_rc: c_int,
    auto_ack: bool,
    /// The responder's reply waiting to be chosen by the input.
    hs_reply: Option<Vec<u8>>,
    /// The HELLO the responder answered (its state is replayed from it, see `responder_step`).
    hello: Vec<u8>,
    gw: Option<Session>,
    /// Rest of the message the gateway is sending, fragment by fragment.
    outgoing: Vec<u8>,
    acks: VecDeque<Vec<u8>>,
    history: Vec<Vec<u8>>,
    sends: u32,
    fail_send_at: u32,
}

impl Fx<'_> {
    fn on_device_frame(&mut self, f: &[u8]) {
        if self.datagram && datagram::is_utack(f) {
            assert!(
                f.len() == datagram::UTACK_LEN || f.len() == datagram::UTACK_MAC_LEN,
                "UTACK of {} bytes",
                f.len()
            );
            return;
        }
        assert!(
            (12..=MAX_FRAME).contains(&f.len()),
            "library sent {} bytes",
            f.len()
        );
        let ty = f[3];
        let seq = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
        if self.datagram && self.auto_ack {
            let key = match (&self.gw, ty >= 5 && self.version == Version::V2) {
                (Some(g), true) => Some(*g.rx_key()),
                _ => None,
            };
            let mut a = [0u8; datagram::UTACK_MAC_LEN];
            let n = datagram::utack(ty, seq, key.as_ref(), &mut a);
            if self.acks.len() < 8 {
                self.acks.push_back(a[..n].to_vec());
            }
        }
        if ty == FrameType::Hello as u8 {
            self.gw = None;
            self.outgoing.clear();
            self.hello = f.to_vec();
            self.hs_reply = responder_step(self.version, &self.hello, None).map(|(r, _)| r);
            return;
        }
        if ty == FrameType::HelloAck as u8 {
            if let Some((reply, keys)) = responder_step(self.version, &self.hello, Some(f)) {
                self.hs_reply = Some(reply);
                self.gw = keys.map(|(tx, rx)| Session::new(self.version, &tx, &rx, &SESSION_ID));
            }
            self.hello.clear();
            return;
        }
        if let Some(g) = self.gw.as_mut() {
            let mut frame = f.to_vec();
            let mut msg = vec![0u8; MAX_MESSAGE];
            if let Err(Error::ClosedByPeer) = g.receive(&mut frame, &mut msg) {
                self.gw = None;
            }
        }
    }

    /// The gateway seals the next frame the input asks for.
    fn gateway_frame(&mut self, op: u8) -> Option<Vec<u8>> {
        let g = self.gw.as_mut()?;
        let f = match op {
            0 => {
                // Start a message; only its first frame goes now.
                let len = usize::from(self.inp.u16()) % (MAX_MESSAGE + 1);
                self.outgoing = self.inp.message(len);
                let take = self.outgoing.len().min(MAX_DATA);
                let chunk: Vec<u8> = self.outgoing.drain(..take).collect();
                let ty = if self.outgoing.is_empty() {
                    FrameType::Data
                } else {
                    FrameType::DataFrag
                };
                seal(g, ty, &chunk).ok()?
            }
            1 => {
                // The next fragment of the message under way (or an empty DATA).
                let take = self.outgoing.len().min(MAX_DATA);
                let chunk: Vec<u8> = self.outgoing.drain(..take).collect();
                let ty = if self.outgoing.is_empty() {
                    FrameType::Data
                } else {
                    FrameType::DataFrag
                };
                seal(g, ty, &chunk).ok()?
            }
            _ => {
                let pick = self.inp.u8() % 6;
                let ty = [
                    FrameType::Ping,
                    FrameType::Pong,
                    FrameType::Bye,
                    FrameType::Error,
                    FrameType::Rekey,
                    FrameType::DataFrag,
                ][usize::from(pick)];
                if ty == FrameType::Rekey && self.inp.u8() & 1 == 0 {
                    let salt: [u8; 32] = self.inp.array();
                    let mut buf = [0u8; MAX_FRAME];
                    let n = g.start_rekey(&salt, &mut buf).ok()?;
                    buf[..n].to_vec()
                } else {
                    let n = usize::from(self.inp.u8() % 48);
                    let pt = self.inp.message(n);
                    seal(g, ty, &pt).ok()?
                }
            }
        };
        Some(f)
    }

    /// What the transport's receive returns next: (bytes, or a bare return code).
    fn next(&mut self, max: usize) -> Result<Vec<u8>, c_int> {
        if self.auto_ack {
            if let Some(a) = self.acks.pop_front() {
                return Ok(a);
            }
        }
        if self.inp.is_empty() {
            return Err(self.tail_rc);
        }
        let op = self.inp.u8();
        let mut f = match op % 16 {
            0..=4 => {
                let mut f = self.inp.chunk().unwrap_or(&[]).to_vec();
                if self.repair {
                    fix_crc(&mut f);
                }
                f
            }
            5 => {
                let mut f = self.inp.chunk().unwrap_or(&[]).to_vec();
                fix_crc(&mut f);
                f
            }
            6..=9 => match self.gateway_frame(op % 16 - 6) {
                Some(mut f) => {
                    if self.inp.u8() & 7 == 0 {
                        mutate(&mut f, &mut self.inp);
                    }
                    f
                }
                None => return Err(0),
            },
            10 => match self.hs_reply.take() {
                Some(f) => f,
                None => return Err(0),
            },
            11 => return Err(0),
            12 => return Err(-1),
            13 => {
                // A transport that claims more than it was given, or an odd negative code.
                let b = self.inp.u8();
                return Err(if b & 1 == 0 {
                    (max as c_int).saturating_add(1 + c_int::from(b))
                } else {
                    -c_int::from(b)
                });
            }
            14 if !self.history.is_empty() => {
                let i = usize::from(self.inp.u8()) % self.history.len();
                self.history[i].clone()
            }
            _ => {
                let n = usize::from(self.inp.u8() % 24);
                self.inp.take(n).to_vec()
            }
        };
        if self.history.len() < 32 && !f.is_empty() {
            self.history.push(f.clone());
        }
        f.truncate(max);
        Ok(f)
    }
}

fn fx<'a>(t: *mut usmp_transport_t) -> &'a mut Fx<'a> {
    // SAFETY: the library passes back the transport whose ctx we set to a live Fx; the fuzz
    // loop holds no reference to it while a usmp_* call runs.
    unsafe { &mut *((*t).ctx as *mut Fx<'a>) }
}

unsafe extern "C" fn t_send(t: *mut usmp_transport_t, data: *const u8, len: usize) -> c_int {
    assert!(!data.is_null());
    let x = fx(t);
    x.sends += 1;
    // SAFETY: the library hands over `len` readable bytes.
    let f = unsafe { std::slice::from_raw_parts(data, len) }.to_vec();
    if x.fail_send_at != 0 && x.sends == x.fail_send_at {
        return -1;
    }
    x.on_device_frame(&f);
    0
}

unsafe extern "C" fn t_recv(t: *mut usmp_transport_t, buf: *mut u8, max: usize) -> c_int {
    assert!(!buf.is_null());
    match fx(t).next(max) {
        Ok(f) => {
            // SAFETY: `buf` has `max` writable bytes and f.len() <= max.
            unsafe { std::ptr::copy_nonoverlapping(f.as_ptr(), buf, f.len()) };
            f.len() as c_int
        }
        Err(rc) => rc,
    }
}

unsafe extern "C" fn t_recv_timeout(
    t: *mut usmp_transport_t,
    buf: *mut u8,
    max: usize,
    _ms: u32,
) -> c_int {
    // SAFETY: same contract as recv.
    unsafe { t_recv(t, buf, max) }
}

unsafe extern "C" fn t_close(t: *mut usmp_transport_t) {
    let x = fx(t);
    x.gw = None;
    x.hello.clear();
}

unsafe extern "C" fn t_reconnect(t: *mut usmp_transport_t) -> c_int {
    let x = fx(t);
    x.gw = None;
    x.hello.clear();
    x.hs_reply = None;
    x.acks.clear();
    if x.inp.u8() % 8 == 7 {
        -1
    } else {
        0
    }
}

unsafe extern "C" fn t_available(t: *mut usmp_transport_t) -> c_int {
    let x = fx(t);
    c_int::from(!x.inp.is_empty() || !x.acks.is_empty())
}

unsafe extern "C" fn t_destroy(_t: *mut usmp_transport_t) {
    panic!("the library called destroy");
}

fn check_rc(rc: c_int, what: &str) {
    crate::trace!("{what} -> {rc}");
    if rc < 0 {
        // SAFETY: usmp_err_name returns a static NUL-terminated string.
        let name = unsafe { CStr::from_ptr(usmp_err_name(rc)) };
        assert_ne!(name.to_bytes(), b"USMP_ERR_UNKNOWN", "{what} returned {rc}");
        assert!(Error::ALL.iter().any(|e| e.code() == rc));
    }
}

fn new_ctx(version: u8, psk: &[u8], cfg: u8, psk_null: bool) -> Box<usmp_t> {
    // SAFETY: all-zero is a valid usmp_t, as in C (`usmp_t ctx = {0};`).
    let mut c: Box<usmp_t> = Box::new(unsafe { std::mem::zeroed() });
    c.psk = if psk_null {
        std::ptr::null()
    } else {
        psk.as_ptr()
    };
    c.psk_len = psk.len();
    c.protocol_version = version;
    if cfg & 0x40 != 0 {
        c.retransmit_timeout_ms = 200;
        c.retransmit_attempts = 2;
    }
    c
}

/// One execution: the whole input drives one context (see the module documentation).
pub fn run(data: &[u8]) {
    port::reset(1000);
    let mut inp = Input::new(data);
    let cfg = inp.u8();
    let version = version_from(cfg);
    let psk: Vec<u8> = if cfg & 0x80 != 0 {
        let n = usize::from(inp.u8() % 40);
        inp.take(n).to_vec()
    } else {
        PSK.to_vec()
    };
    let psk_null = cfg & 0x80 != 0 && psk.len() == 1;
    let fail_send_at = u32::from(inp.u8() % 16);
    let fx = Box::into_raw(Box::new(Fx {
        inp,
        version,
        datagram: cfg & 2 != 0,
        repair: cfg & 4 != 0,
        tail_rc: if cfg & 8 != 0 { -1 } else { 0 },
        auto_ack: cfg & 0x10 != 0,
        hs_reply: None,
        hello: Vec::new(),
        gw: None,
        outgoing: Vec::new(),
        acks: VecDeque::new(),
        history: Vec::new(),
        sends: 0,
        fail_send_at,
    }));
    let tr = usmp_transport_t {
        send: Some(t_send),
        recv: Some(t_recv),
        close: Some(t_close),
        reconnect: Some(t_reconnect),
        available: if cfg & 0x20 != 0 {
            None
        } else {
            Some(t_available)
        },
        destroy: Some(t_destroy),
        ctx: fx.cast::<c_void>(),
        flags: if cfg & 2 != 0 {
            USMP_TRANSPORT_DATAGRAM
        } else {
            0
        },
        recv_timeout: Some(t_recv_timeout),
    };
    let wire = version as u8;
    let mut ctx = new_ctx(wire, &psk, cfg, psk_null);
    // Contexts that were moved away from stay allocated until the end: a later copy placed
    // at a connected context's old address would be that context as far as the library
    // can tell (SECURITY.md, L-1), which the copy oracle below does not model.
    let mut moved_from: Vec<Box<usmp_t>> = Vec::new();
    let mut t = tr.clone_fields();
    // SAFETY: valid context and transport.
    check_rc(unsafe { usmp_connect(&mut *ctx, &mut t) }, "connect");

    // The op stream shares the cursor with the transport: read through the raw pointer, never
    // holding a reference across a usmp_* call.
    let op = || -> Option<u8> {
        // SAFETY: no usmp_* call runs while this reads.
        let x = unsafe { &mut *fx };
        (!x.inp.is_empty()).then(|| x.inp.u8())
    };
    let byte = || -> u8 {
        // SAFETY: as above.
        unsafe { (*fx).inp.u8() }
    };
    let word = || -> u16 {
        // SAFETY: as above.
        unsafe { (*fx).inp.u16() }
    };
    let mut steps = 0;
    while let Some(o) = op() {
        steps += 1;
        if steps > 200 {
            break;
        }
        let c: *mut usmp_t = &mut *ctx;
        match o % 14 {
            0 => {
                let mut t2 = tr.clone_fields();
                // SAFETY: valid context and transport.
                check_rc(unsafe { usmp_connect(c, &mut t2) }, "connect");
            }
            1..=3 => {
                let cap = [
                    0usize, 1, 5, 64, 451, 452, 453, 1000, 1807, 1808, 1809, 4096,
                ][usize::from(byte() % 12)];
                let mut buf = vec![0u8; cap];
                let ptr = if cap == 0 && byte() & 1 == 0 {
                    std::ptr::null_mut()
                } else {
                    buf.as_mut_ptr()
                };
                // SAFETY: `buf` has `cap` writable bytes (NULL only for cap 0).
                let n = unsafe { usmp_recv(c, ptr, cap as u16) };
                check_rc(n, "recv");
                assert!(
                    n <= 0 || n as usize <= cap,
                    "recv returned {n} for a buffer of {cap}"
                );
                if n == usmp_err_t::USMP_ERR_NOT_CONNECTED as c_int {
                    // SAFETY: valid context.
                    assert!(!unsafe { usmp_is_connected(c) });
                }
            }
            4 => {
                let len = usize::from(word()) % (MAX_MESSAGE + 100);
                let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let ptr = if len == 0 {
                    std::ptr::null()
                } else {
                    data.as_ptr()
                };
                // SAFETY: `data` has `len` readable bytes.
                let rc = unsafe { usmp_send(c, ptr, len as u16) };
                check_rc(rc, "send");
                if len > MAX_MESSAGE {
                    assert!(rc != 0, "sent {len} bytes");
                }
            }
            // SAFETY (all below): valid context.
            5 => check_rc(unsafe { usmp_ping(c) }, "ping"),
            6 => {
                ctx.keepalive_ms = u32::from(byte()) * 50;
                check_rc(unsafe { usmp_keepalive_tick(&mut *ctx) }, "keepalive_tick");
            }
            7 => check_rc(unsafe { usmp_rekey(c) }, "rekey"),
            8 => check_rc(unsafe { usmp_reconnect(c) }, "reconnect"),
            9 => {
                crate::trace!("close");
                unsafe { usmp_close(c) }
            }
            10 => {
                // A byte copy of the context: every call on it is refused or harmless, and
                // the original is not disturbed.
                let mut copy: Box<usmp_t> = Box::new(unsafe { std::mem::zeroed() });
                unsafe { std::ptr::copy_nonoverlapping(c, &mut *copy, 1) };
                let cc: *mut usmp_t = &mut *copy;
                match byte() % 5 {
                    0 => check_rc(unsafe { usmp_send(cc, b"x".as_ptr(), 1) }, "send(copy)"),
                    1 => {
                        let mut b = [0u8; 64];
                        check_rc(unsafe { usmp_recv(cc, b.as_mut_ptr(), 64) }, "recv(copy)")
                    }
                    2 => unsafe { usmp_close(cc) },
                    3 => check_rc(unsafe { usmp_ping(cc) }, "ping(copy)"),
                    _ => {
                        // A move: the copy replaces the original (whose memory is kept, see
                        // `moved_from`).
                        moved_from.push(std::mem::replace(&mut ctx, copy));
                        continue;
                    }
                }
                assert!(!unsafe { usmp_is_connected(cc) });
            }
            11 => {
                let b = byte();
                port::RANDOM_FAIL.with(|f| f.set(b & 1 != 0));
                port::DEVID_FAIL.with(|f| f.set(b & 2 != 0));
            }
            12 => {
                let mut st = usmp_stats_t::default();
                check_rc(unsafe { usmp_get_stats(c, &mut st) }, "get_stats");
            }
            _ => {
                // Settings changed between calls (a careless caller).
                match byte() % 4 {
                    0 => ctx.psk_len = usize::from(byte() % 40).min(psk.len()),
                    1 => ctx.protocol_version = byte() % 4,
                    2 => ctx.retransmit_attempts = byte() % 4,
                    _ => ctx.retransmit_timeout_ms = u32::from(word()),
                }
            }
        }
    }
    // SAFETY: valid context; then the fake gateway is released.
    unsafe { usmp_close(&mut *ctx) };
    drop(ctx);
    // SAFETY: allocated above, no longer referenced by any context in use.
    drop(unsafe { Box::from_raw(fx) });
}

trait CloneFields {
    fn clone_fields(&self) -> Self;
}

impl CloneFields for usmp_transport_t {
    fn clone_fields(&self) -> Self {
        usmp_transport_t {
            send: self.send,
            recv: self.recv,
            close: self.close,
            reconnect: self.reconnect,
            available: self.available,
            destroy: self.destroy,
            ctx: self.ctx,
            flags: self.flags,
            recv_timeout: self.recv_timeout,
        }
    }
}
