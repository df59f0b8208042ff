//! The known-key session harness shared by `session_keyed` and `datagram`: a device session
//! and a gateway session with the vector keys; the fuzzer chooses what the gateway seals
//! (messages, PING/PONG/BYE/ERROR, lone fragments, REKEY), how the wire mangles it (bit flips,
//! truncation, header rewrites with a repaired CRC, replays, drops, swaps, raw injections,
//! sequence jumps) and when the device receives; the device also sends back (PONG, messages,
//! its own REKEY). The frames reach the device past the CRC, nonce and tag checks.
//!
//! Oracles, on every run:
//! - authenticity: whatever the device accepts is byte-for-byte a frame the gateway sealed;
//! - no replay: the device accepts each (rx key, seq) at most once;
//! - message integrity: a delivered message is the concatenation of the plaintexts of
//!   consecutive gateway DATA_FRAG... DATA frames under one key;
//! - liveness: while the wire has only delivered unmodified frames in order, every frame is
//!   accepted and every message is the next one sent (buffer overflow excepted, which drops
//!   the message and keeps the session); the gateway accepts every device frame while both
//!   sides share keys and counters;
//! - no panic, no out-of-bounds access (ASan; the message buffer is a heap block of exactly
//!   the capacity the fuzzer picked).

use std::collections::{HashMap, HashSet, VecDeque};

use usmp::frame::{FrameType, MAX_FRAME};
use usmp::session::{Epoch, Rx, Session, MAX_MESSAGE};
use usmp::{Error, Version};

use crate::{fix_crc, frame_id, mutate, seal, seal_message, vector_pair, Authentic, Input};

struct WireFrame {
    bytes: Vec<u8>,
    pristine: bool,
}

/// A gateway data frame by (key, seq): its type and plaintext.
type DataLog = HashMap<([u8; 32], u32), (FrameType, Vec<u8>)>;

pub struct Harness {
    datagram: bool,
    dev: Session,
    gw: Session,
    wire: VecDeque<WireFrame>,
    history: Vec<Vec<u8>>,
    auth: Authentic,
    data_log: DataLog,
    accepted: HashSet<([u8; 32], u32)>,
    expected: VecDeque<Vec<u8>>,
    /// Only unmodified frames, delivered in order, and no error so far.
    clean: bool,
    /// Stream mode: an error other than BufferOverflow happened. The C driver drops the
    /// session then (the contract of `Session::receive` on a stream); frames keep coming here
    /// to exercise the core, and authenticity and no-replay still hold, but a message may
    /// then span the frame that failed (the partial message is not reset on every error).
    fatal: bool,
    /// The device's message buffer: one heap block per message (the core requires the same
    /// buffer for all fragments of a message).
    msg: Vec<u8>,
}

impl Harness {
    pub fn new(version: Version, datagram: bool) -> Self {
        let (mut dev, gw) = vector_pair(version);
        dev.set_datagram(datagram);
        Self {
            datagram,
            dev,
            gw,
            wire: VecDeque::new(),
            history: Vec::new(),
            auth: Authentic::default(),
            data_log: HashMap::new(),
            accepted: HashSet::new(),
            expected: VecDeque::new(),
            clean: true,
            fatal: false,
            msg: Vec::new(),
        }
    }

    fn push_sealed(&mut self, f: Vec<u8>, ty: FrameType, pt: &[u8]) {
        if matches!(ty, FrameType::Data | FrameType::DataFrag) {
            let seq = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
            self.data_log
                .insert((*self.gw.tx_key(), seq), (ty, pt.to_vec()));
        }
        self.auth.add(&f);
        if self.history.len() < 64 {
            self.history.push(f.clone());
        }
        self.wire.push_back(WireFrame {
            bytes: f,
            pristine: true,
        });
    }

    fn gateway_message(&mut self, inp: &mut Input<'_>) {
        let len = usize::from(inp.u16()) % (MAX_MESSAGE + 2);
        let m = inp.message(len);
        let key = *self.gw.tx_key();
        match seal_message(&mut self.gw, &m) {
            Ok(frames) => {
                let last = frames.len() - 1;
                for (i, (f, pt)) in frames
                    .into_iter()
                    .zip(m.chunks(452).chain([&[][..]]))
                    .enumerate()
                {
                    let ty = if i == last {
                        FrameType::Data
                    } else {
                        FrameType::DataFrag
                    };
                    debug_assert_eq!(*self.gw.tx_key(), key);
                    self.push_sealed(f, ty, pt);
                }
                self.expected.push_back(m);
            }
            Err(e) => {
                crate::check_error(e);
                assert!(
                    matches!(e, Error::BufferOverflow | Error::SeqExhausted),
                    "gateway could not seal a message: {e:?}"
                );
            }
        }
    }

