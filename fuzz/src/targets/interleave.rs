//! The harness of the `interleave` fuzz target (also replayed by `fuzz/tests/replay.rs`,
//! natively and under Miri): the non-blocking C API (`usmp_nb_connect`, `usmp_nb_poll`,
//! `usmp_nb_send`, `usmp_nb_ping`, `usmp_nb_rekey`, `usmp_nb_close`, and `usmp_close` as
//! "another caller") against an in-process gateway (the core's responder for the handshake,
//! with the vector inputs, then a gateway `Session`) over a simulated datagram network or a
//! `USMP_TRANSPORT_BYTES` byte stream, wire v1 or v2.
//!
//! The non-blocking API keeps three operations under way at once (a receive, a PING or
//! REKEY, a send) over one connection state and steps them in turn at every poll. The port
//! clock is frozen here (it moves only when the input says so), so every interleaving is a
//! function of the input: the application's next call, what each transport read returns
//! (nothing, a datagram, a piece of the stream of any size, a forged, replayed or damaged
//! frame), what the gateway does (messages, echoes, PING, PONG, REKEY, BYE), what the network
//! does to each datagram (drop, duplicate, hold back and release later, fail the send) and
//! how far the clock moves.
//!
//! Oracles (a failed `assert!` is the finding), checked as the run goes:
//! - one key, one nonce: two different device frames with one seq never open under one key,
//!   and every device frame opens under a key the device can have (the handshake's, then
//!   every REKEY either way, crossed ones too);
//! - upstream: every message the gateway receives is one `usmp_nb_send` accepted, whole, in
//!   order, at most once; a SENT event with error 0 only for a message the gateway has;
//! - downstream: every MESSAGE event (and every BUFFER_OVERFLOW error) stands for a message
//!   the gateway sent, whole, in order, at most once;
//! - no control frame (PING, PONG, REKEY) reaches the gateway between two fragments of a
//!   device message; every frame the device sends is one a conforming peer accepts (opens
//!   under its keys, in sequence) unless a REKEY of each side crossed (a protocol limit:
//!   their keys part);
//! - calls: only documented return codes; events in order (CONNECTED once per connect,
//!   SENT once per accepted send and before CLOSED, ERROR only for a dropped message or a
//!   PING/REKEY the application asked for, nothing after CLOSED or `usmp_nb_close`); the
//!   transport closed at CLOSED and never used once closed; no read that waits and at most
//!   [`MAX_IO_PER_CALL`] transport calls in one non-blocking call; the message buffer
//!   released at SENT and the receive buffer at CLOSED (ASan sees any later access);
//! - at the end the network turns clean and the device is polled (the clock moving) until
//!   the traffic settles: a session still open has no send pending, and, when no REKEY,
//!   forgery or crossing was in play, has had every gateway message delivered; events do
//!   not come forever.
//!
//! Its findings (SECURITY.md I-1 to I-5, all fixed) are in `fuzz/regressions/interleave/`;
//! a finding still open may be stepped around while `USMP_FUZZ_OPEN_FINDINGS` is unset
//! (see [`crate::open_findings`]).
//!
//! Input: two configuration bytes, then operations (see [`run`]).
//! cfg0: bit 0 v1, bit 1 datagram (else byte stream), bit 2 the gateway acknowledges before
//! it authenticates (as the Python gateway), bit 3 the gateway echoes every message, bit 4
//! cookie round (v2 datagram), bits 5-7 the receive buffer size ([`RX_SIZES`]).
//! cfg1: bits 0-1 retransmission attempts, bit 2 fixed RTO of 200 ms, bits 3-4 keepalive,
//! bits 5-7 the stream's largest piece per read ([`PIECES`]).

use std::cell::{RefCell, RefMut};
use std::collections::{BTreeMap, VecDeque};
use std::ffi::{c_int, c_void};

use super::capi::{responder_step, Keys};
use crate::{fix_crc, mutate, port, version_from, Input, SESSION_ID};
use usmp::datagram::{self, UTACK_LEN, UTACK_MAC_LEN};
use usmp::ffi::*;
use usmp::frame::{self, FrameType, HEADER_LEN, MAX_FRAME};
use usmp::session::{fragments, Epoch, Freshness, Rx, Session, MAX_MESSAGE};
use usmp::{Error, Version};

/// The gateway's HELLO_RETRY cookie (v2 datagram, cfg0 bit 4).
const COOKIE: [u8; 16] = [0xC0; 16];
/// The gateway's retransmission timeout (it never gives up), ms.
const GW_RTO_MS: u32 = 250;
/// A datagram the device does not acknowledge within this long ends the gateway's session
/// (usmp 1.2.2: five attempts, 0.5 + 1 + 2 + 4 + 5 s with its initial RTO).
const GW_GIVE_UP_MS: u32 = 12_500;
/// Operations read from the input at most.
const MAX_OPS: usize = 300;
/// Connects per run at most (each is two X25519 on the device).
const MAX_CONNECTS: u32 = 4;
/// Transport calls one non-blocking call may make: three slots of 64 steps with 8 reads
/// each, and some.
pub const MAX_IO_PER_CALL: u32 = 4096;
/// Receive buffer sizes (cfg0 bits 5-7).
pub const RX_SIZES: [usize; 8] = [1808, 0, 1, 16, 452, 453, 1000, 1807];
/// The stream's largest piece per read (cfg1 bits 5-7).
pub const PIECES: [usize; 8] = [4096, 1, 2, 7, 12, 64, 200, 492];
const ATTEMPTS: [u8; 4] = [0, 2, 8, 30];
const KEEPALIVE: [u32; 4] = [0, 300, 1000, 5000];
/// Device key sets the nonce oracle follows at most (each REKEY adds one or two).
const MAX_KEY_SETS: usize = 512;
/// Clock steps of the advance operation, ms.
const STEPS_MS: [u32; 14] = [
    1, 5, 20, 50, 100, 250, 500, 1000, 2000, 5000, 9000, 10_001, 11_000, 61_000,
];

fn named(rc: c_int) -> bool {
    Error::ALL.iter().any(|e| e.code() == rc)
}

fn code(e: usmp_err_t) -> c_int {
    e as c_int
}

/// Message contents derived from the message's index (`tag` tells the sides apart).
fn content(tag: u8, idx: usize, len: usize) -> Vec<u8> {
    let head = [tag, idx as u8, (idx >> 8) as u8];
    (0..len)
        .map(|k| match head.get(k) {
            Some(&b) => b,
            None => (k as u8).wrapping_mul(13) ^ (idx as u8).wrapping_mul(7),
        })
        .collect()
}

/// A message length: the edges of the fragmentation mostly, anything up to 1808 too.
fn message_len(inp: &mut Input<'_>) -> usize {
    let b = inp.u8();
    match b % 8 {
        0 => 0,
        1 => 1,
        2 => 452,
        3 => 453,
        4 => 904 + usize::from(b >> 7),
        5 => MAX_MESSAGE,
        6 => usize::from(inp.u16()) % (MAX_MESSAGE + 1),
        _ => usize::from(b >> 3) * 37,
    }
}

fn header_seq(d: &[u8]) -> u32 {
    u32::from_le_bytes([d[4], d[5], d[6], d[7]])
}

// ---- keys ---------------------------------------------------------------------------------

/// Device keys (its view): tx, rx, and the rx key before the last REKEY.
#[derive(Clone, Copy, PartialEq, Eq)]
struct KeySet {
    tx: [u8; 32],
    rx: [u8; 32],
    prev_rx: Option<[u8; 32]>,
}

/// The plaintext of `f` when it opens under `key`.
fn opens(version: Version, key: &[u8; 32], f: &[u8]) -> Option<Vec<u8>> {
    let mut s = Session::new(version, key, key, &SESSION_ID);
    let mut b = f.to_vec();
    s.open(&mut b).ok().map(|o| o.plaintext().to_vec())
}

