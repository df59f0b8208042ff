//! The one connection driver behind every face of the crate: the C API ([`crate::ffi`]),
//! the blocking Rust [`crate::Client`] and the async [`crate::AsyncClient`].
//!
//! It runs the operations of a connection (handshake, send with fragmentation, receive,
//! PING/PONG, REKEY, BYE) by pumping frames between the sans-IO core ([`crate::handshake`],
//! [`crate::session`], [`crate::datagram`]) and a [`Link`]. A face only implements [`Link`]:
//! how bytes move, what time it is, where randomness and the session live. None has any
//! protocol logic of its own.
//!
//! The operations are `async fn`s. A blocking face implements [`Link`] with methods that
//! never wait on a waker and runs the futures with [`block_on`], which then completes them
//! in one poll; the async face awaits them. One body of code serves both.

use core::future::Future;
use core::mem::size_of;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use zeroize::Zeroize;

use crate::datagram::{self, Arq, ArqStep, Rto};
use crate::frame::{self, FrameType, MAX_FRAME};
use crate::handshake::{DeviceHandshake, DeviceStep, DEVICE_ID_LEN};
use crate::session::{fragments, Freshness, Rx, Session, MAX_MESSAGE, REKEY_SALT_LEN};
use crate::{Error, Version};

/// How long a handshake may take, ms.
pub const HANDSHAKE_TIMEOUT_MS: u32 = 10_000;
/// How long a fragmented message may take to complete, ms.
pub const REASSEMBLY_TIMEOUT_MS: u32 = 10_000;
/// How long a datagram handshake waits for CHALLENGE before sending HELLO again (the v2
/// gateway's HELLO_RETRY is sent once, without retransmission).
const HELLO_RESEND_MS: u32 = 1000;

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

/// The plain (non-secret) state of a connection that the driver keeps between calls.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Conn {
    pub last_tx_ms: u32,
    pub device_id: [u8; DEVICE_ID_LEN],
    /// A PING came in while a datagram send waited: its PONG goes out next.
    pub pong_owed: u8,
    pub stats: Stats,
    pub rto: Rto,
}

impl Conn {
    /// Fresh state for a new connection; `fixed_rto_ms` = 0 means the adaptive timeout.
    pub fn reset(&mut self, fixed_rto_ms: u32) {
        *self = Self::default();
        if fixed_rto_ms == 0 {
            self.rto = Rto::new(datagram::DEFAULT_RTO_MS);
        }
    }
}

/// Why a receive failed.
pub(crate) enum RecvFail {
    /// The connection is gone (closed by the peer, or the transport said so).
    HangUp,
    /// The transport misbehaved (a length above the buffer, a frame cut off).
    Broken,
}

/// Scratch frame buffers for one operation, lent by the face. The operations keep no
/// buffer of their own, so their futures stay small (a future is moved at least once
/// before it is polled, so each byte in it may cost two on the stack).
pub(crate) struct Bufs {
    a: [u8; MAX_FRAME],
    b: [u8; MAX_FRAME],
    c: [u8; MAX_FRAME],
}

impl Bufs {
    pub const fn new() -> Self {
        Self {
            a: [0; MAX_FRAME],
            b: [0; MAX_FRAME],
            c: [0; MAX_FRAME],
        }
    }
}

impl Drop for Bufs {
    fn drop(&mut self) {
        // Frames in clear (received plaintext, a message before sealing) leave no copy.
        self.a.zeroize();
        self.b.zeroize();
        self.c.zeroize();
    }
}

