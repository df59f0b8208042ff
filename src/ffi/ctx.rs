//! What a C API call does with a `usmp_t`: the lock around its private state, the count of
//! calls inside it (so that a connect, reconnect or close waits for them), the clock, the
//! transport's callbacks, and [`Ctx::run`], the loop that runs one operation of
//! [`crate::ops`].
//!
//! Rust's aliasing rules hold because no reference to a `usmp_t` is ever formed: public
//! fields are read through raw pointers, and the private state ([`Conn`] in `opaque`) is
//! borrowed only while the lock is held. Two tasks may therefore call into one context at
//! once.

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr::{addr_of, addr_of_mut};

use super::{
    usmp_port_delay_ms, usmp_port_get_device_id, usmp_port_lock, usmp_port_millis,
    usmp_port_random, usmp_port_unlock, usmp_t, usmp_transport_s, USMP_FRAME_TIMEOUT_MS,
    USMP_OPAQUE_WORDS, USMP_RECV_TIMEOUT_MS, USMP_RETRANSMIT_ATTEMPTS, USMP_TRANSPORT_BYTES,
    USMP_TRANSPORT_DATAGRAM,
};
use crate::conn::{Conn, Reply, Timing};
use crate::frame::StreamReader;
use crate::handshake::DEVICE_ID_LEN;
use crate::ops::{
    in_buf, out_bytes, release_roles, Action, Bufs, Env, Input, Op, NONBLOCKING, TRANSITION,
};
use crate::{Error, Version};

const _: () = assert!(size_of::<Conn>() <= size_of::<[u64; USMP_OPAQUE_WORDS]>());
const _: () = assert!(core::mem::align_of::<Conn>() <= core::mem::align_of::<u64>());

/// Steps one operation may take at most, whatever the clock does (a frozen clock, a
/// transport that never waits): a last bound behind the deadlines.
const MAX_STEPS: u32 = 1_000_000;
/// How long a transition waits for the calls inside a context that has no session (they
/// return at once; a larger count is left over from an uninitialised `usmp_t`), ms.
const STALE_CALLS_MS: u32 = 200;

/// A non-null `usmp_t` pointer.
#[derive(Clone, Copy)]
pub(crate) struct Ctx(*mut usmp_t);

/// The private state, locked.
pub(crate) struct Locked<'a> {
    ctx: Ctx,
    pub conn: &'a mut Conn,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // SAFETY: the port hook, with the key it was locked with.
        unsafe { usmp_port_unlock(self.ctx.0.cast::<c_void>().cast_const()) };
    }
}

/// A call inside the context (counted until it is dropped).
pub(crate) struct Call(Ctx);

impl Drop for Call {
    fn drop(&mut self) {
        let l = self.0.lock();
        l.conn.face.calls = l.conn.face.calls.saturating_sub(1);
    }
}

/// A connect, reconnect or close under way: no other call is inside (until dropped).
pub(crate) struct Transition(Ctx);

impl Drop for Transition {
    fn drop(&mut self) {
        self.0.lock().conn.face.flags &= !TRANSITION;
    }
}

/// The milliseconds of one call: the port clock (one reading per step), never going back,
/// and moved on by the waits that ended with nothing while the port clock did not move (a
/// frozen clock cannot make a wait loop endless).
pub(crate) struct Clock {
    t: u32,
    port: u32,
    waited: u32,
}

impl Clock {
    pub fn new() -> Self {
        let t = millis();
        Self {
            t,
            port: t,
            waited: 0,
        }
    }

    pub fn now(&mut self) -> u32 {
        let m = millis();
        if m != self.port {
            if m.wrapping_sub(self.t) as i32 > 0 {
                self.t = m;
            }
            self.port = m;
        } else {
            self.t = self.t.wrapping_add(self.waited);
        }
        self.waited = 0;
        self.t
    }

    /// A wait of `ms` ended with nothing.
    pub fn waited(&mut self, ms: u32) {
        self.waited = ms.max(1);
    }
}