/// The device's keys after it starts a REKEY with `salt` (`initiator`) or takes the peer's
/// (the mirror image of the peer starting it).
fn rekeyed(version: Version, k: &KeySet, salt: &[u8; 32], initiator: bool) -> Option<KeySet> {
    let mut buf = [0u8; MAX_FRAME];
    let (tx, rx) = if initiator {
        (k.tx, k.rx)
    } else {
        (k.rx, k.tx)
    };
    let mut s = Session::new(version, &tx, &rx, &SESSION_ID);
    s.start_rekey(salt, &mut buf).ok()?;
    let (tx, rx) = (*s.tx_key(), *s.rx_key());
    let (tx, rx) = if initiator { (tx, rx) } else { (rx, tx) };
    Some(KeySet {
        tx,
        rx,
        prev_rx: Some(k.rx),
    })
}

// ---- what one connect did -------------------------------------------------------------------

#[derive(Default)]
struct Record {
    /// Messages `usmp_nb_send` accepted, in order.
    app_sent: Vec<Vec<u8>>,
    /// The next `app_sent` index the gateway may receive; those it received.
    gw_ptr: usize,
    gw_got: Vec<usize>,
    /// Messages the gateway sent, in order; the next one a MESSAGE event may stand for; how
    /// many events (MESSAGE, BUFFER_OVERFLOW) stood for one.
    gw_sent: Vec<Vec<u8>>,
    dev_ptr: usize,
    accounted: usize,
    /// The device's keys at the end of the handshake.
    k0: Option<KeySet>,
    /// Every distinct device session frame, by seq.
    dev_frames: BTreeMap<u32, Vec<Vec<u8>>>,
    dev_rekeys: Vec<Vec<u8>>,
    /// The device's last REKEY has not reached the gateway yet.
    rekey_unseen: bool,
    /// The gateway's REKEY frames and their salts.
    gw_rekeys: Vec<(Vec<u8>, [u8; 32])>,
    /// Every (tx, rx) key pair the gateway had.
    gw_keys: Vec<([u8; 32], [u8; 32])>,
    /// A REKEY of each side crossed: the two sides' keys parted.
    diverged: bool,
    /// A v1 UTACK was forged (unauthenticated: the device cannot tell it).
    forged_ack: bool,
    /// Forged, replayed or damaged bytes went into the byte stream.
    tampered: bool,
    /// Some REKEY (either side) happened.
    rekeyed: bool,
    /// Frames the gateway sent this connect (for replays).
    history: Vec<Vec<u8>>,
}

impl Record {
    /// One key, one nonce: two different frames with one seq never open under one device key;
    /// and every device frame opens under a key the device can have (the handshake's, then
    /// the REKEYs either way).
    fn check_nonces(&self, version: Version) {
        let Some(k0) = self.k0 else {
            return;
        };
        // Every key set the device can have reached: REKEYs of its own (their salts read
        // from its REKEY frames) and the gateway's (applied when the frame opens under the
        // device's current or previous receive key), in any order.
        let mut sets = vec![k0];
        let mut i = 0;
        while i < sets.len() && sets.len() < MAX_KEY_SETS {
            let k = sets[i];
            let mut next = vec![];
            for f in &self.dev_rekeys {
                if let Some(pt) = opens(version, &k.tx, f) {
                    if let Ok(salt) = <[u8; 32]>::try_from(pt.as_slice()) {
                        next.extend(rekeyed(version, &k, &salt, true));
                    }
                }
            }
            for (f, salt) in &self.gw_rekeys {
                let by_prev = k.prev_rx.is_some_and(|p| opens(version, &p, f).is_some());
                if by_prev || opens(version, &k.rx, f).is_some() {
                    next.extend(rekeyed(version, &k, salt, false));
                }
            }
            for n in next {
                if !sets.contains(&n) {
                    sets.push(n);
                }
            }
            i += 1;
        }
        let complete = sets.len() < MAX_KEY_SETS;
        for (seq, g) in &self.dev_frames {
            // The key each frame opens under (the first that does; usize::MAX: none known).
            let keys: Vec<usize> = g
                .iter()
                .map(|f| {
                    let k = sets.iter().position(|k| opens(version, &k.tx, f).is_some());
                    assert!(
                        k.is_some() || !complete,
                        "a device frame (seq {seq}) under no key the device can have"
                    );
                    k.unwrap_or(usize::MAX)
                })
                .filter(|&k| k != usize::MAX)
                .collect();
            for (a, ka) in keys.iter().enumerate() {
                assert!(
                    !keys[a + 1..].contains(ka),
                    "nonce reuse: two different device frames with seq {seq} under one key"
                );
            }
        }
    }
}

// ---- the gateway and the network --------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Drop,
    Dup,
    Hold,
    Fail,
}

/// The gateway, the network and what the oracles need; shared between the harness and the
/// transport's callbacks (which run inside the library's calls) through a `RefCell`: the
/// harness never holds a borrow across a `usmp_*` call.
struct World {
    version: Version,
    dgram: bool,
    cookie: bool,
    ack_first: bool,
    echo: bool,
    /// The transport is dialled (set by the harness, cleared by its `close`).
    link_open: bool,
    /// A non-blocking call is under way; transport calls made in it.
    in_nb: bool,
    io: u32,
    // -- the gateway
    hello: Vec<u8>,
    last_hs: u8,
    gw: Option<Session>,
    /// The key of the UTACKs the gateway sends before it authenticates (`ack_first`, as usmp
    /// 1.2.2 does): its transport's receive key.
    ack_key: Option<[u8; 32]>,
    /// The gateway has closed its side (BYE either way, a failed handshake).
    gone: bool,
    /// Stop-and-wait queue of datagrams (the front one in flight) with their UTACK key.
    outq: VecDeque<(Vec<u8>, Option<[u8; 32]>)>,
    sent_at: u32,
    /// When the front of `outq` first went out.
    first_sent_at: u32,
    gmsg: Vec<u8>,
    /// The epoch of the device fragments the gateway holds.
    partial_epoch: Option<Epoch>,
    // -- the datagram network
    down: VecDeque<Vec<u8>>,
    held_down: Vec<Vec<u8>>,
    held_up: Vec<Vec<u8>>,
    up_faults: VecDeque<Fault>,
    down_faults: VecDeque<Fault>,
    // -- the byte stream to the device
    sbuf: VecDeque<u8>,
    /// Only `readable` bytes may be read (else all).
    stall: bool,
    readable: usize,
    piece: usize,
    /// After the buffered bytes, the stream reports the peer's hang-up.
    hangup: bool,
    rec: Record,
}

fn now() -> u32 {
    port::CLOCK.with(|c| c.get())
}

impl World {
    fn v2(&self) -> bool {
        self.version == Version::V2
    }

    /// A fresh dial: a new gateway, an empty network, a new record.
    fn redial(&mut self) {
        self.link_open = true;
        self.hello.clear();
        self.last_hs = 0;
        self.gw = None;
        self.ack_key = None;
        self.gone = false;
        self.partial_epoch = None;
        self.outq.clear();
        self.down.clear();
        self.held_down.clear();
        self.held_up.clear();
        self.up_faults.clear();
        self.down_faults.clear();
        self.sbuf.clear();
        self.stall = false;
        self.readable = 0;
        self.hangup = false;
        self.rec = Record::default();
    }

    fn io_tick(&mut self) {
        assert!(self.link_open, "the library used a closed transport");
        self.io += 1;
        assert!(
            !self.in_nb || self.io <= MAX_IO_PER_CALL,
            "a non-blocking call made more than {MAX_IO_PER_CALL} transport calls"
        );
    }

    // -- device -> gateway