/// What a face provides: moving bytes, the time, randomness, and where its state lives.
pub(crate) trait Link {
    /// True for a datagram transport (UDP: one frame per datagram, UTACKs, retransmission).
    fn datagram(&self) -> bool;
    /// Milliseconds, monotonic, wrapping at 2^32.
    fn now(&mut self) -> u32;
    /// Cryptographically secure random bytes.
    fn random(&mut self, out: &mut [u8]) -> Result<(), Error>;
    /// The device id for a handshake.
    fn device_id(&mut self) -> Result<[u8; DEVICE_ID_LEN], Error>;
    /// Sends one frame (or datagram).
    fn send(&mut self, d: &[u8]) -> impl Future<Output = Result<(), Error>>;
    /// One whole frame (or datagram) into `buf`; Ok(0) when nothing arrived. `wait` = None
    /// waits as the transport does by itself; Some(ms) at most that long.
    fn recv(
        &mut self,
        buf: &mut [u8; MAX_FRAME],
        wait: Option<u32>,
    ) -> impl Future<Output = Result<usize, RecvFail>>;
    /// Whether more input is waiting now (None: the transport cannot tell).
    fn available(&mut self) -> Option<bool>;
    /// Frame attempts on a datagram link (at least 1).
    fn attempts(&self) -> u8;
    /// Fixed first retransmission timeout, ms (0: adaptive).
    fn fixed_rto_ms(&self) -> u32;
    /// The plain connection state.
    fn conn(&mut self) -> &mut Conn;
    /// The session, when one is established.
    fn session(&mut self) -> Option<&mut Session>;
    /// Stores a newly established session.
    fn store_session(&mut self, s: Session);
    /// Ends the session: its keys and counters are zeroized.
    fn drop_session(&mut self);
}

/// Runs a driver future to completion by polling it with a waker that does nothing. With a
/// blocking [`Link`] the future never returns `Pending`, so it completes in the first poll.
///
/// The future is taken pinned where the caller built it (`block_on(pin!(op(..)))`): moving
/// it in by value would copy it, and double its stack cost.
pub(crate) fn block_on<F: Future>(mut f: Pin<&mut F>) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        core::hint::spin_loop();
    }
}

fn bump(counter: &mut u32) {
    *counter = counter.wrapping_add(1);
}

/// The type byte of a datagram that looks like a handshake frame (types 1..=4, 0x0A).
pub(crate) fn handshake_type(d: &[u8]) -> Option<u8> {
    if d.len() < frame::HEADER_LEN || d.get(..2) != Some(&frame::MAGIC.to_le_bytes()[..]) {
        return None;
    }
    let ty = *d.get(3)?;
    matches!(ty, 1..=4 | 0x0A).then_some(ty)
}

/// Sends a UTACK for a received frame (best effort: a lost one is retransmitted for).
async fn ack<L: Link>(l: &mut L, ty: u8, seq: u32, key: Option<&[u8; 32]>) {
    let mut a = [0u8; datagram::UTACK_MAC_LEN];
    let n = datagram::utack(ty, seq, key, &mut a);
    let _ = l.send(a.get(..n).unwrap_or(&[])).await;
}

/// One-slot holding place for a frame that arrives while a datagram send waits for its
/// acknowledgement (handshake only; in a session the peer retransmits instead).
struct Slot<'b> {
    buf: &'b mut [u8; MAX_FRAME],
    len: usize,
}

