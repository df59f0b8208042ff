//! The operations of the API (connect, send a message, receive one, PING, REKEY, BYE) as
//! explicit state machines over [`Conn`]: each `step` takes what the last I/O gave and the
//! time, and says what to do next ([`Action`]): transmit a buffer, wait for input, sleep,
//! or done. They are plain data (any bit pattern is valid), so the non-blocking C API keeps
//! them in application memory between calls.
//!
//! A face runs an operation with a loop of a few lines: `step`, do the action, feed the
//! result to the next `step` (see [`crate::ffi`] and [`crate::Client`]). Every protocol
//! decision is here or in [`crate::conn`]; the faces only move bytes and wait.
//!
//! Two tasks may run operations on one [`Conn`] at once (the C API, one task receiving and
//! one sending), each with its own buffers, the face holding a lock around every `step` and
//! every transmission. On a datagram link only one task reads the transport at a time: the
//! receiving operation when there is one, else a sender waiting for its acknowledgement
//! (in slices of [`SLICE_MS`], yielding to a receiver that asks); the reader processes every
//! datagram, UTACKs included, into the shared [`Conn`].

use crate::conn::{Conn, Connecting, Got, HsEvent, Reply, Timing, TxPoll, SMALL_FRAME};
use crate::frame::FrameType;
use crate::session::{fragment, REKEY_SALT_LEN};
use crate::{Error, REASSEMBLY_TIMEOUT_MS};

/// Longest a sender reads the transport for its acknowledgement before it lets a receiver
/// take over, ms.
pub(crate) const SLICE_MS: u32 = 20;
/// Longest single wait of a datagram receive: it wakes up now and then to look after the
/// frame in flight and its deadlines (a wait may end early, never late).
const MAX_WAIT_MS: u32 = 500;
/// Frames a receive still takes once its budget is spent, when they are already there.
const MAX_AFTER_BUDGET: u8 = 16;

// Reader roles (`FaceSlots::role`).
const ROLE_NONE: u8 = 0;
const ROLE_RECEIVER: u8 = 1;
const ROLE_SENDER: u8 = 2;
// `FaceSlots::flags`.
/// A connect, reconnect or close is under way: every other operation ends.
pub(crate) const TRANSITION: u8 = 1;
/// A receiver waits for a sender to hand over the transport.
const RX_WANTED: u8 = 2;
/// The session is driven by the non-blocking C API (`usmp_nb_*`): the blocking calls
/// refuse it.
pub(crate) const NONBLOCKING: u8 = 4;

/// The scratch buffers of one operation (a frame of [`crate::frame::MAX_FRAME`] bytes and
/// a small one of [`SMALL_FRAME`] bytes), lent by its face.
pub(crate) struct Bufs<'b> {
    pub frame: &'b mut [u8],
    pub small: &'b mut [u8],
}

/// What a step of an operation works on: the connection, the time, the retransmission
/// settings, the operation's buffers and the acknowledgement (UTACK) it may have to send.
pub(crate) struct Env<'e, 'b> {
    pub c: &'e mut Conn,
    pub now: u32,
    pub t: Timing,
    pub b: &'e mut Bufs<'b>,
    pub reply: &'e mut Reply,
}

/// What to transmit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Out {
    /// `frame[..n]`.
    Frame(usize),
    /// `small[..n]`.
    Small(usize),
    /// The operation's UTACK ([`Reply`]).
    Reply,
}

/// What an operation needs next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send this (still holding the lock: sealing and sending are one step), then step
    /// with [`Input::Sent`].
    Transmit(Out),
    /// Wait for one frame (stream) or datagram, into `small` or `frame`, at most `wait` ms
    /// (`None`: as long as a byte-stream transport waits by itself), then step with
    /// [`Input::Received`], [`Input::Nothing`], [`Input::Closed`] or [`Input::Broken`].
    Receive { small: bool, wait: Option<u32> },
    /// Say whether more input is waiting now ([`Input::Available`]).
    Available,
    /// Another task holds what is needed: wait this many ms, then step again.
    Sleep(u32),
    /// Finished: a message length (receive), else 0.
    Done(Result<usize, Error>),
}