    fn on_device_send(&mut self, d: Vec<u8>) -> c_int {
        self.io_tick();
        self.record_device_frame(&d);
        let fault = self.up_faults.pop_front();
        crate::trace!(
            "  dev> {:02x?} ({} B) {fault:?}",
            &d[..d.len().min(8)],
            d.len()
        );
        if fault == Some(Fault::Fail) {
            return -1;
        }
        if !self.dgram {
            self.gw_stream_frame(&d);
            return 0;
        }
        match fault {
            Some(Fault::Drop) => {}
            Some(Fault::Dup) => {
                self.gw_datagram(&d);
                self.gw_datagram(&d);
            }
            Some(Fault::Hold) if self.held_up.len() < 8 => self.held_up.push(d),
            _ => self.gw_datagram(&d),
        }
        0
    }

    /// Every session frame the device transmits, by seq (the nonce oracle), and a check that
    /// a new one is a frame its peer can open.
    fn record_device_frame(&mut self, d: &[u8]) {
        if self.dgram && datagram::is_utack(d) {
            assert!(
                d.len() == UTACK_LEN || d.len() == UTACK_MAC_LEN,
                "UTACK of {} bytes",
                d.len()
            );
            return;
        }
        assert!(
            (HEADER_LEN..=MAX_FRAME).contains(&d.len()),
            "the device sent {} bytes",
            d.len()
        );
        assert_eq!(
            d[..2],
            frame::MAGIC.to_le_bytes(),
            "the device sent no frame"
        );
        if matches!(d[3], 1..=4 | 0x0A) {
            return;
        }
        let list = self.rec.dev_frames.entry(header_seq(d)).or_default();
        if list.iter().any(|f| f == d) {
            return; // a retransmission
        }
        if list.len() < 16 {
            list.push(d.to_vec());
        }
        if d[3] == FrameType::Rekey as u8 {
            self.rec.rekey_unseen = true;
            self.rec.dev_rekeys.push(d.to_vec());
        }
        // A BYE goes out whatever is in flight, also a REKEY the gateway has not seen: then
        // it is under keys the gateway does not have yet (best effort, as documented).
        let excused = d[3] == FrameType::Bye as u8 && self.rec.rekey_unseen;
        if let (Some(s), false, false, false) =
            (self.gw.as_mut(), self.gone, self.rec.diverged, excused)
        {
            let mut b = d.to_vec();
            assert!(
                s.open(&mut b).is_ok(),
                "the device sealed a {:#x} frame (seq {}) its peer cannot open",
                d[3],
                header_seq(d)
            );
        }
    }

    fn hang_up(&mut self) {
        self.gone = true;
        self.hangup = true;
        self.outq.clear();
    }

    fn gw_establish(&mut self, keys: Keys) {
        let (tx, rx) = keys;
        let mut s = Session::new(self.version, &tx, &rx, &SESSION_ID);
        s.set_datagram(self.dgram);
        self.rec.k0 = Some(KeySet {
            tx: rx,
            rx: tx,
            prev_rx: None,
        });
        self.ack_key = Some(*s.rx_key());
        self.gw = Some(s);
        self.note_gw_keys();
    }

    /// Keeps the gateway's keys of this connect (see [`World::authentic_unsent`]).
    fn note_gw_keys(&mut self) {
        if let Some(s) = self.gw.as_ref() {
            self.rec.gw_keys.push((*s.tx_key(), *s.rx_key()));
        }
    }

    /// True for bytes that authenticate under the gateway's keys of this connect but are no
    /// frame it sent: with the fixed test keys the fuzzer can learn (from other executions)
    /// what the gateway would seal next, which no real attacker can. Such an injection is
    /// left out. A v1 UTACK (unauthenticated) is a forgery proper: it is let through, noted.
    fn authentic_unsent(&mut self, f: &[u8]) -> bool {
        if self.rec.history.iter().any(|h| h == f) {
            return false; // a replay
        }
        if datagram::is_utack(f) {
            if !self.v2() {
                self.rec.forged_ack = true;
                return false;
            }
            let Some(&[ty, a, b, c, d]) = f.get(2..7) else {
                return false; // too short to match anything
            };
            let seq = u32::from_le_bytes([a, b, c, d]);
            return self
                .rec
                .gw_keys
                .iter()
                .any(|(_, rx)| datagram::utack_matches(f, ty, seq, Some(rx)));
        }
        let version = self.version;
        self.rec
            .gw_keys
            .iter()
            .any(|(tx, _)| opens(version, tx, f).is_some())
    }

    fn gw_stream_frame(&mut self, d: &[u8]) {
        if self.gone {
            return;
        }
        if self.gw.is_some() {
            self.gw_session_frame(d);
            return;
        }
        let step = match d[3] {
            1 => {
                self.hello = d.to_vec();
                responder_step(self.version, d, None)
            }
            3 => responder_step(self.version, &self.hello, Some(d)),
            _ => None,
        };
        match step {
            Some((reply, keys)) => {
                if let Some(k) = keys {
                    self.gw_establish(k);
                }
                self.stream_out(&reply);
            }
            None => self.hang_up(), // like the real gateway
        }
    }

    fn gw_datagram(&mut self, d: &[u8]) {
        if self.gone {
            return;
        }
        if datagram::is_utack(d) {
            self.gw_on_utack(d);
            return;
        }
        let Ok((h, ty)) = frame::decode(d, self.version) else {
            return;
        };
        if ty.is_encrypted() {
            self.gw_session_frame(d);
            return;
        }
        let p = frame::payload(d, &h);
        let cookie = self.cookie && self.v2();
        if ty == FrameType::Hello && cookie && p.len() == 54 && p[38..] != COOKIE {
            return; // a wrong cookie: ignored
        }
        self.ack(h.ty, h.seq, None);
        if h.ty <= self.last_hs {
            return; // a handshake frame again
        }
        if ty == FrameType::Hello && cookie && p.len() == 38 {
            let mut out = [0u8; MAX_FRAME];
            if let Some(n) = frame::encode(&mut out, self.version, 0x0A, 0, &COOKIE) {
                self.emit(out[..n].to_vec()); // not retransmitted
            }
            return;
        }
        self.last_hs = h.ty;
        let step = match ty {
            FrameType::Hello => {
                self.hello = d.to_vec();
                responder_step(self.version, d, None)
            }
            FrameType::HelloAck => responder_step(self.version, &self.hello, Some(d)),
            _ => return,
        };
        match step {
            Some((reply, keys)) => {
                if let Some(k) = keys {
                    self.gw_establish(k);
                }
                self.queue(reply, None);
            }
            None => {
                // Refused silently; only a new HELLO starts again.
                self.last_hs = 0;
                self.outq.clear();
            }
        }
    }