/// Sends one frame. On a datagram link: waits for its UTACK (MAC-checked with `ack_key`
/// when given), retransmitting with backoff up to `attempts` times, and never past `until`
/// (start, budget ms). In a handshake (`hs` given) the gateway's answer to this frame counts
/// as its acknowledgement and is kept in the slot, as is any other frame while the slot is
/// free. In a session, a PING or PONG arriving meanwhile is acknowledged and handled (a PONG
/// owed is sent after this frame); other frames are left to the peer's retransmission.
async fn send_frame<L: Link>(
    l: &mut L,
    frame: &[u8],
    ack_key: Option<&[u8; 32]>,
    mut hs: Option<(&mut Slot<'_>, &[u8])>,
    until: Option<(u32, u32)>,
    attempts: u8,
    rx: &mut [u8; MAX_FRAME],
) -> Result<(), Error> {
    if !l.datagram() {
        l.send(frame).await?;
        let now = l.now();
        l.conn().last_tx_ms = now;
        return Ok(());
    }
    let mut arq = Arq::new(frame, attempts, l.fixed_rto_ms(), until).ok_or(Error::InvalidArg)?;
    loop {
        let now = l.now();
        let wait = match arq.step(now) {
            ArqStep::Send => {
                l.send(frame).await?;
                let now = l.now();
                let c = l.conn();
                c.last_tx_ms = now;
                arq.sent(now, &c.rto);
                if arq.retransmissions() > 0 {
                    bump(&mut c.stats.retransmits);
                }
                continue;
            }
            ArqStep::Wait(ms) => ms,
            ArqStep::GiveUp => break,
        };
        let n = l
            .recv(rx, Some(wait))
            .await
            .map_err(|_| Error::TransportFailed)?;
        let Some(d) = rx.get_mut(..n).filter(|d| !d.is_empty()) else {
            continue;
        };
        if datagram::is_utack(d) {
            let now = l.now();
            let c = l.conn();
            if arq.on_utack(d, ack_key, now, &mut c.rto) {
                return Ok(());
            }
            bump(&mut c.stats.bad_acks);
            continue;
        }
        match hs.as_mut() {
            Some((slot, answers)) => {
                let answer = handshake_type(d).is_some_and(|t| answers.contains(&t));
                if slot.len == 0 {
                    slot.buf.copy_from_slice(&rx[..]);
                    slot.len = n;
                }
                if answer {
                    // The answer proves the frame arrived, whatever became of its UTACK.
                    return Ok(());
                }
            }
            None => in_session_while_sending(l, d).await,
        }
    }
    Err(Error::Timeout)
}

/// A datagram arriving while a session send waits for its acknowledgement. A handshake
/// frame sent again (our UTACK for it was lost) is acknowledged again; an authentic PING
/// or PONG is acknowledged and handled; anything else is left to the peer's
/// retransmission (there is no room to keep it), forgeries are counted.
async fn in_session_while_sending<L: Link>(l: &mut L, d: &mut [u8]) {
    if handshake_type(d).is_some() {
        stray_in_session(l, d).await;
        return;
    }
    let Some(s) = l.session() else { return };
    let Ok(o) = s.open(d) else {
        bump(&mut l.conn().stats.rejected);
        return;
    };
    if !matches!(o.ty, FrameType::Ping | FrameType::Pong) || o.freshness == Freshness::Gap {
        return;
    }
    let mut key = s.version().has_rekey().then(|| *s.rx_key());
    let fresh = o.freshness == Freshness::Fresh;
    let step = if fresh {
        s.process(&o, &[], &mut [])
    } else {
        Err(Error::ReplayDetected)
    };
    ack(l, o.ty as u8, o.seq, key.as_ref()).await;
    key.zeroize();
    let c = l.conn();
    match step {
        Ok(Rx::Ping) => c.pong_owed = 1,
        Ok(_) => {}
        Err(_) if !fresh => bump(&mut c.stats.duplicates),
        Err(_) => bump(&mut c.stats.rejected),
    }
}

/// A handshake frame in the session phase: the gateway sent it again because our UTACK
/// for it was lost; acknowledge it again.
async fn stray_in_session<L: Link>(l: &mut L, d: &[u8]) {
    if let Some(ty) = handshake_type(d) {
        let seq = d
            .get(4..8)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u32::from_le_bytes);
        ack(l, ty, seq, None).await;
    }
}

/// Runs the device handshake. On success the session is stored in the link; on failure
/// nothing is (the caller closes the transport).
pub(crate) async fn handshake<L: Link>(
    l: &mut L,
    psk: &[u8],
    version: Version,
    bufs: &mut Bufs,
) -> Result<(), Error> {
    l.drop_session();
    let id = l.device_id()?;
    l.conn().device_id = id;
    let mut secret = [0u8; 32];
    let hs = l
        .random(&mut secret)
        .and_then(|()| DeviceHandshake::new(version, psk, &id, &secret));
    secret.zeroize();
    let mut hs = hs?;
    let dgram = l.datagram();
    let attempts = l.attempts();
    let mut slot = Slot {
        buf: &mut bufs.b,
        len: 0,
    };
    handshake_loop(
        l,
        &mut hs,
        dgram,
        attempts,
        &mut bufs.a,
        &mut slot,
        &mut bufs.c,
    )
    .await
}

