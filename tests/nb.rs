//! The non-blocking C API (`usmp_nb_*`) against the in-process responder, over a byte
//! stream that hands the device its frames in pieces (`USMP_TRANSPORT_BYTES`): the
//! handshake, echoes of every size, the gateway's PING and REKEY, the device's PING and
//! REKEY, keepalive, close; the refusals; the session's end in each way it can end; and
//! that no call ever waits. The same byte stream under the blocking API. (Datagram links
//! under the non-blocking API: tests/datagram.rs.)

mod common;
#[path = "common/nb.rs"]
mod nb_api;
#[path = "common/port.rs"]
mod port;
#[path = "common/scripted.rs"]
mod scripted;

use std::ffi::c_int;

use nb_api::{bytes_transport, name, nb_echo, new_nb, poll, poll_until, Bytes, Shared};
use scripted::Gateway;
use usmp::ffi::*;
use usmp::frame::FrameType;
use usmp::Version;

use usmp_event_kind_t::*;

const PSK: &[u8] = b"usmp-dev-psk-change-me-before-prod";

fn ctx(version: Version) -> Box<usmp_t> {
    port::auto_tick(1);
    // SAFETY: usmp_t is valid zero-initialised, as in C.
    let mut c: Box<usmp_t> = Box::new(unsafe { std::mem::zeroed() });
    c.psk = PSK.as_ptr();
    c.psk_len = PSK.len();
    c.protocol_version = version as u8;
    c
}

fn pattern(n: usize, s: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ s).collect()
}

fn err(e: usmp_err_t) -> c_int {
    e as c_int
}

/// A device connected through the non-blocking API over the byte stream.
struct Dev {
    b: Shared,
    c: Box<usmp_t>,
    nb: Box<usmp_nb_t>,
    rx: Vec<u8>,
}

impl Dev {
    fn start(v: Version, g: Box<Gateway>, rx_len: usize) -> (Self, c_int) {
        let b = Bytes::new(g);
        let mut t = bytes_transport(&b);
        let mut c = ctx(v);
        let mut nb = new_nb();
        let mut rx = vec![0u8; rx_len];
        let rc =
            unsafe { usmp_nb_connect(&mut *c, &mut *nb, &mut t, rx.as_mut_ptr(), rx_len as u16) };
        (Dev { b, c, nb, rx }, rc)
    }

    fn connected(v: Version) -> Self {
        let (mut d, rc) = Self::start(v, Gateway::new(v, PSK), 1808);
        assert_eq!(rc, 0, "usmp_nb_connect: {}", name(rc));
        let evs = poll_until(&mut d.c, &mut d.nb, USMP_EVENT_CONNECTED, 500);
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert!(unsafe { usmp_is_connected(&*d.c) });
        d
    }

    fn poll(&mut self) -> usmp_event_t {
        poll(&mut self.c, &mut self.nb)
    }

    fn until(&mut self, kind: usmp_event_kind_t) -> Vec<usmp_event_t> {
        poll_until(&mut self.c, &mut self.nb, kind, 2000)
    }

    fn echo(&mut self, msg: &[u8]) -> Vec<u8> {
        nb_echo(&mut self.c, &mut self.nb, &self.rx, msg, 2000)
    }

    /// Polls a while and checks that nothing is reported.
    fn quiet(&mut self, polls: usize) {
        for _ in 0..polls {
            let ev = self.poll();
            assert_eq!(ev.kind, USMP_EVENT_NONE, "{ev:?} ({})", name(ev.error));
        }
    }
}

#[test]
fn connect_echo_every_size_in_pieces_then_close() {
    for v in [Version::V1, Version::V2] {
        let mut d = Dev::connected(v);
        for (k, len) in [0usize, 1, 11, 452, 453, 904, 1000, 1808]
            .into_iter()
            .enumerate()
        {
            let m = pattern(len, k as u8);
            assert_eq!(d.echo(&m), m, "{v:?} {len}");
        }
        let sent: Vec<Vec<u8>> = [0usize, 1, 11, 452, 453, 904, 1000, 1808]
            .into_iter()
            .enumerate()
            .map(|(k, len)| pattern(len, k as u8))
            .collect();
        assert_eq!(d.b.g.received, sent, "{v:?}: each message once, in order");
        // The device's frames: whole and each once (the gateway would have refused others).
        assert!(d.b.max_wait == 0 && !d.b.plain_recv, "a call waited");
        assert_eq!(unsafe { usmp_nb_close(&mut *d.c, &mut *d.nb) }, 0);
        assert!(d.b.g.closed_by_device, "{v:?}: no BYE");
        assert_eq!(d.b.g.closes, 1);
        assert!(!unsafe { usmp_is_connected(&*d.c) });
        let mut ev = unsafe { std::mem::zeroed::<usmp_event_t>() };
        let rc = unsafe { usmp_nb_poll(&mut *d.c, &mut *d.nb, &mut ev) };
        assert_eq!(rc, err(usmp_err_t::USMP_ERR_NOT_CONNECTED));
        assert_eq!(
            unsafe { usmp_nb_close(&mut *d.c, &mut *d.nb) },
            0,
            "twice: harmless"
        );
        assert!(d.nb.opaque.iter().all(|&w| w == 0), "state not wiped");
    }
}