    /// The gateway session takes a device frame (stream: the next one; datagram: whatever
    /// the network delivers).
    fn gw_session_frame(&mut self, d: &[u8]) {
        let v2 = self.v2();
        if self.gw.is_none() {
            return;
        }
        if self.dgram && self.ack_first {
            let key = self.ack_key.filter(|_| v2);
            self.ack(d[3], header_seq(d), key.as_ref());
        }
        let Some(s) = self.gw.as_mut() else {
            return;
        };
        let mut f = d.to_vec();
        let Ok(o) = s.open(&mut f) else {
            // Not under the gateway's keys: a stale datagram, or the keys parted (checked
            // when the device sent it). A stream cannot go on.
            if !self.dgram {
                self.hang_up();
            }
            return;
        };
        let (ty, seq, epoch, fresh) = (o.ty(), o.seq(), o.epoch(), o.freshness());
        // Acknowledged under the key the frame came with (PROTOCOL.md section 12, and what
        // the device does).
        let key = v2.then(|| *s.rx_key_of(epoch));
        let grace = s.in_grace();
        let result = if fresh == Freshness::Fresh {
            let control = matches!(ty, FrameType::Ping | FrameType::Pong | FrameType::Rekey);
            assert!(
                !(control && s.reassembling()),
                "a {ty:?} (seq {seq}) reached the gateway between two fragments of a device message"
            );
            // Found by this target (I-4, regressions/interleave/message-split-by-gateway-
            // rekey): a device that took the gateway's REKEY between two fragments and sent
            // the rest under the new key, numbered from 0, had its message truncated.
            assert!(
                !(s.reassembling() && !control && Some(epoch) != self.partial_epoch),
                "the device went on with a message under new keys (its {ty:?} seq {seq}) \
                 after taking the gateway's REKEY between two of its fragments"
            );
            self.partial_epoch = Some(epoch);
            Some(s.process(o, &mut self.gmsg))
        } else {
            None
        };
        let moved_on =
            fresh == Freshness::Fresh && epoch == Epoch::Current && ty != FrameType::Rekey;
        if self.dgram && grace && moved_on {
            // The device has moved to the new keys (it sends one frame at a time): frames
            // under the old one are behind it.
            s.end_grace();
        }
        if self.dgram && !self.ack_first {
            self.ack(ty as u8, seq, key.as_ref());
        }
        crate::trace!("  gw < {ty:?} seq {seq} {epoch:?} {fresh:?} -> {result:?}");
        match result {
            None => assert!(
                self.dgram || self.rec.diverged,
                "stream: the device sent seq {seq} out of order ({fresh:?})"
            ),
            Some(Ok(Rx::Message(n))) => self.gw_got_message(n),
            Some(Ok(Rx::Ping)) => self.gw_control(FrameType::Pong),
            Some(Ok(Rx::Rekeyed)) => {
                // The responder gives its new keys to the transport at once (section 11).
                self.ack_key = self.gw.as_ref().map(|s| *s.rx_key());
                self.note_gw_keys();
                self.rec.rekeyed = true;
                self.rec.rekey_unseen = false;
                if epoch == Epoch::Previous {
                    // Sealed before the device took the gateway's REKEY: both REKEYs crossed.
                    self.rec.diverged = true;
                }
            }
            Some(Ok(Rx::Pong | Rx::Fragment | Rx::Dropped)) => {}
            Some(Err(Error::ClosedByPeer)) => self.hang_up(),
            Some(Err(e)) => assert!(
                self.rec.diverged,
                "the gateway refused the device's {ty:?} (seq {seq}): {e:?}"
            ),
        }
    }

    fn gw_got_message(&mut self, n: usize) {
        let m = &self.gmsg[..n];
        let r = &mut self.rec;
        let Some(i) = (r.gw_ptr..r.app_sent.len()).find(|&i| r.app_sent[i] == m) else {
            panic!(
                "the gateway received a message of {n} bytes the application did not send \
                 (or not whole, not in order, or twice)"
            );
        };
        r.gw_ptr = i + 1;
        r.gw_got.push(i);
        if self.echo {
            let m = m.to_vec();
            self.gw_message(m);
        }
    }

    fn gw_on_utack(&mut self, d: &[u8]) {
        let Some((f, key)) = self.outq.front() else {
            return;
        };
        if datagram::utack_matches(d, f[3], header_seq(f), key.as_ref()) {
            if f[3] == FrameType::Rekey as u8 {
                // The initiator's transport takes the new keys once its REKEY is
                // acknowledged (section 11 step 5, after the stop-and-wait send): until then
                // it acknowledges the device's frames under the old key.
                self.ack_key = self.gw.as_ref().map(|s| *s.rx_key());
            }
            self.outq.pop_front();
            if let Some((next, _)) = self.outq.front() {
                let next = next.clone();
                self.emit(next);
                self.sent_at = now();
                self.first_sent_at = self.sent_at;
            }
        }
    }

    fn ack(&mut self, ty: u8, seq: u32, key: Option<&[u8; 32]>) {
        let mut a = [0u8; UTACK_MAC_LEN];
        let n = datagram::utack(ty, seq, key, &mut a);
        self.emit(a[..n].to_vec());
    }

    /// Onto the network towards the device, through the faults armed for that direction.
    fn emit(&mut self, d: Vec<u8>) {
        self.seen(&d);
        match self.down_faults.pop_front() {
            Some(Fault::Drop | Fault::Fail) => {}
            Some(Fault::Dup) => {
                self.down.push_back(d.clone());
                self.down.push_back(d);
            }
            Some(Fault::Hold) if self.held_down.len() < 8 => self.held_down.push(d),
            _ => self.down.push_back(d),
        }
    }

    /// Stop-and-wait: the front of the queue is in flight.
    fn queue(&mut self, f: Vec<u8>, key: Option<[u8; 32]>) {
        self.outq.push_back((f.clone(), key));
        if self.outq.len() == 1 {
            self.emit(f);
            self.sent_at = now();
            self.first_sent_at = self.sent_at;
        }
    }

    /// The gateway's retransmission timer.
    fn gw_timer(&mut self, force: bool) {
        if let Some((f, _)) = self.outq.front() {
            if now().wrapping_sub(self.first_sent_at) >= GW_GIVE_UP_MS {
                crate::trace!("  gateway gives its frame up: session over");
                self.hang_up();
                return;
            }
            if force || now().wrapping_sub(self.sent_at) >= GW_RTO_MS {
                let f = f.clone();
                self.emit(f);
                self.sent_at = now();
            }
        }
    }

    /// A gateway frame goes out (reliably on a datagram link).
    fn gw_out(&mut self, f: Vec<u8>, key: Option<[u8; 32]>) {
        if self.dgram {
            self.queue(f, key);
        } else {
            self.stream_out(&f);
        }
    }

    /// Onto the byte stream (and into the history an attacker replays from).
    fn stream_out(&mut self, f: &[u8]) {
        self.seen(f);
        self.sbuf.extend(f);
    }

    /// A gateway frame went on the wire: an attacker has it from now on (not before: the
    /// gateway sends one frame at a time on a datagram link).
    fn seen(&mut self, f: &[u8]) {
        let frame = f.len() >= HEADER_LEN && !datagram::is_utack(f);
        if frame && self.rec.history.len() < 32 && !self.rec.history.iter().any(|h| h == f) {
            self.rec.history.push(f.to_vec());
        }
    }

    fn gw_message(&mut self, m: Vec<u8>) {
        let v2 = self.v2();
        let Some(s) = self.gw.as_mut().filter(|_| !self.gone) else {
            return;
        };
        let key = v2.then(|| *s.tx_key());
        let mut frames = vec![];
        let mut buf = [0u8; MAX_FRAME];
        for (ty, c) in fragments(&m).expect("a message of at most 1808 bytes") {
            let n = s
                .seal_plaintext(ty, c, &mut buf)
                .expect("the gateway seals");
            frames.push(buf[..n].to_vec());
        }
        self.rec.gw_sent.push(m);
        for f in frames {
            self.gw_out(f, key);
        }
    }

    fn gw_control(&mut self, ty: FrameType) {
        let v2 = self.v2();
        let Some(s) = self.gw.as_mut().filter(|_| !self.gone) else {
            return;
        };
        let key = v2.then(|| *s.tx_key());
        let mut buf = [0u8; MAX_FRAME];
        let n = s.seal_control(ty, &mut buf).expect("the gateway seals");
        let f = buf[..n].to_vec();
        if ty == FrameType::Bye {
            // Sent once (not retransmitted), then the gateway is gone.
            if self.dgram {
                self.emit(f);
            } else {
                self.stream_out(&f);
            }
            self.hang_up();
            return;
        }
        self.gw_out(f, key);
    }

    fn gw_rekey(&mut self, salt: [u8; 32]) {
        let Some(s) = self.gw.as_mut().filter(|_| !self.gone) else {
            return;
        };
        // One REKEY at a time: the previous one's grace period must be over (the rule the
        // device keeps too), and none while a device message is half received. On a datagram
        // link the keys change when the REKEY goes on the wire, not while it waits behind
        // other frames (a sender one frame at a time, as the device: a frame the device can no
        // longer open, past its grace period, would hold it back for good).
        let queued = self.dgram && !self.outq.is_empty();
        if !s.version().has_rekey() || s.in_grace() || s.reassembling() || queued {
            return;
        }
        let key = *s.tx_key();
        let mut buf = [0u8; MAX_FRAME];
        let Ok(n) = s.start_rekey(&salt, &mut buf) else {
            return;
        };
        let f = buf[..n].to_vec();
        self.rec.rekeyed = true;
        self.rec.gw_rekeys.push((f.clone(), salt));
        self.note_gw_keys();
        self.gw_out(f, Some(key));
    }