async fn handshake_loop<L: Link>(
    l: &mut L,
    hs: &mut DeviceHandshake<'_>,
    dgram: bool,
    attempts: u8,
    tx: &mut [u8; MAX_FRAME],
    slot: &mut Slot<'_>,
    rx: &mut [u8; MAX_FRAME],
) -> Result<(), Error> {
    // What answers each of our frames: CHALLENGE (or HELLO_RETRY) a HELLO, SESSION_OK a HELLO_ACK.
    const ANSWER_HELLO: &[u8] = &[FrameType::Challenge as u8, FrameType::HelloRetry as u8];
    const ANSWER_HELLO_ACK: &[u8] = &[FrameType::SessionOk as u8];
    let n = hs.hello(None, tx);
    let start = l.now();
    let until = Some((start, HANDSHAKE_TIMEOUT_MS));
    let hello = tx.get(..n).ok_or(Error::InvalidArg)?;
    send_frame(
        l,
        hello,
        None,
        Some((slot, ANSWER_HELLO)),
        until,
        attempts,
        rx,
    )
    .await?;
    let mut last_sent = start;
    let mut cookie_seen = false;
    // Highest handshake type handled, so retransmitted copies are acknowledged, not redone.
    let mut done_type = 0u8;
    loop {
        let now = l.now();
        let elapsed = now.wrapping_sub(start);
        if elapsed >= HANDSHAKE_TIMEOUT_MS {
            // On a datagram link HELLO_ACK was acknowledged, so the gateway has it: silence
            // after that is its refusal of our PSK (it never says so).
            return Err(if dgram && hs.awaiting_session_ok() {
                Error::AuthFailed
            } else {
                Error::Timeout
            });
        }
        let n = if slot.len > 0 {
            core::mem::take(&mut slot.len)
        } else {
            // A stream waits for the next frame no longer than the handshake may take.
            let wait = if dgram {
                HELLO_RESEND_MS.min(HANDSHAKE_TIMEOUT_MS - elapsed)
            } else {
                HANDSHAKE_TIMEOUT_MS - elapsed
            };
            match l.recv(slot.buf, Some(wait)).await {
                Ok(n) => n,
                // The gateway never explains a refusal: it hangs up. After HELLO_ACK that means
                // the PSK was refused; before CHALLENGE, the device or the version was.
                Err(RecvFail::HangUp) if hs.awaiting_session_ok() => return Err(Error::AuthFailed),
                Err(RecvFail::HangUp) => return Err(Error::Rejected),
                Err(RecvFail::Broken) => return Err(Error::TransportFailed),
            }
        };
        if n == 0 {
            if dgram
                && !hs.awaiting_session_ok()
                && !cookie_seen
                && l.now().wrapping_sub(last_sent) >= HELLO_RESEND_MS
            {
                let m = hs.hello(None, tx);
                let hello = tx.get(..m).ok_or(Error::InvalidArg)?;
                let answers = Some((&mut *slot, ANSWER_HELLO));
                send_frame(l, hello, None, answers, until, attempts, rx).await?;
                last_sent = l.now();
            }
            continue;
        }
        let frame = slot.buf.get(..n).ok_or(Error::BadFrame)?;
        if dgram {
            if datagram::is_utack(frame) {
                continue;
            }
            let Some(ty) = handshake_type(frame) else {
                bump(&mut l.conn().stats.rejected);
                continue;
            };
            if frame::decode(frame, hs.version()).is_err() {
                bump(&mut l.conn().stats.rejected);
                continue;
            }
            ack(l, ty, 0, None).await;
            let order = if ty == FrameType::HelloRetry as u8 {
                1
            } else {
                ty
            };
            if order <= done_type {
                bump(&mut l.conn().stats.duplicates);
                continue;
            }
            done_type = order;
            cookie_seen |= ty == FrameType::HelloRetry as u8;
        }
        let frame = slot.buf.get(..n).ok_or(Error::BadFrame)?;
        match hs.receive(frame, tx)? {
            DeviceStep::Send(m) => {
                let out = tx.get(..m).ok_or(Error::InvalidArg)?;
                let answers = if hs.awaiting_session_ok() {
                    ANSWER_HELLO_ACK
                } else {
                    ANSWER_HELLO
                };
                send_frame(
                    l,
                    out,
                    None,
                    Some((&mut *slot, answers)),
                    until,
                    attempts,
                    rx,
                )
                .await
                .map_err(|e| match e {
                    Error::Timeout if hs.awaiting_session_ok() => Error::AuthFailed,
                    e => e,
                })?;
                last_sent = l.now();
            }
            DeviceStep::Established(mut s) => {
                s.set_datagram(dgram);
                l.store_session(s);
                let now = l.now();
                l.conn().last_tx_ms = now;
                return Ok(());
            }
        }
    }
}

