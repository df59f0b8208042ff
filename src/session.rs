//! An established session: AES-256-GCM sealing and opening with the spec's nonce, AAD and
//! payload layout, sequence numbers, fragmentation, PING/PONG/BYE and (v2) REKEY with a
//! grace period for frames still in flight under the previous key. Sans-IO: frames in,
//! frames and events out.
//!
//! Encrypted payload: `nonce(12) = seq LE || session_id[0..8]`, then the ciphertext, then the
//! 16-byte tag; the AAD is header bytes 0..10, whose length field is the encrypted length.
//!
//! The API cannot be misused into reusing a nonce or accepting a frame twice: a sequence
//! number is burned before its frame is sealed, counters only move forward, and an
//! [`Opened`] frame borrows its plaintext and is consumed by [`Session::process`], which
//! checks its freshness again against the state it finds.
//!
//! Every field is plain data for which any bit pattern is valid (the C API keeps a session
//! inside the application's `usmp_t`).

use zeroize::Zeroize;

use crate::crypto::{self, KEY_LEN, NONCE_LEN, TAG_LEN};
use crate::datagram::Window;
use crate::frame::{self, FrameType, HEADER_LEN, MAX_PAYLOAD};
use crate::{Error, Version};

/// Bytes an encrypted frame adds to its plaintext (nonce + tag).
pub const AEAD_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Largest plaintext in one frame.
pub const MAX_DATA: usize = MAX_PAYLOAD - AEAD_OVERHEAD;
/// Most frames one message may span.
pub const MAX_FRAGMENTS: usize = 4;
/// Largest message (`MAX_DATA * MAX_FRAGMENTS` = 1808).
pub const MAX_MESSAGE: usize = MAX_DATA * MAX_FRAGMENTS;
/// Offset of the plaintext inside a frame buffer passed to [`Session::seal`].
pub const PLAINTEXT_OFFSET: usize = HEADER_LEN + NONCE_LEN;
/// Session id length.
pub const SESSION_ID_LEN: usize = 16;
/// The REKEY salt length.
pub const REKEY_SALT_LEN: usize = 32;
/// Length of a sealed control frame (PING, PONG, BYE): header, nonce, tag.
pub const CONTROL_FRAME_LEN: usize = HEADER_LEN + AEAD_OVERHEAD;
/// Length of a sealed REKEY frame.
pub const REKEY_FRAME_LEN: usize = CONTROL_FRAME_LEN + REKEY_SALT_LEN;

const LAST_SEQ: u32 = 0xFFFF_FFFF;

// Session flags.
const DATAGRAM: u8 = 1;
const DISCARDING: u8 = 2;
const GRACE: u8 = 4;
const TX_SPENT: u8 = 8;
const RX_SPENT: u8 = 16;
const ABANDONED: u8 = 32;
/// The message being reassembled came so far under the previous key (grace period).
const FRAG_PREV: u8 = 64;

/// The frames of a message, in order: `(type, plaintext)`, DATA_FRAG for all but the last
/// and DATA for the last (an empty message is one empty DATA). `BufferOverflow` above 1808
/// bytes.
pub fn fragments(msg: &[u8]) -> Result<impl Iterator<Item = (FrameType, &[u8])>, Error> {
    let frames = Session::frames_for(msg.len())?;
    Ok((0..frames).map(move |i| fragment(msg, i, frames)))
}

/// Fragment `i` of a message split into `frames` frames (see [`fragments`]).
pub(crate) fn fragment(msg: &[u8], i: usize, frames: usize) -> (FrameType, &[u8]) {
    let ty = if i + 1 == frames {
        FrameType::Data
    } else {
        FrameType::DataFrag
    };
    let start = (i * MAX_DATA).min(msg.len());
    let end = (start + MAX_DATA).min(msg.len());
    (ty, msg.get(start..end).unwrap_or(&[]))
}

/// What an accepted frame meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rx {
    /// A whole message of this many bytes is in the message buffer.
    Message(usize),
    /// A fragment was appended; more are due.
    Fragment,
    /// The peer pinged: send [`Session::seal_control`] of a PONG now.
    Ping,
    /// A PONG was consumed.
    Pong,
    /// The peer rotated the keys (REKEY); counters restarted at 0.
    Rekeyed,
    /// The last frame of a message whose receive was abandoned ([`Session::abandon_message`])
    /// arrived: the message was dropped.
    Dropped,
}

