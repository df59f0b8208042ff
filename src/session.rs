//! An established session: AES-256-GCM sealing and opening with the spec's nonce, AAD and
//! payload layout, sequence numbers, fragmentation, PING/PONG/BYE, the control-frame flood
//! guard and (v2) REKEY. Sans-IO: frames in, frames and events out.
//!
//! Encrypted payload: `nonce(12) = seq LE || session_id[0..8]`, then the ciphertext, then the
//! 16-byte tag; the AAD is header bytes 0..10, whose length field is the encrypted length.

use zeroize::Zeroize;

use core::ops::Range;

use crate::crypto::{self, KEY_LEN, NONCE_LEN, TAG_LEN};
use crate::datagram::Window;
use crate::frame::{self, FrameType, HEADER_LEN, MAX_FRAME, MAX_PAYLOAD};
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

const LAST_SEQ: u64 = 0xFFFF_FFFF;

/// The frames of a message, in order: `(type, plaintext)`, DATA_FRAG for all but the last
/// and DATA for the last (an empty message is one empty DATA). `BufferOverflow` above 1808
/// bytes.
pub fn fragments(msg: &[u8]) -> Result<impl Iterator<Item = (FrameType, &[u8])>, Error> {
    let frames = Session::frames_for(msg.len())?;
    let mut chunks = msg.chunks(MAX_DATA);
    Ok((0..frames).map(move |i| {
        let ty = if i + 1 == frames {
            FrameType::Data
        } else {
            FrameType::DataFrag
        };
        (ty, chunks.next().unwrap_or(&[]))
    }))
}

/// What an accepted frame meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rx {
    /// A whole message of this many bytes is in the message buffer.
    Message(usize),
    /// A fragment was appended; more are due.
    Fragment,
    /// The peer pinged: send [`Session::seal`] of a PONG now.
    Ping,
    /// A PONG was consumed.
    Pong,
    /// The peer rotated the keys (REKEY); counters restarted at 0.
    Rekeyed,
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

/// An authenticated frame: its type, seq, where its plaintext is, and its freshness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// Frame type.
    pub ty: FrameType,
    /// Header seq.
    pub seq: u32,
    /// Plaintext range inside the frame buffer (decrypted in place).
    pub plaintext: Range<usize>,
    /// Whether this seq is new.
    pub freshness: Freshness,
}