    // -- gateway -> device

    fn device_read(&mut self, max: usize) -> Result<Vec<u8>, c_int> {
        if self.dgram {
            if let Some(d) = self.down.front() {
                crate::trace!(
                    "  <dev {:02x?} ({} B, buffer {max})",
                    &d[..d.len().min(8)],
                    d.len()
                );
            }
            return match self.down.pop_front() {
                // Like the socket transport: a datagram larger than the buffer is dropped.
                Some(d) if d.len() > max => Ok(vec![]),
                Some(d) => Ok(d),
                None => Err(0),
            };
        }
        let avail = if self.stall {
            self.readable.min(self.sbuf.len())
        } else {
            self.sbuf.len()
        };
        if avail == 0 {
            return Err(if self.hangup && self.sbuf.is_empty() {
                -1
            } else {
                0
            });
        }
        let n = avail.min(max).min(self.piece);
        crate::trace!(
            "  <dev {n} of {} stream bytes (buffer {max})",
            self.sbuf.len()
        );
        if self.stall {
            self.readable -= n;
        }
        Ok(self.sbuf.drain(..n).collect())
    }

    fn available(&self) -> bool {
        if self.dgram {
            !self.down.is_empty()
        } else {
            !self.sbuf.is_empty() && (!self.stall || self.readable > 0)
        }
    }

    /// Bytes or datagrams the device may read now.
    fn backlog(&self) -> usize {
        if self.dgram {
            self.down.len()
        } else if self.stall {
            self.readable.min(self.sbuf.len())
        } else {
            self.sbuf.len()
        }
    }

    /// Nothing left to deliver either way.
    fn settled(&self) -> bool {
        self.outq.is_empty() && self.down.is_empty() && self.sbuf.is_empty()
    }
}

// ---- the transport ----------------------------------------------------------------------------

fn world<'a>(t: *mut usmp_transport_t) -> RefMut<'a, World> {
    // SAFETY: the library passes back the transport whose ctx is the harness's World, which
    // outlives every call; the harness holds no borrow of it during a call.
    unsafe { &*((*t).ctx as *const RefCell<World>) }.borrow_mut()
}

unsafe extern "C" fn t_send(t: *mut usmp_transport_t, data: *const u8, len: usize) -> c_int {
    assert!(!data.is_null() && len > 0, "send({data:?}, {len})");
    // SAFETY: the library hands over `len` readable bytes.
    let d = unsafe { std::slice::from_raw_parts(data, len) }.to_vec();
    world(t).on_device_send(d)
}

unsafe extern "C" fn t_read(t: *mut usmp_transport_t, buf: *mut u8, max: usize, ms: u32) -> c_int {
    assert!(!buf.is_null() && max > 0, "recv({buf:?}, {max})");
    let mut w = world(t);
    w.io_tick();
    assert!(
        !w.in_nb || ms == 0,
        "a non-blocking call read with a wait of {ms} ms"
    );
    match w.device_read(max) {
        Ok(d) => {
            // SAFETY: `buf` has `max` writable bytes and d.len() <= max.
            unsafe { std::ptr::copy_nonoverlapping(d.as_ptr(), buf, d.len()) };
            d.len() as c_int
        }
        Err(rc) => rc,
    }
}

unsafe extern "C" fn t_recv(t: *mut usmp_transport_t, buf: *mut u8, max: usize) -> c_int {
    assert!(
        !world(t).in_nb,
        "a non-blocking call used the plain (waiting) recv"
    );
    // SAFETY: the same contract.
    unsafe { t_read(t, buf, max, 100) }
}

unsafe extern "C" fn t_close(t: *mut usmp_transport_t) {
    world(t).link_open = false;
}

unsafe extern "C" fn t_available(t: *mut usmp_transport_t) -> c_int {
    let mut w = world(t);
    w.io_tick();
    c_int::from(w.available())
}

unsafe extern "C" fn t_destroy(_t: *mut usmp_transport_t) {
    panic!("the library called destroy");
}

// ---- the application ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dev {
    /// No session (before the first connect, after `usmp_nb_close`).
    Idle,
    Connecting,
    Open,
    /// CLOSED was reported.
    Closed,
}

use usmp_event_kind_t::*;

/// A heap block handed to the library (raw, so that no Rust reference aliases the library's
/// accesses; freed when the library may no longer touch it, so ASan sees a late access).
struct Block {
    ptr: *mut u8,
    len: usize,
}

impl Block {
    fn new(bytes: Vec<u8>) -> Self {
        let len = bytes.len();
        let ptr = Box::into_raw(bytes.into_boxed_slice()).cast::<u8>();
        Self { ptr, len }
    }

    fn bytes(&self, n: usize) -> Vec<u8> {
        assert!(n <= self.len);
        // SAFETY: `n` bytes of the live block; no library call runs meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptr, n) }.to_vec()
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: made by Box::into_raw of a boxed slice of `len` bytes.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.len)) });
    }
}

struct App<'a> {
    inp: Input<'a>,
    w: *const RefCell<World>,
    ctx: *mut usmp_t,
    nb: *mut usmp_nb_t,
    version: Version,
    dgram: bool,
    rx_len: usize,
    rx: Option<Block>,
    /// The message under way (until its SENT event), and its index in the record.
    tx: Option<(Block, usize)>,
    dev: Dev,
    connects: u32,
    /// PING/REKEY requests accepted whose failure may still come as an ERROR event.
    ctrl_owed: u32,
}