    fn gateway_control(&mut self, inp: &mut Input<'_>) {
        let pick = inp.u8() % 7;
        let (ty, pt) = match pick {
            0 => (FrameType::Ping, Vec::new()),
            1 => (FrameType::Pong, Vec::new()),
            2 => (FrameType::Bye, Vec::new()),
            3 => {
                let n = usize::from(inp.u8() % 8);
                (FrameType::Error, inp.message(n))
            }
            4 => {
                // A lone fragment: the next message is appended to it by the receiver.
                let n = usize::from(inp.u16() % 460);
                (FrameType::DataFrag, inp.message(n))
            }
            5 => {
                let salt: [u8; 32] = inp.array();
                let mut buf = [0u8; MAX_FRAME];
                match self.gw.start_rekey(&salt, &mut buf) {
                    Ok(n) => {
                        // Sealed under the old key; the gateway already uses the new ones.
                        let f = buf[..n].to_vec();
                        self.auth.add(&f);
                        self.history.push(f.clone());
                        self.wire.push_back(WireFrame {
                            bytes: f,
                            pristine: true,
                        });
                    }
                    Err(e) => crate::check_error(e),
                }
                return;
            }
            _ => {
                let n = usize::from(inp.u8() % 40);
                (FrameType::Rekey, inp.message(n))
            }
        };
        if ty == FrameType::DataFrag || ty == FrameType::Error || ty == FrameType::Rekey {
            // Outside what a well-behaved sender does (a REKEY that does not switch keys, a
            // stray fragment): the liveness oracle stops here; the others go on.
            self.clean = false;
        }
        match seal(&mut self.gw, ty, &pt) {
            Ok(f) => self.push_sealed(f, ty, &pt),
            Err(e) => crate::check_error(e),
        }
    }

    /// Checks a delivered message against the gateway's data frames under `key`.
    fn check_message(&self, key: &[u8; 32], last_seq: u32, m: &[u8]) {
        for k in 0..4u32 {
            let Some(first) = last_seq.checked_sub(k) else {
                break;
            };
            let mut whole = Vec::new();
            let mut ok = true;
            for s in first..=last_seq {
                match self.data_log.get(&(*key, s)) {
                    Some((ty, pt)) => {
                        let want = if s == last_seq {
                            FrameType::Data
                        } else {
                            FrameType::DataFrag
                        };
                        ok &= *ty == want;
                        whole.extend_from_slice(pt);
                    }
                    None => ok = false,
                }
            }
            if ok && whole == m {
                return;
            }
        }
        if self.crosses_keys(key, last_seq, m) {
            return;
        }
        panic!("delivered a message that no run of consecutive gateway fragments makes: {} bytes ending at seq {last_seq}", m.len());
    }

    /// A message the gateway began under its previous key and finished under `key` from its
    /// seq 0 (its keys changed while it sent the message): consecutive fragments under the
    /// previous key, then consecutive frames from 0 to `last_seq` under `key`. When the
    /// gateway sealed more data under the previous key after those fragments, none of it may
    /// have been taken by the device: the rest of the first message was lost for good, which a
    /// datagram peer sending one frame at a time (stop-and-wait, as USMP's UDP transport) never
    /// goes past, and which this harness's network can do (the device cannot tell such a head
    /// from the start of the message that crossed the keys).
    fn crosses_keys(&self, key: &[u8; 32], last_seq: u32, m: &[u8]) -> bool {
        let prev = self.dev.rx_key_of(Epoch::Previous);
        if last_seq >= 4 || prev == key {
            return false;
        }
        let part = |k: &[u8; 32], first: u32, last: u32, end: bool| -> Option<Vec<u8>> {
            let mut out = Vec::new();
            for s in first..=last {
                let (ty, pt) = self.data_log.get(&(*k, s))?;
                let want = if end && s == last {
                    FrameType::Data
                } else {
                    FrameType::DataFrag
                };
                if *ty != want {
                    return None;
                }
                out.extend_from_slice(pt);
            }
            Some(out)
        };
        let Some(tail) = part(key, 0, last_seq, true) else {
            return false;
        };
        let Some(head_len) = m.len().checked_sub(tail.len()) else {
            return false;
        };
        if m[head_len..] != tail[..] {
            return false;
        }
        self.data_log
            .keys()
            .filter(|(k, _)| k == prev)
            .any(|&(_, e)| {
                let head_ok = (0..4u32).any(|k| {
                    e.checked_sub(k)
                        .and_then(|first| part(prev, first, e, false))
                        .is_some_and(|head| head[..] == m[..head_len])
                });
                let rest_lost = self
                    .data_log
                    .keys()
                    .all(|(k, s)| k != prev || *s <= e || !self.accepted.contains(&(*prev, *s)));
                head_ok && rest_lost
            })
    }

