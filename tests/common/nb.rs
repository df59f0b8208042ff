//! Driving the non-blocking C API (`usmp_nb_*`) from the tests: a poll loop that collects
//! events, and a byte-stream transport (`USMP_TRANSPORT_BYTES`) over the scripted gateway
//! that hands the device its frames in pieces of varying size.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::ffi::{c_int, c_void, CStr};

use usmp::ffi::*;

use super::port;
use super::scripted::Gateway;

pub fn new_nb() -> Box<usmp_nb_t> {
    // SAFETY: zeroed memory is a valid usmp_nb_t (and one with no session).
    Box::new(unsafe { std::mem::zeroed() })
}

pub fn name(rc: c_int) -> String {
    unsafe { CStr::from_ptr(usmp_err_name(rc)) }
        .to_string_lossy()
        .into_owned()
}

/// One poll; its return value and the event must agree.
pub fn poll(c: &mut usmp_t, nb: &mut usmp_nb_t) -> usmp_event_t {
    let mut ev = usmp_event_t {
        kind: usmp_event_kind_t::USMP_EVENT_ERROR,
        error: 99,
        len: 99,
    };
    let rc = unsafe { usmp_nb_poll(c, nb, &mut ev) };
    assert!(rc >= 0, "usmp_nb_poll: {}", name(rc));
    assert_eq!(rc, ev.kind as c_int);
    if ev.kind == usmp_event_kind_t::USMP_EVENT_NONE {
        assert_eq!((ev.error, ev.len), (0, 0));
    }
    ev
}

/// Polls until an event of `kind` (returned with the events before it), at most `polls`
/// times.
pub fn poll_until(
    c: &mut usmp_t,
    nb: &mut usmp_nb_t,
    kind: usmp_event_kind_t,
    polls: usize,
) -> Vec<usmp_event_t> {
    let mut seen = vec![];
    for _ in 0..polls {
        let ev = poll(c, nb);
        if ev.kind != usmp_event_kind_t::USMP_EVENT_NONE {
            seen.push(ev);
            if ev.kind == kind {
                return seen;
            }
        }
    }
    panic!("no {kind:?} within {polls} polls; events: {seen:?}");
}

/// Sends `msg` and polls until both its SENT and the echo's MESSAGE came (in either
/// order); returns the echo.
pub fn nb_echo(c: &mut usmp_t, nb: &mut usmp_nb_t, rx: &[u8], msg: &[u8], polls: usize) -> Vec<u8> {
    let rc = unsafe { usmp_nb_send(c, nb, msg.as_ptr(), msg.len() as u16) };
    assert_eq!(rc, 0, "usmp_nb_send: {}", name(rc));
    let (mut sent, mut echo) = (false, None);
    for _ in 0..polls {
        let ev = poll(c, nb);
        match ev.kind {
            usmp_event_kind_t::USMP_EVENT_NONE => {}
            usmp_event_kind_t::USMP_EVENT_SENT => {
                assert_eq!(ev.error, 0, "SENT with {}", name(ev.error));
                assert!(!sent, "two SENT events for one message");
                sent = true;
            }
            usmp_event_kind_t::USMP_EVENT_MESSAGE => {
                assert!(echo.is_none(), "a second message for one echo");
                echo = Some(rx[..usize::from(ev.len)].to_vec());
            }
            other => panic!("unexpected {other:?} ({}) during an echo", name(ev.error)),
        }
        if sent {
            if let Some(e) = echo.take() {
                return e;
            }
        }
    }
    panic!("echo of {} bytes: sent={sent}, echo={echo:?}", msg.len());
}

/// A byte stream over the scripted gateway: whole frames from the gateway become bytes
/// handed out in pieces of the sizes in `pieces` (in turn), only through `recv_timeout`.
pub struct Bytes {
    pub g: Box<Gateway>,
    pub q: VecDeque<u8>,
    pub pieces: Vec<usize>,
    pub k: usize,
    /// Bytes still to hand out before the peer stalls (None: no limit).
    pub budget: Option<usize>,
    /// The largest wait any receive was asked for, and whether plain `recv` was called.
    pub max_wait: u32,
    pub plain_recv: bool,
}