pub(crate) fn millis() -> u32 {
    // SAFETY: port hook without arguments.
    unsafe { usmp_port_millis() }
}

pub(crate) fn sleep(ms: u32) {
    // SAFETY: port hook.
    unsafe { usmp_port_delay_ms(ms) }
}

/// `usmp_port_random`.
pub(crate) fn random(out: &mut [u8]) -> Result<(), Error> {
    // SAFETY: a valid writable slice.
    if unsafe { usmp_port_random(out.as_mut_ptr(), out.len()) } != 0 {
        return Err(Error::PortFailed);
    }
    Ok(())
}

/// `usmp_port_get_device_id`.
pub(crate) fn device_id() -> Result<[u8; DEVICE_ID_LEN], Error> {
    let mut id = [0u8; DEVICE_ID_LEN];
    // SAFETY: a valid writable buffer of DEVICE_ID_LEN bytes.
    if unsafe { usmp_port_get_device_id(id.as_mut_ptr(), id.len()) } != 0 {
        return Err(Error::PortFailed);
    }
    Ok(id)
}

/// A 32-bit tag of a context's address: a copy of the struct has another one.
fn owner_tag(p: *mut usmp_t) -> u32 {
    let a = p as usize as u64;
    ((a ^ (a >> 32)) as u32) | 1
}

impl Ctx {
    /// # Safety
    /// `p` must be null or point to a `usmp_t` that stays valid for the call.
    pub unsafe fn new(p: *mut usmp_t) -> Result<Self, Error> {
        if p.is_null() {
            return Err(Error::InvalidArg);
        }
        Ok(Self(p))
    }

