//! The blocking calls of the original C API. Each one runs an operation of `ops`
//! with `Ctx::run` and wipes the stack it used afterwards.
//!
//! Threads: one task may sit in `usmp_recv` while others call `usmp_send`, `usmp_ping`,
//! `usmp_keepalive_tick` or `usmp_rekey` on the same context; every frame is sealed and
//! written under the context's lock (`usmp_port_lock`), and the receive state has one
//! owner at a time (a second concurrent `usmp_recv` gets `USMP_ERR_BUSY`).
//! `usmp_connect`, `usmp_reconnect` and `usmp_close` wait until the calls inside have
//! returned (they end at their next step) and refuse new ones meanwhile (`USMP_ERR_BUSY`).

use core::ffi::c_int;

use zeroize::Zeroize;

use super::ctx::{device_id, millis, random, Ctx};
use super::{apply_defaults, code, log, usmp_log_level_t, usmp_stats_t, usmp_t, usmp_transport_t};
use crate::conn::SMALL_FRAME;
use crate::frame::{FrameType, MAX_FRAME};
use crate::ops::{Bufs, ConnectOp, ControlOp, Op, RecvOp, SendOp, NO_MESSAGE};
use crate::scrub::{scrub_stack, scrub_stack_connect};
use crate::session::{MAX_MESSAGE, REKEY_SALT_LEN};
use crate::Error;

fn rc(r: Result<usize, Error>) -> c_int {
    code(r.map(|_| ()))
}

/// Connects: copies `*transport` into `ctx->transport` and runs the handshake over it
/// (blocking, at most `USMP_HANDSHAKE_TIMEOUT_MS` plus one transport wait). The transport
/// must already be dialled. Keeps the application's settings (`psk`, `psk_len`,
/// `keepalive_ms`, `protocol_version`, retransmission, `recv_timeout_ms`; those left at 0
/// take the `usmp_set_defaults` values); resets the rest. On failure the transport is
/// closed and a negative `usmp_err_t` is returned. `USMP_ERR_BUSY` while another task
/// connects, reconnects or closes the same context.
///
/// # Safety
/// `ctx` and `transport` must be null or valid pointers (`transport` may be
/// `&ctx->transport`); `ctx->psk` must point to `ctx->psk_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn usmp_connect(ctx: *mut usmp_t, transport: *mut usmp_transport_t) -> c_int {
    // SAFETY: the caller's contract, passed on.
    let r = unsafe { connect_impl(ctx, transport) };
    scrub_stack_connect();
    r
}

/// # Safety
/// As [`usmp_connect`].
#[inline(never)]
unsafe fn connect_impl(ctx: *mut usmp_t, transport: *mut usmp_transport_t) -> c_int {
    if transport.is_null() {
        return Error::InvalidArg.code();
    }
    // SAFETY: caller contract.
    let c = match unsafe { Ctx::new(ctx) } {
        Ok(c) => c,
        Err(e) => return e.code(),
    };
    // Read by value first: `transport` may be the context's own field.
    // SAFETY: non-null and valid per the contract.
    let src = unsafe { transport.read() };
    if src.send.is_none() || src.recv.is_none() {
        return Error::InvalidArg.code();
    }
    // A copy of a connected context is wiped by the first attempt and connects afresh.
    let t = c.begin_transition().or_else(|e| match e {
        Error::ContextMoved => c.begin_transition(),
        e => Err(e),
    });
    let _t = match t {
        Ok(t) => t,
        Err(e) => return e.code(),
    };
    // SAFETY: valid per the contract; no other call is inside during the transition.
    unsafe { apply_defaults(ctx) };
    c.lock().conn.reset();
    c.set_transport(src);
    code(handshake(c))
}

/// Runs the handshake on the stored transport; on failure the transport is closed.
fn handshake(c: Ctx) -> Result<(), Error> {
    let r = handshake_steps(c);
    match r {
        Ok(()) => log(
            usmp_log_level_t::USMP_LOG_LEVEL_INFO,
            b"session established\0",
        ),
        Err(e) => {
            c.lock().conn.end();
            c.close_transport();
            log(usmp_log_level_t::USMP_LOG_LEVEL_ERROR, e.name());
        }
    }
    r
}

