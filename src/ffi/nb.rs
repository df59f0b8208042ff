//! The non-blocking C API (`usmp_nb_*`), for superloops: bare metal without an RTOS, an
//! Arduino-style `loop()`, lwIP's raw API. The application calls `usmp_nb_poll` every time
//! round its loop; each call does what can be done now (a transport read that does not
//! wait, the steps that follow, the frames they send) and returns an event. The handshake,
//! sends, receives, PING/PONG, acknowledgements, retransmissions and the keepalive all
//! progress across calls.
//!
//! The state that lives between calls (the operations of `ops` under way, a frame
//! that has partly arrived, the frame waiting for its acknowledgement) is in a `usmp_nb_t`
//! the application provides; the session itself stays in its `usmp_t`. The operations
//! are the blocking API's: three of them at a time (receive, PING/REKEY, send), each with
//! its slot here, stepped in turn.
//!
//! Feature `nb` (default): without it these calls return `USMP_ERR_UNSUPPORTED`.

use core::ffi::c_int;
use core::mem::{size_of, ManuallyDrop};

use zeroize::Zeroize;

use super::ctx::{device_id, random, Clock, Ctx};
use super::{
    apply_defaults, log, usmp_log_level_t, usmp_t, usmp_transport_t, USMP_FRAME_TIMEOUT_MS,
};
use crate::conn::{Reply, SMALL_FRAME};
use crate::frame::{FrameType, StreamReader, MAX_FRAME};
use crate::ops::{
    in_buf, out_bytes, release_roles, Action, Bufs, ConnectOp, ControlOp, Env, Input, Op, RecvOp,
    SendOp, NONBLOCKING, NO_MESSAGE,
};
use crate::scrub::scrub_stack_connect;
use crate::session::{MAX_MESSAGE, REKEY_SALT_LEN};
use crate::{Error, Version};

/// Words (8 bytes each) of a `usmp_nb_t`.
pub const USMP_NB_WORDS: usize = 174;

/// The state of a non-blocking session between calls: application memory (a static or a
/// global, not the stack of a function that returns), set up by `usmp_nb_connect`. Its
/// contents are private.
#[repr(C)]
pub struct usmp_nb_t {
    /// Library-private state. Do not touch.
    pub opaque: [u64; USMP_NB_WORDS],
}

/// What `usmp_nb_poll` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum usmp_event_kind_t {
    /// Nothing to report: call again on the next turn of the loop.
    USMP_EVENT_NONE = 0,
    /// The handshake completed: `usmp_nb_send` may be called.
    USMP_EVENT_CONNECTED = 1,
    /// A message arrived: `len` bytes in the receive buffer given to `usmp_nb_connect`
    /// (valid until the next `usmp_nb_poll`).
    USMP_EVENT_MESSAGE = 2,
    /// The message of `usmp_nb_send` went out (on a datagram link: acknowledged), or, when
    /// `error` is negative, did not (the application's buffer is free again either way).
    USMP_EVENT_SENT = 3,
    /// Something failed and the session goes on (`error`): a message larger than the
    /// receive buffer was dropped, or a PING or REKEY could not be sent.
    USMP_EVENT_ERROR = 4,
    /// The session is over (`error` says why; the transport is closed): connect again.
    USMP_EVENT_CLOSED = 5,
}

/// An event of `usmp_nb_poll`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct usmp_event_t {
    /// What happened.
    pub kind: usmp_event_kind_t,
    /// `USMP_EVENT_SENT`, `USMP_EVENT_ERROR`, `USMP_EVENT_CLOSED`: a `usmp_err_t` (0: none).
    pub error: c_int,
    /// `USMP_EVENT_MESSAGE`: the message's length.
    pub len: u16,
}

// Slots: the operations that can be under way at once.
const RECV: usize = 0; // the handshake, then one receive after another
const CTRL: usize = 1; // a PING (keepalive or usmp_nb_ping) or a REKEY
const SEND: usize = 2; // the message of usmp_nb_send