/// Keys and counters of one session. Zeroized on drop; deliberately not `Clone`, so no two
/// copies can ever seal under the same (key, nonce).
pub struct Session {
    version: Version,
    tx_key: [u8; KEY_LEN],
    rx_key: [u8; KEY_LEN],
    session_id: [u8; SESSION_ID_LEN],
    /// Next seq to send; above 0xFFFFFFFF once the last one is burned.
    tx_next: u64,
    /// Next seq expected; above 0xFFFFFFFF once the last one arrived.
    rx_next: u64,
    /// Bytes of the message being reassembled.
    msg_len: u16,
    /// Fragments received for it.
    frags: u8,
    /// The message is too large for the caller's buffer and is being skipped.
    discarding: bool,
    /// Control frames since the receive call began or since the last DATA.
    ctrl: u8,
    /// Datagram mode: duplicates and structural faults are dropped, not fatal; v2 uses the
    /// 64-frame replay window.
    datagram: bool,
    /// Seq the next fragment must carry (datagram v2: fragments are consecutive).
    frag_next: u32,
    /// v2 datagram replay window.
    window: Window,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("version", &self.version)
            .field("tx_next", &self.tx_next)
            .field("rx_next", &self.rx_next)
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
            version,
            tx_key: *tx_key,
            rx_key: *rx_key,
            session_id: *session_id,
            tx_next: 0,
            rx_next: 0,
            msg_len: 0,
            frags: 0,
            discarding: false,
            ctrl: 0,
            datagram: false,
            frag_next: 0,
            window: Window { high: 0, bitmap: 0 },
        }
    }

    /// Switches to datagram mode (UDP): see [`Freshness`]; structural faults drop the partial
    /// message instead of ending the session.
    pub fn set_datagram(&mut self, on: bool) {
        self.datagram = on;
    }

    /// The v2 replay window (datagram mode).
    pub fn window(&self) -> Window {
        self.window
    }

    /// Zeroizes keys and state.
    pub fn wipe(&mut self) {
        self.tx_key.zeroize();
        self.rx_key.zeroize();
        self.session_id.zeroize();
        self.tx_next = LAST_SEQ + 1;
        self.rx_next = LAST_SEQ + 1;
        self.msg_len = 0;
        self.frags = 0;
        self.window = Window::default();
    }

    /// Wire version.
    pub fn version(&self) -> Version {
        self.version
    }
    /// Session id from SESSION_OK.
    pub fn session_id(&self) -> &[u8; SESSION_ID_LEN] {
        &self.session_id
    }
    /// Next TX sequence number (saturates above 0xFFFFFFFF when exhausted).
    pub fn tx_next(&self) -> u64 {
        self.tx_next
    }
    /// Next expected RX sequence number.
    pub fn rx_next(&self) -> u64 {
        self.rx_next
    }
    /// Current TX key (for tests and UTACK MACs).
    pub fn tx_key(&self) -> &[u8; KEY_LEN] {
        &self.tx_key
    }
    /// Current RX key.
    pub fn rx_key(&self) -> &[u8; KEY_LEN] {
        &self.rx_key
    }
    /// True while a fragmented message is partly received.
    pub fn reassembling(&self) -> bool {
        self.frags > 0
    }

    /// Moves the TX counter forward (e.g. to exercise exhaustion). It never moves back:
    /// a lower value is ignored, so this cannot make a (key, nonce) pair come round again.
    pub fn set_tx_next(&mut self, seq: u64) {
        self.tx_next = self.tx_next.max(seq.min(LAST_SEQ + 1));
    }
    /// Test hook: moves the RX counter.
    pub fn set_rx_next(&mut self, seq: u64) {
        self.rx_next = seq.min(LAST_SEQ + 1);
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
        buf: &mut [u8; MAX_FRAME],
    ) -> Result<usize, Error> {
        buf.get_mut(PLAINTEXT_OFFSET..PLAINTEXT_OFFSET + pt.len())
            .ok_or(Error::InvalidArg)?
            .copy_from_slice(pt);
        self.seal(ty, buf, pt.len())
    }

    /// Checks, before anything is sent, that `frames` more data frames fit in the sequence
    /// space (the last usable data seq is 0xFFFFFFFE; 0xFFFFFFFF is kept for BYE).
    pub fn check_room(&self, frames: usize) -> Result<(), Error> {
        let last = self.tx_next.saturating_add(frames as u64).saturating_sub(1);
        if frames == 0 || last >= LAST_SEQ {
            return Err(Error::SeqExhausted);
        }
        Ok(())
    }

    /// Takes the next TX seq and advances the counter at once, so the number is never used
    /// twice even when the frame never leaves. BYE may take 0xFFFFFFFF; nothing else may.
    fn burn_seq(&mut self, ty: FrameType) -> Result<u32, Error> {
        let limit = if ty == FrameType::Bye {
            LAST_SEQ
        } else {
            LAST_SEQ - 1
        };
        if self.tx_next > limit {
            return Err(Error::SeqExhausted);
        }
        let seq = self.tx_next as u32;
        self.tx_next += 1;
        Ok(seq)
    }

    fn nonce(&self, seq: u32) -> [u8; NONCE_LEN] {
        let mut n = [0u8; NONCE_LEN];
        n[..4].copy_from_slice(&seq.to_le_bytes());
        n[4..].copy_from_slice(&self.session_id[..8]);
        n
    }

    /// Seals one frame in place. The plaintext (`pt_len` bytes, at most 452) must already be
    /// at `buf[PLAINTEXT_OFFSET..]`. The seq is burned before anything else can fail.
    /// Returns the frame length.
    pub fn seal(
        &mut self,
        ty: FrameType,
        buf: &mut [u8; MAX_FRAME],
        pt_len: usize,
    ) -> Result<usize, Error> {
        if pt_len > MAX_DATA || !ty.is_encrypted() {
            return Err(Error::InvalidArg);
        }
        if ty == FrameType::Rekey && !self.version.has_rekey() {
            return Err(Error::Unsupported);
        }
        let seq = self.burn_seq(ty)?;
        let len = pt_len + AEAD_OVERHEAD;
        let aad = frame::header10(self.version, ty as u8, seq, len as u16);
        let nonce = self.nonce(seq);
        let (_, rest) = buf.split_at_mut(HEADER_LEN);
        let (nonce_out, rest) = rest.split_at_mut(NONCE_LEN);
        let (pt, rest) = rest.split_at_mut(pt_len);
        let tag = crypto::seal(&self.tx_key, &nonce, &aad, pt)?;
        nonce_out.copy_from_slice(&nonce);
        rest.get_mut(..TAG_LEN)
            .ok_or(Error::InvalidArg)?
            .copy_from_slice(&tag);
        frame::finish(buf, self.version, ty as u8, seq, len).ok_or(Error::InvalidArg)
    }

    /// Seals a control frame with an empty plaintext (PING, PONG, BYE).
    pub fn seal_control(
        &mut self,
        ty: FrameType,
        buf: &mut [u8; MAX_FRAME],
    ) -> Result<usize, Error> {
        self.seal(ty, buf, 0)
    }

    /// Authenticates and decrypts a frame in place: CRC, type, payload size, the embedded
    /// nonce (must equal `seq || session_id[0..8]`) and the AEAD tag. Counters are not
    /// touched: [`Session::process`] does that. Errors mean the frame is not authentic
    /// (or not a session frame).
    pub fn open(&mut self, bytes: &mut [u8]) -> Result<Opened, Error> {
        let (h, ty) = frame::decode(bytes, self.version)?;
        if !ty.is_encrypted() {
            return Err(Error::UnexpectedFrame);
        }
        let len = usize::from(h.length);
        if len < AEAD_OVERHEAD {
            return Err(Error::CryptoFailed);
        }
        let expected = self.nonce(h.seq);
        let (head, rest) = bytes.split_at_mut(HEADER_LEN);
        let (nonce, rest) = rest.split_at_mut(NONCE_LEN);
        if !crypto::ct_eq(nonce, &expected) {
            return Err(Error::CryptoFailed);
        }
        let ct_len = len - AEAD_OVERHEAD;
        let (ct, rest) = rest.split_at_mut(ct_len);
        let tag: &[u8; TAG_LEN] = rest
            .get(..TAG_LEN)
            .and_then(|t| t.try_into().ok())
            .ok_or(Error::BadFrame)?;
        let aad = head.get(..10).ok_or(Error::BadFrame)?;
        crypto::open(&self.rx_key, &expected, aad, ct, tag)?;
        Ok(Opened {
            ty,
            seq: h.seq,
            plaintext: PLAINTEXT_OFFSET..PLAINTEXT_OFFSET + ct_len,
            freshness: self.freshness(h.seq),
        })
    }

    fn freshness(&self, seq: u32) -> Freshness {
        let seq64 = u64::from(seq);
        if self.datagram && self.version == Version::V2 {
            return if self.window.fresh(seq) {
                Freshness::Fresh
            } else {
                Freshness::Duplicate
            };
        }
        if seq64 == self.rx_next {
            Freshness::Fresh
        } else if seq64 < self.rx_next {
            Freshness::Duplicate
        } else {
            Freshness::Gap
        }
    }

    /// Call at the start of each receive call: restarts the flood-guard count.
    pub fn begin_receive(&mut self) {
        self.ctrl = 0;
    }

    fn control_frame(&mut self) -> Result<(), Error> {
        if self.frags > 0 {
            return Err(Error::Fragmentation);
        }
        self.ctrl = self.ctrl.saturating_add(1);
        if self.ctrl >= self.version.flood_limit() {
            return Err(Error::Flood);
        }
        Ok(())
    }

    /// Handles one received frame: opens it, then [`Session::process`]es it. On a stream an
    /// authentic frame that is not the next expected one is [`Error::ReplayDetected`].
    pub fn receive(&mut self, bytes: &mut [u8], msg: &mut [u8]) -> Result<Rx, Error> {
        let o = self.open(bytes)?;
        let pt = bytes.get(o.plaintext.clone()).ok_or(Error::BadFrame)?;
        self.process(&o, pt, msg)
    }

    /// Applies an authenticated frame: accepts its seq, then reassembles messages into `msg`,
    /// reports PINGs (answer with a PONG), consumes PONGs, applies REKEY and refuses BYE with
    /// [`Error::ClosedByPeer`]. `msg` must be the same buffer for all fragments of a message.
    /// [`Error::BufferOverflow`] (a message larger than `msg`) leaves the session usable, as
    /// do all errors in datagram mode except BYE.
    pub fn process(&mut self, o: &Opened, pt: &[u8], msg: &mut [u8]) -> Result<Rx, Error> {
        if o.freshness != Freshness::Fresh {
            return Err(Error::ReplayDetected);
        }
        if self.datagram && self.version == Version::V2 {
            self.window.accept(o.seq);
            self.rx_next = u64::from(self.window.high) + 1;
        } else {
            self.rx_next += 1;
        }
        let ty = o.ty;
        if self.datagram && self.frags > 0 {
            // A lost or reordered fragment, or a control frame in between: on a datagram link
            // the partial message is dropped and this frame handled on its own.
            let in_order =
                matches!(ty, FrameType::Data | FrameType::DataFrag) && o.seq == self.frag_next;
            if !in_order {
                self.reset_message();
            }
        }
        self.frag_next = o.seq.wrapping_add(1);
        match ty {
            FrameType::Data | FrameType::DataFrag => {
                self.ctrl = 0;
                let last = ty == FrameType::Data;
                if !last && usize::from(self.frags) + 1 >= MAX_FRAGMENTS {
                    self.reset_message();
                    return Err(Error::Fragmentation);
                }
                self.frags += 1;
                let at = usize::from(self.msg_len);
                if !self.discarding {
                    match msg.get_mut(at..at + pt.len()) {
                        Some(dst) => dst.copy_from_slice(pt),
                        None => self.discarding = true,
                    }
                }
                self.msg_len = (at + pt.len()) as u16;
                if !last {
                    return Ok(Rx::Fragment);
                }
                let total = usize::from(self.msg_len);
                let overflow = self.discarding;
                self.reset_message();
                if overflow {
                    return Err(Error::BufferOverflow);
                }
                Ok(Rx::Message(total))
            }
            FrameType::Ping => self.control_frame().map(|()| Rx::Ping),
            FrameType::Pong => self.control_frame().map(|()| Rx::Pong),
            FrameType::Rekey => {
                self.control_frame()?;
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

    fn reset_message(&mut self) {
        self.frags = 0;
        self.msg_len = 0;
        self.discarding = false;
    }

    /// Starts a REKEY (v2): seals the REKEY frame carrying `salt` under the current key into
    /// `buf`, then switches to the new keys with both counters at 0. Send `buf[..n]` next.
    pub fn start_rekey(
        &mut self,
        salt: &[u8; REKEY_SALT_LEN],
        buf: &mut [u8; MAX_FRAME],
    ) -> Result<usize, Error> {
        if !self.version.has_rekey() {
            return Err(Error::Unsupported);
        }
        if self.frags > 0 {
            return Err(Error::Fragmentation);
        }
        buf.get_mut(PLAINTEXT_OFFSET..PLAINTEXT_OFFSET + REKEY_SALT_LEN)
            .ok_or(Error::InvalidArg)?
            .copy_from_slice(salt);
        let n = self.seal(FrameType::Rekey, buf, REKEY_SALT_LEN)?;
        self.rekey(salt, true)?;
        Ok(n)
    }

    /// `okm = HKDF(ikm = initiator_tx || initiator_rx, salt, "usmp-rekey" || session_id)`;
    /// the initiator takes tx = okm[0..32], the responder rx = okm[0..32].
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
        self.tx_key.copy_from_slice(tx);
        self.rx_key.copy_from_slice(rx);
        okm.zeroize();
        self.tx_next = 0;
        self.rx_next = 0;
        self.window = Window::default();
        Ok(())
    }
}