    fn deliver(&mut self, inp: &mut Input<'_>) {
        let Some(w) = self.wire.pop_front() else {
            return;
        };
        crate::trace!(
            "deliver {:02x?}.. ({} bytes, pristine {})",
            &w.bytes[..w.bytes.len().min(12)],
            w.bytes.len(),
            w.pristine
        );
        if !w.pristine {
            self.clean = false;
        }
        let mut f = w.bytes;
        let id = frame_id(&f);
        if !self.dev.reassembling() {
            let cap = match inp.u8() % 4 {
                0 => usize::from(inp.u16()) % (MAX_MESSAGE + 1),
                _ => MAX_MESSAGE,
            };
            self.msg = vec![0u8; cap];
        }
        // The key that opens the frame: the current one, or during a REKEY's grace period
        // the previous one (a frame that was in flight when the keys changed).
        let mut key = *self.dev.rx_key();
        let (result, seq) = match self.dev.open(&mut f) {
            Ok(o) => {
                if self.datagram {
                    self.on_authentic(&id);
                }
                key = *self.dev.rx_key_of(o.epoch());
                let seq = o.seq();
                (self.dev.process(o, &mut self.msg), seq)
            }
            Err(e) => (Err(e), 0),
        };
        crate::trace!("  -> {result:?}");
        match result {
            Ok(rx) => {
                // Accepted: authentic, fresh, once.
                assert!(
                    id.as_deref().is_some_and(|id| self.auth.contains_id(id)),
                    "device accepted a frame the gateway never sealed"
                );
                assert!(
                    self.accepted.insert((key, seq)),
                    "device accepted seq {seq} twice under one key"
                );
                match rx {
                    Rx::Message(n) => {
                        assert!(n <= self.msg.len());
                        let m = self.msg[..n].to_vec();
                        if !self.fatal {
                            self.check_message(&key, seq, &m);
                        }
                        if self.clean {
                            let want = self.expected.pop_front();
                            assert_eq!(
                                Some(&m),
                                want.as_ref(),
                                "clean stream delivered another message"
                            );
                        }
                    }
                    Rx::Ping => self.answer_ping(),
                    Rx::Dropped => {
                        // The end of a message whose receive was abandoned (op 10): dropped
                        // by design.
                        if self.clean {
                            self.expected.pop_front();
                        }
                    }
                    Rx::Fragment | Rx::Pong | Rx::Rekeyed => {}
                }
            }
            Err(e) => {
                crate::check_error(e);
                if !self.datagram && e != Error::BufferOverflow {
                    self.fatal = true;
                }
                if self.clean {
                    match e {
                        Error::BufferOverflow => {
                            self.expected.pop_front();
                        }
                        Error::Flood | Error::ClosedByPeer | Error::Fragmentation => {
                            self.clean = false
                        }
                        e => panic!("clean stream: in-order unmodified frame refused: {e:?}"),
                    }
                }
            }
        }
    }

    fn on_authentic(&self, id: &Option<Vec<u8>>) {
        // `open` succeeded: the tag verified, so the frame must be one the gateway sealed
        // (fresh or not).
        assert!(
            id.as_deref().is_some_and(|id| self.auth.contains_id(id)),
            "open() authenticated a frame the gateway never sealed"
        );
    }

    fn answer_ping(&mut self) {
        let before = (*self.dev.tx_key(), self.dev.tx_next());
        match seal(&mut self.dev, FrameType::Pong, &[]) {
            Ok(f) => self.deliver_to_gateway(before, &[f], Some(Rx::Pong)),
            Err(e) => crate::check_error(e),
        }
    }

