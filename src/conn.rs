//! The connection machine: everything a USMP connection decides, as explicit state with
//! bytes and the time in, and frames, events and deadlines out. No I/O and no futures:
//! every face (the blocking and the non-blocking C API, [`crate::Client`],
//! [`crate::AsyncClient`]) is a short loop that moves bytes between a transport and this
//! machine.
//!
//! Two parts:
//! - [`Connecting`]: the handshake (HELLO, the v2 cookie round, CHALLENGE, HELLO_ACK,
//!   SESSION_OK) with its retransmissions on a datagram link and one deadline for the whole.
//!   It holds the X25519 secret and lives only as long as the handshake, with the caller.
//! - [`Conn`]: the established connection. It seals frames (burning the sequence number
//!   first), keeps the one frame a datagram link has in flight with its retransmission
//!   schedule, takes every received frame or datagram ([`Conn::on_input`]: UTACKs, PINGs
//!   owed a PONG, REKEY, BYE, fragments into the caller's message buffer), guards against
//!   control-frame floods per second, and ends the session on every fatal fault. It is
//!   plain data for which any bit pattern is valid, and small (200 bytes), so the C API
//!   keeps it inside the application's `usmp_t`.
//!
//! The caller supplies the buffers of each step: a frame buffer for a message fragment
//! ([`crate::frame::MAX_FRAME`] bytes) and [`SMALL_FRAME`]-byte buffers for everything
//! else (handshake frames, control frames, REKEY, UTACKs).

use zeroize::Zeroize;

use crate::crypto;
use crate::datagram::{self, Rto, UTACK_LEN, UTACK_MAC_LEN};
use crate::frame::{self, FrameType, HEADER_LEN};
use crate::handshake::{DeviceStep, HsCore, COOKIE_LEN, DEVICE_ID_LEN};
use crate::session::{Freshness, Rx, Session, REKEY_SALT_LEN};
use crate::{Error, Version};

/// How long a handshake may take, ms.
pub const HANDSHAKE_TIMEOUT_MS: u32 = 10_000;
/// How long a frame or a fragmented message that has started to arrive may take to
/// complete, ms.
pub const REASSEMBLY_TIMEOUT_MS: u32 = 10_000;
/// How long after a REKEY frames under the previous receive key are still accepted, ms.
pub const REKEY_GRACE_MS: u32 = 10_000;
/// The flood guard's window: more control frames than the version allows within this
/// many ms end a stream session (a datagram link drops them).
pub const FLOOD_WINDOW_MS: u32 = 1_000;
/// How long a datagram handshake waits for CHALLENGE before sending a plain HELLO again
/// (the v2 gateway sends HELLO_RETRY once, without retransmission).
pub const HELLO_RESEND_MS: u32 = 1_000;
/// Buffer size for everything but a message fragment: the largest handshake frame
/// (CHALLENGE, 76 bytes), a REKEY (72), a control frame (40), a UTACK (15).
pub const SMALL_FRAME: usize = 76;

/// Counters of what a datagram link went through (all zero on byte streams).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames sent again because their acknowledgement did not come in time.
    pub retransmits: u32,
    /// Authentic frames received again (acknowledged again, dropped).
    pub duplicates: u32,
    /// Datagrams dropped as malformed or unauthentic (bad CRC, bad tag, forged).
    pub rejected: u32,
    /// Acknowledgements ignored (unknown frame, bad or missing MAC).
    pub bad_acks: u32,
}

fn bump(c: &mut u32) {
    *c = c.wrapping_add(1);
}

/// `a` is at or after `b` on the wrapping millisecond clock.
fn reached(now: u32, deadline: u32) -> bool {
    (now.wrapping_sub(deadline) as i32) >= 0
}

/// Retransmission settings of a datagram link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Attempts per frame (0 counts as 1).
    pub attempts: u8,
    /// Fixed first retransmission timeout, ms, doubled per attempt; 0 = adaptive.
    pub fixed_rto_ms: u32,
}

/// A UTACK to send at once, in answer to a received datagram.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reply {
    buf: [u8; UTACK_MAC_LEN],
    len: u8,
}

impl Reply {
    /// Nothing to send.
    pub const fn new() -> Self {
        Self {
            buf: [0; UTACK_MAC_LEN],
            len: 0,
        }
    }

    /// The bytes to send (empty: none).
    pub fn bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or(&[])
    }

    fn ack(&mut self, ty: u8, seq: u32, key: Option<&[u8; 32]>) {
        self.len = datagram::utack(ty, seq, key, &mut self.buf) as u8;
    }
}