// Nb::state
const IDLE: u8 = 0;
const CONNECTING: u8 = 1;
const OPEN: u8 = 2;
/// The session is over: results still to report come first, then CLOSED.
const ENDED: u8 = 3;

/// Steps one slot may take in one poll (a bound behind the operations' own).
const MAX_STEPS: u32 = 64;
/// Reads of a byte stream in one poll, per slot.
const MAX_READS: u32 = 8;

/// An operation's slot.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Slot {
    /// An operation is under way.
    active: u8,
    /// It waits for input (else it is stepped at the next poll).
    waiting: u8,
    /// ... into the small buffer.
    small: u8,
    /// ... until `deadline` (else until input comes).
    timed: u8,
    /// A result waits to be reported: `result`.
    done: u8,
    deadline: u32,
    /// A length, or a negative `usmp_err_t`.
    result: i32,
    /// A frame partly arrived on a byte stream.
    reader: StreamReader,
}

/// The private state of a `usmp_nb_t`. Plain data: any bit pattern is one (the tag tells
/// a state `usmp_nb_connect` made from anything else).
#[repr(C)]
struct Nb {
    tag: u32,
    state: u8,
    /// The PING under way is the keepalive's (its failure ends nothing by itself).
    keepalive: u8,
    rx_len: u16,
    tx_len: u16,
    /// Why the session ended (a `usmp_err_t`).
    closed: i32,
    rx: *mut u8,
    tx: *const u8,
    slots: [Slot; 3],
    recv: RecvOp,
    send: SendOp,
    ctrl: ControlOp,
    /// Frames coming in (the receive's).
    rx_frame: [u8; MAX_FRAME],
    /// The handshake, then frames going out.
    scratch: Scratch,
    small: [[u8; SMALL_FRAME]; 3],
}

/// The handshake's state until the session is up; then the frames going out that wait for
/// their acknowledgement (a fragment, a REKEY): the send's and the control slot's in turn
/// (never both at once: one frame is in flight at a time).
#[repr(C)]
union Scratch {
    connect: ManuallyDrop<ConnectOp>,
    tx_frame: [u8; MAX_FRAME],
}

impl Nb {
    fn connect(&mut self) -> &mut ConnectOp {
        // SAFETY: both fields are plain data, valid for every bit pattern.
        unsafe { &mut self.scratch.connect }
    }

    fn tx_frame(&mut self) -> &mut [u8; MAX_FRAME] {
        // SAFETY: as above.
        unsafe { &mut self.scratch.tx_frame }
    }
}

const _: () = assert!(size_of::<Nb>() <= size_of::<[u64; USMP_NB_WORDS]>());
const _: () = assert!(core::mem::align_of::<Nb>() <= core::mem::align_of::<u64>());

fn tag_of(ctx: *mut usmp_t) -> u32 {
    let a = ctx as usize as u64;
    ((a ^ (a >> 32)) as u32 ^ 0x6E62_7573) | 1
}

fn reached(now: u32, deadline: u32) -> bool {
    now.wrapping_sub(deadline) as i32 >= 0
}

/// The private state of `nb`.
///
/// # Safety
/// `nb` must be non-null, valid and not used by anything else during the borrow.
unsafe fn state<'a>(nb: *mut usmp_nb_t) -> &'a mut Nb {
    // SAFETY: `opaque` is u64-aligned and large enough (checked at compile time), every bit
    // pattern is a valid `Nb`, and the caller gives exclusive access.
    unsafe { &mut *core::ptr::addr_of_mut!((*nb).opaque).cast::<Nb>() }
}

/// The state `usmp_nb_connect` made for `ctx`, else [`Error::NotConnected`].
///
/// # Safety
/// As [`state`].
unsafe fn connected<'a>(ctx: *mut usmp_t, nb: *mut usmp_nb_t) -> Result<&'a mut Nb, Error> {
    if nb.is_null() {
        return Err(Error::InvalidArg);
    }
    // SAFETY: the caller's contract.
    let n = unsafe { state(nb) };
    if n.tag != tag_of(ctx) || n.state == IDLE {
        return Err(Error::NotConnected);
    }
    Ok(n)
}