/// The key a datagram peer MACs its UTACKs for our frames with (v2: our tx key).
fn ack_key(s: &Session) -> Option<[u8; 32]> {
    s.version().has_rekey().then(|| *s.tx_key())
}

/// Sends one message (0..=1808 bytes) in up to 4 frames. Nothing is sent when it is too
/// long or the sequence space cannot hold it; a failure while sending ends the session.
pub(crate) async fn send_message<L: Link>(
    l: &mut L,
    data: &[u8],
    bufs: &mut Bufs,
) -> Result<(), Error> {
    let s = l.session().ok_or(Error::NotConnected)?;
    if data.len() > MAX_MESSAGE {
        return Err(Error::BufferOverflow);
    }
    let frames = Session::frames_for(data.len())?;
    s.check_room(frames)?;
    let buf = &mut bufs.a;
    for (ty, chunk) in fragments(data)? {
        let s = l.session().ok_or(Error::NotConnected)?;
        let sealed = s.seal_plaintext(ty, chunk, buf);
        let key = ack_key(s);
        let attempts = l.attempts();
        // After sealing, the buffer holds only ciphertext; on a refusal, plaintext.
        let sent = match sealed {
            Ok(n) => {
                let f = buf.get(..n).unwrap_or(&[]);
                send_or_drop(l, f, key, attempts, &mut bufs.b, &mut bufs.c).await
            }
            Err(e) => Err(e),
        };
        if sent.is_err() {
            buf.zeroize();
            return sent;
        }
    }
    Ok(())
}

/// Sends a sealed frame; a failure ends the session.
async fn send_or_drop<L: Link>(
    l: &mut L,
    frame: &[u8],
    mut key: Option<[u8; 32]>,
    attempts: u8,
    rx: &mut [u8; MAX_FRAME],
    buf: &mut [u8; MAX_FRAME],
) -> Result<(), Error> {
    let mut r = send_frame(l, frame, key.as_ref(), None, None, attempts, rx).await;
    key.zeroize();
    // PINGs that came in while we waited are answered now, one frame in flight at a time.
    while r.is_ok() && l.conn().pong_owed != 0 {
        l.conn().pong_owed = 0;
        let Some(s) = l.session() else { break };
        let mut key = ack_key(s);
        r = match s.seal_control(FrameType::Pong, buf) {
            Ok(n) => {
                let f = buf.get(..n).unwrap_or(&[]);
                send_frame(l, f, key.as_ref(), None, None, attempts, rx).await
            }
            Err(e) => Err(e),
        };
        key.zeroize();
    }
    if r.is_err() {
        l.drop_session();
    }
    r
}

/// Seals and sends a PING, PONG or BYE.
pub(crate) async fn send_control<L: Link>(
    l: &mut L,
    ty: FrameType,
    bufs: &mut Bufs,
) -> Result<(), Error> {
    let attempts = l.attempts();
    send_control_with(l, ty, attempts, bufs).await
}

async fn send_control_with<L: Link>(
    l: &mut L,
    ty: FrameType,
    attempts: u8,
    bufs: &mut Bufs,
) -> Result<(), Error> {
    let s = l.session().ok_or(Error::NotConnected)?;
    let n = s.seal_control(ty, &mut bufs.a)?;
    let key = ack_key(s);
    let f = bufs.a.get(..n).ok_or(Error::InvalidArg)?;
    send_or_drop(l, f, key, attempts, &mut bufs.b, &mut bufs.c).await
}

/// Ends the session with a best-effort BYE (one attempt, no waiting beyond one timeout);
/// the keys are zeroized. The transport is left to the face.
pub(crate) async fn bye<L: Link>(l: &mut L, bufs: &mut Bufs) {
    if l.session().is_some() {
        let _ = send_control_with(l, FrameType::Bye, 1, bufs).await;
    }
    l.drop_session();
}