/// The type byte of a datagram that looks like a handshake frame (types 1..=4, 0x0A).
pub fn handshake_type(d: &[u8]) -> Option<u8> {
    if d.len() < HEADER_LEN || d.get(..2) != Some(&frame::MAGIC.to_le_bytes()[..]) {
        return None;
    }
    let ty = *d.get(3)?;
    matches!(ty, 1..=4 | 0x0A).then_some(ty)
}

fn header_seq(d: &[u8]) -> u32 {
    d.get(4..8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

// ---------------------------------------------------------------------------------------
// The handshake.

const HS_DGRAM: u8 = 1;
const HS_HELLO_ACK_ACKED: u8 = 2;
const HS_PENDING: u8 = 4;
const HS_COOKIE_ACKED: u8 = 8;

/// What a datagram handshake has to do ([`Connecting::poll_transmit`]).
enum Due {
    Nothing,
    Resend,
    Hello,
    Restart,
}

// The frame a handshake has in flight (or is about to send).
const F_NONE: u8 = 0;
const F_HELLO: u8 = 1;
const F_COOKIE_HELLO: u8 = 2;
const F_HELLO_ACK: u8 = 3;

/// What a handshake step produced.
#[derive(Debug)]
pub enum HsEvent {
    /// Nothing more to do now.
    Nothing,
    /// The session is up: store it with [`Conn::establish`].
    Established(Session),
}

/// A handshake in progress (see the module documentation). Plain data (any bit pattern
/// is valid): the PSK is passed to the steps that need it, so the non-blocking C API can
/// keep a handshake in application memory between calls. The X25519 secret inside is
/// wiped when the handshake ends ([`Connecting::wipe`]; dropping it wipes it too).
#[repr(C)]
pub struct Connecting {
    hs: HsCore,
    start: u32,
    /// When the frame in flight was last sent.
    sent_at: u32,
    /// When a plain HELLO was last sent.
    hello_at: u32,
    cookie: [u8; COOKIE_LEN],
    rto: Rto,
    flags: u8,
    attempt: u8,
    frame: u8,
    _pad: u8,
}

impl Drop for Connecting {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl Connecting {
    /// Starts a handshake at `now` with a fresh random X25519 `secret`. Refuses a PSK the
    /// version does not allow before anything is sent.
    pub fn new(
        version: Version,
        psk: &[u8],
        device_id: &[u8; DEVICE_ID_LEN],
        secret: &[u8; 32],
        datagram: bool,
        now: u32,
    ) -> Result<Self, Error> {
        let mut s = Self::EMPTY;
        s.start(version, psk, device_id, secret, datagram, now)?;
        Ok(s)
    }

    /// No handshake.
    pub const EMPTY: Self = Self {
        hs: HsCore::EMPTY,
        start: 0,
        sent_at: 0,
        hello_at: 0,
        cookie: [0; COOKIE_LEN],
        rto: Rto::new(),
        flags: 0,
        attempt: 0,
        frame: F_NONE,
        _pad: 0,
    };

    /// As [`Connecting::new`], in place: the state (about 400 bytes) is written where it
    /// lives, not built on the stack and copied there.
    pub fn start(
        &mut self,
        version: Version,
        psk: &[u8],
        device_id: &[u8; DEVICE_ID_LEN],
        secret: &[u8; 32],
        datagram: bool,
        now: u32,
    ) -> Result<(), Error> {
        if datagram && !cfg!(feature = "datagram") {
            return Err(Error::Unsupported);
        }
        self.hs.init(version, psk, device_id, secret)?;
        self.hs.set_datagram(datagram);
        self.start = now;
        self.sent_at = now;
        self.hello_at = now;
        self.cookie = [0; COOKIE_LEN];
        self.rto = Rto::new();
        self.flags = HS_PENDING | if datagram { HS_DGRAM } else { 0 };
        self.attempt = 0;
        self.frame = F_HELLO;
        Ok(())
    }

    /// Ends the handshake: the X25519 secret is wiped.
    pub fn wipe(&mut self) {
        self.hs.finish();
    }

    fn datagram(&self) -> bool {
        cfg!(feature = "datagram") && self.flags & HS_DGRAM != 0
    }

    /// The frame to send now, if any, written into `out` ([`SMALL_FRAME`] bytes): the first
    /// HELLO, the answer to the last frame received, or a retransmission. On a datagram link
    /// the handshake also recovers from forgeries and loss by itself, until its deadline:
    /// while no CHALLENGE came (and the gateway did not take a cookie HELLO) a plain HELLO
    /// goes out again every [`HELLO_RESEND_MS`] (a fresh cookie round: a forged HELLO_RETRY
    /// costs one round); when more than one CHALLENGE was answered (one was forged, and the
    /// gateway has refused our HELLO_ACK for it) and no SESSION_OK comes, it starts again
    /// from HELLO. A frame that runs out of attempts is not retransmitted further; the
    /// deadline decides ([`Connecting::check_deadline`]).
    pub fn poll_transmit(
        &mut self,
        now: u32,
        t: Timing,
        psk: &[u8],
        out: &mut [u8],
        stats: &mut Stats,
    ) -> Result<Option<usize>, Error> {
        let dgram = self.datagram();
        if self.flags & HS_PENDING == 0 {
            if !dgram || self.hs.is_done() {
                return Ok(None);
            }
            match self.due(now, t) {
                Due::Nothing => return Ok(None),
                Due::Resend => bump(&mut stats.retransmits),
                Due::Hello => {
                    self.frame = F_HELLO;
                    self.attempt = 0;
                }
                Due::Restart => {
                    self.hs.restart();
                    self.flags &= !HS_HELLO_ACK_ACKED;
                    self.frame = F_HELLO;
                    self.attempt = 0;
                }
            }
        }
        self.flags &= !HS_PENDING;
        let n = match self.frame {
            F_HELLO => {
                self.hello_at = now;
                self.flags &= !HS_COOKIE_ACKED;
                self.hs.hello(None, out)
            }
            F_COOKIE_HELLO => self.hs.hello(Some(&self.cookie), out),
            F_HELLO_ACK => self.hs.hello_ack(psk, out),
            _ => 0,
        };
        if n == 0 {
            return Err(Error::InvalidArg);
        }
        self.sent_at = now;
        self.attempt = self.attempt.saturating_add(1);
        if !dgram {
            // A stream delivers it: nothing stays in flight.
            self.frame = F_NONE;
        }
        Ok(Some(n))
    }

    /// What a datagram handshake with nothing pending has to do at `now`.
    fn due(&mut self, now: u32, t: Timing) -> Due {
        if self.frame != F_NONE {
            let wait = self
                .rto
                .timeout_ms(self.attempt.saturating_sub(1), t.fixed_rto_ms);
            if now.wrapping_sub(self.sent_at) >= wait {
                if self.attempt < t.attempts.max(1) {
                    return Due::Resend;
                }
                // Out of attempts: this frame is given up; the timers below go on.
                self.frame = F_NONE;
            }
        }
        let quiet = now.wrapping_sub(self.sent_at) >= HELLO_RESEND_MS;
        if self.hs.awaiting_session_ok() {
            if self.frame == F_NONE && quiet && self.hs.answered() > 1 {
                return Due::Restart;
            }
        } else if self.flags & HS_COOKIE_ACKED == 0
            && now.wrapping_sub(self.hello_at) >= self.hello_every()
        {
            return Due::Hello;
        }
        Due::Nothing
    }

    /// How often a plain HELLO goes out while no CHALLENGE comes: every [`HELLO_RESEND_MS`],
    /// and twice that while a cookie HELLO (not yet acknowledged) is being sent.
    fn hello_every(&self) -> u32 {
        if self.frame == F_COOKIE_HELLO {
            2 * HELLO_RESEND_MS
        } else {
            HELLO_RESEND_MS
        }
    }

    /// Milliseconds until something is due ([`Connecting::poll_transmit`] or the
    /// deadline), at least 1. A datagram handshake wakes up at least every
    /// [`HELLO_RESEND_MS`] (a wait may end early, never late).
    pub fn timeout(&self, now: u32, t: Timing) -> u32 {
        let elapsed = now.wrapping_sub(self.start);
        let mut wait = HANDSHAKE_TIMEOUT_MS.saturating_sub(elapsed);
        if self.datagram() {
            wait = wait.min(HELLO_RESEND_MS);
            if self.frame != F_NONE {
                let due = self
                    .rto
                    .timeout_ms(self.attempt.saturating_sub(1), t.fixed_rto_ms);
                wait = wait.min(due.saturating_sub(now.wrapping_sub(self.sent_at)));
            }
        }
        wait.max(1)
    }

    /// Fails the handshake once its deadline has passed: on a datagram link where the
    /// gateway acknowledged our HELLO_ACK and then stayed silent, the PSK was refused
    /// ([`Error::AuthFailed`]: the gateway never says so); otherwise [`Error::Timeout`].
    pub fn check_deadline(&self, now: u32) -> Result<(), Error> {
        if now.wrapping_sub(self.start) < HANDSHAKE_TIMEOUT_MS {
            return Ok(());
        }
        if self.datagram() && self.flags & HS_HELLO_ACK_ACKED != 0 {
            Err(Error::AuthFailed)
        } else {
            Err(Error::Timeout)
        }
    }

    /// The gateway closed the connection: after HELLO_ACK that is its refusal of the PSK,
    /// before CHALLENGE its refusal of the device id, the wire version or the connection.
    pub fn on_hangup(&self) -> Error {
        if self.hs.awaiting_session_ok() {
            Error::AuthFailed
        } else {
            Error::Rejected
        }
    }

    /// Takes one frame (stream) or datagram from the gateway at `now`. A UTACK to send at
    /// once is left in `reply`; a frame to send follows from [`Connecting::poll_transmit`].
    /// On a stream every fault ends the handshake; on a datagram link unauthenticated or
    /// malformed datagrams are dropped (counted) and the handshake waits on.
    pub fn on_input(
        &mut self,
        now: u32,
        psk: &[u8],
        d: &[u8],
        reply: &mut Reply,
        stats: &mut Stats,
    ) -> Result<HsEvent, Error> {
        reply.len = 0;
        let dgram = self.datagram();
        if dgram && datagram::is_utack(d) {
            let acked = match self.frame {
                F_HELLO | F_COOKIE_HELLO => FrameType::Hello as u8,
                F_HELLO_ACK => FrameType::HelloAck as u8,
                _ => 0,
            };
            if acked != 0 && datagram::utack_matches(d, acked, 0, None) {
                match self.frame {
                    F_HELLO_ACK => self.flags |= HS_HELLO_ACK_ACKED,
                    // The gateway took the cookie: its handshake is under way, and its own
                    // retransmissions bring the CHALLENGE.
                    F_COOKIE_HELLO => self.flags |= HS_COOKIE_ACKED,
                    _ => {}
                }
                if self.attempt == 1 {
                    self.rto.sample(now.wrapping_sub(self.sent_at));
                }
                self.frame = F_NONE;
            } else {
                bump(&mut stats.bad_acks);
            }
            return Ok(HsEvent::Nothing);
        }
        let ty = handshake_type(d);
        if dgram {
            match ty {
                Some(t) if frame::decode(d, self.hs.version()).is_ok() => {
                    reply.ack(t, header_seq(d), None);
                }
                _ => {
                    bump(&mut stats.rejected);
                    return Ok(HsEvent::Nothing);
                }
            }
        }
        let mut scratch = [0u8; SMALL_FRAME];
        let step = match self.hs.receive(psk, d, &mut scratch) {
            Ok(step) => step,
            // Forged, stale or broken: dropped, the gateway's own answer may still come.
            Err(_) if dgram => {
                bump(&mut stats.rejected);
                return Ok(HsEvent::Nothing);
            }
            Err(e) => return Err(e),
        };
        match step {
            DeviceStep::Established(s) => Ok(HsEvent::Established(s)),
            DeviceStep::Send(_) => {
                // An answer to our frame: it arrived, whatever became of its UTACK.
                if ty == Some(FrameType::HelloRetry as u8) {
                    if let Some(c) = d.get(HEADER_LEN..HEADER_LEN + COOKIE_LEN) {
                        self.cookie.copy_from_slice(c);
                    }
                    self.frame = F_COOKIE_HELLO;
                } else {
                    self.frame = F_HELLO_ACK;
                    self.flags &= !HS_HELLO_ACK_ACKED;
                }
                self.attempt = 0;
                self.flags |= HS_PENDING;
                Ok(HsEvent::Nothing)
            }
            DeviceStep::Nothing if dgram => {
                bump(&mut stats.duplicates);
                Ok(HsEvent::Nothing)
            }
            DeviceStep::Nothing => Err(Error::UnexpectedFrame),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The established connection.

// Conn flags.
const EST: u16 = 1;
const INFLIGHT: u16 = 2;
const ACKED: u16 = 4;
const ALT: u16 = 8;
const PONG_OWED: u16 = 16;
const TX_MSG: u16 = 32;
const OWNED: u16 = 64;

/// Bytes of [`Conn`] that belong to a face (the C API's call bookkeeping), untouched by
/// the machine.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FaceSlots {
    pub calls: u8,
    pub role: u8,
    pub flags: u8,
}

/// What a received frame or datagram was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Got {
    /// Nothing for the application (a fragment, a UTACK, a dropped datagram, ...).
    Nothing,
    /// A control frame (PING, PONG, REKEY) was handled; a PING leaves a PONG owed
    /// ([`Conn::pong_ready`]).
    Control,
    /// A whole message of this many bytes is in the caller's buffer.
    Message(usize),
}

/// What the frame in flight needs ([`Conn::tx_poll`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxPoll {
    /// No frame in flight.
    Idle,
    /// Its acknowledgement arrived: the next frame may go.
    Acked,
    /// Wait at most this many ms for its acknowledgement.
    Wait(u32),
    /// Send it again now, then call [`Conn::resent`]: from the sender's own buffer when
    /// `owned`, else as [`Conn::reseal_inflight`] writes it.
    Resend {
        /// The sender holds the frame (a fragment, a REKEY).
        owned: bool,
    },
}

/// The established connection (see the module documentation). `Conn::default()` is a
/// connection with no session.
#[repr(C)]
#[derive(Default)]
pub struct Conn {
    pub(crate) owner: u32,
    pub(crate) face: FaceSlots,
    ctrl: u8,
    flags: u16,
    infl_ty: u8,
    infl_attempt: u8,
    rto: Rto,
    /// Last frame transmission (a UTACK does not count); while a frame is in flight, when
    /// it was last sent.
    last_tx: u32,
    infl_seq: u32,
    flood_start: u32,
    grace_until: u32,
    stats: Stats,
    /// The UTACK MAC of the REKEY in flight under the key it was sealed with (the peer may
    /// acknowledge it under either key).
    alt_mac: [u8; 8],
    session: Session,
}

impl Conn {
    /// True while a session is established.
    pub fn is_established(&self) -> bool {
        self.flags & EST != 0
    }

    /// The session, when one is established.
    pub fn session(&self) -> Option<&Session> {
        self.is_established().then_some(&self.session)
    }

    fn session_mut(&mut self) -> Result<&mut Session, Error> {
        if self.is_established() {
            Ok(&mut self.session)
        } else {
            Err(Error::NotConnected)
        }
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The counters, for a handshake to count into.
    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// A fresh start for a new connection: no session, counters at zero.
    pub fn reset(&mut self) {
        self.end();
        self.stats = Stats::default();
        self.rto = Rto::new();
    }

    /// Stores the session a handshake produced.
    pub fn establish(&mut self, mut s: Session, datagram: bool, now: u32) {
        s.set_datagram(datagram);
        self.session = s;
        self.flags = EST;
        self.ctrl = 0;
        self.last_tx = now;
        self.flood_start = now;
    }

    /// Ends the session: keys and counters are zeroized (the statistics stay).
    pub fn end(&mut self) {
        self.session.wipe();
        self.flags = 0;
        self.alt_mac.zeroize();
    }

    fn datagram(&self) -> bool {
        self.session.is_datagram()
    }

    // --- sending -----------------------------------------------------------------------

    /// True when a new frame may be sealed: nothing in flight on a datagram link.
    pub fn tx_free(&self) -> bool {
        self.flags & INFLIGHT == 0
    }

    /// True when the frame in flight is held by its sender (a fragment, a REKEY), which
    /// alone can send it again.
    pub fn inflight_owned(&self) -> bool {
        self.flags & (INFLIGHT | OWNED) == INFLIGHT | OWNED
    }

    /// Stops waiting for the frame in flight (a BYE goes out whatever is in flight).
    pub fn forget_inflight(&mut self) {
        self.flags &= !(INFLIGHT | ACKED | ALT | OWNED);
    }

    /// True while a message is being sent ([`Conn::begin_message`]).
    pub fn sending_message(&self) -> bool {
        self.flags & TX_MSG != 0
    }

    /// A message of `len` bytes is about to be sent: checks its size and the sequence
    /// space (nothing is sent otherwise) and marks it in progress, so that a PONG owed
    /// meanwhile waits until its last fragment is through. Returns its frame count.
    pub fn begin_message(&mut self, len: usize) -> Result<usize, Error> {
        let s = self.session_mut()?;
        let frames = Session::frames_for(len)?;
        s.check_room(frames)?;
        self.flags |= TX_MSG;
        Ok(frames)
    }

    /// The message is through (or abandoned).
    pub fn end_message(&mut self) {
        self.flags &= !TX_MSG;
    }

    /// Seals a DATA, DATA_FRAG, PING, PONG or BYE frame with plaintext `pt` into `buf` at
    /// `now`; on a datagram link it is then in flight until acknowledged. `owned`: the
    /// caller keeps `buf` for retransmissions (else control frames are sealed again).
    pub fn seal(
        &mut self,
        now: u32,
        ty: FrameType,
        pt: &[u8],
        buf: &mut [u8],
        owned: bool,
    ) -> Result<usize, Error> {
        if !self.tx_free() {
            return Err(Error::InvalidArg);
        }
        let s = self.session_mut()?;
        let seq = s.tx_next() as u32;
        let n = s.seal_plaintext(ty, pt, buf)?;
        self.sent_new(now, ty, seq, owned);
        Ok(n)
    }

    /// Seals the PONG owed into `buf` when it may go now ([`Conn::pong_ready`]); its length.
    pub fn owed_pong(&mut self, now: u32, buf: &mut [u8]) -> Option<usize> {
        if !self.pong_ready() {
            return None;
        }
        self.flags &= !PONG_OWED;
        self.seal(now, FrameType::Pong, &[], buf, false).ok()
    }

    /// Starts a REKEY (v2) with a fresh random `salt`: seals the REKEY frame into `buf`
    /// (the caller keeps it for retransmissions) and switches to the new keys.
    /// [`Error::Busy`] while the previous REKEY's grace period runs.
    pub fn seal_rekey(
        &mut self,
        now: u32,
        salt: &[u8; REKEY_SALT_LEN],
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        if !self.tx_free() {
            return Err(Error::InvalidArg);
        }
        let s = self.session_mut()?;
        if !s.version().has_rekey() {
            return Err(Error::Unsupported);
        }
        // The previous REKEY's grace period still runs: frames under the key before it may
        // be on their way, and only one previous key is kept.
        if s.in_grace() {
            return Err(Error::Busy);
        }
        let seq = s.tx_next() as u32;
        let mut old = [0u8; UTACK_MAC_LEN];
        datagram::utack(FrameType::Rekey as u8, seq, Some(s.tx_key()), &mut old);
        let n = s.start_rekey(salt, buf)?;
        self.alt_mac
            .copy_from_slice(old.get(UTACK_LEN..).unwrap_or(&[0; 8]));
        old.zeroize();
        self.grace_until = now.wrapping_add(REKEY_GRACE_MS);
        self.sent_new(now, FrameType::Rekey, seq, true);
        if self.datagram() {
            self.flags |= ALT;
        }
        Ok(n)
    }

    fn sent_new(&mut self, now: u32, ty: FrameType, seq: u32, owned: bool) {
        self.last_tx = now;
        if self.datagram() {
            self.flags = (self.flags & !(ACKED | ALT | OWNED)) | INFLIGHT;
            if owned {
                self.flags |= OWNED;
            }
            self.infl_ty = ty as u8;
            self.infl_seq = seq;
            self.infl_attempt = 1;
        }
    }

    /// Writes the control frame in flight again into `buf` (the same bytes: same seq, key
    /// and empty plaintext) for its retransmission at `now` ([`Conn::resent`] done).
    pub fn reseal_inflight(&mut self, now: u32, buf: &mut [u8]) -> Result<usize, Error> {
        let (ty, seq) = (self.infl_ty, self.infl_seq);
        if self.flags & (INFLIGHT | OWNED) != INFLIGHT {
            return Err(Error::InvalidArg);
        }
        let ty = FrameType::from_byte(ty, self.session.version()).ok_or(Error::InvalidArg)?;
        let n = self.session_mut()?.reseal_control(ty, seq, buf)?;
        self.resent(now);
        Ok(n)
    }

    /// The retransmission schedule of the frame in flight at `now`. When its attempts are
    /// used up, the session ends and this returns [`Error::Timeout`].
    pub fn tx_poll(&mut self, now: u32, t: Timing) -> Result<TxPoll, Error> {
        if self.flags & INFLIGHT == 0 {
            return Ok(TxPoll::Idle);
        }
        if self.flags & ACKED != 0 {
            self.flags &= !(INFLIGHT | ACKED | ALT | OWNED);
            self.alt_mac.zeroize();
            return Ok(TxPoll::Acked);
        }
        let due = self
            .rto
            .timeout_ms(self.infl_attempt.saturating_sub(1), t.fixed_rto_ms);
        let waited = now.wrapping_sub(self.last_tx);
        if waited < due {
            return Ok(TxPoll::Wait(due - waited));
        }
        if self.infl_attempt >= t.attempts.max(1) {
            self.end();
            return Err(Error::Timeout);
        }
        Ok(TxPoll::Resend {
            owned: self.flags & OWNED != 0,
        })
    }

    /// The frame in flight went out again at `now`.
    pub fn resent(&mut self, now: u32) {
        self.infl_attempt = self.infl_attempt.saturating_add(1);
        self.last_tx = now;
        bump(&mut self.stats.retransmits);
    }

    /// True when a PONG is owed and may go now: nothing in flight and no message being
    /// sent (a PONG between two fragments would break the message at the gateway).
    pub fn pong_ready(&self) -> bool {
        self.flags & (EST | PONG_OWED | INFLIGHT | TX_MSG) == EST | PONG_OWED
    }

    /// True when a keepalive PING is due: `period_ms` (> 0) since the last transmission.
    pub fn keepalive_due(&self, now: u32, period_ms: u32) -> Result<bool, Error> {
        if !self.is_established() {
            return Err(Error::NotConnected);
        }
        Ok(period_ms != 0 && now.wrapping_sub(self.last_tx) >= period_ms)
    }

    // --- receiving ---------------------------------------------------------------------

    /// A receive into a new buffer starts: a message whose first fragments went into a
    /// buffer that is gone (an abandoned receive) is dropped rather than continued.
    pub fn abandon_partial(&mut self) {
        self.session.abandon_message();
    }

    /// True while a fragmented message is partly received.
    pub fn reassembling(&self) -> bool {
        self.is_established() && self.session.reassembling()
    }

    /// Time passes: the grace period of a REKEY ends.
    pub fn tick(&mut self, now: u32) {
        if self.session.in_grace() && reached(now, self.grace_until) {
            self.session.end_grace();
        }
    }

    /// Takes one received frame (stream) or datagram. `msg` is the buffer messages are
    /// reassembled into (the same for every fragment of one); without one (a datagram
    /// sender waiting for its acknowledgement) DATA frames are left unacknowledged for the
    /// peer to send again. A UTACK to send at once is left in `reply`.
    ///
    /// Errors: on a stream every fault ends the session, except [`Error::BufferOverflow`]
    /// (the message did not fit `msg`: it is dropped, the session stays). On a datagram
    /// link malformed, forged, duplicate and out-of-rule datagrams are dropped and counted;
    /// only an authentic BYE ([`Error::ClosedByPeer`]) ends the session there.
    pub fn on_input(
        &mut self,
        now: u32,
        d: &mut [u8],
        msg: Option<&mut [u8]>,
        reply: &mut Reply,
    ) -> Result<Got, Error> {
        reply.len = 0;
        if !self.is_established() {
            return Err(Error::NotConnected);
        }
        self.tick(now);
        let r = if self.datagram() {
            self.on_datagram(now, d, msg, reply)
        } else {
            self.on_stream_frame(now, d, msg)
        };
        if let Err(e) = r {
            if e != Error::BufferOverflow {
                self.end();
            }
        }
        r
    }

    fn on_stream_frame(
        &mut self,
        now: u32,
        d: &mut [u8],
        msg: Option<&mut [u8]>,
    ) -> Result<Got, Error> {
        let s = &mut self.session;
        let o = s.open(d)?;
        let step = s.process(o, msg.unwrap_or(&mut []))?;
        self.after_rx(now, step)
    }

    fn on_datagram(
        &mut self,
        now: u32,
        d: &mut [u8],
        msg: Option<&mut [u8]>,
        reply: &mut Reply,
    ) -> Result<Got, Error> {
        if datagram::is_utack(d) {
            self.on_utack(now, d);
            return Ok(Got::Nothing);
        }
        if let Some(ty) = handshake_type(d) {
            // The gateway sent a handshake frame again: our UTACK for it was lost.
            reply.ack(ty, header_seq(d), None);
            return Ok(Got::Nothing);
        }
        let s = &mut self.session;
        let Ok(o) = s.open(d) else {
            bump(&mut self.stats.rejected);
            return Ok(Got::Nothing);
        };
        let fresh = o.freshness();
        let data = matches!(o.ty(), FrameType::Data | FrameType::DataFrag);
        // The gateway's REKEY while a frame of ours is in flight or a message of ours is
        // partly sent: switching keys now would leave that frame under a key the gateway
        // no longer holds, or split the message across two key epochs (the gateway's
        // reassembly drops such a message's first part). Not acknowledged, so the gateway
        // sends it again, by when ours is through (fuzz findings I-3 to I-5).
        let rekey_now = o.ty() == FrameType::Rekey
            && fresh == Freshness::Fresh
            && self.flags & (INFLIGHT | TX_MSG) != 0;
        if fresh == Freshness::Gap
            || (data && fresh == Freshness::Fresh && msg.is_none())
            || rekey_now
        {
            // Ahead of the strict v1 order, or a message nobody is receiving: not
            // acknowledged, so the peer sends it again.
            if fresh == Freshness::Gap {
                bump(&mut self.stats.rejected);
            }
            return Ok(Got::Nothing);
        }
        // Acknowledged before it is acted on, under the key it came with (a REKEY is
        // acknowledged under the old key).
        let mut key = s.version().has_rekey().then(|| *s.rx_key_of(o.epoch()));
        reply.ack(o.ty() as u8, o.seq(), key.as_ref());
        key.zeroize();
        if fresh == Freshness::Duplicate {
            bump(&mut self.stats.duplicates);
            return Ok(Got::Nothing);
        }
        match s.process(o, msg.unwrap_or(&mut [])) {
            Ok(step) => match self.after_rx(now, step) {
                Ok(g) => Ok(g),
                Err(_) => {
                    bump(&mut self.stats.rejected);
                    Ok(Got::Nothing)
                }
            },
            Err(e @ (Error::ClosedByPeer | Error::BufferOverflow)) => Err(e),
            Err(_) => {
                // Structural faults (fragment rules, a bad REKEY) drop the partial message
                // on a datagram link; the session goes on.
                bump(&mut self.stats.rejected);
                Ok(Got::Nothing)
            }
        }
    }

    fn on_utack(&mut self, now: u32, d: &[u8]) {
        if self.flags & (INFLIGHT | ACKED) == INFLIGHT {
            let key = self
                .session
                .version()
                .has_rekey()
                .then_some(self.session.tx_key());
            let (ty, seq) = (self.infl_ty, self.infl_seq);
            let ok = datagram::utack_matches(d, ty, seq, key)
                || (self.flags & ALT != 0
                    && datagram::utack_matches(d.get(..UTACK_LEN).unwrap_or(&[]), ty, seq, None)
                    && d.len() == UTACK_MAC_LEN
                    && crypto::ct_eq(d.get(UTACK_LEN..).unwrap_or(&[]), &self.alt_mac));
            if ok {
                self.flags |= ACKED;
                if self.infl_attempt == 1 {
                    self.rto.sample(now.wrapping_sub(self.last_tx));
                }
                return;
            }
        }
        // A late or duplicate acknowledgement, or a forged one: nothing waits for it.
        bump(&mut self.stats.bad_acks);
    }

    fn after_rx(&mut self, now: u32, step: Rx) -> Result<Got, Error> {
        match step {
            Rx::Message(n) => {
                self.ctrl = 0;
                Ok(Got::Message(n))
            }
            Rx::Fragment | Rx::Dropped => {
                self.ctrl = 0;
                Ok(Got::Nothing)
            }
            Rx::Ping | Rx::Pong | Rx::Rekeyed => {
                if now.wrapping_sub(self.flood_start) >= FLOOD_WINDOW_MS {
                    self.flood_start = now;
                    self.ctrl = 0;
                }
                self.ctrl = self.ctrl.saturating_add(1);
                if self.ctrl >= self.session.version().flood_limit() {
                    return Err(Error::Flood);
                }
                match step {
                    Rx::Ping => self.flags |= PONG_OWED,
                    Rx::Rekeyed => self.grace_until = now.wrapping_add(REKEY_GRACE_MS),
                    _ => {}
                }
                Ok(Got::Control)
            }
        }
    }
}

// The C API keeps a Conn in the 200 bytes of `usmp_t.opaque` (`sizeof(usmp_t)` <= 256 on
// 32-bit targets).
const _: () = assert!(core::mem::size_of::<Conn>() == 200);
const _: () = assert!(core::mem::size_of::<Session>() == 144);