#[test]
fn gateway_ping_rekey_and_the_devices_ping_rekey_keepalive() {
    let mut d = Dev::connected(Version::V2);
    // The gateway's PING is answered, and reported as nothing.
    d.b.g.send_control(FrameType::Ping);
    d.quiet(50);
    assert_eq!(d.b.g.pongs, 1);
    // The gateway's REKEY, then traffic under the new keys.
    d.b.g.rekey([0x33; 32]);
    d.quiet(50);
    assert_eq!(
        d.echo(b"after the gateway's rekey"),
        b"after the gateway's rekey"
    );
    // The device's REKEY and PING.
    assert_eq!(unsafe { usmp_nb_rekey(&mut *d.c, &mut *d.nb) }, 0);
    assert_eq!(
        unsafe { usmp_nb_ping(&mut *d.c, &mut *d.nb) },
        err(usmp_err_t::USMP_ERR_BUSY),
        "one control operation at a time"
    );
    d.quiet(50);
    assert_eq!(d.echo(b"after ours"), b"after ours");
    let pings = d.b.g.pings;
    assert_eq!(unsafe { usmp_nb_ping(&mut *d.c, &mut *d.nb) }, 0);
    d.quiet(50);
    assert_eq!(d.b.g.pings, pings + 1);
    // Keepalive: a PING when the link was idle for keepalive_ms.
    d.c.keepalive_ms = 5_000;
    let pings = d.b.g.pings;
    port::advance(6_000);
    d.quiet(10);
    assert_eq!(d.b.g.pings, pings + 1, "no keepalive PING");
    d.quiet(10);
    assert_eq!(d.b.g.pings, pings + 1, "one PING per idle period");
}

#[test]
fn refusals_are_named_and_change_nothing() {
    let e = |x| err(x);
    let mut d = Dev::connected(Version::V1);
    let (c, nb) = (&mut *d.c as *mut usmp_t, &mut *d.nb as *mut usmp_nb_t);
    let mut ev = unsafe { std::mem::zeroed::<usmp_event_t>() };
    unsafe {
        assert_eq!(
            usmp_nb_poll(std::ptr::null_mut(), nb, &mut ev),
            e(usmp_err_t::USMP_ERR_INVALID_ARG)
        );
        assert_eq!(
            usmp_nb_poll(c, std::ptr::null_mut(), &mut ev),
            e(usmp_err_t::USMP_ERR_INVALID_ARG)
        );
        assert_eq!(
            usmp_nb_poll(c, nb, std::ptr::null_mut()),
            e(usmp_err_t::USMP_ERR_INVALID_ARG)
        );
        assert_eq!(
            usmp_nb_send(c, nb, std::ptr::null(), 3),
            e(usmp_err_t::USMP_ERR_INVALID_ARG)
        );
        let big = vec![0u8; 1809];
        assert_eq!(
            usmp_nb_send(c, nb, big.as_ptr(), 1809),
            e(usmp_err_t::USMP_ERR_BUFFER_OVERFLOW)
        );
        assert_eq!(
            usmp_nb_rekey(c, nb),
            e(usmp_err_t::USMP_ERR_UNSUPPORTED),
            "REKEY on v1"
        );
        // The blocking calls leave a non-blocking session alone.
        assert_eq!(usmp_send(c, b"x".as_ptr(), 1), e(usmp_err_t::USMP_ERR_BUSY));
        let mut buf = [0u8; 8];
        assert_eq!(
            usmp_recv(c, buf.as_mut_ptr(), 8),
            e(usmp_err_t::USMP_ERR_BUSY)
        );
        assert_eq!(usmp_ping(c), e(usmp_err_t::USMP_ERR_BUSY));
        // One message at a time, until its SENT is reported.
        assert_eq!(usmp_nb_send(c, nb, b"one".as_ptr(), 3), 0);
        assert_eq!(
            usmp_nb_send(c, nb, b"two".as_ptr(), 3),
            e(usmp_err_t::USMP_ERR_BUSY)
        );
    }
    assert_eq!(d.until(USMP_EVENT_SENT).last().unwrap().error, 0);
    assert_eq!(d.until(USMP_EVENT_MESSAGE).last().unwrap().len, 3);
    assert_eq!(d.b.g.received, vec![b"one".to_vec()]);
    // Another context, or a nb that was never connected: not connected.
    let mut other = ctx(Version::V2);
    let mut fresh = new_nb();
    unsafe {
        assert_eq!(
            usmp_nb_poll(&mut *other, nb, &mut ev),
            e(usmp_err_t::USMP_ERR_NOT_CONNECTED)
        );
        assert_eq!(
            usmp_nb_poll(c, &mut *fresh, &mut ev),
            e(usmp_err_t::USMP_ERR_NOT_CONNECTED)
        );
        assert_eq!(
            usmp_nb_send(c, &mut *fresh, b"x".as_ptr(), 1),
            e(usmp_err_t::USMP_ERR_NOT_CONNECTED)
        );
    }
    // A transport without recv_timeout cannot be polled without waiting.
    let mut g = Gateway::new(Version::V2, PSK);
    let mut t = scripted::transport(&mut g);
    let mut c2 = ctx(Version::V2);
    let mut rx = [0u8; 16];
    let rc = unsafe { usmp_nb_connect(&mut *c2, &mut *fresh, &mut t, rx.as_mut_ptr(), 16) };
    assert_eq!(rc, e(usmp_err_t::USMP_ERR_INVALID_ARG));
    assert!(g.wire.is_empty());
}

