//! The C API driven from Rust against the in-process responder: the driver logic of
//! `src/ffi.rs` (handshake pump, fragments, automatic PONG, REKEY, BYE, copy detection)
//! without sockets. Port hooks are defined here, as an application would.

mod common;
#[path = "common/port.rs"]
mod port;
#[path = "common/scripted.rs"]
mod scripted;

use scripted::{transport, Gateway};

use std::ffi::{c_int, CStr};

use usmp::ffi::*;
use usmp::frame::FrameType;
use usmp::Version;

const PSK: &[u8] = b"usmp-dev-psk-change-me-before-prod";

fn ctx(version: u8) -> Box<usmp_t> {
    // Every clock read moves 100 ms on, so timeouts inside blocking calls come quickly.
    port::auto_tick(100);
    // SAFETY: usmp_t is valid zero-initialised, as in C (`usmp_t ctx = {0};`).
    let mut c: Box<usmp_t> = Box::new(unsafe { std::mem::zeroed() });
    c.psk = PSK.as_ptr();
    c.psk_len = PSK.len();
    c.protocol_version = version;
    c
}

fn name(rc: c_int) -> String {
    unsafe { CStr::from_ptr(usmp_err_name(rc)) }
        .to_string_lossy()
        .into_owned()
}

fn recv_message(c: &mut usmp_t, buf: &mut [u8]) -> c_int {
    for _ in 0..20 {
        let n = unsafe { usmp_recv(c, buf.as_mut_ptr(), buf.len() as u16) };
        if n != 0 {
            return n;
        }
    }
    0
}

#[test]
fn connect_echo_every_size_close() {
    for (cfg, v) in [
        (USMP_PROTOCOL_V1, Version::V1),
        (0, Version::V2),
        (USMP_PROTOCOL_V2, Version::V2),
    ] {
        let mut g = Gateway::new(v, PSK);
        let mut t = transport(&mut g);
        let mut c = ctx(cfg);
        assert_eq!(unsafe { usmp_connect(&mut *c, &mut t) }, 0, "{cfg}");
        assert!(unsafe { usmp_is_connected(&*c) });
        let mut buf = vec![0u8; 1808];
        for len in [1usize, 452, 453, 1000, 1808] {
            let msg: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            assert_eq!(unsafe { usmp_send(&mut *c, msg.as_ptr(), len as u16) }, 0);
            assert_eq!(recv_message(&mut c, &mut buf), len as c_int, "{len}");
            assert_eq!(&buf[..len], &msg[..]);
        }
        // 0 bytes: one DATA frame; the echo comes back as 0 (indistinguishable, as in the original)
        assert_eq!(unsafe { usmp_send(&mut *c, std::ptr::null(), 0) }, 0);
        assert_eq!(g.received.last().unwrap().len(), 0);
        let before = g.received.len();
        assert_eq!(
            unsafe { usmp_send(&mut *c, buf.as_ptr(), 1809) },
            USMP_ERR_BUFFER_OVERFLOW_CODE
        );
        assert_eq!(g.received.len(), before);
        unsafe { usmp_close(&mut *c) };
        assert!(g.closed_by_device, "BYE not received");
        assert_eq!(g.closes, 1);
        assert!(!unsafe { usmp_is_connected(&*c) });
        unsafe { usmp_close(&mut *c) }; // twice: harmless
        assert_eq!(
            unsafe { usmp_send(&mut *c, buf.as_ptr(), 1) },
            usmp_err_t::USMP_ERR_NOT_CONNECTED as c_int
        );
    }
}

const USMP_ERR_BUFFER_OVERFLOW_CODE: c_int = usmp_err_t::USMP_ERR_BUFFER_OVERFLOW as c_int;