/// Starts a session without blocking: copies `*transport` into `ctx->transport` (which must
/// already be dialled) and prepares the handshake; `usmp_nb_poll` then runs it and reports
/// `USMP_EVENT_CONNECTED` or `USMP_EVENT_CLOSED`. Messages arrive in `rx_buf` (`rx_len`
/// bytes, up to `USMP_MAX_MESSAGE_LEN`; larger messages are dropped with an
/// `USMP_EVENT_ERROR`). Settings as for `usmp_connect`.
///
/// The transport's `recv_timeout` is required and is called with a timeout of 0: it must
/// return at once. A byte stream must set `USMP_TRANSPORT_BYTES` (unless its `recv_timeout`
/// never returns part of a frame); its `send` should not wait long.
///
/// Returns `USMP_OK`, or a negative `usmp_err_t` (nothing started; the transport is closed
/// if it was taken). After `usmp_nb_connect`, use only `usmp_nb_*` calls on `ctx` (the
/// blocking ones return `USMP_ERR_BUSY`) from one task, and `usmp_is_connected`,
/// `usmp_get_stats`; `usmp_close` also works.
///
/// # Safety
/// Pointers null or valid; `ctx`, `nb` and `rx_buf` must stay valid (and not move) while the
/// session is in use; `ctx->psk` as for `usmp_connect`.
#[no_mangle]
pub unsafe extern "C" fn usmp_nb_connect(
    ctx: *mut usmp_t,
    nb: *mut usmp_nb_t,
    transport: *mut usmp_transport_t,
    rx_buf: *mut u8,
    rx_len: u16,
) -> c_int {
    if !cfg!(feature = "nb") {
        return Error::Unsupported.code();
    }
    // SAFETY: the caller's contract, passed on.
    let r = unsafe { nb_connect(ctx, nb, transport, rx_buf, rx_len) };
    scrub_stack_connect();
    super::code(r)
}

/// # Safety
/// As [`usmp_nb_connect`].
#[inline(never)]
unsafe fn nb_connect(
    ctx: *mut usmp_t,
    nb: *mut usmp_nb_t,
    transport: *mut usmp_transport_t,
    rx_buf: *mut u8,
    rx_len: u16,
) -> Result<(), Error> {
    if nb.is_null() || transport.is_null() || (rx_buf.is_null() && rx_len != 0) {
        return Err(Error::InvalidArg);
    }
    // SAFETY: caller contract.
    let c = unsafe { Ctx::new(ctx) }?;
    // SAFETY: non-null and valid per the contract; read by value first (it may be
    // `&ctx->transport`).
    let src = unsafe { transport.read() };
    if src.send.is_none() || src.recv.is_none() || src.recv_timeout.is_none() {
        return Err(Error::InvalidArg);
    }
    let _t = c.begin_transition().or_else(|e| match e {
        Error::ContextMoved => c.begin_transition(),
        e => Err(e),
    })?;
    // SAFETY: valid per the contract; no other call is inside during the transition.
    unsafe { apply_defaults(ctx) };
    c.lock().conn.reset();
    c.set_transport(src);
    // SAFETY: non-null and valid per the contract; this call has it alone.
    let n = unsafe { state(nb) };
    let r = start(c, n, rx_buf, rx_len);
    match r {
        Ok(()) => {
            n.tag = tag_of(ctx);
            c.lock().conn.face.flags |= NONBLOCKING;
        }
        Err(_) => c.close_transport(),
    }
    r
}

fn start(c: Ctx, n: &mut Nb, rx: *mut u8, rx_len: u16) -> Result<(), Error> {
    // SAFETY: the application keeps psk[..psk_len] readable while connected.
    let (psk, version) = unsafe { c.psk() }?;
    let dgram = c.datagram();
    let id = device_id()?;
    let mut secret = [0u8; 32];
    wipe(n);
    let now = Clock::new().now();
    let r = random(&mut secret)
        .and_then(|()| n.connect().start(version, psk, &id, &secret, dgram, now));
    secret.zeroize();
    r?;
    n.rx = rx;
    n.rx_len = rx_len.min(MAX_MESSAGE as u16);
    n.slots[RECV].active = 1;
    n.state = CONNECTING;
    Ok(())
}