/// What the last action gave.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Input {
    /// First step, or after a sleep.
    None,
    /// The transmission succeeded (true) or failed.
    Sent(bool),
    /// This many bytes arrived.
    Received(usize),
    /// The wait ended with nothing.
    Nothing,
    /// The peer closed the connection (or the transport failed).
    Closed,
    /// The transport broke its contract (a length above the buffer, a frame cut off).
    Broken,
    /// Whether more input is waiting (None: the transport cannot tell).
    Available(Option<bool>),
}

fn transition(c: &Conn) -> bool {
    c.face.flags & TRANSITION != 0
}

/// An operation on an established session may go on: no transition under way (unless
/// the operation belongs to it: `exclusive`).
fn live(c: &Conn, exclusive: bool) -> Result<(), Error> {
    if (transition(c) && !exclusive) || !c.is_established() {
        return Err(Error::NotConnected);
    }
    Ok(())
}

/// A failure of the transport: the session is over.
fn broken(c: &mut Conn) -> Action {
    c.end();
    Action::Done(Err(Error::TransportFailed))
}

/// A connect, reconnect or close takes the context: no operation is inside any more, so no
/// reader role (a receive the non-blocking API abandoned kept its own) stays taken.
pub(crate) fn release_roles(c: &mut Conn) {
    c.face.role = ROLE_NONE;
    c.face.flags &= !RX_WANTED;
}

/// A face with one owner (the Rust clients) starts an operation: roles left by an
/// operation that was abandoned (a cancelled future) are cleared; a message or REKEY cut
/// off midway ends the session (the peer holds part of it), and a message partly received
/// is dropped rather than continued into another buffer.
pub(crate) fn reenter(c: &mut Conn) {
    release_roles(c);
    if c.sending_message() || c.inflight_owned() {
        c.end();
    }
    c.abandon_partial();
}

/// Waiting for the frame in flight to be acknowledged: one step. `owned`: this operation
/// holds that frame (where, as an [`Out`]). `None`: nothing is in flight any more.
fn drive(x: &mut Env<'_, '_>, owned: Option<Out>, input: Input, exclusive: bool) -> Option<Action> {
    match input {
        Input::Received(n) => {
            x.c.face.role = ROLE_NONE;
            let d = x.b.small.get_mut(..n)?;
            if let Err(e) = x.c.on_input(x.now, d, None, x.reply) {
                if !x.c.is_established() {
                    return Some(Action::Done(Err(e)));
                }
            }
            if !x.reply.bytes().is_empty() {
                return Some(Action::Transmit(Out::Reply));
            }
        }
        Input::Nothing => x.c.face.role = ROLE_NONE,
        Input::Closed | Input::Broken | Input::Sent(false) => {
            x.c.face.role = ROLE_NONE;
            return Some(broken(x.c));
        }
        _ => {}
    }
    if let Err(e) = live(x.c, exclusive) {
        return Some(Action::Done(Err(e)));
    }
    Some(match x.c.tx_poll(x.now, x.t) {
        Err(e) => Action::Done(Err(e)),
        Ok(TxPoll::Idle | TxPoll::Acked) => return None,
        Ok(TxPoll::Resend { owned: true }) => match owned {
            Some(out) => {
                x.c.resent(x.now);
                Action::Transmit(out)
            }
            // Another task's frame: that task sends it again.
            None => Action::Sleep(1),
        },
        Ok(TxPoll::Resend { owned: false }) => match x.c.reseal_inflight(x.now, x.b.small) {
            Ok(n) => Action::Transmit(Out::Small(n)),
            Err(e) => Action::Done(Err(e)),
        },
        Ok(TxPoll::Wait(ms)) => {
            // Under the non-blocking API the receive alone reads (a sender that read a
            // DATA datagram would have to leave it unacknowledged).
            if x.c.face.role == ROLE_NONE && x.c.face.flags & (RX_WANTED | NONBLOCKING) == 0 {
                x.c.face.role = ROLE_SENDER;
                Action::Receive {
                    small: true,
                    wait: Some(ms.min(SLICE_MS)),
                }
            } else {
                Action::Sleep(1)
            }
        }
    })
}