#[test]
fn send_before_connected_and_a_message_too_big_for_the_buffer() {
    let (mut d, rc) = Dev::start(Version::V2, Gateway::new(Version::V2, PSK), 100);
    assert_eq!(rc, 0);
    let rc = unsafe { usmp_nb_send(&mut *d.c, &mut *d.nb, b"early".as_ptr(), 5) };
    assert_eq!(rc, err(usmp_err_t::USMP_ERR_NOT_CONNECTED));
    d.until(USMP_EVENT_CONNECTED);
    // Too big for the 100-byte receive buffer: dropped with an ERROR, the session goes on.
    d.b.g.send_message(&[7u8; 500]);
    let evs = d.until(USMP_EVENT_ERROR);
    assert_eq!(
        evs.last().unwrap().error,
        err(usmp_err_t::USMP_ERR_BUFFER_OVERFLOW)
    );
    assert!(unsafe { usmp_is_connected(&*d.c) });
    assert_eq!(d.echo(&[1u8; 100]), vec![1u8; 100]);
}

#[test]
fn wrong_psk_ends_in_closed_auth_failed() {
    let (mut d, rc) = Dev::start(
        Version::V2,
        Gateway::new(Version::V2, b"another-psk-0123456789"),
        64,
    );
    assert_eq!(rc, 0);
    let evs = d.until(USMP_EVENT_CLOSED);
    assert_eq!(evs.len(), 1, "{evs:?}");
    let code = evs[0].error;
    assert!(
        code == err(usmp_err_t::USMP_ERR_AUTH_FAILED),
        "CLOSED with {}",
        name(code)
    );
    assert_eq!(d.b.g.closes, 1, "the transport is closed");
    assert!(!unsafe { usmp_is_connected(&*d.c) });
}