fn handshake_steps(c: Ctx) -> Result<(), Error> {
    // SAFETY: the application keeps psk[..psk_len] readable while connected.
    let (psk, version) = unsafe { c.psk() }?;
    let dgram = c.datagram();
    if (dgram || c.bytes()) && !c.has_recv_timeout() {
        return Err(Error::InvalidArg);
    }
    let id = device_id()?;
    let mut secret = [0u8; 32];
    let mut op = ConnectOp::EMPTY;
    let r =
        random(&mut secret).and_then(|()| op.start(version, psk, &id, &secret, dgram, millis()));
    secret.zeroize();
    r?;
    let mut small = [0u8; SMALL_FRAME];
    let mut b = Bufs {
        frame: &mut [],
        small: &mut small,
    };
    c.run(&mut b, &mut Op::Connect(&mut op, psk)).map(|_| ())
}

/// Dials again through the stored transport's `reconnect` and runs a new handshake. Old
/// keys are zeroized first. `USMP_ERR_UNSUPPORTED` when the transport has no `reconnect`
/// (nothing is touched then: a live session stays up); `USMP_ERR_BUSY` while another task
/// connects, reconnects or closes the same context.
///
/// # Safety
/// `ctx` must be null or valid, and connected before (its stored transport is reused).
#[no_mangle]
pub unsafe extern "C" fn usmp_reconnect(ctx: *mut usmp_t) -> c_int {
    // SAFETY: the caller's contract, passed on.
    let r = code(unsafe { reconnect_impl(ctx) });
    scrub_stack_connect();
    r
}

/// # Safety
/// As [`usmp_reconnect`].
#[inline(never)]
unsafe fn reconnect_impl(ctx: *mut usmp_t) -> Result<(), Error> {
    // SAFETY: caller contract.
    let c = unsafe { Ctx::new(ctx) }?;
    let _t = c.begin_transition()?;
    if !c.has_send() {
        return Err(Error::NotConnected);
    }
    let redial = c.redial_fn().ok_or(Error::Unsupported)?;
    c.lock().conn.end();
    c.call_redial(redial)?;
    handshake(c)
}

/// Closes the session: a best-effort BYE, keys zeroized, transport closed (not destroyed).
/// Safe to call twice, or on a context that never connected. Waits until calls of other
/// tasks on the same context have returned.
///
/// # Safety
/// `ctx` must be null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_close(ctx: *mut usmp_t) {
    // SAFETY: the caller's contract, passed on.
    unsafe { close_impl(ctx) };
    scrub_stack();
}

/// # Safety
/// As [`usmp_close`].
#[inline(never)]
unsafe fn close_impl(ctx: *mut usmp_t) {
    // SAFETY: caller contract.
    let Ok(c) = (unsafe { Ctx::new(ctx) }) else {
        return;
    };
    let Ok(_t) = c.begin_transition() else {
        return;
    };
    if c.lock().conn.is_established() {
        let mut op = ControlOp::new(FrameType::Bye, true);
        let mut small = [0u8; SMALL_FRAME];
        let mut b = Bufs {
            frame: &mut [],
            small: &mut small,
        };
        let _ = c.run(&mut b, &mut Op::Control(&mut op));
    }
    c.lock().conn.end();
    // Always close (also after a session ended on an error, when the socket may still be
    // open); transports must tolerate a second close, as the original's did.
    c.close_transport();
}

/// True when `ctx` has an established session.
///
/// # Safety
/// `ctx` must be null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_is_connected(ctx: *const usmp_t) -> bool {
    // SAFETY: caller contract (only the private state is touched, under the lock).
    match unsafe { Ctx::new(ctx.cast_mut()) } {
        Ok(c) => c.peek(|conn| conn.is_established() && c.owns(conn)),
        Err(_) => false,
    }
}

/// Copies the datagram-link counters into `*out`. `USMP_ERR_INVALID_ARG` on NULL.
///
/// # Safety
/// `ctx` null or valid; `out` null or writable.
#[no_mangle]
pub unsafe extern "C" fn usmp_get_stats(ctx: *const usmp_t, out: *mut usmp_stats_t) -> c_int {
    if out.is_null() {
        return Error::InvalidArg.code();
    }
    // SAFETY: caller contract.
    let c = match unsafe { Ctx::new(ctx.cast_mut()) } {
        Ok(c) => c,
        Err(e) => return e.code(),
    };
    let s = c.peek(|conn| conn.stats());
    let stats = usmp_stats_t {
        retransmits: s.retransmits,
        duplicates: s.duplicates,
        rejected: s.rejected,
        bad_acks: s.bad_acks,
    };
    // SAFETY: non-null and writable per the contract.
    unsafe { out.write(stats) };
    0
}