/// Waiting until a new frame may be sealed: nothing in flight (a control frame left in
/// flight by an earlier call is driven to its end here) and no message being sent.
fn acquire(x: &mut Env<'_, '_>, input: Input) -> Option<Action> {
    if let Err(e) = live(x.c, false) {
        return Some(Action::Done(Err(e)));
    }
    if !x.c.tx_free() {
        if x.c.inflight_owned() {
            return Some(Action::Sleep(1));
        }
        if let Some(a) = drive(x, None, input, false) {
            return Some(a);
        }
    }
    if x.c.sending_message() {
        return Some(Action::Sleep(1));
    }
    None
}

// ---------------------------------------------------------------------------------------

const S_ACQUIRE: u8 = 0;
const S_SEAL: u8 = 1;
const S_SENT: u8 = 2;
const S_DRIVE: u8 = 3;
const S_FINISH: u8 = 4;
const S_PONG: u8 = 5;

/// Sending one message (0..=1808 bytes) in up to four frames, each acknowledged before the
/// next on a datagram link; a PONG owed meanwhile goes after the last one.
#[repr(C)]
#[derive(Default)]
pub(crate) struct SendOp {
    phase: u8,
    frames: u8,
    next: u8,
    n: u16,
}

impl SendOp {
    #[inline(never)]
    pub(crate) fn step(&mut self, x: &mut Env<'_, '_>, mut input: Input, msg: &[u8]) -> Action {
        loop {
            match self.phase {
                S_ACQUIRE => {
                    if let Some(a) = acquire(x, input) {
                        return a;
                    }
                    match x.c.begin_message(msg.len()) {
                        Ok(f) => self.frames = f as u8,
                        Err(e) => return Action::Done(Err(e)),
                    }
                    self.next = 0;
                    self.phase = S_SEAL;
                }
                S_SEAL => {
                    let (ty, chunk) = fragment(msg, usize::from(self.next), self.frames.into());
                    return match x.c.seal(x.now, ty, chunk, x.b.frame, true) {
                        Ok(n) => {
                            self.n = n as u16;
                            self.phase = S_SENT;
                            Action::Transmit(Out::Frame(n))
                        }
                        Err(e) => {
                            x.c.end_message();
                            Action::Done(Err(e))
                        }
                    };
                }
                S_SENT => {
                    if !matches!(input, Input::Sent(true)) {
                        return broken(x.c);
                    }
                    self.next += 1;
                    self.phase = if x.c.session().is_some_and(|s| s.is_datagram()) {
                        S_DRIVE
                    } else if self.next < self.frames {
                        S_SEAL
                    } else {
                        S_FINISH
                    };
                }
                S_DRIVE => {
                    let own = Some(Out::Frame(usize::from(self.n)));
                    if let Some(a) = drive(x, own, input, false) {
                        if let Action::Done(_) = a {
                            x.c.end_message();
                        }
                        return a;
                    }
                    self.phase = if self.next < self.frames {
                        S_SEAL
                    } else {
                        S_FINISH
                    };
                }
                S_FINISH => {
                    x.c.end_message();
                    if let Some(n) = x.c.owed_pong(x.now, x.b.small) {
                        self.phase = S_PONG;
                        return Action::Transmit(Out::Small(n));
                    }
                    return Action::Done(Ok(0));
                }
                _ => {
                    // The PONG after the message: it stays in flight for whoever comes next;
                    // the message itself was delivered.
                    if matches!(input, Input::Sent(false)) {
                        x.c.end();
                    }
                    return Action::Done(Ok(0));
                }
            }
            input = Input::None;
        }
    }
}

// ---------------------------------------------------------------------------------------

const C_ACQUIRE: u8 = 0;
const C_SENT: u8 = 1;
const C_DRIVE: u8 = 2;

/// Sending one control frame: PING, BYE (`exclusive`: by the task that is closing) or
/// REKEY (with a fresh salt), acknowledged on a datagram link.
#[repr(C)]
pub(crate) struct ControlOp {
    phase: u8,
    ty: u8,
    exclusive: u8,
    n: u16,
    salt: [u8; REKEY_SALT_LEN],
}