/// Zeroizes the whole state (keys of a handshake, plaintext in the frame buffers).
fn wipe(n: &mut Nb) {
    // SAFETY: `Nb` is plain data, valid for every bit pattern, zeros included.
    let bytes =
        unsafe { core::slice::from_raw_parts_mut((n as *mut Nb).cast::<u8>(), size_of::<Nb>()) };
    bytes.zeroize();
}

/// Does what can be done now and reports one event in `*ev` (also returned: a
/// `usmp_event_kind_t`, or a negative `usmp_err_t` for bad arguments or a `nb` with no
/// session: `USMP_ERR_NOT_CONNECTED` after `USMP_EVENT_CLOSED`). Call it every time round
/// the loop, and again at once after an event: more may be waiting. It waits for nothing
/// (the transport's reads have a timeout of 0).
///
/// # Safety
/// Pointers null or valid; `nb` set up by `usmp_nb_connect` for this `ctx`.
#[no_mangle]
pub unsafe extern "C" fn usmp_nb_poll(
    ctx: *mut usmp_t,
    nb: *mut usmp_nb_t,
    ev: *mut usmp_event_t,
) -> c_int {
    if !cfg!(feature = "nb") {
        return Error::Unsupported.code();
    }
    if ev.is_null() {
        return Error::InvalidArg.code();
    }
    let mut out = usmp_event_t {
        kind: usmp_event_kind_t::USMP_EVENT_NONE,
        error: 0,
        len: 0,
    };
    // SAFETY: the caller's contract, passed on.
    let r = unsafe { nb_poll(ctx, nb, &mut out) };
    // SAFETY: non-null and writable per the contract.
    unsafe { ev.write(out) };
    match r {
        Ok(worked) => {
            if worked {
                crate::scrub::scrub_stack();
            }
            out.kind as c_int
        }
        Err(e) => e.code(),
    }
}

/// Returns whether any operation stepped (the stack then held secrets).
///
/// # Safety
/// As [`usmp_nb_poll`].
#[inline(never)]
unsafe fn nb_poll(
    ctx: *mut usmp_t,
    nb: *mut usmp_nb_t,
    ev: &mut usmp_event_t,
) -> Result<bool, Error> {
    // SAFETY: caller contract.
    let c = unsafe { Ctx::new(ctx) }?;
    // SAFETY: caller contract.
    let n = unsafe { connected(ctx, nb) }?;
    let _call = c.enter_nonblocking()?;
    let mut clock = Clock::new();
    let mut worked = false;
    match n.state {
        // A blocking transition (usmp_close, usmp_connect) took the context meanwhile (I-2).
        CONNECTING if c.lock().conn.face.flags & NONBLOCKING == 0 => end(n, Error::NotConnected),
        CONNECTING => {
            worked = true;
            match run(c, n, RECV, &mut clock) {
                Some(Ok(_)) => {
                    n.state = OPEN;
                    ev.kind = usmp_event_kind_t::USMP_EVENT_CONNECTED;
                    log(
                        usmp_log_level_t::USMP_LOG_LEVEL_INFO,
                        b"session established\0",
                    );
                    return Ok(worked);
                }
                Some(Err(e)) => {
                    log(usmp_log_level_t::USMP_LOG_LEVEL_ERROR, e.name());
                    end(n, e);
                }
                None => {}
            }
        }
        OPEN => {
            // Over, or taken by a blocking transition (usmp_close, usmp_connect,
            // usmp_reconnect): this session is no longer the non-blocking API's.
            let ours = {
                let l = c.lock();
                l.conn.is_established() && l.conn.face.flags & NONBLOCKING != 0
            };
            if !ours {
                end(n, Error::NotConnected);
            } else {
                worked = turn(c, n, &mut clock);
            }
        }
        _ => {}
    }
    report(c, n, ev);
    Ok(worked)
}