/// Sends one message of `len` bytes (0..=1808), split into up to 4 frames of at most 452.
/// Nothing is sent when it is too long (`USMP_ERR_BUFFER_OVERFLOW`) or the sequence space
/// cannot hold it (`USMP_ERR_SEQ_EXHAUSTED`). A transport failure (or, on a datagram link,
/// no acknowledgement after every attempt: `USMP_ERR_TIMEOUT`) ends the session. Another
/// task's frames (a PONG, a PING) never go between the message's frames.
///
/// # Safety
/// `ctx` null or valid; `data` null only when `len` is 0, else `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn usmp_send(ctx: *mut usmp_t, data: *const u8, len: u16) -> c_int {
    // SAFETY: the caller's contract, passed on.
    let r = rc(unsafe { send_impl(ctx, data, len) });
    scrub_stack();
    r
}

/// # Safety
/// As [`usmp_send`].
#[inline(never)]
unsafe fn send_impl(ctx: *mut usmp_t, data: *const u8, len: u16) -> Result<usize, Error> {
    // SAFETY: caller contract.
    let c = unsafe { Ctx::new(ctx) }?;
    let _call = c.enter()?;
    if data.is_null() && len != 0 {
        return Err(Error::InvalidArg);
    }
    if usize::from(len) > MAX_MESSAGE {
        // Refused before `data` is looked at: the caller's buffer may be shorter than `len`.
        if !c.lock().conn.is_established() {
            return Err(Error::NotConnected);
        }
        return Err(Error::BufferOverflow);
    }
    let data: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: non-null with `len` readable bytes per the contract.
        unsafe { core::slice::from_raw_parts(data, usize::from(len)) }
    };
    let mut frame = [0u8; MAX_FRAME];
    let mut small = [0u8; SMALL_FRAME];
    let mut op = SendOp::default();
    let r = c.run(
        &mut Bufs {
            frame: &mut frame,
            small: &mut small,
        },
        &mut Op::Send(&mut op, data),
    );
    // On a refusal the frame buffer may still hold plaintext.
    frame.zeroize();
    r
}

/// Receives one message into `out`. Returns its length (> 0), 0 when no message is
/// available yet, or a negative `usmp_err_t`. An empty message also returns 0.
///
/// How long it waits: the transport's own receive timeout, as in the original (on a byte
/// stream it also returns 0 right after PING/PONG/REKEY frames when `available` reports
/// nothing more); on a datagram link, while other datagrams keep arriving (junk,
/// duplicates, acknowledgements), at most `recv_timeout_ms` in all (default
/// `USMP_RECV_TIMEOUT_MS`). A fragmented message that has started may take
/// `USMP_REASSEMBLY_TIMEOUT_MS` more. PINGs are answered on the way.
///
/// On a byte stream any protocol error ends the session (reconnect), except
/// `USMP_ERR_BUFFER_OVERFLOW` (message larger than `max_len`: that message is dropped, the
/// session stays up). On a datagram link malformed, forged and duplicate datagrams are
/// dropped and counted (`usmp_get_stats`); an authenticated BYE still closes.
/// `USMP_ERR_BUSY` when another task is already receiving on the context.
///
/// # Safety
/// `ctx` null or valid; `out` must have `max_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn usmp_recv(ctx: *mut usmp_t, out: *mut u8, max_len: u16) -> c_int {
    // SAFETY: the caller's contract, passed on.
    let r = match unsafe { recv_impl(ctx, out, max_len) } {
        Ok(NO_MESSAGE) => 0,
        Ok(n) => n as c_int,
        Err(e) => e.code(),
    };
    scrub_stack();
    r
}

/// # Safety
/// As [`usmp_recv`].
#[inline(never)]
unsafe fn recv_impl(ctx: *mut usmp_t, out: *mut u8, max_len: u16) -> Result<usize, Error> {
    // SAFETY: caller contract.
    let c = unsafe { Ctx::new(ctx) }?;
    let _call = c.enter()?;
    if out.is_null() {
        return Err(Error::InvalidArg);
    }
    // SAFETY: non-null with `max_len` writable bytes per the contract.
    let out = unsafe { core::slice::from_raw_parts_mut(out, usize::from(max_len)) };
    let mut frame = [0u8; MAX_FRAME];
    let mut small = [0u8; SMALL_FRAME];
    let mut op = RecvOp::new(c.recv_budget_ms(), false);
    let r = c.run(
        &mut Bufs {
            frame: &mut frame,
            small: &mut small,
        },
        &mut Op::Recv(&mut op, out),
    );
    // The frame buffer held decrypted plaintext: leave none of it behind.
    frame.zeroize();
    r
}