/// A `Bytes` on the heap, reached only through one raw pointer (the transport keeps a copy
/// of it): no reference to it outlives a use, so the tests hold under Miri's aliasing rules.
pub struct Shared(*mut Bytes);

impl std::ops::Deref for Shared {
    type Target = Bytes;
    fn deref(&self) -> &Bytes {
        unsafe { &*self.0 }
    }
}

impl std::ops::DerefMut for Shared {
    fn deref_mut(&mut self) -> &mut Bytes {
        unsafe { &mut *self.0 }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        drop(unsafe { Box::from_raw(self.0) });
    }
}

impl Bytes {
    #[allow(clippy::new_ret_no_self)]
    pub fn new(g: Box<Gateway>) -> Shared {
        Shared(Box::into_raw(Box::new(Self {
            g,
            q: VecDeque::new(),
            pieces: vec![1, 3, 12, 5, 64, 2, 200, 7, 11, 492],
            k: 0,
            budget: None,
            max_wait: 0,
            plain_recv: false,
        })))
    }
}

fn bytes<'a>(t: *mut usmp_transport_t) -> &'a mut Bytes {
    unsafe { &mut *((*t).ctx as *mut Bytes) }
}

unsafe extern "C" fn b_send(t: *mut usmp_transport_t, data: *const u8, len: usize) -> c_int {
    let g = &mut bytes(t).g;
    g.sends += 1;
    if g.fail_sends_after.is_some_and(|k| g.sends > k) {
        return -1;
    }
    let f = unsafe { std::slice::from_raw_parts(data, len) }.to_vec();
    g.on_device_frame(&f);
    0
}

unsafe extern "C" fn b_recv_timeout(
    t: *mut usmp_transport_t,
    buf: *mut u8,
    max: usize,
    ms: u32,
) -> c_int {
    let b = bytes(t);
    b.max_wait = b.max_wait.max(ms);
    while let Some(f) = b.g.to_device.pop_front() {
        b.q.extend(f);
    }
    if b.q.is_empty() || b.budget == Some(0) {
        if b.g.hs.is_none() && b.g.session.is_none() && b.q.is_empty() {
            return -1; // hung up
        }
        port::advance(ms.max(1));
        return 0;
    }
    let mut n = b.pieces[b.k % b.pieces.len()].min(max).min(b.q.len());
    if let Some(left) = b.budget.as_mut() {
        n = n.min(*left);
        *left -= n;
    }
    b.k += 1;
    for i in 0..n {
        unsafe { *buf.add(i) = b.q.pop_front().unwrap() };
    }
    n as c_int
}

unsafe extern "C" fn b_recv(t: *mut usmp_transport_t, buf: *mut u8, max: usize) -> c_int {
    bytes(t).plain_recv = true;
    unsafe { b_recv_timeout(t, buf, max, 100) }
}

unsafe extern "C" fn b_close(t: *mut usmp_transport_t) {
    bytes(t).g.closes += 1;
}

unsafe extern "C" fn b_available(t: *mut usmp_transport_t) -> c_int {
    let b = bytes(t);
    (!b.q.is_empty() || !b.g.to_device.is_empty()) as c_int
}

pub fn bytes_transport(b: &Shared) -> usmp_transport_t {
    usmp_transport_t {
        send: Some(b_send),
        recv: Some(b_recv),
        close: Some(b_close),
        reconnect: None,
        available: Some(b_available),
        destroy: None,
        ctx: b.0.cast::<c_void>(),
        flags: USMP_TRANSPORT_BYTES,
        recv_timeout: Some(b_recv_timeout),
    }
}