/// The session is over (the first reason counts).
fn end(n: &mut Nb, e: Error) {
    if n.state != ENDED {
        n.state = ENDED;
        n.closed = e.code();
    }
}

/// One turn of an open session: the receive, the keepalive, a PING or REKEY, the send.
fn turn(c: Ctx, n: &mut Nb, clock: &mut Clock) -> bool {
    let mut worked = false;
    if n.slots[RECV].done == 0 {
        if n.slots[RECV].active == 0 {
            // A new receive; the bound of the blocking call does not apply (this one
            // is resumed at every poll).
            n.recv = RecvOp::new(u32::MAX, false);
            n.slots[RECV].active = 1;
        }
        worked |= step_slot(c, n, RECV, clock);
    }
    if n.state == OPEN && n.slots[CTRL].active == 0 && n.slots[CTRL].done == 0 {
        let due = c
            .lock()
            .conn
            .keepalive_due(clock.now(), c.keepalive_ms())
            .unwrap_or(false);
        if due {
            n.ctrl = ControlOp::new(FrameType::Ping, false);
            n.keepalive = 1;
            n.slots[CTRL].active = 1;
        }
    }
    if n.state == OPEN && n.slots[CTRL].active != 0 {
        worked |= step_slot(c, n, CTRL, clock);
    }
    if n.state == OPEN && n.slots[SEND].active != 0 {
        worked |= step_slot(c, n, SEND, clock);
    }
    worked
}

/// Steps one slot and keeps its result; returns whether it stepped.
fn step_slot(c: Ctx, n: &mut Nb, which: usize, clock: &mut Clock) -> bool {
    let Some(r) = run(c, n, which, clock) else {
        return true;
    };
    let ended = !c.lock().conn.is_established();
    if which == RECV {
        n.rx_frame.zeroize(); // plaintext was opened in place
    } else {
        n.tx_frame().zeroize();
    }
    let keepalive = which == CTRL && n.keepalive != 0;
    let result = match r {
        Ok(NO_MESSAGE) => None,
        Ok(len) if which == RECV => Some(len as i32),
        Ok(_) if which == SEND => Some(0),
        Ok(_) => None,
        // A failed send is reported as such; other failures only while the session goes on
        // (its end is the CLOSED event), a keepalive's never.
        Err(e) if which == SEND || !(ended || keepalive) => Some(e.code()),
        Err(_) => None,
    };
    if let (Some(code), Some(slot)) = (result, n.slots.get_mut(which)) {
        slot.done = 1;
        slot.result = code;
    }
    if let (Err(e), true) = (r, ended) {
        end(n, e);
    }
    if ended {
        end(n, Error::NotConnected);
    }
    true
}