impl Drop for ControlOp {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.salt);
    }
}

impl ControlOp {
    /// A PING or a BYE (`exclusive`: sent by the task that holds the transition).
    pub(crate) fn new(ty: FrameType, exclusive: bool) -> Self {
        Self {
            phase: C_ACQUIRE,
            ty: ty as u8,
            exclusive: u8::from(exclusive),
            n: 0,
            salt: [0; REKEY_SALT_LEN],
        }
    }

    /// True for a REKEY (which needs a frame buffer).
    #[cfg_attr(not(feature = "capi"), allow(dead_code))]
    pub(crate) fn is_rekey(&self) -> bool {
        self.ty == FrameType::Rekey as u8
    }

    /// A REKEY with this random salt.
    pub(crate) fn rekey(salt: &[u8; REKEY_SALT_LEN]) -> Self {
        let mut op = Self::new(FrameType::Rekey, false);
        op.salt = *salt;
        op
    }

    #[inline(never)]
    pub(crate) fn step(&mut self, x: &mut Env<'_, '_>, input: Input) -> Action {
        let rekey = self.ty == FrameType::Rekey as u8;
        match self.phase {
            C_ACQUIRE => {
                if self.exclusive == 0 {
                    if let Some(a) = acquire(x, input) {
                        return a;
                    }
                } else if !x.c.is_established() {
                    return Action::Done(Err(Error::NotConnected));
                } else {
                    x.c.forget_inflight();
                }
                let sealed = if rekey {
                    x.c.seal_rekey(x.now, &self.salt, x.b.frame).map(Out::Frame)
                } else {
                    let ty = if self.ty == FrameType::Bye as u8 {
                        FrameType::Bye
                    } else {
                        FrameType::Ping
                    };
                    x.c.seal(x.now, ty, &[], x.b.small, false).map(Out::Small)
                };
                zeroize::Zeroize::zeroize(&mut self.salt);
                match sealed {
                    Ok(out) => {
                        if let Out::Frame(n) = out {
                            self.n = n as u16;
                        }
                        self.phase = C_SENT;
                        Action::Transmit(out)
                    }
                    Err(e) => Action::Done(Err(e)),
                }
            }
            C_SENT => {
                if !matches!(input, Input::Sent(true)) {
                    return broken(x.c);
                }
                if !x.c.session().is_some_and(|s| s.is_datagram()) {
                    return Action::Done(Ok(0));
                }
                self.phase = C_DRIVE;
                self.step(x, Input::None)
            }
            _ => {
                let own = rekey.then_some(Out::Frame(usize::from(self.n)));
                let exclusive = self.exclusive != 0;
                if exclusive {
                    // BYE is best-effort: one attempt.
                    x.t.attempts = 1;
                }
                drive(x, own, input, exclusive).unwrap_or(Action::Done(Ok(0)))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------

const R_CLAIM: u8 = 0;
const R_DUTIES: u8 = 1;
const R_AWAIT: u8 = 2;
const R_SENT: u8 = 3;
const R_AVAILABLE: u8 = 4;

// RecvOp flags.
const R_CONTROL_SEEN: u8 = 1;
const R_HAS_RESULT: u8 = 2;
/// The transport was read at least once (a budget of 0 still looks at what is there).
const R_READ: u8 = 4;
/// The last wait was one the receive chose (a deadline), not the transport's own.
const R_TIMED: u8 = 8;

/// What a receive that got no message returns (a message of 0 bytes is `Ok(0)`).
pub(crate) const NO_MESSAGE: usize = usize::MAX;

/// Receiving one message into the caller's buffer: PINGs answered, REKEYs applied, a
/// control frame left in flight by an earlier call driven to its end, on the way. Ends
/// with a message's length, or [`NO_MESSAGE`]: on a stream when the transport's own wait
/// ends with nothing or, after a control frame, nothing more is waiting (or, `bounded`,
/// after `budget_ms`); on a datagram link after `budget_ms` at the latest, whatever
/// arrives. A message that has started to arrive may take [`REASSEMBLY_TIMEOUT_MS`] more.
#[repr(C)]
pub(crate) struct RecvOp {
    phase: u8,
    flags: u8,
    after: u8,
    bounded: u8,
    /// Frames read after the budget was spent.
    extra: u8,
    start: u32,
    msg_start: u32,
    budget_ms: u32,
    result: i32,
}

impl RecvOp {
    /// `budget_ms`: how long the receive may wait in all on a datagram link, and on a stream
    /// too when `bounded` (else a stream waits as long as its transport does by itself).
    pub(crate) fn new(budget_ms: u32, bounded: bool) -> Self {
        Self {
            phase: R_CLAIM,
            flags: 0,
            after: 0,
            bounded: u8::from(bounded),
            extra: 0,
            start: 0,
            msg_start: 0,
            budget_ms,
            result: 0,
        }
    }

    fn finish(&mut self, c: &mut Conn, r: Result<usize, Error>) -> Action {
        if c.face.role == ROLE_RECEIVER {
            c.face.role = ROLE_NONE;
        }
        self.phase = R_CLAIM;
        Action::Done(r)
    }

    /// One step; `out` is the message buffer (the same one for every step of a receive).
    #[inline(never)]
    pub(crate) fn step(&mut self, x: &mut Env<'_, '_>, mut input: Input, out: &mut [u8]) -> Action {
        loop {
            match self.phase {
                R_CLAIM => {
                    if let Err(e) = live(x.c, false) {
                        return Action::Done(Err(e));
                    }
                    match x.c.face.role {
                        ROLE_NONE => {
                            x.c.face.role = ROLE_RECEIVER;
                            x.c.face.flags &= !RX_WANTED;
                            self.start = x.now;
                            self.flags = 0;
                            self.extra = 0;
                            self.phase = R_DUTIES;
                        }
                        ROLE_RECEIVER => return Action::Done(Err(Error::Busy)),
                        _ => {
                            x.c.face.flags |= RX_WANTED;
                            return Action::Sleep(1);
                        }
                    }
                }
                R_SENT => {
                    if !matches!(input, Input::Sent(true)) {
                        x.c.face.role = ROLE_NONE;
                        let a = broken(x.c);
                        self.phase = R_CLAIM;
                        return a;
                    }
                    self.phase = self.after;
                }
                R_DUTIES => {
                    if self.flags & R_HAS_RESULT != 0 {
                        self.flags &= !R_HAS_RESULT;
                        let r = if self.result < 0 {
                            Err(Error::from_code(self.result))
                        } else {
                            Ok(self.result as u32 as usize)
                        };
                        return self.finish(x.c, r);
                    }
                    if let Err(e) = live(x.c, false) {
                        return self.finish(x.c, Err(e));
                    }
                    x.c.tick(x.now);
                    if let Some(n) = x.c.owed_pong(x.now, x.b.small) {
                        return self.transmit(Out::Small(n), R_DUTIES);
                    }
                    let dgram = x.c.session().is_some_and(|s| s.is_datagram());
                    let mut tx_wait = u32::MAX;
                    if !x.c.tx_free() && !x.c.inflight_owned() {
                        match x.c.tx_poll(x.now, x.t) {
                            Err(e) => return self.finish(x.c, Err(e)),
                            Ok(TxPoll::Resend { .. }) => {
                                match x.c.reseal_inflight(x.now, x.b.small) {
                                    Ok(n) => return self.transmit(Out::Small(n), R_DUTIES),
                                    Err(e) => return self.finish(x.c, Err(e)),
                                }
                            }
                            Ok(TxPoll::Wait(ms)) => tx_wait = ms,
                            Ok(_) => continue,
                        }
                    }
                    if self.flags & R_CONTROL_SEEN != 0 {
                        self.flags &= !R_CONTROL_SEEN;
                        self.phase = R_AVAILABLE;
                        return Action::Available;
                    }
                    let wait = if x.c.reassembling() {
                        let spent = x.now.wrapping_sub(self.msg_start);
                        if spent >= REASSEMBLY_TIMEOUT_MS {
                            x.c.end();
                            return self.finish(x.c, Err(Error::Timeout));
                        }
                        Some(REASSEMBLY_TIMEOUT_MS - spent)
                    } else {
                        let spent = x.now.wrapping_sub(self.start);
                        let over = spent >= self.budget_ms;
                        if over && (dgram || self.bounded != 0) && self.flags & R_READ != 0 {
                            // Past the budget: only what is already there, a few more.
                            self.extra = self.extra.saturating_add(1);
                            if self.extra > MAX_AFTER_BUDGET {
                                return self.finish(x.c, Ok(NO_MESSAGE));
                            }
                        }
                        // A bounded receive, or a datagram one past its budget (junk kept
                        // coming): a wait of its own. Otherwise the transport's own receive
                        // timeout, as in the original.
                        (self.bounded != 0 || (dgram && over))
                            .then(|| self.budget_ms.saturating_sub(spent))
                    };
                    let wait = match (dgram, wait) {
                        (true, Some(w)) => Some(w.min(tx_wait).min(MAX_WAIT_MS)),
                        // A frame in flight has a deadline of its own.
                        (true, None) if tx_wait != u32::MAX => Some(tx_wait.min(MAX_WAIT_MS)),
                        (_, w) => w,
                    };
                    if wait.is_some() {
                        self.flags |= R_TIMED;
                    } else {
                        self.flags &= !R_TIMED;
                    }
                    self.flags |= R_READ;
                    self.phase = R_AWAIT;
                    return Action::Receive { small: false, wait };
                }
                R_AVAILABLE => {
                    self.phase = R_DUTIES;
                    if matches!(input, Input::Available(Some(false))) {
                        return self.finish(x.c, Ok(NO_MESSAGE));
                    }
                }
                _ => {
                    // R_AWAIT
                    self.phase = R_DUTIES;
                    match input {
                        Input::Nothing => {
                            // The transport's own wait ended with nothing (as in the
                            // original), or the budget is spent.
                            let spent = x.now.wrapping_sub(self.start) >= self.budget_ms;
                            let own = self.flags & R_TIMED == 0 && self.bounded == 0;
                            if !x.c.reassembling() && (own || spent) {
                                return self.finish(x.c, Ok(NO_MESSAGE));
                            }
                        }
                        Input::Received(n) => {
                            let was = x.c.reassembling();
                            let Some(d) = x.b.frame.get_mut(..n) else {
                                x.c.face.role = ROLE_NONE;
                                self.phase = R_CLAIM;
                                return broken(x.c);
                            };
                            let r = x.c.on_input(x.now, d, Some(out), x.reply);
                            if !was && x.c.reassembling() {
                                self.msg_start = x.now;
                            }
                            let result = match r {
                                Ok(Got::Message(n)) => Some(n as i32),
                                Ok(Got::Control) => {
                                    self.flags |= R_CONTROL_SEEN;
                                    None
                                }
                                Ok(Got::Nothing) => None,
                                Err(e) => Some(e.code()),
                            };
                            if let Some(code) = result {
                                self.result = code;
                                self.flags |= R_HAS_RESULT;
                            }
                            if !x.reply.bytes().is_empty() {
                                return self.transmit(Out::Reply, R_DUTIES);
                            }
                        }
                        _ => {
                            // The transport closed or broke.
                            x.c.face.role = ROLE_NONE;
                            self.phase = R_CLAIM;
                            return broken(x.c);
                        }
                    }
                }
            }
            input = Input::None;
        }
    }

    fn transmit(&mut self, out: Out, then: u8) -> Action {
        self.after = then;
        self.phase = R_SENT;
        Action::Transmit(out)
    }
}

// ---------------------------------------------------------------------------------------

/// The handshake: [`Connecting`] driven until the session is up, stored in the [`Conn`].
#[repr(C)]
pub(crate) struct ConnectOp {
    hs: Connecting,
    datagram: u8,
    done: u8,
}

impl ConnectOp {
    /// No handshake yet: [`ConnectOp::start`] starts one in place.
    pub(crate) const EMPTY: Self = Self {
        hs: Connecting::EMPTY,
        datagram: 0,
        done: 0,
    };

    /// Starts the handshake (see [`Connecting::start`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        &mut self,
        version: crate::Version,
        psk: &[u8],
        device_id: &[u8; crate::handshake::DEVICE_ID_LEN],
        secret: &[u8; 32],
        datagram: bool,
        now: u32,
    ) -> Result<(), Error> {
        self.datagram = u8::from(datagram);
        self.done = 0;
        self.hs
            .start(version, psk, device_id, secret, datagram, now)
    }

    #[inline(never)]
    pub(crate) fn step(&mut self, x: &mut Env<'_, '_>, input: Input, psk: &[u8]) -> Action {
        match self.connect_step(x, psk, input) {
            Action::Done(Err(e)) => {
                self.hs.wipe();
                Action::Done(Err(e))
            }
            a => a,
        }
    }

    fn connect_step(&mut self, x: &mut Env<'_, '_>, psk: &[u8], input: Input) -> Action {
        match input {
            Input::Sent(false) => return Action::Done(Err(Error::TransportFailed)),
            Input::Closed => {
                return Action::Done(Err(match self.hs.check_deadline(x.now) {
                    Err(e) => e,
                    Ok(()) => self.hs.on_hangup(),
                }))
            }
            Input::Broken => return Action::Done(Err(Error::TransportFailed)),
            Input::Received(n) => {
                let Some(d) = x.b.small.get(..n) else {
                    return Action::Done(Err(Error::TransportFailed));
                };
                match self.hs.on_input(x.now, psk, d, x.reply, x.c.stats_mut()) {
                    Err(e) => return Action::Done(Err(e)),
                    Ok(HsEvent::Established(s)) => {
                        self.hs.wipe();
                        x.c.establish(s, self.datagram != 0, x.now);
                        self.done = 1;
                    }
                    Ok(HsEvent::Nothing) => {}
                }
                if !x.reply.bytes().is_empty() {
                    return Action::Transmit(Out::Reply);
                }
            }
            _ => {}
        }
        if self.done != 0 {
            return Action::Done(Ok(0));
        }
        if let Err(e) = self.hs.check_deadline(x.now) {
            return Action::Done(Err(e));
        }
        match self
            .hs
            .poll_transmit(x.now, x.t, psk, x.b.small, x.c.stats_mut())
        {
            Err(e) => Action::Done(Err(e)),
            Ok(Some(n)) => Action::Transmit(Out::Small(n)),
            Ok(None) => Action::Receive {
                small: true,
                wait: Some(self.hs.timeout(x.now, x.t)),
            },
        }
    }
}

/// An operation in progress with what it works on: what a face's loop runs (one loop for
/// every operation, so the library holds one copy of it).
pub(crate) enum Op<'o, 'd> {
    /// The handshake, with the PSK.
    Connect(&'o mut ConnectOp, &'d [u8]),
    /// Sending this message.
    Send(&'o mut SendOp, &'d [u8]),
    /// Receiving into this buffer.
    Recv(&'o mut RecvOp, &'d mut [u8]),
    /// PING, BYE or REKEY.
    Control(&'o mut ControlOp),
}

impl Op<'_, '_> {
    /// One step of the operation (see [`Action`]).
    pub(crate) fn step(&mut self, x: &mut Env<'_, '_>, input: Input) -> Action {
        match self {
            Op::Connect(op, psk) => op.step(x, input, psk),
            Op::Send(op, msg) => op.step(x, input, msg),
            Op::Recv(op, out) => op.step(x, input, out),
            Op::Control(op) => op.step(x, input),
        }
    }
}

/// The bytes an [`Out`] names.
pub(crate) fn out_bytes<'x>(out: Out, b: &'x Bufs<'_>, reply: &'x Reply) -> &'x [u8] {
    match out {
        Out::Frame(n) => b.frame.get(..n).unwrap_or(&[]),
        Out::Small(n) => b.small.get(..n).unwrap_or(&[]),
        Out::Reply => reply.bytes(),
    }
}

/// The buffer a receive goes into.
pub(crate) fn in_buf<'x>(small: bool, b: &'x mut Bufs<'_>) -> &'x mut [u8] {
    if small {
        b.small
    } else {
        b.frame
    }
}

const _: () = assert!(SMALL_FRAME >= crate::session::REKEY_FRAME_LEN);