/// Where an authentic frame's seq stands relative to what was received before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Not received before: process it.
    Fresh,
    /// Received before (or older than the replay window): acknowledge again, drop.
    Duplicate,
    /// Ahead of the next expected seq on a strict (in-order) session: drop.
    Gap,
}

/// Which receive key opened a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epoch {
    /// The current key.
    Current,
    /// The key before the last REKEY (a frame that was in flight when the keys changed).
    Previous,
}

/// An authenticated frame, decrypted in place: its type, seq, plaintext and freshness.
/// It borrows the frame buffer and is consumed by [`Session::process`], so the same frame
/// cannot be processed twice:
///
/// ```compile_fail
/// # fn f(s: &mut usmp::session::Session, frame: &mut [u8], msg: &mut [u8]) {
/// let o = s.open(frame).unwrap();
/// let _ = s.process(o, msg);
/// let _ = s.process(o, msg); // error: use of moved value `o`
/// # }
/// ```
#[derive(Debug)]
pub struct Opened<'a> {
    ty: FrameType,
    seq: u32,
    epoch: Epoch,
    freshness: Freshness,
    plaintext: &'a [u8],
}

impl Opened<'_> {
    /// Frame type.
    pub fn ty(&self) -> FrameType {
        self.ty
    }
    /// Header seq.
    pub fn seq(&self) -> u32 {
        self.seq
    }
    /// Which key opened it.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }
    /// Freshness when it was opened ([`Session::process`] checks it again).
    pub fn freshness(&self) -> Freshness {
        self.freshness
    }
    /// The decrypted plaintext.
    pub fn plaintext(&self) -> &[u8] {
        self.plaintext
    }
}

/// Keys and counters of one session. Zeroized on drop; deliberately not `Clone`, so no two
/// copies can ever seal under the same (key, nonce).
#[repr(C)]
pub struct Session {
    ver: u8,
    flags: u8,
    /// Fragments received of the message being reassembled.
    frags: u8,
    _pad: u8,
    /// Bytes of that message.
    msg_len: u16,
    _pad2: u16,
    /// Next seq to send (TX_SPENT: 0xFFFFFFFF was used too).
    tx_next: u32,
    /// Next seq expected on a strict session (RX_SPENT: 0xFFFFFFFF arrived).
    rx_next: u32,
    /// Seq the next fragment must carry (datagram: fragments are consecutive).
    frag_next: u32,
    /// Next seq expected under the previous receive key (during the grace period).
    prev_rx_next: u32,
    /// v2 datagram replay window: bit `i` marks `rx_next - 1 - i` as seen (the window's
    /// highest accepted seq is `rx_next - 1`).
    bitmap: u64,
    tx_key: [u8; KEY_LEN],
    rx_key: [u8; KEY_LEN],
    prev_rx_key: [u8; KEY_LEN],
    session_id: [u8; SESSION_ID_LEN],
}

impl Drop for Session {
    fn drop(&mut self) {
        self.wipe();
    }
}

/// A session with no keys: every seal and open fails.
impl Default for Session {
    fn default() -> Self {
        let mut s = Session::new(Version::V2, &[0; 32], &[0; 32], &[0; 16]);
        s.wipe();
        s
    }
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("version", &self.version())
            .field("tx_next", &self.tx_next())
            .field("rx_next", &self.rx_next())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session from handshake output. v1 passes the same key twice.
    pub fn new(
        version: Version,
        tx_key: &[u8; KEY_LEN],
        rx_key: &[u8; KEY_LEN],
        session_id: &[u8; SESSION_ID_LEN],
    ) -> Self {
        Self {
            ver: version.byte(),
            flags: 0,
            frags: 0,
            _pad: 0,
            msg_len: 0,
            _pad2: 0,
            tx_next: 0,
            rx_next: 0,
            frag_next: 0,
            prev_rx_next: 0,
            bitmap: 0,
            tx_key: *tx_key,
            rx_key: *rx_key,
            prev_rx_key: [0; KEY_LEN],
            session_id: *session_id,
        }
    }

    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    fn set(&mut self, f: u8, on: bool) {
        if on {
            self.flags |= f;
        } else {
            self.flags &= !f;
        }
    }