/// Runs one slot's operation as far as it goes without waiting: `Some` with its result
/// when it finished.
fn run(c: Ctx, n: &mut Nb, which: usize, clock: &mut Clock) -> Option<Result<usize, Error>> {
    let timing = c.timing();
    let Nb {
        rx,
        rx_len,
        tx,
        tx_len,
        slots,
        recv,
        send,
        ctrl,
        rx_frame,
        scratch,
        small,
        state,
        ..
    } = n;
    let slot = slots.get_mut(which)?;
    let small = small.get_mut(which)?;
    let (frame, mut op): (&mut [u8], Op<'_, '_>) = match which {
        RECV if *state == CONNECTING => {
            // SAFETY: the application keeps psk[..psk_len] readable while connected.
            let psk = match unsafe { c.psk() } {
                Ok((psk, _)) => psk,
                Err(e) => return Some(Err(e)),
            };
            // SAFETY: plain data, valid for every bit pattern (the handshake's until it ends).
            (&mut [], Op::Connect(unsafe { &mut scratch.connect }, psk))
        }
        RECV => {
            let out: &mut [u8] = if rx.is_null() {
                &mut []
            } else {
                // SAFETY: the application's receive buffer of `rx_len` bytes, valid while
                // the session is in use (usmp_nb_connect's contract).
                unsafe { core::slice::from_raw_parts_mut(*rx, usize::from(*rx_len)) }
            };
            (rx_frame, Op::Recv(recv, out))
        }
        // SAFETY (both): plain data, valid for every bit pattern.
        CTRL => (unsafe { &mut scratch.tx_frame }, Op::Control(ctrl)),
        _ => {
            let msg: &[u8] = if tx.is_null() {
                &[]
            } else {
                // SAFETY: the message of usmp_nb_send, valid until its SENT event (its
                // contract).
                unsafe { core::slice::from_raw_parts(*tx, usize::from(*tx_len)) }
            };
            (unsafe { &mut scratch.tx_frame }, Op::Send(send, msg))
        }
    };
    let mut b = Bufs { frame, small };
    let mut input = Input::None;
    if slot.waiting != 0 {
        let now = clock.now();
        input = read(c, slot, in_buf(slot.small != 0, &mut b), now);
        if matches!(input, Input::Nothing) && (slot.timed == 0 || !reached(now, slot.deadline)) {
            return None;
        }
        slot.waiting = 0;
    }
    let mut reply = Reply::new();
    for _ in 0..MAX_STEPS {
        let l = c.lock();
        let now = clock.now();
        let mut x = Env {
            c: l.conn,
            now,
            t: timing,
            b: &mut b,
            reply: &mut reply,
        };
        let action = op.step(&mut x, input);
        input = match action {
            Action::Transmit(out) => Input::Sent(c.send(out_bytes(out, &b, &reply)).is_ok()),
            Action::Available => Input::Available(c.available()),
            Action::Receive { small, wait } => {
                drop(l);
                slot.small = u8::from(small);
                let got = read(c, slot, in_buf(small, &mut b), now);
                if matches!(got, Input::Nothing) {
                    slot.waiting = 1;
                    slot.timed = u8::from(wait.is_some());
                    slot.deadline = now.wrapping_add(wait.unwrap_or(0));
                    return None;
                }
                got
            }
            Action::Sleep(_) => return None,
            Action::Done(r) => {
                slot.active = 0;
                slot.reader.reset();
                return Some(r);
            }
        };
    }
    None
}

/// One look at the transport: a frame or datagram, or what there is of a frame on a byte
/// stream (kept in `buf` and the slot's reader until it is whole).
fn read(c: Ctx, slot: &mut Slot, buf: &mut [u8], now: u32) -> Input {
    if !c.bytes() {
        return c.read(buf, Some(0));
    }
    for _ in 0..MAX_READS {
        let Some(part) = slot.reader.want(buf) else {
            slot.reader.reset();
            return Input::Broken;
        };
        match c.read(part, Some(0)) {
            Input::Received(n) => {
                if let Some(len) = slot.reader.got(buf, n, now) {
                    return Input::Received(len);
                }
            }
            Input::Nothing => break,
            other => return other,
        }
    }
    match slot.reader.started() {
        Some(t0) if now.wrapping_sub(t0) >= USMP_FRAME_TIMEOUT_MS => {
            slot.reader.reset();
            Input::Broken
        }
        _ => Input::Nothing,
    }
}

/// Puts the first result waiting into `ev`; once none is left in an ended session, closes
/// it (transport closed, state wiped) and reports CLOSED.
fn report(c: Ctx, n: &mut Nb, ev: &mut usmp_event_t) {
    for (which, kind) in [
        (SEND, usmp_event_kind_t::USMP_EVENT_SENT),
        (RECV, usmp_event_kind_t::USMP_EVENT_MESSAGE),
        (CTRL, usmp_event_kind_t::USMP_EVENT_ERROR),
    ] {
        let Some(slot) = n.slots.get_mut(which) else {
            continue;
        };
        if slot.done == 0 {
            continue;
        }
        slot.done = 0;
        ev.kind = kind;
        if slot.result < 0 {
            ev.error = slot.result;
            if which == RECV {
                ev.kind = usmp_event_kind_t::USMP_EVENT_ERROR;
            }
        } else if which == RECV {
            ev.len = slot.result as u16;
        }
        return;
    }
    if n.state != ENDED {
        return;
    }
    // A send cut off by the end is reported before the end itself.
    if n.slots[SEND].active != 0 {
        n.slots[SEND].active = 0;
        ev.kind = usmp_event_kind_t::USMP_EVENT_SENT;
        ev.error = n.closed;
        return;
    }
    ev.kind = usmp_event_kind_t::USMP_EVENT_CLOSED;
    ev.error = n.closed;
    close(c, n);
}