impl App<'_> {
    fn w(&self) -> RefMut<'_, World> {
        // SAFETY: `w` stays valid for the whole run; borrows are dynamic (RefCell).
        unsafe { &*self.w }.borrow_mut()
    }

    fn transport(&self) -> usmp_transport_t {
        usmp_transport_t {
            send: Some(t_send),
            recv: Some(t_recv),
            close: Some(t_close),
            reconnect: None,
            available: Some(t_available),
            destroy: Some(t_destroy),
            ctx: self.w.cast_mut().cast::<c_void>(),
            flags: if self.dgram {
                USMP_TRANSPORT_DATAGRAM
            } else {
                USMP_TRANSPORT_BYTES
            },
            recv_timeout: Some(t_read),
        }
    }

    /// Runs a non-blocking call (no wait, a bounded number of transport calls).
    fn nb_call<T>(&mut self, f: impl FnOnce(*mut usmp_t, *mut usmp_nb_t) -> T) -> T {
        {
            let mut w = self.w();
            w.in_nb = true;
            w.io = 0;
        }
        let r = f(self.ctx, self.nb);
        self.w().in_nb = false;
        r
    }

    fn live(&self) -> bool {
        matches!(self.dev, Dev::Connecting | Dev::Open)
    }

    /// The connect of a run is over: its nonces are checked.
    fn end_of_connect(&mut self) {
        let w = self.w();
        w.rec.check_nonces(self.version);
    }

    fn connect(&mut self) {
        if self.connects >= MAX_CONNECTS {
            return;
        }
        if self.connects > 0 {
            self.end_of_connect();
        }
        self.connects += 1;
        self.w().redial();
        let rx = Block::new(vec![0u8; self.rx_len]);
        let rx_ptr = if self.rx_len == 0 && self.inp.u8() & 1 == 0 {
            std::ptr::null_mut()
        } else {
            rx.ptr
        };
        let mut t = self.transport();
        let rx_len = self.rx_len as u16;
        crate::trace!("usmp_nb_connect (rx {})", self.rx_len);
        // SAFETY: live context, state, transport and a receive buffer of rx_len bytes.
        let rc = self.nb_call(|c, nb| unsafe { usmp_nb_connect(c, nb, &mut t, rx_ptr, rx_len) });
        assert_eq!(rc, 0, "usmp_nb_connect");
        // The previous session's buffers are the library's no more.
        self.rx = Some(rx);
        self.tx = None;
        self.dev = Dev::Connecting;
        self.ctrl_owed = 0;
    }

    /// One poll and its event; `None` when there is no session.
    fn poll(&mut self) -> Option<usmp_event_kind_t> {
        let mut ev = usmp_event_t {
            kind: USMP_EVENT_ERROR,
            error: 77,
            len: 77,
        };
        // SAFETY: live context and state; `ev` writable.
        let rc = self.nb_call(|c, nb| unsafe { usmp_nb_poll(c, nb, &mut ev) });
        crate::trace!("  poll -> {rc} {ev:?}");

        if rc < 0 {
            assert_eq!(rc, code(usmp_err_t::USMP_ERR_NOT_CONNECTED), "usmp_nb_poll");
            assert!(
                !self.live(),
                "poll: NOT_CONNECTED during a session ({:?})",
                self.dev
            );
            assert_eq!(ev.kind, USMP_EVENT_NONE);
            return None;
        }
        assert!(
            self.live(),
            "poll returned {rc} with no session ({:?})",
            self.dev
        );
        assert_eq!(rc, ev.kind as c_int, "poll's return value and event differ");
        let invalid = code(usmp_err_t::USMP_ERR_INVALID_ARG);
        assert_ne!(
            ev.error, invalid,
            "{:?} with INVALID_ARG for valid calls",
            ev.kind
        );
        match ev.kind {
            USMP_EVENT_NONE => assert_eq!((ev.error, ev.len), (0, 0), "an empty NONE event"),
            USMP_EVENT_CONNECTED => {
                assert_eq!(self.dev, Dev::Connecting, "CONNECTED twice");
                assert_eq!((ev.error, ev.len), (0, 0));
                self.dev = Dev::Open;
            }
            USMP_EVENT_MESSAGE => {
                assert_eq!(self.dev, Dev::Open, "MESSAGE before CONNECTED");
                assert_eq!(ev.error, 0);
                let n = usize::from(ev.len);
                assert!(
                    n <= self.rx_len,
                    "a message of {n} bytes in {}",
                    self.rx_len
                );
                let m = self.rx.as_ref().map(|b| b.bytes(n)).unwrap_or_default();
                let mut w = self.w();
                let r = &mut w.rec;
                let Some(i) = (r.dev_ptr..r.gw_sent.len()).find(|&i| r.gw_sent[i] == m) else {
                    panic!(
                        "MESSAGE of {n} bytes the gateway did not send (or not whole, not in \
                         order, or twice)"
                    );
                };
                r.dev_ptr = i + 1;
                r.accounted += 1;
            }
            USMP_EVENT_SENT => {
                assert_eq!(self.dev, Dev::Open, "SENT before CONNECTED");
                let Some((_, idx)) = self.tx.take() else {
                    panic!("SENT with no message under way");
                };
                assert!(
                    ev.error == 0 || (ev.error < 0 && named(ev.error)),
                    "SENT {ev:?}"
                );
                if ev.error == 0 {
                    let w = self.w();
                    let r = &w.rec;
                    assert!(
                        r.gw_got.contains(&idx) || w.gone || r.diverged || r.forged_ack,
                        "SENT without error for message {idx}, which the gateway does not have"
                    );
                }
            }
            USMP_EVENT_ERROR => {
                assert_eq!(self.dev, Dev::Open, "ERROR before CONNECTED");
                // A message too large for the buffer; a PING or REKEY that could not go:
                // BUSY (a REKEY in the previous one's grace period), FRAGMENTATION (a REKEY
                // while a message is half received), SEQ_EXHAUSTED.
                let ok = [
                    usmp_err_t::USMP_ERR_BUFFER_OVERFLOW,
                    usmp_err_t::USMP_ERR_BUSY,
                    usmp_err_t::USMP_ERR_FRAGMENTATION,
                    usmp_err_t::USMP_ERR_SEQ_EXHAUSTED,
                ]
                .map(code);
                assert!(
                    ok.contains(&ev.error),
                    "ERROR event with error {}",
                    ev.error
                );
                if ev.error != code(usmp_err_t::USMP_ERR_BUFFER_OVERFLOW) {
                    // Only a PING or REKEY the application asked for fails this way, once.
                    assert!(
                        self.ctrl_owed > 0,
                        "ERROR {} with no PING or REKEY request to stand for",
                        ev.error
                    );
                    self.ctrl_owed -= 1;
                } else {
                    let rx_len = self.rx_len;
                    let mut w = self.w();
                    let r = &mut w.rec;
                    let i = (r.dev_ptr..r.gw_sent.len()).find(|&i| r.gw_sent[i].len() > rx_len);
                    let Some(i) = i else {
                        panic!("BUFFER_OVERFLOW with no gateway message over {rx_len} bytes");
                    };
                    r.dev_ptr = i + 1;
                    r.accounted += 1;
                }
            }
            USMP_EVENT_CLOSED => {
                assert!(ev.error < 0 && named(ev.error), "CLOSED {ev:?}");
                assert!(
                    self.tx.is_none(),
                    "CLOSED before the SENT of the message under way"
                );
                assert!(!self.w().link_open, "CLOSED with the transport still open");
                self.dev = Dev::Closed;
                self.rx = None;
            }
        }
        Some(ev.kind)
    }

    /// Before CONNECTED and after the end a call is refused with NOT_CONNECTED: true then.
    fn refused_unless_open(&self, rc: c_int, what: &str) -> bool {
        let open = self.dev == Dev::Open;
        let refused = code(usmp_err_t::USMP_ERR_NOT_CONNECTED);
        assert!(
            open || rc == refused,
            "{what} with no session returned {rc}"
        );
        !open
    }

    fn send(&mut self, len: usize) {
        let idx = self.w().rec.app_sent.len();
        let msg = content(0xD0, idx, len);
        let block = Block::new(msg.clone());
        let ptr = if len == 0 && self.inp.u8() & 1 == 0 {
            std::ptr::null()
        } else {
            block.ptr.cast_const()
        };
        // SAFETY: `len` readable bytes, valid until SENT (kept in self.tx).
        let rc = self.nb_call(|c, nb| unsafe { usmp_nb_send(c, nb, ptr, len as u16) });
        crate::trace!("usmp_nb_send({len}) -> {rc}");
        let busy = self.tx.is_some();
        if self.refused_unless_open(rc, "usmp_nb_send") {
            return;
        }
        match rc {
            0 => {
                assert!(!busy, "a second message accepted while one is under way");
                assert!(len <= MAX_MESSAGE, "accepted a message of {len} bytes");
                self.w().rec.app_sent.push(msg);
                self.tx = Some((block, idx));
            }
            rc if rc == code(usmp_err_t::USMP_ERR_BUSY) => assert!(busy, "BUSY with no send"),
            rc if rc == code(usmp_err_t::USMP_ERR_BUFFER_OVERFLOW) => {
                assert!(len > MAX_MESSAGE, "BUFFER_OVERFLOW for {len} bytes")
            }
            rc if rc == code(usmp_err_t::USMP_ERR_NOT_CONNECTED) => {}
            rc => panic!("usmp_nb_send returned {rc}"),
        }
    }

    fn control(&mut self, rekey: bool) {
        // SAFETY: live context and state.
        let rc = self.nb_call(|c, nb| unsafe {
            if rekey {
                usmp_nb_rekey(c, nb)
            } else {
                usmp_nb_ping(c, nb)
            }
        });
        crate::trace!("usmp_nb_{} -> {rc}", if rekey { "rekey" } else { "ping" });
        if self.refused_unless_open(rc, "usmp_nb_ping/rekey") {
            return;
        }
        let mut ok = vec![
            0,
            code(usmp_err_t::USMP_ERR_BUSY),
            code(usmp_err_t::USMP_ERR_NOT_CONNECTED),
        ];
        if rekey && self.version == Version::V1 {
            ok = vec![
                code(usmp_err_t::USMP_ERR_UNSUPPORTED),
                code(usmp_err_t::USMP_ERR_BUSY),
                code(usmp_err_t::USMP_ERR_NOT_CONNECTED),
            ];
        }
        assert!(
            ok.contains(&rc),
            "usmp_nb_{} returned {rc}",
            if rekey { "rekey" } else { "ping" }
        );
        if rc == 0 {
            self.ctrl_owed += 1;
        }
    }

    fn nb_close(&mut self) {
        // SAFETY: live context and state.
        let rc = self.nb_call(|c, nb| unsafe { usmp_nb_close(c, nb) });
        crate::trace!("usmp_nb_close -> {rc}");
        assert_eq!(rc, 0, "usmp_nb_close");
        if self.live() {
            assert!(!self.w().link_open, "usmp_nb_close left the transport open");
        }
        self.dev = Dev::Idle;
        self.tx = None;
        self.rx = None;
    }

    /// `usmp_close` from another caller: the session ends, the next polls say so.
    fn close_blocking(&mut self) {
        crate::trace!("usmp_close");
        self.w().io = 0;
        // SAFETY: a live context.
        unsafe { usmp_close(self.ctx) };
    }

    fn gateway_control(&mut self) {
        let pick = self.inp.u8() % 5;
        let salt: [u8; 32] = if pick == 2 { self.inp.array() } else { [0; 32] };
        crate::trace!("gateway control {pick}");
        let mut w = self.w();
        match pick {
            0 | 4 => w.gw_control(FrameType::Ping),
            1 => w.gw_control(FrameType::Pong),
            2 => w.gw_rekey(salt),
            _ => w.gw_control(FrameType::Bye),
        }
    }

    fn fault(&mut self) {
        let b = self.inp.u8();
        let mut w = self.w();
        if !w.dgram {
            if w.up_faults.len() < 4 {
                w.up_faults.push_back(Fault::Fail);
            }
            return;
        }
        let f = [Fault::Drop, Fault::Dup, Fault::Hold, Fault::Fail][usize::from(b >> 1) % 4];
        let q = if b & 1 == 0 {
            &mut w.up_faults
        } else {
            &mut w.down_faults
        };
        if q.len() < 4 {
            q.push_back(f);
        }
    }

    /// A forged, replayed or damaged datagram or piece of stream for the device.
    fn forge(&mut self) {
        let kind = self.inp.u8() % 5;
        let pick = usize::from(self.inp.u8());
        let raw = if kind == 0 {
            let mut f = self.inp.chunk().unwrap_or(&[]).to_vec();
            if self.inp.u8() & 1 == 0 {
                fix_crc(&mut f);
            }
            Some(f)
        } else {
            None
        };
        let old = {
            let w = self.w();
            let h = &w.rec.history;
            (!h.is_empty()).then(|| h[pick % h.len()].clone())
        };
        let f: Vec<u8> = match (kind, raw, old) {
            (0, Some(f), _) => f,
            (1, _, Some(f)) => f,
            (2, _, Some(mut f)) => {
                mutate(&mut f, &mut self.inp);
                f
            }
            (3, _, _) if self.dgram => {
                // A UTACK for a frame the device sent, without its MAC or with a wrong one.
                let mut w = self.w();
                let seqs: Vec<u32> = w.rec.dev_frames.keys().copied().collect();
                let seq = seqs.get(pick % seqs.len().max(1)).copied().unwrap_or(0);
                let ty = 5 + (pick as u8 >> 4) % 7;
                let junk = [pick as u8; 32];
                let mut a = [0u8; UTACK_MAC_LEN];
                let n = datagram::utack(ty, seq, w.v2().then_some(&junk), &mut a);
                let n = if pick & 1 == 0 { UTACK_LEN } else { n };
                if !w.v2() {
                    w.rec.forged_ack = true; // unauthenticated in v1: indistinguishable
                }
                a[..n].to_vec()
            }
            _ => {
                // A handshake frame out of nowhere.
                let mut out = [0u8; MAX_FRAME];
                let ty = 1 + (pick as u8) % 4;
                let payload = vec![pick as u8; pick % 80];
                match frame::encode(&mut out, self.version, ty, 0, &payload) {
                    Some(n) => out[..n].to_vec(),
                    None => return,
                }
            }
        };
        crate::trace!("forge {kind}: {} bytes", f.len());
        let mut w = self.w();
        if w.authentic_unsent(&f) {
            crate::trace!("  left out: authentic under the test keys, never sent");
            return;
        }
        if w.dgram {
            if !f.is_empty() {
                let at = pick % (w.down.len() + 1);
                w.down.insert(at, f);
            }
        } else {
            w.rec.tampered = true;
            w.sbuf.extend(f);
        }
    }

    fn network(&mut self) {
        let sub = self.inp.u8();
        let k = usize::from(self.inp.u16() % 600);
        let mut w = self.w();
        if w.dgram {
            match sub % 4 {
                0 => {
                    // The held datagrams reach the gateway, in either order.
                    let mut held = std::mem::take(&mut w.held_up);
                    if sub & 0x10 != 0 {
                        held.reverse();
                    }
                    for d in held {
                        w.gw_datagram(&d);
                    }
                }
                1 => {
                    let mut held = std::mem::take(&mut w.held_down);
                    if sub & 0x10 != 0 {
                        held.reverse();
                    }
                    w.down.extend(held);
                }
                2 => {
                    let n = w.down.len();
                    if n > 1 {
                        w.down.swap(k % n, (k / 7) % n);
                    }
                }
                _ => w.gw_timer(true),
            }
        } else {
            match sub % 4 {
                0 | 3 => {
                    w.stall = true;
                    w.readable += k;
                }
                1 => w.stall = false,
                _ => w.piece = PIECES[usize::from(sub >> 2) % 8],
            }
        }
    }

    fn advance(&mut self, ms: u32) {
        crate::trace!("advance {ms} ms");
        port::advance(ms);
        self.w().gw_timer(false);
    }

    fn settings(&mut self) {
        let b = self.inp.u8();
        crate::trace!("settings {b:#x}");
        // SAFETY: plain writes to the application's settings between calls.
        unsafe {
            match b % 3 {
                0 => (*self.ctx).keepalive_ms = KEEPALIVE[usize::from(b >> 2) % 4],
                1 => (*self.ctx).retransmit_attempts = ATTEMPTS[usize::from(b >> 2) % 4],
                _ => (*self.ctx).retransmit_timeout_ms = u32::from(b >> 2) * 20,
            }
        }
    }

    fn misc(&mut self) {
        let sub = self.inp.u8() % 8;
        crate::trace!("misc {sub}");
        match sub {
            0 => self.nb_close(),
            1 | 2 => self.close_blocking(),
            3 | 4 => self.connect(),
            5 => {
                // Bad arguments: named refusals, nothing changes.
                // SAFETY: null pointers where the API accepts them.
                let rc = self.nb_call(|c, nb| unsafe { usmp_nb_poll(c, nb, std::ptr::null_mut()) });
                assert_eq!(rc, code(usmp_err_t::USMP_ERR_INVALID_ARG));
                let rc = self.nb_call(|c, nb| unsafe { usmp_nb_send(c, nb, std::ptr::null(), 3) });
                let ok = [
                    usmp_err_t::USMP_ERR_INVALID_ARG,
                    usmp_err_t::USMP_ERR_NOT_CONNECTED,
                ];
                assert!(ok.map(code).contains(&rc), "send(NULL, 3) returned {rc}");
            }
            6 => {
                let c = self.ctx;
                // SAFETY: a live context.
                let up = unsafe { usmp_is_connected(c) };
                if up {
                    assert!(self.live(), "usmp_is_connected with no session");
                }
                let mut st = usmp_stats_t::default();
                // SAFETY: a live context and a writable stats struct.
                assert_eq!(unsafe { usmp_get_stats(c, &mut st) }, 0);
            }
            _ => {
                // The blocking API refuses a context the non-blocking one drives.
                let mut b = [0u8; 8];
                // SAFETY: a live context, an 8-byte buffer.
                let rc = unsafe { usmp_recv(self.ctx, b.as_mut_ptr(), 8) };
                if self.dev == Dev::Open {
                    let ok = [
                        usmp_err_t::USMP_ERR_BUSY,
                        usmp_err_t::USMP_ERR_NOT_CONNECTED,
                    ];
                    assert!(
                        ok.map(code).contains(&rc),
                        "usmp_recv on a nb session: {rc}"
                    );
                }
            }
        }
    }

    /// The network turns clean and the device is polled, the clock moving, until the
    /// traffic settles (or two virtual minutes).
    fn drain(&mut self) {
        {
            let mut w = self.w();
            w.up_faults.clear();
            w.down_faults.clear();
            w.stall = false;
            for d in std::mem::take(&mut w.held_up) {
                w.gw_datagram(&d);
            }
            let held = std::mem::take(&mut w.held_down);
            w.down.extend(held);
        }
        let (mut quiet, mut elapsed, mut events, mut stuck) = (0, 0, 0, 0);
        let mut left = self.w().backlog();
        while self.live() && elapsed < 120_000 {
            match self.poll() {
                Some(USMP_EVENT_NONE) => {
                    quiet += 1;
                    events = 0;
                }
                _ => {
                    quiet = 0;
                    events += 1;
                    assert!(events < 5000, "events never stop coming ({:?})", self.dev);
                }
            }
            // While the device has input to read (and reads it), time stands still: a
            // transport handing out a byte at a time is slow, not stuck.
            let now_left = self.w().backlog();
            stuck = if now_left < left { 0 } else { stuck + 1 };
            left = now_left;
            if quiet >= 2 && (now_left == 0 || stuck > 16) {
                if self.dev == Dev::Open && self.tx.is_none() && self.w().settled() {
                    break;
                }
                self.advance(100);
                elapsed += 100;
                quiet = 0;
                stuck = 0;
            }
        }
    }

    /// After the drain: a session still open has no send pending and, when nothing could
    /// excuse a loss, has delivered every gateway message.
    fn finish(&mut self) {
        if self.dev != Dev::Open {
            return;
        }
        let w = self.w();
        let r = &w.rec;
        let clean = !w.gone && !r.diverged && !r.forged_ack && w.link_open;
        if !clean {
            return;
        }
        assert!(
            self.tx.is_none(),
            "a send never completed on an open session"
        );
        if !r.rekeyed && !r.tampered {
            assert_eq!(
                r.accounted,
                r.gw_sent.len(),
                "gateway messages not delivered on an open session"
            );
        }
    }
}