    /// Switches to datagram mode (UDP): see [`Freshness`]; structural faults drop the partial
    /// message instead of ending the session.
    pub fn set_datagram(&mut self, on: bool) {
        self.set(DATAGRAM, on);
    }

    /// True in datagram mode.
    pub fn is_datagram(&self) -> bool {
        cfg!(feature = "datagram") && self.has(DATAGRAM)
    }

    /// The v2 replay window (datagram mode).
    pub fn window(&self) -> Window {
        let high = if self.has(RX_SPENT) {
            LAST_SEQ
        } else {
            self.rx_next.saturating_sub(1)
        };
        Window {
            high,
            bitmap: self.bitmap,
        }
    }

    /// Zeroizes keys and state; every later seal or open fails.
    pub fn wipe(&mut self) {
        self.tx_key.zeroize();
        self.rx_key.zeroize();
        self.prev_rx_key.zeroize();
        self.session_id.zeroize();
        self.tx_next = LAST_SEQ;
        self.rx_next = LAST_SEQ;
        self.flags = TX_SPENT | RX_SPENT;
        self.msg_len = 0;
        self.frags = 0;
        self.bitmap = 0;
    }

    /// Wire version (any byte other than 1 reads as v2).
    pub fn version(&self) -> Version {
        if cfg!(feature = "v1") && self.ver == 1 {
            Version::V1
        } else {
            Version::V2
        }
    }
    /// Session id from SESSION_OK.
    pub fn session_id(&self) -> &[u8; SESSION_ID_LEN] {
        &self.session_id
    }
    /// Next TX sequence number (above 0xFFFFFFFF once the last one is burned).
    pub fn tx_next(&self) -> u64 {
        u64::from(self.tx_next) + u64::from(self.has(TX_SPENT))
    }
    /// Next expected RX sequence number (above 0xFFFFFFFF once the last one arrived).
    pub fn rx_next(&self) -> u64 {
        u64::from(self.rx_next) + u64::from(self.has(RX_SPENT))
    }
    /// Current TX key (for tests and UTACK MACs).
    pub fn tx_key(&self) -> &[u8; KEY_LEN] {
        &self.tx_key
    }
    /// Current RX key.
    pub fn rx_key(&self) -> &[u8; KEY_LEN] {
        &self.rx_key
    }
    /// The receive key of an epoch (UTACK MACs for frames that key opened).
    pub fn rx_key_of(&self, epoch: Epoch) -> &[u8; KEY_LEN] {
        match epoch {
            Epoch::Current => &self.rx_key,
            Epoch::Previous => &self.prev_rx_key,
        }
    }
    /// True while a fragmented message is partly received.
    pub fn reassembling(&self) -> bool {
        self.frags > 0
    }
    /// True while frames under the key before the last REKEY are still accepted.
    pub fn in_grace(&self) -> bool {
        self.has(GRACE)
    }
    /// Ends the grace period: the previous receive key is wiped.
    pub fn end_grace(&mut self) {
        self.set(GRACE, false);
        self.prev_rx_key.zeroize();
    }

    /// Moves the TX counter forward (e.g. to exercise exhaustion). It never moves back:
    /// a lower value is ignored, so this cannot make a (key, nonce) pair come round again.
    pub fn set_tx_next(&mut self, seq: u64) {
        if seq > self.tx_next() {
            self.tx_next = seq.min(u64::from(LAST_SEQ)) as u32;
            self.set(TX_SPENT, seq > u64::from(LAST_SEQ));
        }
    }
    /// Moves the RX counter forward (a test starting mid-session): every seq below `seq`
    /// counts as received (on a v2 datagram link the replay window moves up with it, all
    /// marked). It never moves back, so no frame can be accepted twice.
    pub fn set_rx_next(&mut self, seq: u64) {
        if seq > self.rx_next() {
            self.rx_next = seq.min(u64::from(LAST_SEQ)) as u32;
            self.set(RX_SPENT, seq > u64::from(LAST_SEQ));
            // The window's marks were relative to its old top; below the new one, all seen.
            self.bitmap = u64::MAX;
        }
    }