/// Ends the session on this side: keys zeroized, the transport closed (if the non-blocking
/// API still had the context), the state wiped.
fn close(c: Ctx, n: &mut Nb) {
    let mine = {
        let l = c.lock();
        let mine = l.conn.face.flags & NONBLOCKING != 0;
        if mine {
            l.conn.end();
            l.conn.face.flags &= !NONBLOCKING;
            // The receive under way ends with the state: its reader role with it (I-1).
            release_roles(l.conn);
        }
        mine
    };
    if mine {
        c.close_transport();
    }
    wipe(n);
}

/// Starts sending a message of `len` bytes (0..=1808) without blocking; `usmp_nb_poll`
/// reports `USMP_EVENT_SENT` when it went out (acknowledged, on a datagram link) or failed.
/// `data` is not copied: it must stay valid and unchanged until then. One message at a
/// time: `USMP_ERR_BUSY` while one is under way (or its SENT not yet reported).
/// `USMP_ERR_BUFFER_OVERFLOW` above 1808 bytes, `USMP_ERR_NOT_CONNECTED` before
/// `USMP_EVENT_CONNECTED` or after the end.
///
/// # Safety
/// Pointers null or valid; `data` null only when `len` is 0, else `len` readable bytes
/// until the SENT event.
#[no_mangle]
pub unsafe extern "C" fn usmp_nb_send(
    ctx: *mut usmp_t,
    nb: *mut usmp_nb_t,
    data: *const u8,
    len: u16,
) -> c_int {
    if !cfg!(feature = "nb") {
        return Error::Unsupported.code();
    }
    // SAFETY: the caller's contract, passed on.
    super::code(unsafe { nb_send(ctx, nb, data, len) })
}

/// # Safety
/// As [`usmp_nb_send`].
unsafe fn nb_send(
    ctx: *mut usmp_t,
    nb: *mut usmp_nb_t,
    data: *const u8,
    len: u16,
) -> Result<(), Error> {
    // SAFETY: caller contract.
    let c = unsafe { Ctx::new(ctx) }?;
    // SAFETY: caller contract.
    let n = unsafe { connected(ctx, nb) }?;
    let _call = c.enter_nonblocking()?;
    if data.is_null() && len != 0 {
        return Err(Error::InvalidArg);
    }
    if n.state != OPEN {
        return Err(Error::NotConnected);
    }
    if usize::from(len) > MAX_MESSAGE {
        return Err(Error::BufferOverflow);
    }
    let slot = &mut n.slots[SEND];
    if slot.active != 0 || slot.done != 0 {
        return Err(Error::Busy);
    }
    n.tx = data;
    n.tx_len = len;
    n.send = SendOp::default();
    slot.active = 1;
    slot.waiting = 0;
    Ok(())
}

/// Sends a PING at the next `usmp_nb_poll` (with `keepalive_ms` set, PINGs also go out by
/// themselves when the link is idle). `USMP_ERR_BUSY` while a PING or REKEY is under way.
///
/// # Safety
/// Pointers null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_nb_ping(ctx: *mut usmp_t, nb: *mut usmp_nb_t) -> c_int {
    if !cfg!(feature = "nb") {
        return Error::Unsupported.code();
    }
    // SAFETY: the caller's contract, passed on.
    super::code(unsafe { nb_control(ctx, nb, false) })
}