    /// Takes the lock and borrows the private state.
    pub fn lock(self) -> Locked<'static> {
        // SAFETY: the port hook; the key is the context's address.
        unsafe { usmp_port_lock(self.0.cast::<c_void>().cast_const()) };
        // SAFETY: `opaque` is u64-aligned and large enough for a Conn (checked at compile
        // time), any bit pattern is a valid Conn, and the lock keeps every other borrow
        // away until `Locked` is dropped.
        let conn = unsafe { &mut *addr_of_mut!((*self.0).opaque).cast::<Conn>() };
        Locked { ctx: self, conn }
    }

    /// Reads the private state under the lock, through a shared reference only: for the
    /// calls that take a `const usmp_t *` (the caller may hold a shared reference to it).
    pub fn peek<R>(self, f: impl FnOnce(&Conn) -> R) -> R {
        // SAFETY: the port hook; the key is the context's address.
        unsafe { usmp_port_lock(self.0.cast::<c_void>().cast_const()) };
        // SAFETY: as in `lock`, but shared: nothing is written through it.
        let r = f(unsafe { &*addr_of!((*self.0).opaque).cast::<Conn>() });
        // SAFETY: the port hook, with the key it was locked with.
        unsafe { usmp_port_unlock(self.0.cast::<c_void>().cast_const()) };
        r
    }

    /// Enters a call on an established context: counted, so that a transition waits for
    /// it. A context copied after `usmp_connect` is wiped ([`Error::ContextMoved`]); during
    /// a transition, or on a context the non-blocking API drives, [`Error::Busy`].
    pub fn enter(self) -> Result<Call, Error> {
        self.enter_as(TRANSITION | NONBLOCKING)
    }

    /// Enters a call of the non-blocking API ([`Error::Busy`] during a transition).
    pub fn enter_nonblocking(self) -> Result<Call, Error> {
        self.enter_as(TRANSITION)
    }

    fn enter_as(self, refused: u8) -> Result<Call, Error> {
        let l = self.lock();
        self.check_owner(l.conn)?;
        if l.conn.face.flags & refused != 0 {
            return Err(Error::Busy);
        }
        l.conn.face.calls = l.conn.face.calls.checked_add(1).ok_or(Error::Busy)?;
        Ok(Call(self))
    }

    /// A context whose state was not made at this address (never connected, garbage, or a
    /// copy of a connected one) is reset: keys wiped, call bookkeeping cleared, transport
    /// callbacks forgotten (they are set by `usmp_connect` at this address). A copy of a
    /// connected context gives [`Error::ContextMoved`].
    fn check_owner(self, conn: &mut Conn) -> Result<(), Error> {
        if conn.owner == owner_tag(self.0) {
            return Ok(());
        }
        let was = conn.is_established();
        conn.end();
        conn.face = Default::default();
        conn.owner = owner_tag(self.0);
        // SAFETY: the context's own transport field, written under its lock.
        unsafe { addr_of_mut!((*self.0).transport).write(super::empty_transport()) };
        if was {
            return Err(Error::ContextMoved);
        }
        Ok(())
    }

    /// Starts a connect, reconnect or close: new calls get [`Error::Busy`], calls inside
    /// end at their next step; returns once none is left. [`Error::Busy`] when another
    /// transition is under way, [`Error::ContextMoved`] for a copy of a connected context
    /// (wiped: a second attempt starts afresh).
    pub fn begin_transition(self) -> Result<Transition, Error> {
        {
            let l = self.lock();
            self.check_owner(l.conn)?;
            if l.conn.face.flags & TRANSITION != 0 {
                return Err(Error::Busy);
            }
            // A transition takes the context from the non-blocking API, if it had it.
            l.conn.face.flags = (l.conn.face.flags & !NONBLOCKING) | TRANSITION;
        }
        let t = Transition(self);
        let start = millis();
        loop {
            {
                let l = self.lock();
                let stale =
                    !l.conn.is_established() && millis().wrapping_sub(start) >= STALE_CALLS_MS;
                if l.conn.face.calls == 0 || stale {
                    l.conn.face.calls = 0;
                    // Nobody is inside: no reader role stays taken (I-1).
                    release_roles(l.conn);
                    break;
                }
            }
            sleep(1);
        }
        Ok(t)
    }

    // --- the application's settings ----------------------------------------------------

    pub fn timing(self) -> Timing {
        // SAFETY: plain reads of the application's settings.
        let (attempts, fixed) = unsafe {
            (
                addr_of!((*self.0).retransmit_attempts).read(),
                addr_of!((*self.0).retransmit_timeout_ms).read(),
            )
        };
        Timing {
            attempts: if attempts == 0 {
                USMP_RETRANSMIT_ATTEMPTS
            } else {
                attempts
            },
            fixed_rto_ms: fixed,
        }
    }

    pub fn keepalive_ms(self) -> u32 {
        // SAFETY: a plain read.
        unsafe { addr_of!((*self.0).keepalive_ms).read() }
    }

    /// How long a datagram `usmp_recv` may wait in all.
    pub fn recv_budget_ms(self) -> u32 {
        // SAFETY: a plain read.
        let ms = unsafe { addr_of!((*self.0).recv_timeout_ms).read() };
        u32::from(if ms == 0 { USMP_RECV_TIMEOUT_MS } else { ms })
    }

    /// The PSK and the wire version.
    ///
    /// # Safety
    /// `psk` must point to `psk_len` readable bytes that stay valid for the call.
    pub unsafe fn psk<'a>(self) -> Result<(&'a [u8], Version), Error> {
        // SAFETY: plain reads.
        let (psk, len, v) = unsafe {
            (
                addr_of!((*self.0).psk).read(),
                addr_of!((*self.0).psk_len).read(),
                addr_of!((*self.0).protocol_version).read(),
            )
        };
        let version = Version::from_config(v).ok_or(Error::InvalidArg)?;
        if !version.built_in() {
            return Err(Error::Unsupported);
        }
        if psk.is_null() {
            return Err(if len == 0 {
                Error::PskTooShort
            } else {
                Error::InvalidArg
            });
        }
        if len > isize::MAX as usize {
            return Err(Error::InvalidArg);
        }
        // SAFETY: the application promises psk[..psk_len] is readable while connected.
        Ok((unsafe { core::slice::from_raw_parts(psk, len) }, version))
    }

    // --- the transport -----------------------------------------------------------------

    fn transport(self) -> *mut usmp_transport_s {
        // SAFETY: a field of a valid usmp_t; no reference is formed.
        unsafe { addr_of_mut!((*self.0).transport) }
    }

    fn t_read<T>(self, f: impl FnOnce(*const usmp_transport_s) -> *const T) -> T {
        // SAFETY: a field of the stored transport, read by value.
        unsafe { f(self.transport()).read() }
    }

    fn flags(self) -> u32 {
        self.t_read(|t| unsafe { addr_of!((*t).flags) })
    }

    pub fn datagram(self) -> bool {
        self.flags() & USMP_TRANSPORT_DATAGRAM != 0
    }

    /// A byte stream that returns what is there (`USMP_TRANSPORT_BYTES`): the library finds
    /// the frames.
    pub fn bytes(self) -> bool {
        self.flags() & (USMP_TRANSPORT_DATAGRAM | USMP_TRANSPORT_BYTES) == USMP_TRANSPORT_BYTES
    }

    pub fn has_recv_timeout(self) -> bool {
        self.t_read(|t| unsafe { addr_of!((*t).recv_timeout) })
            .is_some()
    }

    pub fn send(self, d: &[u8]) -> Result<(), Error> {
        let f = self
            .t_read(|t| unsafe { addr_of!((*t).send) })
            .ok_or(Error::TransportFailed)?;
        // SAFETY: the transport's own callback, with its own struct and a valid slice.
        if unsafe { f(self.transport(), d.as_ptr(), d.len()) } < 0 {
            return Err(Error::TransportFailed);
        }
        Ok(())
    }

    /// One frame or datagram into `buf`. `wait`: at most that long (through `recv_timeout`,
    /// when the transport has one); `None`: the transport's own receive timeout. On a
    /// `USMP_TRANSPORT_BYTES` stream, a frame that has started is read to its end within
    /// `USMP_FRAME_TIMEOUT_MS` (and within `wait`), else the stream is out of step: broken.
    pub fn recv(self, buf: &mut [u8], wait: Option<u32>) -> Input {
        if !self.bytes() {
            return self.read(buf, wait);
        }
        let start = millis();
        let mut r = StreamReader::default();
        // Time waited in vain inside the frame, counted too: a frozen clock cannot keep
        // the loop going.
        let mut waited = 0u32;
        loop {
            let limit = match r.started() {
                None => wait.map(|w| w.saturating_sub(millis().wrapping_sub(start))),
                Some(t0) => {
                    let now = millis();
                    let spent = now.wrapping_sub(t0).max(waited);
                    let mut left = USMP_FRAME_TIMEOUT_MS.saturating_sub(spent);
                    if let Some(w) = wait {
                        left = left.min(w.saturating_sub(now.wrapping_sub(start).max(waited)));
                    }
                    if left == 0 {
                        return Input::Broken;
                    }
                    Some(left)
                }
            };
            let Some(part) = r.want(buf) else {
                return Input::Broken;
            };
            match self.read(part, limit) {
                Input::Received(n) => {
                    if let Some(len) = r.got(buf, n, millis()) {
                        return Input::Received(len);
                    }
                }
                Input::Nothing if r.started().is_none() => return Input::Nothing,
                Input::Nothing => waited = waited.saturating_add(limit.unwrap_or(1).max(1)),
                other => return other,
            }
        }
    }

    /// One call of the transport's receive: `recv_timeout(wait)` when a wait is given and
    /// the transport has it, else `recv`.
    pub fn read(self, buf: &mut [u8], wait: Option<u32>) -> Input {
        let timed = self.t_read(|t| unsafe { addr_of!((*t).recv_timeout) });
        let plain = self.t_read(|t| unsafe { addr_of!((*t).recv) });
        let rc = match (wait, timed, plain) {
            // SAFETY (both): the transport's own callback; `buf` is writable for its length.
            (Some(ms), Some(f), _) => unsafe {
                f(self.transport(), buf.as_mut_ptr(), buf.len(), ms)
            },
            (_, _, Some(f)) => unsafe { f(self.transport(), buf.as_mut_ptr(), buf.len()) },
            _ => return Input::Broken,
        };
        match usize::try_from(rc) {
            Err(_) => Input::Closed,
            Ok(0) => Input::Nothing,
            // A transport that claims more than it was given is broken.
            Ok(n) if n > buf.len() => Input::Broken,
            Ok(n) => Input::Received(n),
        }
    }

    pub fn available(self) -> Option<bool> {
        let f = self.t_read(|t| unsafe { addr_of!((*t).available) })?;
        // SAFETY: the transport's own callback.
        Some(unsafe { f(self.transport()) } > 0)
    }

    pub fn close_transport(self) {
        if let Some(f) = self.t_read(|t| unsafe { addr_of!((*t).close) }) {
            // SAFETY: the transport's own callback.
            unsafe { f(self.transport()) };
        }
    }

    /// The transport's `reconnect` callback, if it has one.
    pub fn redial_fn(
        self,
    ) -> Option<unsafe extern "C" fn(*mut usmp_transport_s) -> core::ffi::c_int> {
        self.t_read(|t| unsafe { addr_of!((*t).reconnect) })
    }

    /// Dials again with `f` (from [`Ctx::redial_fn`]).
    pub fn call_redial(
        self,
        f: unsafe extern "C" fn(*mut usmp_transport_s) -> core::ffi::c_int,
    ) -> Result<(), Error> {
        // SAFETY: the transport's own callback.
        if unsafe { f(self.transport()) } < 0 {
            return Err(Error::TransportFailed);
        }
        Ok(())
    }

    /// True when `conn` was connected through this address (not a copy).
    pub fn owns(self, conn: &Conn) -> bool {
        conn.owner == owner_tag(self.0)
    }

    pub fn has_send(self) -> bool {
        self.t_read(|t| unsafe { addr_of!((*t).send) }).is_some()
    }

    pub fn set_transport(self, t: usmp_transport_s) {
        // SAFETY: the context's own field, written during a transition (no call inside).
        unsafe { self.transport().write(t) };
    }

    /// Runs one operation to its end: `step` under the lock, transmissions under the lock
    /// too (sealing and sending are one step), waits without it.
    pub fn run(self, b: &mut Bufs<'_>, op: &mut Op<'_, '_>) -> Result<usize, Error> {
        let timing = self.timing();
        let mut clock = Clock::new();
        let mut input = Input::None;
        let mut reply = Reply::new();
        for _ in 0..MAX_STEPS {
            let l = self.lock();
            let now = clock.now();
            let mut x = Env {
                c: l.conn,
                now,
                t: timing,
                b,
                reply: &mut reply,
            };
            let action = op.step(&mut x, input);
            input = match action {
                Action::Transmit(out) => Input::Sent(self.send(out_bytes(out, b, &reply)).is_ok()),
                Action::Available => Input::Available(self.available()),
                Action::Receive { small, wait } => {
                    drop(l);
                    let wait = if self.datagram() || self.has_recv_timeout() {
                        wait
                    } else {
                        None
                    };
                    let got = self.recv(in_buf(small, b), wait);
                    if matches!(got, Input::Nothing) {
                        clock.waited(wait.unwrap_or(1));
                    }
                    got
                }
                Action::Sleep(ms) => {
                    drop(l);
                    sleep(ms);
                    clock.waited(ms);
                    Input::None
                }
                Action::Done(r) => return r,
            };
        }
        Err(Error::Timeout)
    }
}