    /// Frames needed for a message of `len` bytes, or `BufferOverflow` above 1808 bytes.
    pub fn frames_for(len: usize) -> Result<usize, Error> {
        if len > MAX_MESSAGE {
            return Err(Error::BufferOverflow);
        }
        Ok(len.div_ceil(MAX_DATA).max(1))
    }

    /// Copies `pt` (at most 452 bytes) into place in `buf` and seals it ([`Session::seal`]).
    pub fn seal_plaintext(
        &mut self,
        ty: FrameType,
        pt: &[u8],
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        buf.get_mut(PLAINTEXT_OFFSET..PLAINTEXT_OFFSET + pt.len())
            .ok_or(Error::InvalidArg)?
            .copy_from_slice(pt);
        self.seal(ty, buf, pt.len())
    }

    /// Checks, before anything is sent, that `frames` more data frames fit in the sequence
    /// space (the last usable data seq is 0xFFFFFFFE; 0xFFFFFFFF is kept for BYE).
    pub fn check_room(&self, frames: usize) -> Result<(), Error> {
        let last = self
            .tx_next()
            .saturating_add(frames as u64)
            .saturating_sub(1);
        if frames == 0 || last >= u64::from(LAST_SEQ) {
            return Err(Error::SeqExhausted);
        }
        Ok(())
    }

    /// Takes the next TX seq and advances the counter at once, so the number is never used
    /// twice even when the frame never leaves. BYE may take 0xFFFFFFFF; nothing else may.
    fn burn_seq(&mut self, ty: FrameType) -> Result<u32, Error> {
        let seq = self.tx_next;
        if self.has(TX_SPENT) || (seq == LAST_SEQ && ty != FrameType::Bye) {
            return Err(Error::SeqExhausted);
        }
        if seq == LAST_SEQ {
            self.set(TX_SPENT, true);
        } else {
            self.tx_next = seq + 1;
        }
        Ok(seq)
    }

    fn nonce(&self, seq: u32) -> [u8; NONCE_LEN] {
        let mut n = [0u8; NONCE_LEN];
        n[..4].copy_from_slice(&seq.to_le_bytes());
        n[4..].copy_from_slice(&self.session_id[..8]);
        n
    }

    /// Seals one frame in place. The plaintext (`pt_len` bytes, at most 452) must already be
    /// at `buf[PLAINTEXT_OFFSET..]`, and `buf` must hold the whole frame (`pt_len` + 40
    /// bytes). The seq is burned before anything else can fail. Returns the frame length.
    pub fn seal(&mut self, ty: FrameType, buf: &mut [u8], pt_len: usize) -> Result<usize, Error> {
        if pt_len > MAX_DATA || !ty.is_encrypted() || buf.len() < pt_len + CONTROL_FRAME_LEN {
            return Err(Error::InvalidArg);
        }
        if ty == FrameType::Rekey && !self.version().has_rekey() {
            return Err(Error::Unsupported);
        }
        let seq = self.burn_seq(ty)?;
        self.seal_at(ty, seq, buf, pt_len)
    }

    /// Seals an empty control frame again under the seq it was first sealed with, for a
    /// retransmission: the same key, nonce and (empty) plaintext give the same bytes, so no
    /// (key, nonce) pair is ever used for two different plaintexts. Only for PING, PONG and
    /// BYE, and only for a seq already burned.
    pub(crate) fn reseal_control(
        &mut self,
        ty: FrameType,
        seq: u32,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        let burned = u64::from(seq) < self.tx_next();
        if !matches!(ty, FrameType::Ping | FrameType::Pong | FrameType::Bye) || !burned {
            return Err(Error::InvalidArg);
        }
        self.seal_at(ty, seq, buf, 0)
    }

    fn seal_at(
        &mut self,
        ty: FrameType,
        seq: u32,
        buf: &mut [u8],
        pt_len: usize,
    ) -> Result<usize, Error> {
        let len = pt_len + AEAD_OVERHEAD;
        let version = self.version();
        let aad = frame::header10(version, ty as u8, seq, len as u16);
        let nonce = self.nonce(seq);
        let frame = buf.get_mut(..HEADER_LEN + len).ok_or(Error::InvalidArg)?;
        let (_, rest) = frame.split_at_mut(HEADER_LEN);
        let (nonce_out, rest) = rest.split_at_mut(NONCE_LEN);
        let (pt, tag_out) = rest.split_at_mut(pt_len);
        let tag = crypto::seal(&self.tx_key, &nonce, &aad, pt)?;
        nonce_out.copy_from_slice(&nonce);
        tag_out.copy_from_slice(&tag);
        frame::finish(buf, version, ty as u8, seq, len).ok_or(Error::InvalidArg)
    }