/// A context with the run's settings (cfg1), on the heap (raw: the library's accesses go
/// through this pointer only).
fn new_ctx(version: Version, cfg1: u8) -> *mut usmp_t {
    // SAFETY: all-zero is a valid usmp_t, as in C (`usmp_t ctx = {0};`).
    let ctx: *mut usmp_t = Box::into_raw(Box::new(unsafe { std::mem::zeroed() }));
    // SAFETY: the fresh context (no call runs).
    unsafe {
        (*ctx).psk = crate::PSK.as_ptr();
        (*ctx).psk_len = crate::PSK.len();
        (*ctx).protocol_version = version as u8;
        (*ctx).retransmit_attempts = ATTEMPTS[usize::from(cfg1 & 3)];
        (*ctx).retransmit_timeout_ms = if cfg1 & 4 != 0 { 200 } else { 0 };
        (*ctx).keepalive_ms = KEEPALIVE[usize::from(cfg1 >> 3) & 3];
    }
    ctx
}

/// One execution. After the configuration bytes, each operation is a byte (mod 20): 0-5
/// poll (1 to 8 times), 6-7 `usmp_nb_send` (a length follows), 8 `usmp_nb_ping`, 9
/// `usmp_nb_rekey`, 10-11 a gateway message (length), 12 a gateway PING/PONG/REKEY/BYE, 13
/// a fault armed for the next datagram (stream: a failing send), 14 a forged frame for the
/// device, 15 the network (release held datagrams, swap, retransmit; stream: stall, deliver
/// k bytes, piece size), 16 the clock, 17 the gateway's timer, 18 close / `usmp_close` /
/// connect again / bad arguments / stats / the blocking API, 19 settings.
pub fn run(data: &[u8]) {
    port::reset(1000);
    port::TICK.with(|t| t.set(0));
    let mut inp = Input::new(data);
    let cfg0 = inp.u8();
    let cfg1 = inp.u8();
    let version = version_from(cfg0);
    let dgram = cfg0 & 2 != 0;
    let world = World {
        version,
        dgram,
        cookie: cfg0 & 0x10 != 0,
        ack_first: cfg0 & 4 != 0,
        echo: cfg0 & 8 != 0,
        link_open: false,
        in_nb: false,
        io: 0,
        hello: Vec::new(),
        last_hs: 0,
        gw: None,
        ack_key: None,
        gone: false,
        outq: VecDeque::new(),
        sent_at: 0,
        first_sent_at: 0,
        gmsg: vec![0u8; MAX_MESSAGE],
        partial_epoch: None,
        down: VecDeque::new(),
        held_down: Vec::new(),
        held_up: Vec::new(),
        up_faults: VecDeque::new(),
        down_faults: VecDeque::new(),
        sbuf: VecDeque::new(),
        stall: false,
        readable: 0,
        piece: PIECES[usize::from(cfg1 >> 5)],
        hangup: false,
        rec: Record::default(),
    };
    let w: *const RefCell<World> = Box::into_raw(Box::new(RefCell::new(world)));
    let ctx = new_ctx(version, cfg1);
    // SAFETY: all-zero is a usmp_nb_t with no session.
    let nb: *mut usmp_nb_t = Box::into_raw(Box::new(unsafe { std::mem::zeroed() }));
    let mut app = App {
        inp,
        w,
        ctx,
        nb,
        version,
        dgram,
        rx_len: RX_SIZES[usize::from(cfg0 >> 5)],
        rx: None,
        tx: None,
        dev: Dev::Idle,
        connects: 0,
        ctrl_owed: 0,
    };
    app.connect();
    let mut ops = 0;
    while !app.inp.is_empty() && ops < MAX_OPS {
        ops += 1;
        let op = app.inp.u8();
        match op % 20 {
            0..=5 => {
                for _ in 0..=(op >> 5) {
                    app.poll();
                }
            }
            6 | 7 => {
                let len = if op & 0x80 != 0 && op & 0x40 != 0 {
                    MAX_MESSAGE + 1 + usize::from(app.inp.u8())
                } else {
                    message_len(&mut app.inp)
                };
                app.send(len);
            }
            8 => app.control(false),
            9 => app.control(true),
            10 | 11 => {
                let len = message_len(&mut app.inp);
                let idx = app.w().rec.gw_sent.len();
                crate::trace!("gateway message {len}");
                app.w().gw_message(content(0x6A, idx, len));
            }
            12 => app.gateway_control(),
            13 => app.fault(),
            14 => app.forge(),
            15 => app.network(),
            16 => {
                let ms = STEPS_MS[usize::from(app.inp.u8()) % STEPS_MS.len()];
                app.advance(ms);
            }
            17 => app.w().gw_timer(false),
            18 => app.misc(),
            _ => app.settings(),
        }
    }
    app.drain();
    app.finish();
    app.end_of_connect();
    let ctx = app.ctx;
    // SAFETY: live context and state; then everything is released.
    unsafe { usmp_nb_close(ctx, nb) };
    drop(app);
    // SAFETY: allocated with Box::into_raw; no call runs any more.
    unsafe {
        drop(Box::from_raw(nb));
        drop(Box::from_raw(ctx));
        drop(Box::from_raw(w.cast_mut()));
    }
}