    /// Device frames go straight to the gateway (in order, unmodified).
    /// `before`: the device's TX key and counter before it sealed `frames`.
    fn deliver_to_gateway(
        &mut self,
        before: ([u8; 32], u64),
        frames: &[Vec<u8>],
        want_last: Option<Rx>,
    ) {
        let mut gmsg = vec![0u8; MAX_MESSAGE];
        for (i, f) in frames.iter().enumerate() {
            let in_sync = before.0 == *self.gw.rx_key() && before.1 + i as u64 == self.gw.rx_next();
            let mut g = f.clone();
            let r = self.gw.receive(&mut g, &mut gmsg);
            if in_sync {
                let r =
                    r.unwrap_or_else(|e| panic!("gateway refused an in-sync device frame: {e:?}"));
                if i + 1 == frames.len() {
                    if let Some(want) = want_last {
                        match (want, r) {
                            (Rx::Message(n), Rx::Message(m)) => assert_eq!(n, m),
                            (w, r) => assert_eq!(w, r),
                        }
                    }
                }
            } else if let Err(e) = r {
                crate::check_error(e);
            }
        }
    }

    fn device_sends(&mut self, inp: &mut Input<'_>) {
        let before = (*self.dev.tx_key(), self.dev.tx_next());
        if inp.u8().is_multiple_of(3) {
            let salt: [u8; 32] = inp.array();
            let mut buf = [0u8; MAX_FRAME];
            match self.dev.start_rekey(&salt, &mut buf) {
                Ok(n) => {
                    // Gateway frames still in flight were sealed under the key the device just
                    // replaced: they fail (both sides rekeying at once), not a bug.
                    if !self.wire.is_empty() {
                        self.clean = false;
                    }
                    self.deliver_to_gateway(before, &[buf[..n].to_vec()], Some(Rx::Rekeyed));
                }
                Err(e) => crate::check_error(e),
            }
        } else {
            let len = usize::from(inp.u16()) % (MAX_MESSAGE + 1);
            let m = inp.message(len);
            match seal_message(&mut self.dev, &m) {
                Ok(frames) => self.deliver_to_gateway(before, &frames, Some(Rx::Message(len))),
                Err(e) => crate::check_error(e),
            }
        }
    }

    pub fn run(&mut self, inp: &mut Input<'_>) {
        let mut ops = 0;
        while !inp.is_empty() && ops < 400 {
            ops += 1;
            let op = inp.u8() % 14;
            crate::trace!(
                "op {op} (dev rx_next {}, gw tx_next {})",
                self.dev.rx_next(),
                self.gw.tx_next()
            );
            match op {
                0 | 1 => self.gateway_message(inp),
                2 => self.gateway_control(inp),
                3 => {
                    let n = self.wire.len();
                    if n > 0 {
                        let i = usize::from(inp.u8()) % n;
                        let w = &mut self.wire[i];
                        if mutate(&mut w.bytes, inp) {
                            w.pristine = false;
                        }
                    }
                }
                4 => {
                    if !self.history.is_empty() {
                        let i = usize::from(inp.u8()) % self.history.len();
                        let f = self.history[i].clone();
                        self.wire.push_back(WireFrame {
                            bytes: f,
                            pristine: false,
                        });
                    }
                }
                5 => {
                    let n = self.wire.len();
                    if n > 0 {
                        self.wire.remove(usize::from(inp.u8()) % n);
                        self.clean = false;
                    }
                }
                6 => {
                    let n = self.wire.len();
                    if n > 1 {
                        let (a, b) = (usize::from(inp.u8()) % n, usize::from(inp.u8()) % n);
                        if a != b {
                            self.wire.swap(a, b);
                            self.wire[a].pristine = false;
                            self.wire[b].pristine = false;
                        }
                    }
                }
                7..=9 => self.deliver(inp),
                10 => self.dev.abandon_message(),
                11 => {
                    let Some(c) = inp.chunk() else { break };
                    let mut f = c.to_vec();
                    if inp.u8() & 1 == 0 {
                        fix_crc(&mut f);
                    }
                    self.wire.push_back(WireFrame {
                        bytes: f,
                        pristine: false,
                    });
                }
                12 => self.device_sends(inp),
                _ => {
                    // Jump the gateway's TX counter (towards the end of the sequence space)
                    // and the device's expectation with it, when nothing is in flight.
                    let back = inp.u32() % 4096;
                    if self.wire.is_empty() && !self.dev.reassembling() {
                        let to = 0xFFFF_FFFFu64.saturating_sub(u64::from(back));
                        self.gw.set_tx_next(to);
                        if self.gw.tx_next() >= self.dev.rx_next() {
                            self.dev.set_rx_next(self.gw.tx_next());
                        }
                    }
                }
            }
        }
        // Drain: whatever is still on the wire reaches the device.
        while !self.wire.is_empty() {
            let mut none = Input::new(&[]);
            self.deliver(&mut none);
        }
    }
}