#[test]
fn gateway_ping_is_answered_and_flood_is_refused() {
    for v in [Version::V1, Version::V2] {
        let mut g = Gateway::new(v, PSK);
        let mut t = transport(&mut g);
        let mut c = ctx(v as u8);
        assert_eq!(unsafe { usmp_connect(&mut *c, &mut t) }, 0);
        g.send_control(FrameType::Ping);
        let mut buf = [0u8; 64];
        assert_eq!(unsafe { usmp_recv(&mut *c, buf.as_mut_ptr(), 64) }, 0);
        assert_eq!(g.pongs, 1);
        // A storm of pings within one second: the limit ends the session.
        for _ in 0..v.flood_limit() {
            g.send_control(FrameType::Ping);
        }
        port::auto_tick(0);
        let rc = unsafe { usmp_recv(&mut *c, buf.as_mut_ptr(), 64) };
        port::auto_tick(100);
        assert_eq!(name(rc), "USMP_ERR_FLOOD");
        assert!(!unsafe { usmp_is_connected(&*c) });
        // reconnect works afterwards
        assert_eq!(unsafe { usmp_reconnect(&mut *c) }, 0);
        assert_eq!(unsafe { usmp_send(&mut *c, b"x".as_ptr(), 1) }, 0);
        assert_eq!(recv_message(&mut c, &mut buf), 1);
    }
}

#[test]
fn keepalive_and_ping() {
    let mut g = Gateway::new(Version::V2, PSK);
    let mut t = transport(&mut g);
    let mut c = ctx(0);
    c.keepalive_ms = 250;
    assert_eq!(unsafe { usmp_connect(&mut *c, &mut t) }, 0);
    let mut sent = 0;
    for _ in 0..10 {
        assert_eq!(unsafe { usmp_keepalive_tick(&mut *c) }, 0);
        sent = g.pings;
    }
    assert!(sent >= 2, "keepalive sent {sent} pings");
    assert_eq!(unsafe { usmp_ping(&mut *c) }, 0);
    assert_eq!(g.pings, sent + 1);
    let mut buf = [0u8; 8];
    while unsafe { usmp_recv(&mut *c, buf.as_mut_ptr(), 8) } == 0 && !g.to_device.is_empty() {}
    c.keepalive_ms = 0;
    assert_eq!(unsafe { usmp_keepalive_tick(&mut *c) }, 0);
}

#[test]
fn rekey_both_ways_then_echo() {
    let mut g = Gateway::new(Version::V2, PSK);
    let mut t = transport(&mut g);
    let mut c = ctx(0);
    assert_eq!(unsafe { usmp_connect(&mut *c, &mut t) }, 0);
    let mut buf = vec![0u8; 1808];
    assert_eq!(unsafe { usmp_rekey(&mut *c) }, 0);
    assert_eq!(unsafe { usmp_send(&mut *c, b"after".as_ptr(), 5) }, 0);
    assert_eq!(recv_message(&mut c, &mut buf), 5);
    g.rekey([3; 32]);
    assert_eq!(unsafe { usmp_recv(&mut *c, buf.as_mut_ptr(), 100) }, 0);
    assert_eq!(unsafe { usmp_send(&mut *c, b"again!".as_ptr(), 6) }, 0);
    assert_eq!(recv_message(&mut c, &mut buf), 6);
    assert_eq!(&buf[..6], b"again!");
    // v1: unsupported, nothing sent
    let mut g1 = Gateway::new(Version::V1, PSK);
    let mut t1 = transport(&mut g1);
    let mut c1 = ctx(USMP_PROTOCOL_V1);
    assert_eq!(unsafe { usmp_connect(&mut *c1, &mut t1) }, 0);
    let sends = g1.sends;
    assert_eq!(
        name(unsafe { usmp_rekey(&mut *c1) }),
        "USMP_ERR_UNSUPPORTED"
    );
    assert_eq!(g1.sends, sends);
}

#[test]
fn gateway_bye_closes() {
    let mut g = Gateway::new(Version::V2, PSK);
    let mut t = transport(&mut g);
    let mut c = ctx(0);
    assert_eq!(unsafe { usmp_connect(&mut *c, &mut t) }, 0);
    g.send_control(FrameType::Bye);
    let mut buf = [0u8; 8];
    assert_eq!(
        name(unsafe { usmp_recv(&mut *c, buf.as_mut_ptr(), 8) }),
        "USMP_ERR_CLOSED_BY_PEER"
    );
    assert!(!unsafe { usmp_is_connected(&*c) });
}