/// Runs a PING (a small frame only) or a REKEY ([`rekey_op`]).
#[inline(never)]
fn control(c: Ctx, mut op: ControlOp) -> Result<usize, Error> {
    if op.is_rekey() {
        return rekey_op(c, op);
    }
    let mut small = [0u8; SMALL_FRAME];
    c.run(
        &mut Bufs {
            frame: &mut [],
            small: &mut small,
        },
        &mut Op::Control(&mut op),
    )
}

/// Runs a REKEY: a frame of its own, kept for retransmissions while the small buffer takes
/// the reads.
#[inline(never)]
fn rekey_op(c: Ctx, mut op: ControlOp) -> Result<usize, Error> {
    let mut small = [0u8; SMALL_FRAME];
    let mut frame = [0u8; MAX_FRAME];
    c.run(
        &mut Bufs {
            frame: &mut frame,
            small: &mut small,
        },
        &mut Op::Control(&mut op),
    )
}

/// Sends a PING now (the PONG is consumed by a later `usmp_recv`); on a datagram link it
/// returns once the gateway acknowledged it.
///
/// # Safety
/// `ctx` null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_ping(ctx: *mut usmp_t) -> c_int {
    // SAFETY: the caller's contract, passed on.
    let r = rc(unsafe { ping_impl(ctx, false) });
    scrub_stack();
    r
}

/// # Safety
/// `ctx` null or valid.
#[inline(never)]
unsafe fn ping_impl(ctx: *mut usmp_t, only_when_due: bool) -> Result<usize, Error> {
    // SAFETY: caller contract.
    let c = unsafe { Ctx::new(ctx) }?;
    let _call = c.enter()?;
    if only_when_due && !c.lock().conn.keepalive_due(millis(), c.keepalive_ms())? {
        return Ok(0);
    }
    control(c, ControlOp::new(FrameType::Ping, false))
}

/// Sends a PING when `keepalive_ms` have passed since the last transmission. Returns 0
/// (also when keepalive is off), or a negative code — `USMP_ERR_NOT_CONNECTED` when the
/// session is gone, so a main loop knows to call `usmp_reconnect`.
///
/// # Safety
/// `ctx` null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_keepalive_tick(ctx: *mut usmp_t) -> c_int {
    // SAFETY: the caller's contract, passed on.
    let r = rc(unsafe { ping_impl(ctx, true) });
    scrub_stack();
    r
}

/// Rotates the session keys (wire v2): sends REKEY with a fresh random salt under the old
/// key and switches both directions to the new keys. `USMP_ERR_UNSUPPORTED` on v1;
/// `USMP_ERR_BUSY` while the previous REKEY's grace period runs (see below: until the
/// gateway's first frame under the new keys on a byte stream, else `USMP_REKEY_GRACE_MS`).
///
/// Frames the gateway sent under the old key before it saw the REKEY are still accepted
/// for `USMP_REKEY_GRACE_MS`, and on a datagram link an acknowledgement under either key
/// counts. One limit is the gateway's: usmp 1.2.2 does not reset its UDP duplicate filter
/// on REKEY, so after more than 64 frames in a session it drops the first frames under the
/// new key (numbered from 0 again) and the session stalls. Over UDP, rotate keys by
/// reconnecting instead (a new handshake gives new keys) until the gateway is fixed.
///
/// On a byte stream, rekey when no message from the gateway is under way (e.g. once the
/// answer you wait for has arrived): usmp 1.2.2 takes a REKEY between two fragments of its
/// own message and sends the rest under the new key, which the device cannot tell from an
/// attacker deleting the end of one message to splice on the next; such a message ends the
/// session with `USMP_ERR_FRAGMENTATION`. (Over UDP the gateway's stop-and-wait sending rules
/// the deletion out, and the message is taken whole.)
///
/// # Safety
/// `ctx` null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_rekey(ctx: *mut usmp_t) -> c_int {
    // SAFETY: the caller's contract, passed on.
    let r = rc(unsafe { rekey_impl(ctx) });
    scrub_stack();
    r
}

/// # Safety
/// As [`usmp_rekey`].
#[inline(never)]
unsafe fn rekey_impl(ctx: *mut usmp_t) -> Result<usize, Error> {
    // SAFETY: caller contract.
    let c = unsafe { Ctx::new(ctx) }?;
    let _call = c.enter()?;
    if !c.lock().conn.is_established() {
        return Err(Error::NotConnected);
    }
    let mut salt = [0u8; REKEY_SALT_LEN];
    let r = random(&mut salt).and_then(|()| control(c, ControlOp::rekey(&salt)));
    salt.zeroize();
    r
}