/// Rotates the session keys (wire v2; `USMP_ERR_UNSUPPORTED` on v1) at the next
/// `usmp_nb_poll`, as `usmp_rekey` does. `USMP_ERR_BUSY` while a PING or REKEY is under
/// way, or while the previous REKEY's grace period runs (as for `usmp_rekey`).
///
/// # Safety
/// Pointers null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_nb_rekey(ctx: *mut usmp_t, nb: *mut usmp_nb_t) -> c_int {
    if !cfg!(feature = "nb") {
        return Error::Unsupported.code();
    }
    // SAFETY: the caller's contract, passed on.
    super::code(unsafe { nb_control(ctx, nb, true) })
}

/// # Safety
/// As [`usmp_nb_ping`].
unsafe fn nb_control(ctx: *mut usmp_t, nb: *mut usmp_nb_t, rekey: bool) -> Result<(), Error> {
    // SAFETY: caller contract.
    let c = unsafe { Ctx::new(ctx) }?;
    // SAFETY: caller contract.
    let n = unsafe { connected(ctx, nb) }?;
    let _call = c.enter_nonblocking()?;
    let (version, grace) = {
        let l = c.lock();
        let s = l.conn.session();
        (s.map(|s| s.version()), s.is_some_and(|s| s.in_grace()))
    };
    if n.state != OPEN || version.is_none() {
        return Err(Error::NotConnected);
    }
    if n.slots[CTRL].active != 0 || n.slots[CTRL].done != 0 {
        return Err(Error::Busy);
    }
    n.ctrl = if rekey {
        if version != Some(Version::V2) {
            return Err(Error::Unsupported);
        }
        if grace {
            return Err(Error::Busy);
        }
        let mut salt = [0u8; REKEY_SALT_LEN];
        let r = random(&mut salt).map(|()| ControlOp::rekey(&salt));
        salt.zeroize();
        r?
    } else {
        ControlOp::new(FrameType::Ping, false)
    };
    n.keepalive = 0;
    n.slots[CTRL].active = 1;
    n.slots[CTRL].waiting = 0;
    Ok(())
}

/// Closes a non-blocking session at once: one BYE (best effort, not waited for), keys
/// zeroized, the transport closed (not destroyed), `nb` wiped. No CLOSED event follows.
/// Safe on a `nb` with no session.
///
/// # Safety
/// Pointers null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_nb_close(ctx: *mut usmp_t, nb: *mut usmp_nb_t) -> c_int {
    if !cfg!(feature = "nb") {
        return Error::Unsupported.code();
    }
    // SAFETY: the caller's contract, passed on.
    let r = super::code(unsafe { nb_close(ctx, nb) });
    crate::scrub::scrub_stack();
    r
}

/// # Safety
/// As [`usmp_nb_close`].
#[inline(never)]
unsafe fn nb_close(ctx: *mut usmp_t, nb: *mut usmp_nb_t) -> Result<(), Error> {
    // SAFETY: caller contract.
    let c = unsafe { Ctx::new(ctx) }?;
    // SAFETY: caller contract.
    let n = match unsafe { connected(ctx, nb) } {
        Ok(n) => n,
        Err(Error::NotConnected) => return Ok(()),
        Err(e) => return Err(e),
    };
    let _call = c.enter_nonblocking()?;
    let mine = c.lock().conn.face.flags & NONBLOCKING != 0;
    if mine && c.lock().conn.is_established() {
        let mut op = ControlOp::new(FrameType::Bye, true);
        let small = &mut n.small[CTRL];
        let mut b = Bufs {
            frame: &mut [],
            small,
        };
        let mut reply = Reply::new();
        let l = c.lock();
        let mut x = Env {
            c: l.conn,
            now: Clock::new().now(),
            t: c.timing(),
            b: &mut b,
            reply: &mut reply,
        };
        if let Action::Transmit(out) = Op::Control(&mut op).step(&mut x, Input::None) {
            let _ = c.send(out_bytes(out, &b, &reply));
        }
    }
    close(c, n);
    Ok(())
}