#[test]
fn wrong_psk_short_psk_and_bad_arguments() {
    let mut g = Gateway::new(Version::V2, b"the-gateway-has-another-key-here");
    let mut t = transport(&mut g);
    let mut c = ctx(0);
    assert_eq!(
        name(unsafe { usmp_connect(&mut *c, &mut t) }),
        "USMP_ERR_AUTH_FAILED"
    );
    assert_eq!(g.closes, 1);
    let mut g = Gateway::new(Version::V2, PSK);
    let mut t = transport(&mut g);
    let mut c = ctx(0);
    c.psk_len = 15;
    assert_eq!(
        name(unsafe { usmp_connect(&mut *c, &mut t) }),
        "USMP_ERR_PSK_TOO_SHORT"
    );
    assert_eq!(g.sends, 0, "something was sent with a short PSK");
    c.psk = std::ptr::null();
    assert_eq!(
        name(unsafe { usmp_connect(&mut *c, &mut t) }),
        "USMP_ERR_INVALID_ARG"
    );
    assert_eq!(
        name(unsafe { usmp_connect(std::ptr::null_mut(), &mut t) }),
        "USMP_ERR_INVALID_ARG"
    );
    assert_eq!(
        name(unsafe { usmp_connect(&mut *c, std::ptr::null_mut()) }),
        "USMP_ERR_INVALID_ARG"
    );
    c.psk = PSK.as_ptr();
    c.psk_len = PSK.len();
    c.protocol_version = 9;
    assert_eq!(
        name(unsafe { usmp_connect(&mut *c, &mut t) }),
        "USMP_ERR_INVALID_ARG"
    );
    assert_eq!(
        name(unsafe { usmp_recv(&mut *c, std::ptr::null_mut(), 4) }),
        "USMP_ERR_INVALID_ARG"
    );
    assert_eq!(name(-1234), "USMP_ERR_UNKNOWN");
    assert_eq!(name(0), "USMP_OK");
}

#[test]
fn v1_device_against_v2_gateway_is_rejected() {
    let mut g = Gateway::new(Version::V2, PSK);
    let mut t = transport(&mut g);
    let mut c = ctx(USMP_PROTOCOL_V1);
    assert_eq!(
        name(unsafe { usmp_connect(&mut *c, &mut t) }),
        "USMP_ERR_REJECTED"
    );
}

#[test]
fn silent_gateway_times_out() {
    let mut g = Gateway::new(Version::V2, PSK);
    let mut t = transport(&mut g);
    t.send = Some({
        unsafe extern "C" fn swallow(_: *mut usmp_transport_t, _: *const u8, _: usize) -> c_int {
            0
        }
        swallow
    });
    let mut c = ctx(0);
    assert_eq!(
        name(unsafe { usmp_connect(&mut *c, &mut t) }),
        "USMP_ERR_TIMEOUT"
    );
}

#[test]
fn failed_send_ends_session_without_reusing_a_nonce() {
    let mut g = Gateway::new(Version::V2, PSK);
    let mut t = transport(&mut g);
    let mut c = ctx(0);
    assert_eq!(unsafe { usmp_connect(&mut *c, &mut t) }, 0);
    g.fail_sends_after = Some(g.sends);
    assert_eq!(
        name(unsafe { usmp_send(&mut *c, b"lost".as_ptr(), 4) }),
        "USMP_ERR_TRANSPORT_FAILED"
    );
    assert!(!unsafe { usmp_is_connected(&*c) });
    g.fail_sends_after = None;
    assert_eq!(unsafe { usmp_reconnect(&mut *c) }, 0);
    assert_eq!(unsafe { usmp_send(&mut *c, b"ok".as_ptr(), 2) }, 0);
}