    /// Seals a control frame with an empty plaintext (PING, PONG, BYE).
    pub fn seal_control(&mut self, ty: FrameType, buf: &mut [u8]) -> Result<usize, Error> {
        self.seal(ty, buf, 0)
    }

    /// Authenticates and decrypts a frame in place: CRC, type, payload size, the embedded
    /// nonce (must equal `seq || session_id[0..8]`) and the AEAD tag — under the current
    /// receive key, or during the grace period after a REKEY under the previous one.
    /// Counters are not touched: [`Session::process`] does that. Errors mean the frame is not
    /// authentic (or not a session frame).
    pub fn open<'a>(&mut self, bytes: &'a mut [u8]) -> Result<Opened<'a>, Error> {
        let version = self.version();
        let (h, ty) = frame::decode(bytes, version)?;
        if !ty.is_encrypted() {
            return Err(Error::UnexpectedFrame);
        }
        let len = usize::from(h.length);
        if len < AEAD_OVERHEAD {
            return Err(Error::CryptoFailed);
        }
        let expected = self.nonce(h.seq);
        let frame = bytes.get_mut(..HEADER_LEN + len).ok_or(Error::BadFrame)?;
        let (head, rest) = frame.split_at_mut(HEADER_LEN);
        let (nonce, rest) = rest.split_at_mut(NONCE_LEN);
        if !crypto::ct_eq(nonce, &expected) {
            return Err(Error::CryptoFailed);
        }
        let (ct, tag) = rest.split_at_mut(len - AEAD_OVERHEAD);
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().map_err(|_| Error::BadFrame)?;
        let aad = head.get(..10).ok_or(Error::BadFrame)?;
        let mut epoch = Epoch::Current;
        if crypto::open(&self.rx_key, &expected, aad, ct, tag).is_err() {
            // A frame sealed before the peer saw our REKEY (or a REKEY of the peer's sent
            // again): the previous key, for the short grace period after the switch.
            if !self.in_grace() {
                return Err(Error::CryptoFailed);
            }
            crypto::open(&self.prev_rx_key, &expected, aad, ct, tag)?;
            epoch = Epoch::Previous;
        }
        let freshness = self.freshness(h.seq, epoch);
        if freshness == Freshness::Gap && epoch == Epoch::Previous && self.has(FRAG_PREV) {
            // Authentic, under the previous key, beyond the next one: the peer sent more under
            // that key than arrived, so a message held under it has lost a part and must not
            // go on into the current key.
            self.reset_message();
        }
        Ok(Opened {
            ty,
            seq: h.seq,
            epoch,
            freshness,
            plaintext: ct,
        })
    }

    fn freshness(&self, seq: u32, epoch: Epoch) -> Freshness {
        if epoch == Epoch::Previous {
            // The previous key's frames: the next one in order, none twice. (A peer sends its
            // frames stop-and-wait on a datagram link and in order on a stream, so the frames
            // it had in flight when the keys changed come in order; one ahead is not taken,
            // so no message under the old key can have a gap.)
            return if !self.in_grace() || seq < self.prev_rx_next {
                Freshness::Duplicate
            } else if seq == self.prev_rx_next {
                Freshness::Fresh
            } else {
                Freshness::Gap
            };
        }
        if self.is_datagram() && self.version() == Version::V2 {
            return if self.window().fresh(seq) {
                Freshness::Fresh
            } else {
                Freshness::Duplicate
            };
        }
        if self.has(RX_SPENT) || seq < self.rx_next {
            Freshness::Duplicate
        } else if seq == self.rx_next {
            Freshness::Fresh
        } else {
            Freshness::Gap
        }
    }

    /// Handles one received frame: opens it, then [`Session::process`]es it. On a stream an
    /// authentic frame that is not the next expected one is [`Error::ReplayDetected`].
    pub fn receive(&mut self, bytes: &mut [u8], msg: &mut [u8]) -> Result<Rx, Error> {
        let o = self.open(bytes)?;
        self.process(o, msg)
    }

    /// Applies an authenticated frame: accepts its seq (checked again against the current
    /// state: a frame that is no longer fresh is [`Error::ReplayDetected`] and changes
    /// nothing), then reassembles messages into `msg`, reports PINGs (answer with a PONG),
    /// consumes PONGs, applies REKEY and refuses BYE with [`Error::ClosedByPeer`]. `msg` must
    /// be the same buffer for all fragments of a message. [`Error::BufferOverflow`] (a
    /// message larger than `msg`) leaves the session usable, as do all errors in datagram
    /// mode except BYE.
    pub fn process(&mut self, o: Opened<'_>, msg: &mut [u8]) -> Result<Rx, Error> {
        if self.freshness(o.seq, o.epoch) != Freshness::Fresh {
            return Err(Error::ReplayDetected);
        }
        self.accept(o.seq, o.epoch);
        let ty = o.ty;
        let data = matches!(ty, FrameType::Data | FrameType::DataFrag);
        let prev = o.epoch == Epoch::Previous;
        if self.frags > 0 && data {
            // A message goes on under its key at the next seq; or, on a datagram link, once,
            // from the previous key into the current one at its first seq (a peer whose keys
            // changed while it was sending the message: usmp 1.2.2 takes our REKEY between
            // two fragments). Its stop-and-wait sender cannot have left frames under the old
            // key behind. On a stream an attacker who deletes the old key's last frames would
            // splice two messages that way, undetectably: not taken (`Fragmentation`).
            let same_key = prev == self.has(FRAG_PREV);
            let crossing = self.is_datagram() && self.has(FRAG_PREV) && !prev && o.seq == 0;
            if !((same_key && o.seq == self.frag_next) || crossing) {
                self.reset_message();
                if !self.is_datagram() {
                    // On a stream nothing of it can come any more.
                    return Err(Error::Fragmentation);
                }
                // On a datagram link (a fragment lost or reordered) the partial message is
                // dropped and this frame handled on its own.
            }
        } else if self.is_datagram() && self.frags > 0 {
            // A control frame in between: the partial message is dropped.
            self.reset_message();
        }
        if data {
            self.set(FRAG_PREV, prev);
        }
        self.frag_next = o.seq.wrapping_add(1);
        let pt = o.plaintext;
        match ty {
            FrameType::Data | FrameType::DataFrag => self.data(ty == FrameType::Data, pt, msg),
            FrameType::Ping | FrameType::Pong | FrameType::Rekey if self.frags > 0 => {
                self.reset_message();
                Err(Error::Fragmentation)
            }
            FrameType::Ping => Ok(Rx::Ping),
            FrameType::Pong => Ok(Rx::Pong),
            FrameType::Rekey => {
                let salt: &[u8; REKEY_SALT_LEN] =
                    pt.try_into().map_err(|_| Error::UnexpectedFrame)?;
                self.rekey(salt, false)?;
                Ok(Rx::Rekeyed)
            }
            FrameType::Bye => {
                self.wipe();
                Err(Error::ClosedByPeer)
            }
            _ => Err(Error::UnexpectedFrame),
        }
    }

    fn accept(&mut self, seq: u32, epoch: Epoch) {
        match epoch {
            Epoch::Previous => self.prev_rx_next = seq.saturating_add(1),
            Epoch::Current => {
                // The peer has switched to the current key: frames under the old one can
                // no longer be in flight on a stream (on a datagram link they still can).
                if !self.is_datagram() {
                    self.end_grace();
                }
                if self.is_datagram() && self.version() == Version::V2 {
                    let mut w = self.window();
                    w.accept(seq);
                    self.bitmap = w.bitmap;
                    self.rx_next = w.high.wrapping_add(1);
                    self.set(RX_SPENT, w.high == LAST_SEQ);
                } else if seq == LAST_SEQ {
                    self.set(RX_SPENT, true);
                } else {
                    self.rx_next = seq + 1;
                }
            }
        }
    }

    fn data(&mut self, last: bool, pt: &[u8], msg: &mut [u8]) -> Result<Rx, Error> {
        if !last && usize::from(self.frags) + 1 >= MAX_FRAGMENTS {
            self.reset_message();
            return Err(Error::Fragmentation);
        }
        self.frags += 1;
        let at = usize::from(self.msg_len);
        if !self.has(DISCARDING) {
            match msg.get_mut(at..at + pt.len()) {
                Some(dst) => dst.copy_from_slice(pt),
                None => self.set(DISCARDING, true),
            }
        }
        self.msg_len = (at + pt.len()) as u16;
        if !last {
            return Ok(Rx::Fragment);
        }
        let total = usize::from(self.msg_len);
        let overflow = self.has(DISCARDING);
        let abandoned = self.has(ABANDONED);
        self.reset_message();
        if abandoned {
            return Ok(Rx::Dropped);
        }
        if overflow {
            return Err(Error::BufferOverflow);
        }
        Ok(Rx::Message(total))
    }

    /// Drops the rest of a partly received message whose receive was abandoned midway (its
    /// buffer is gone, e.g. a cancelled async receive): its remaining fragments are consumed
    /// without being stored, and its last one gives [`Rx::Dropped`]. Without this, they would
    /// be taken for the start of a new message.
    pub fn abandon_message(&mut self) {
        if self.frags > 0 {
            self.set(ABANDONED | DISCARDING, true);
        }
    }

    fn reset_message(&mut self) {
        self.frags = 0;
        self.msg_len = 0;
        self.set(DISCARDING | ABANDONED | FRAG_PREV, false);
    }

    /// Starts a REKEY (v2): seals the REKEY frame carrying `salt` under the current key into
    /// `buf`, then switches to the new keys with both counters at 0. Send `buf[..n]` next.
    pub fn start_rekey(
        &mut self,
        salt: &[u8; REKEY_SALT_LEN],
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        if !self.version().has_rekey() {
            return Err(Error::Unsupported);
        }
        if self.frags > 0 {
            return Err(Error::Fragmentation);
        }
        let n = self.seal_plaintext(FrameType::Rekey, salt, buf)?;
        self.rekey(salt, true)?;
        Ok(n)
    }

    /// `okm = HKDF(ikm = initiator_tx || initiator_rx, salt, "usmp-rekey" || session_id)`;
    /// the initiator takes tx = okm[0..32], the responder rx = okm[0..32]. The previous
    /// receive key stays usable for frames in flight until [`Session::end_grace`] (or, on a
    /// stream, the first frame under the new key).
    fn rekey(&mut self, salt: &[u8; REKEY_SALT_LEN], initiator: bool) -> Result<(), Error> {
        let mut ikm = [0u8; 2 * KEY_LEN];
        let (first, second) = if initiator {
            (&self.tx_key, &self.rx_key)
        } else {
            (&self.rx_key, &self.tx_key)
        };
        ikm[..KEY_LEN].copy_from_slice(first);
        ikm[KEY_LEN..].copy_from_slice(second);
        let mut okm = [0u8; 2 * KEY_LEN];
        let r = crypto::hkdf(salt, &ikm, &[b"usmp-rekey", &self.session_id], &mut okm);
        ikm.zeroize();
        if let Err(e) = r {
            okm.zeroize();
            return Err(e);
        }
        let (a, b) = okm.split_at(KEY_LEN);
        let (tx, rx) = if initiator { (a, b) } else { (b, a) };
        self.prev_rx_key.copy_from_slice(&self.rx_key);
        self.prev_rx_next = if initiator {
            self.rx_next
        } else {
            // The peer's REKEY was its last frame under the old key.
            LAST_SEQ
        };
        // With the old sequence space used up (its last seq arrived; `rx_next` has wrapped to
        // 0) no frame under the old key can be fresh: no grace period at all.
        self.set(GRACE, !self.has(RX_SPENT));
        // A message partly received goes on under the old key, now the previous one.
        self.set(FRAG_PREV, self.frags > 0);
        self.tx_key.copy_from_slice(tx);
        self.rx_key.copy_from_slice(rx);
        okm.zeroize();
        self.tx_next = 0;
        self.rx_next = 0;
        self.set(TX_SPENT | RX_SPENT, false);
        self.bitmap = 0;
        Ok(())
    }
}