#[test]
fn each_way_a_session_ends_is_one_closed_event() {
    // The gateway hangs up.
    let mut d = Dev::connected(Version::V2);
    d.b.g.session = None;
    let evs = d.until(USMP_EVENT_CLOSED);
    assert_eq!(evs.len(), 1);
    assert_eq!(name(evs[0].error), "USMP_ERR_TRANSPORT_FAILED");
    assert_eq!(d.b.g.closes, 1);
    // The gateway's BYE.
    let mut d = Dev::connected(Version::V2);
    d.b.g.send_control(FrameType::Bye);
    let evs = d.until(USMP_EVENT_CLOSED);
    assert_eq!(name(evs.last().unwrap().error), "USMP_ERR_CLOSED_BY_PEER");
    // usmp_close from elsewhere: CLOSED, and the transport is closed once (by usmp_close).
    let mut d = Dev::connected(Version::V2);
    unsafe { usmp_close(&mut *d.c) };
    let evs = d.until(USMP_EVENT_CLOSED);
    assert_eq!(name(evs.last().unwrap().error), "USMP_ERR_NOT_CONNECTED");
    assert_eq!(d.b.g.closes, 1);
    // A blocking usmp_connect takes the context: the non-blocking session reports its end
    // and leaves the new session (and its transport) alone.
    let mut d = Dev::connected(Version::V2);
    let b2 = Bytes::new(Gateway::new(Version::V2, PSK));
    let mut t2 = bytes_transport(&b2);
    assert_eq!(unsafe { usmp_connect(&mut *d.c, &mut t2) }, 0);
    let evs = d.until(USMP_EVENT_CLOSED);
    assert_eq!(name(evs.last().unwrap().error), "USMP_ERR_NOT_CONNECTED");
    assert!(unsafe { usmp_is_connected(&*d.c) });
    assert_eq!(unsafe { usmp_send(&mut *d.c, b"blocking".as_ptr(), 8) }, 0);
    assert_eq!(b2.g.received, vec![b"blocking".to_vec()]);
    assert_eq!(b2.g.closes, 0);
    // A message under way when the session ends: its SENT carries the reason, then CLOSED.
    let mut d = Dev::connected(Version::V2);
    d.b.g.fail_sends_after = Some(d.b.g.sends);
    let m = pattern(1000, 1);
    assert_eq!(
        unsafe { usmp_nb_send(&mut *d.c, &mut *d.nb, m.as_ptr(), 1000) },
        0
    );
    let evs = d.until(USMP_EVENT_CLOSED);
    let kinds: Vec<_> = evs.iter().map(|e| (e.kind, name(e.error))).collect();
    assert_eq!(
        kinds,
        vec![
            (USMP_EVENT_SENT, "USMP_ERR_TRANSPORT_FAILED".to_string()),
            (USMP_EVENT_CLOSED, "USMP_ERR_TRANSPORT_FAILED".to_string())
        ]
    );
}

#[test]
fn a_frame_cut_off_midway_ends_the_session_within_the_frame_timeout() {
    let mut d = Dev::connected(Version::V2);
    // 100 bytes of a frame, then nothing: the clock moves on until the frame is late.
    d.b.g.send_message(&[5u8; 300]);
    d.b.budget = Some(100);
    let t0 = port::now();
    let evs = d.until(USMP_EVENT_CLOSED);
    let took = port::now().wrapping_sub(t0);
    assert_eq!(name(evs.last().unwrap().error), "USMP_ERR_TRANSPORT_FAILED");
    assert!(
        (USMP_FRAME_TIMEOUT_MS..USMP_FRAME_TIMEOUT_MS + 200).contains(&took),
        "took {took} ms"
    );
}

#[test]
fn the_blocking_api_over_a_byte_stream_in_pieces() {
    for v in [Version::V1, Version::V2] {
        let mut b = Bytes::new(Gateway::new(v, PSK));
        let mut t = bytes_transport(&b);
        let mut c = ctx(v);
        assert_eq!(unsafe { usmp_connect(&mut *c, &mut t) }, 0);
        let mut buf = vec![0u8; 1808];
        for len in [1usize, 452, 453, 1808] {
            let m = pattern(len, 9);
            assert_eq!(unsafe { usmp_send(&mut *c, m.as_ptr(), len as u16) }, 0);
            let mut n = 0;
            for _ in 0..20 {
                n = unsafe { usmp_recv(&mut *c, buf.as_mut_ptr(), 1808) };
                if n != 0 {
                    break;
                }
            }
            assert_eq!(n, len as c_int, "{v:?}");
            assert_eq!(&buf[..len], &m[..]);
        }
        // A frame cut off midway: usmp_recv ends the session within USMP_FRAME_TIMEOUT_MS.
        b.g.send_message(&[5u8; 300]);
        b.budget = Some(50);
        let t0 = port::now();
        let rc = unsafe { usmp_recv(&mut *c, buf.as_mut_ptr(), 1808) };
        let took = port::now().wrapping_sub(t0);
        assert_eq!(name(rc), "USMP_ERR_TRANSPORT_FAILED", "{v:?}");
        assert!(took <= USMP_FRAME_TIMEOUT_MS + 200, "{v:?}: took {took} ms");
        assert!(!unsafe { usmp_is_connected(&*c) });
    }
}