#[test]
fn copied_context_is_refused_and_wiped() {
    let mut g = Gateway::new(Version::V2, PSK);
    let mut t = transport(&mut g);
    let mut c = ctx(0);
    assert_eq!(unsafe { usmp_connect(&mut *c, &mut t) }, 0);
    let mut copy: Box<usmp_t> = Box::new(unsafe { std::ptr::read(&*c) });
    assert_eq!(
        name(unsafe { usmp_send(&mut *copy, b"x".as_ptr(), 1) }),
        "USMP_ERR_CONTEXT_MOVED"
    );
    assert!(!unsafe { usmp_is_connected(&*copy) });
    // the copy's session state (keys, counters) is zeroed; the original keeps working
    assert!(
        copy.opaque.iter().skip(10).all(|w| *w == 0),
        "copy not wiped"
    );
    assert!(c.opaque.iter().skip(10).any(|w| *w != 0));
    assert_eq!(unsafe { usmp_send(&mut *c, b"x".as_ptr(), 1) }, 0);
    let mut buf = [0u8; 4];
    assert_eq!(recv_message(&mut c, &mut buf), 1);
}

#[test]
fn small_buffer_keeps_session() {
    let mut g = Gateway::new(Version::V2, PSK);
    let mut t = transport(&mut g);
    let mut c = ctx(0);
    assert_eq!(unsafe { usmp_connect(&mut *c, &mut t) }, 0);
    let big = vec![5u8; 1000];
    assert_eq!(unsafe { usmp_send(&mut *c, big.as_ptr(), 1000) }, 0);
    let mut small = [0u8; 100];
    assert_eq!(
        name(recv_message(&mut c, &mut small)),
        "USMP_ERR_BUFFER_OVERFLOW"
    );
    assert!(unsafe { usmp_is_connected(&*c) });
    assert_eq!(unsafe { usmp_send(&mut *c, b"fits".as_ptr(), 4) }, 0);
    assert_eq!(recv_message(&mut c, &mut small), 4);
}