/// Whether a keepalive PING is due: `period_ms` (> 0) have passed since the last
/// transmission. [`Error::NotConnected`] without a session.
pub(crate) fn keepalive_due<L: Link>(l: &mut L, period_ms: u32) -> Result<bool, Error> {
    if l.session().is_none() {
        return Err(Error::NotConnected);
    }
    let idle = l.now().wrapping_sub(l.conn().last_tx_ms);
    Ok(period_ms != 0 && idle >= period_ms)
}

/// Sends a PING when one is due ([`keepalive_due`]); true when it did.
pub(crate) async fn keepalive<L: Link>(
    l: &mut L,
    period_ms: u32,
    bufs: &mut Bufs,
) -> Result<bool, Error> {
    if !keepalive_due(l, period_ms)? {
        return Ok(false);
    }
    send_control(l, FrameType::Ping, bufs).await.map(|()| true)
}

/// Rotates the session keys (v2): REKEY with a fresh random salt under the old key.
pub(crate) async fn rekey<L: Link>(l: &mut L, bufs: &mut Bufs) -> Result<(), Error> {
    let s = l.session().ok_or(Error::NotConnected)?;
    if !s.version().has_rekey() {
        return Err(Error::Unsupported);
    }
    let mut salt = [0u8; REKEY_SALT_LEN];
    l.random(&mut salt)?;
    let s = l.session().ok_or(Error::NotConnected)?;
    // The peer acknowledges the REKEY frame under the key it was sealed with: the old one.
    let key = ack_key(s);
    let started = s.start_rekey(&salt, &mut bufs.a);
    salt.zeroize();
    let n = started?;
    let attempts = l.attempts();
    let f = bufs.a.get(..n).ok_or(Error::InvalidArg)?;
    send_or_drop(l, f, key, attempts, &mut bufs.b, &mut bufs.c).await
}

/// Receives one message into `out`: Some(length), or None when none came (the wait ended,
/// or only control frames were handled and nothing more is waiting). `wait` = None waits as
/// the transport does; Some(ms) bounds the whole call. On a byte stream any protocol error
/// ends the session, except `BufferOverflow` (that message is dropped, the session stays).
/// On a datagram link malformed, forged and duplicate datagrams are dropped and counted.
pub(crate) async fn recv_message<L: Link>(
    l: &mut L,
    out: &mut [u8],
    wait: Option<u32>,
    bufs: &mut Bufs,
) -> Result<Option<usize>, Error> {
    let r = recv_loop(l, out, bufs, wait).await;
    // The frame buffer held decrypted plaintext: leave none of it behind.
    bufs.a.zeroize();
    if let Err(e) = r {
        if e != Error::BufferOverflow && e != Error::NotConnected {
            l.drop_session();
        }
    }
    r
}

async fn recv_loop<L: Link>(
    l: &mut L,
    out: &mut [u8],
    bufs: &mut Bufs,
    wait: Option<u32>,
) -> Result<Option<usize>, Error> {
    l.session().ok_or(Error::NotConnected)?.begin_receive();
    let dgram = l.datagram();
    let start = l.now();
    let mut waiting_since: Option<u32> = None;
    loop {
        let left = wait.map(|ms| ms.saturating_sub(l.now().wrapping_sub(start)));
        let n = l
            .recv(&mut bufs.a, left)
            .await
            .map_err(|_| Error::TransportFailed)?;
        let now = l.now();
        let s = l.session().ok_or(Error::NotConnected)?;
        if n == 0 {
            if !s.reassembling() {
                return Ok(None);
            }
            let since = *waiting_since.get_or_insert(now);
            if now.wrapping_sub(since) >= REASSEMBLY_TIMEOUT_MS {
                return Err(Error::Timeout);
            }
            continue;
        }
        waiting_since = None;
        let frame = bufs.a.get_mut(..n).ok_or(Error::BadFrame)?;
        let rx_step = if dgram {
            match datagram_step(l, frame, out).await? {
                Some(step) => step,
                None => continue,
            }
        } else {
            s.receive(frame, out)?
        };
        match rx_step {
            Rx::Message(len) => return Ok(Some(len)),
            Rx::Fragment => continue,
            Rx::Ping => send_control(l, FrameType::Pong, bufs).await?,
            Rx::Pong | Rx::Rekeyed => {}
        }
        // After a control frame: return when nothing more is waiting (original behaviour).
        if l.available() == Some(false) {
            return Ok(None);
        }
    }
}