#[test]
fn frame_size_helper() {
    let mut hdr = [0u8; 12];
    hdr[..4].copy_from_slice(&[0xCD, 0xAB, 2, 5]);
    hdr[8..10].copy_from_slice(&100u16.to_le_bytes());
    assert_eq!(unsafe { usmp_frame_size(hdr.as_ptr(), 12) }, 112);
    hdr[8..10].copy_from_slice(&481u16.to_le_bytes());
    assert_eq!(
        name(unsafe { usmp_frame_size(hdr.as_ptr(), 12) }),
        "USMP_ERR_BAD_FRAME"
    );
    assert_eq!(
        name(unsafe { usmp_frame_size(hdr.as_ptr(), 11) }),
        "USMP_ERR_INVALID_ARG"
    );
    assert_eq!(
        name(unsafe { usmp_frame_size(std::ptr::null(), 12) }),
        "USMP_ERR_INVALID_ARG"
    );
    let v = unsafe { CStr::from_ptr(usmp_get_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn device_id_from_seed_is_keyed_and_local() {
    let seed = b"0123456789abcdef0123456789abcdef";
    let mut id = [0u8; 6];
    assert_eq!(
        unsafe { usmp_device_id_from_seed(seed.as_ptr(), seed.len(), id.as_mut_ptr()) },
        0
    );
    // HMAC-SHA256("usmp device id", seed)[0..6], locally administered unicast (Python hmac)
    assert_eq!(hex::encode(id), "02b6b5889790");
    assert_eq!(id[0] & 0x03, 0x02);
    assert_eq!(
        name(unsafe { usmp_device_id_from_seed(seed.as_ptr(), 4, std::ptr::null_mut()) }),
        "USMP_ERR_INVALID_ARG"
    );
    assert_eq!(
        name(unsafe { usmp_device_id_from_seed(std::ptr::null(), 4, id.as_mut_ptr()) }),
        "USMP_ERR_INVALID_ARG"
    );
}

#[test]
fn frames_in_flight_under_the_old_key_survive_a_device_rekey() {
    // The gateway sealed an echo under the old key before it read our REKEY; it arrives
    // after we switched. Before: USMP_ERR_CRYPTO_FAILED ended the session. Now the previous
    // key opens it (the grace period), in order, and the next frames use the new key.
    let mut g = Gateway::new(Version::V2, PSK);
    let mut t = transport(&mut g);
    let mut c = ctx(0);
    assert_eq!(unsafe { usmp_connect(&mut *c, &mut t) }, 0);
    assert_eq!(unsafe { usmp_send(&mut *c, b"in flight".as_ptr(), 9) }, 0);
    assert_eq!(
        g.to_device.len(),
        1,
        "the echo waits, sealed under the old key"
    );
    assert_eq!(unsafe { usmp_rekey(&mut *c) }, 0);
    let mut buf = [0u8; 64];
    assert_eq!(recv_message(&mut c, &mut buf), 9);
    assert_eq!(&buf[..9], b"in flight");
    assert_eq!(unsafe { usmp_send(&mut *c, b"new key".as_ptr(), 7) }, 0);
    assert_eq!(recv_message(&mut c, &mut buf), 7);
    assert_eq!(&buf[..7], b"new key");
    // The old key's grace ended with the first frame under the new one: an old-key frame
    // now is refused.
    assert!(unsafe { usmp_is_connected(&*c) });
}

#[test]
fn a_second_rekey_waits_until_the_key_before_it_is_done_with() {
    // Two REKEYs while the gateway's echo under the first key is still on its way: only one
    // previous key is kept, so the second would have made that echo unreadable
    // (USMP_ERR_CRYPTO_FAILED, found by the non-blocking API's pipelined test against the
    // real gateway). It is refused with USMP_ERR_BUSY until the gateway's first frame under
    // the new keys has arrived.
    let mut g = Gateway::new(Version::V2, PSK);
    let mut t = transport(&mut g);
    let mut c = ctx(0);
    assert_eq!(unsafe { usmp_connect(&mut *c, &mut t) }, 0);
    assert_eq!(unsafe { usmp_send(&mut *c, b"in flight".as_ptr(), 9) }, 0);
    assert_eq!(unsafe { usmp_rekey(&mut *c) }, 0);
    assert_eq!(
        name(unsafe { usmp_rekey(&mut *c) }),
        "USMP_ERR_BUSY",
        "a second REKEY with frames under the first key in flight"
    );
    let mut buf = [0u8; 64];
    assert_eq!(recv_message(&mut c, &mut buf), 9);
    assert_eq!(unsafe { usmp_send(&mut *c, b"new key".as_ptr(), 7) }, 0);
    assert_eq!(recv_message(&mut c, &mut buf), 7);
    // The gateway has used the new keys: the grace is over, the next REKEY goes.
    assert_eq!(unsafe { usmp_rekey(&mut *c) }, 0);
    assert_eq!(unsafe { usmp_send(&mut *c, b"third key".as_ptr(), 9) }, 0);
    assert_eq!(recv_message(&mut c, &mut buf), 9);
    assert_eq!(&buf[..9], b"third key");
}

#[test]
fn connect_reads_a_transport_that_is_the_contexts_own_field() {
    // usmp_connect(ctx, &ctx->transport): the transport is read by value before the
    // context is written (Miri checks there are no aliasing references).
    let mut g = Gateway::new(Version::V2, PSK);
    let mut c = ctx(0);
    c.transport = transport(&mut g);
    // Both pointers from one raw pointer, as a C caller has them.
    let p: *mut usmp_t = &mut *c;
    let own = unsafe { std::ptr::addr_of_mut!((*p).transport) };
    assert_eq!(unsafe { usmp_connect(p, own) }, 0);
    assert_eq!(unsafe { usmp_send(&mut *c, b"x".as_ptr(), 1) }, 0);
    let mut buf = [0u8; 8];
    assert_eq!(recv_message(&mut c, &mut buf), 1);
    unsafe { usmp_close(&mut *c) };
}