/// One datagram in a session: acknowledge what is authentic (before the core acts on it,
/// so a REKEY is acknowledged under the key it came with), drop and count the rest.
/// Ok(None) means "dropped, keep reading".
async fn datagram_step<L: Link>(
    l: &mut L,
    frame: &mut [u8],
    out: &mut [u8],
) -> Result<Option<Rx>, Error> {
    if datagram::is_utack(frame) {
        // A late or duplicate acknowledgement: nothing is waiting for it.
        bump(&mut l.conn().stats.bad_acks);
        return Ok(None);
    }
    if handshake_type(frame).is_some() {
        stray_in_session(l, frame).await;
        return Ok(None);
    }
    let s = l.session().ok_or(Error::NotConnected)?;
    let opened = match s.open(frame) {
        Ok(o) => o,
        Err(_) => {
            bump(&mut l.conn().stats.rejected);
            return Ok(None);
        }
    };
    if opened.freshness == Freshness::Gap {
        // Ahead of the strict v1 order: not acknowledged, so the peer sends it again.
        bump(&mut l.conn().stats.rejected);
        return Ok(None);
    }
    let mut key = s.version().has_rekey().then(|| *s.rx_key());
    ack(l, opened.ty as u8, opened.seq, key.as_ref()).await;
    key.zeroize();
    if opened.freshness == Freshness::Duplicate {
        bump(&mut l.conn().stats.duplicates);
        return Ok(None);
    }
    let s = l.session().ok_or(Error::NotConnected)?;
    let pt = frame.get(opened.plaintext.clone()).ok_or(Error::BadFrame)?;
    match s.process(&opened, pt, out) {
        Ok(step) => Ok(Some(step)),
        Err(e @ (Error::ClosedByPeer | Error::BufferOverflow)) => Err(e),
        Err(_) => {
            // Structural faults (fragment rules, flood, bad REKEY) drop the partial message
            // on a datagram link; the session goes on.
            bump(&mut l.conn().stats.rejected);
            Ok(None)
        }
    }
}

/// Stack bytes wiped at the end of every blocking API call (C API, [`crate::Client`]). Dead frames below the
/// caller otherwise keep the AES key schedule (`AesGcm::new`), HKDF output blocks and moved
/// copies of the session keys (tests/c/test_secrets.c). It covers the deepest the library
/// itself goes below its entry point (the transport's own frames hold no keys): painted in
/// QEMU on Cortex-M4, `usmp_connect` 4.7 KiB and `usmp_send`/`usmp_recv` at most 4.5 KiB
/// (budgets.toml, BENCHMARKS.md), so the wipe adds no stack there; frames are about twice
/// as large on 64-bit hosts.
#[cfg(target_pointer_width = "64")]
const SCRUB_BYTES: usize = 8 * 1024;
#[cfg(not(target_pointer_width = "64"))]
const SCRUB_BYTES: usize = 4608;
/// `usmp_connect`/`usmp_reconnect` (4.7 KiB painted on Cortex-M4).
#[cfg(target_pointer_width = "64")]
const SCRUB_CONNECT_BYTES: usize = 8 * 1024;
#[cfg(not(target_pointer_width = "64"))]
const SCRUB_CONNECT_BYTES: usize = 4864;

/// Overwrites `WORDS` words of the stack below the caller with zeros: an array of zeros
/// whose address escapes to `black_box`, so its initialisation cannot be optimised away
/// (one pass of plain stores; no `unsafe`).
#[inline(never)]
fn scrub_stack_of<const WORDS: usize>() {
    let mut area = [0usize; WORDS];
    core::hint::black_box(&mut area);
}

/// Wipes the stack used by a data-path call (send, recv, ping, close, rekey).
pub(crate) fn scrub_stack() {
    scrub_stack_of::<{ SCRUB_BYTES / size_of::<usize>() }>();
}

/// Wipes the stack used by a handshake (connect, reconnect).
pub(crate) fn scrub_stack_connect() {
    scrub_stack_of::<{ SCRUB_CONNECT_BYTES / size_of::<usize>() }>();
}
