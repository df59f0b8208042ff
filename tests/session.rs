//! Device and responder in one process, both wire versions: messages of every size class,
//! fragments, PING storms, REKEY both ways, sequence exhaustion, tampering, replay, reorder.

mod common;

use common::{pair, seal_message};
use usmp::conn::{Conn, Got, Reply};
use usmp::frame::{FrameType, MAX_FRAME};
use usmp::session::{Freshness, Rx, Session, MAX_DATA, MAX_MESSAGE};
use usmp::{Error, Version};

const BOTH: [Version; 2] = [Version::V1, Version::V2];

fn deliver(s: &mut Session, frames: &mut [Vec<u8>], out: &mut [u8]) -> Result<Rx, Error> {
    let mut last = Err(Error::NotConnected);
    for f in frames.iter_mut() {
        last = s.receive(f, out);
        last?;
    }
    last
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

#[test]
fn messages_of_every_size_class_both_ways() {
    for v in BOTH {
        let (mut dev, mut gw) = pair(v);
        for len in [
            0, 1, 451, 452, 453, 903, 904, 905, 1000, 1355, 1356, 1357, 1807, 1808,
        ] {
            let msg = pattern(len, len as u8);
            let mut frames = seal_message(&mut dev, &msg).unwrap();
            assert_eq!(frames.len(), len.div_ceil(MAX_DATA).max(1));
            let mut out = vec![0u8; MAX_MESSAGE];
            assert_eq!(
                deliver(&mut gw, &mut frames, &mut out),
                Ok(Rx::Message(len)),
                "{v:?} {len}"
            );
            assert_eq!(&out[..len], &msg[..]);
            // and back
            let mut frames = seal_message(&mut gw, &msg).unwrap();
            assert_eq!(
                deliver(&mut dev, &mut frames, &mut out),
                Ok(Rx::Message(len))
            );
            assert_eq!(&out[..len], &msg[..]);
        }
        assert_eq!(
            seal_message(&mut dev, &[0; 1809]),
            Err(Error::BufferOverflow)
        );
    }
}

#[test]
fn too_long_message_is_refused_before_any_seq_is_used() {
    let (mut dev, _) = pair(Version::V2);
    let before = dev.tx_next();
    assert_eq!(
        Session::frames_for(MAX_MESSAGE + 1),
        Err(Error::BufferOverflow)
    );
    assert_eq!(
        seal_message(&mut dev, &vec![1; MAX_MESSAGE + 1]),
        Err(Error::BufferOverflow)
    );
    assert_eq!(dev.tx_next(), before);
}

#[test]
fn small_receive_buffer_drops_that_message_and_keeps_the_session() {
    for v in BOTH {
        let (mut dev, mut gw) = pair(v);
        let mut small = [0u8; 100];
        let mut frames = seal_message(&mut gw, &pattern(1000, 1)).unwrap();
        assert_eq!(
            deliver(&mut dev, &mut frames, &mut small),
            Err(Error::BufferOverflow)
        );
        let mut frames = seal_message(&mut gw, &pattern(50, 2)).unwrap();
        assert_eq!(
            deliver(&mut dev, &mut frames, &mut small),
            Ok(Rx::Message(50))
        );
        assert_eq!(&small[..50], &pattern(50, 2)[..]);
    }
}

/// The connection machine over a session (stream mode) and a PING from the peer.
fn conn_ping(conn: &mut Conn, gw: &mut Session, now: u32) -> Result<Got, Error> {
    let mut buf = [0u8; MAX_FRAME];
    let n = gw.seal_control(FrameType::Ping, &mut buf).unwrap();
    let mut out = [0u8; 64];
    conn.on_input(now, &mut buf[..n], Some(&mut out), &mut Reply::new())
}

#[test]
fn ping_is_reported_pong_consumed_and_storm_trips_flood_guard() {
    for v in BOTH {
        let (mut dev, mut gw) = pair(v);
        let mut out = [0u8; 64];
        let mut buf = [0u8; MAX_FRAME];
        let n = gw.seal_control(FrameType::Ping, &mut buf).unwrap();
        assert_eq!(dev.receive(&mut buf[..n], &mut out), Ok(Rx::Ping));
        // the PONG the machine sends is a valid frame for the gateway
        let n = dev.seal_control(FrameType::Pong, &mut buf).unwrap();
        assert_eq!(gw.receive(&mut buf[..n], &mut out), Ok(Rx::Pong));

        // A storm: the flood limit's control frame within one second ends the session.
        let (dev, mut gw) = pair(v);
        let mut conn = Conn::default();
        conn.establish(dev, false, 0);
        let limit = v.flood_limit();
        for k in 1..=limit {
            let r = conn_ping(&mut conn, &mut gw, 100 + u32::from(k));
            if k < limit {
                assert_eq!(r, Ok(Got::Control), "{v:?} ping {k}");
                assert!(conn.pong_ready());
            } else {
                assert_eq!(r, Err(Error::Flood), "{v:?} ping {k}");
                assert!(!conn.is_established());
            }
        }
    }
}

#[test]
fn flood_guard_counts_per_second_not_per_call() {
    // The Python gateway counts control frames per second; so does the device. Legitimate
    // PINGs spread over minutes (a long receive, 30 s apart) never trip it, and a DATA
    // frame in between restarts the count.
    for v in BOTH {
        let (dev, mut gw) = pair(v);
        let mut conn = Conn::default();
        conn.establish(dev, false, 0);
        for k in 0..40u32 {
            let now = 1000 + k * 30_000;
            assert_eq!(
                conn_ping(&mut conn, &mut gw, now),
                Ok(Got::Control),
                "{v:?} {k}"
            );
        }
        let limit = u32::from(v.flood_limit());
        // limit - 1 within one second, then a second later limit - 1 again: no flood.
        for round in 0..3u32 {
            for k in 0..limit - 1 {
                let now = 2_000_000 + round * 1000 + k;
                assert_eq!(conn_ping(&mut conn, &mut gw, now), Ok(Got::Control));
            }
        }
        // A DATA frame restarts the count within the same second.
        let mut out = [0u8; 64];
        for k in 0..3u32 {
            for _ in 0..limit - 1 {
                assert_eq!(
                    conn_ping(&mut conn, &mut gw, 3_000_000 + k),
                    Ok(Got::Control)
                );
            }
            let mut f = seal_message(&mut gw, b"x").unwrap().remove(0);
            let r = conn.on_input(3_000_000 + k, &mut f, Some(&mut out), &mut Reply::new());
            assert_eq!(r, Ok(Got::Message(1)));
        }
        assert!(conn.is_established());
    }
}

#[test]
fn control_frame_inside_a_fragmented_message_is_refused() {
    for v in BOTH {
        let (mut dev, mut gw) = pair(v);
        let mut out = vec![0u8; MAX_MESSAGE];
        let mut buf = [0u8; MAX_FRAME];
        let n = gw.seal(FrameType::DataFrag, &mut buf, MAX_DATA).unwrap();
        assert_eq!(dev.receive(&mut buf[..n], &mut out), Ok(Rx::Fragment));
        // The PING goes out between the first and second fragment (seq 1).
        let n = gw.seal_control(FrameType::Ping, &mut buf).unwrap();
        assert_eq!(
            dev.receive(&mut buf[..n], &mut out),
            Err(Error::Fragmentation)
        );
    }
}

#[test]
fn fifth_fragment_is_refused() {
    for v in BOTH {
        let (mut dev, mut gw) = pair(v);
        let mut out = vec![0u8; 4000];
        for k in 0..4 {
            let mut buf = [0u8; MAX_FRAME];
            let n = gw.seal(FrameType::DataFrag, &mut buf, 10).unwrap();
            let r = dev.receive(&mut buf[..n], &mut out);
            if k < 3 {
                assert_eq!(r, Ok(Rx::Fragment));
            } else {
                assert_eq!(r, Err(Error::Fragmentation));
            }
        }
    }
}

#[test]
fn bye_closes_and_wipes_keys() {
    for v in BOTH {
        let (mut dev, mut gw) = pair(v);
        let mut buf = [0u8; MAX_FRAME];
        let n = gw.seal_control(FrameType::Bye, &mut buf).unwrap();
        let mut out = [0u8; 8];
        assert_eq!(
            dev.receive(&mut buf[..n], &mut out),
            Err(Error::ClosedByPeer)
        );
        assert_eq!(dev.tx_key(), &[0u8; 32]);
        assert_eq!(dev.rx_key(), &[0u8; 32]);
        assert_eq!(
            dev.seal(FrameType::Data, &mut buf, 0),
            Err(Error::SeqExhausted)
        );
    }
}

#[test]
fn rekey_from_either_side_then_traffic_both_ways() {
    let (mut dev, mut gw) = pair(Version::V2);
    let mut out = vec![0u8; MAX_MESSAGE];
    for round in 0..4u8 {
        let (a, b) = if round % 2 == 0 {
            (&mut dev, &mut gw)
        } else {
            (&mut gw, &mut dev)
        };
        let mut f = seal_message(a, &pattern(700, round)).unwrap();
        deliver(b, &mut f, &mut out).unwrap();
        let old = *a.tx_key();
        let mut buf = [0u8; MAX_FRAME];
        let n = a.start_rekey(&[round; 32], &mut buf).unwrap();
        assert_eq!(n, 12 + 60);
        assert_ne!(a.tx_key(), &old);
        assert_eq!(b.receive(&mut buf[..n], &mut out), Ok(Rx::Rekeyed));
        assert_eq!(a.tx_key(), b.rx_key());
        assert_eq!(a.rx_key(), b.tx_key());
        assert_eq!((a.tx_next(), b.rx_next()), (0, 0));
        for dir in 0..2 {
            let (x, y) = if dir == 0 {
                (&mut *a, &mut *b)
            } else {
                (&mut *b, &mut *a)
            };
            let msg = pattern(1808, round);
            let mut f = seal_message(x, &msg).unwrap();
            assert_eq!(deliver(y, &mut f, &mut out), Ok(Rx::Message(1808)));
            assert_eq!(&out[..1808], &msg[..]);
        }
        // A frame sealed under the old key is now refused.
        let mut stale = Session::new(Version::V2, &old, &old, b"0123456789abcdef");
        let mut f = seal_message(&mut stale, b"old").unwrap();
        assert_eq!(b.receive(&mut f[0], &mut out), Err(Error::CryptoFailed));
    }
}

#[test]
fn rekey_is_v2_only_and_needs_exactly_32_bytes() {
    let (mut dev, mut gw) = pair(Version::V1);
    let mut buf = [0u8; MAX_FRAME];
    assert_eq!(dev.start_rekey(&[1; 32], &mut buf), Err(Error::Unsupported));
    assert_eq!(
        dev.seal(FrameType::Rekey, &mut buf, 32),
        Err(Error::Unsupported)
    );
    let (mut dev, mut gw2) = pair(Version::V2);
    let n = gw2.seal(FrameType::Rekey, &mut buf, 31).unwrap();
    let mut out = [0u8; 64];
    assert_eq!(
        dev.receive(&mut buf[..n], &mut out),
        Err(Error::UnexpectedFrame)
    );
    let _ = &mut gw;
}

#[test]
fn sequence_exhaustion() {
    for v in BOTH {
        let (mut dev, mut gw) = pair(v);
        dev.set_tx_next(0xFFFF_FFFD);
        gw.set_rx_next(0xFFFF_FFFD);
        // Two frames fit (…FD, …FE); three do not, and nothing is sealed then.
        assert_eq!(
            seal_message(&mut dev, &vec![7; 1000]),
            Err(Error::SeqExhausted)
        );
        assert_eq!(dev.tx_next(), 0xFFFF_FFFD);
        let mut out = vec![0u8; MAX_MESSAGE];
        let mut f = seal_message(&mut dev, &vec![7; 900]).unwrap();
        assert_eq!(deliver(&mut gw, &mut f, &mut out), Ok(Rx::Message(900)));
        let mut buf = [0u8; MAX_FRAME];
        assert_eq!(
            dev.seal_control(FrameType::Ping, &mut buf),
            Err(Error::SeqExhausted)
        );
        let n = dev.seal_control(FrameType::Bye, &mut buf).unwrap();
        assert_eq!(
            gw.receive(&mut buf[..n], &mut out),
            Err(Error::ClosedByPeer)
        );
        assert_eq!(
            dev.seal_control(FrameType::Bye, &mut buf),
            Err(Error::SeqExhausted)
        );
    }
}

#[test]
fn a_failed_seal_still_burns_its_sequence_number() {
    let (mut dev, _) = pair(Version::V2);
    let mut buf = [0u8; MAX_FRAME];
    let n1 = dev.seal(FrameType::Data, &mut buf, 5).unwrap();
    let first = buf[..n1].to_vec();
    // The frame is "lost" (transport failure); the next one must use a new seq.
    let n2 = dev.seal(FrameType::Data, &mut buf, 5).unwrap();
    assert_ne!(&first[4..8], &buf[4..8]);
    assert_eq!(n1, n2);
}

#[test]
fn tampered_replayed_and_reordered_frames() {
    for v in BOTH {
        let (mut dev, mut gw) = pair(v);
        let mut out = vec![0u8; MAX_MESSAGE];
        let f = seal_message(&mut gw, b"first").unwrap().remove(0);
        let g = seal_message(&mut gw, b"second").unwrap().remove(0);
        // reorder: the second before the first
        assert_eq!(
            dev.receive(&mut g.clone(), &mut out),
            Err(Error::ReplayDetected)
        );
        // tamper every byte position of the first frame: always refused
        for pos in 0..f.len() {
            let mut t = f.clone();
            t[pos] ^= 0x80;
            let r = dev.receive(&mut t, &mut out);
            assert!(r.is_err(), "{v:?}: flipping byte {pos} was accepted");
        }
        assert_eq!(dev.receive(&mut f.clone(), &mut out), Ok(Rx::Message(5)));
        // replay
        assert_eq!(
            dev.receive(&mut f.clone(), &mut out),
            Err(Error::ReplayDetected)
        );
        assert_eq!(dev.receive(&mut g.clone(), &mut out), Ok(Rx::Message(6)));
    }
}

#[test]
fn v2_directional_keys_refuse_reflected_frames_v1_does_not() {
    for v in BOTH {
        let (mut dev, _) = pair(v);
        let (mut dev2, _) = pair(v);
        let mut f = seal_message(&mut dev, b"echo").unwrap();
        let mut out = [0u8; 16];
        let r = dev2.receive(&mut f[0], &mut out);
        match v {
            Version::V1 => assert_eq!(r, Ok(Rx::Message(4))),
            Version::V2 => assert_eq!(r, Err(Error::CryptoFailed)),
        }
    }
}

#[test]
fn a_stale_opened_frame_is_refused_not_processed_and_never_panics() {
    // Before: process() trusted the freshness found when the frame was opened. A frame
    // opened, then overtaken by one 70 seqs newer, shifted the replay window by more than 63
    // (a panic with overflow checks) and was delivered.
    let (mut dev, mut gw) = pair(Version::V2);
    dev.set_datagram(true);
    gw.set_datagram(true);
    let mut frames = vec![];
    for _ in 0..71 {
        frames.push(seal_message(&mut gw, b"m").unwrap().remove(0));
    }
    let mut old = frames[0].clone();
    let mut new = frames[70].clone();
    let mut out = [0u8; 8];
    let o_old = dev.open(&mut old).unwrap();
    let o_new = dev.open(&mut new).unwrap();
    assert_eq!(o_old.freshness(), Freshness::Fresh);
    assert_eq!(dev.process(o_new, &mut out), Ok(Rx::Message(1)));
    assert_eq!(dev.process(o_old, &mut out), Err(Error::ReplayDetected));
    // The same on a stream: a frame opened twice is processed once.
    let (mut dev, mut gw) = pair(Version::V1);
    let f = seal_message(&mut gw, b"m").unwrap().remove(0);
    let (mut a, mut b) = (f.clone(), f);
    let oa = dev.open(&mut a).unwrap();
    let ob = dev.open(&mut b).unwrap();
    assert_eq!(dev.process(oa, &mut out), Ok(Rx::Message(1)));
    assert_eq!(dev.process(ob, &mut out), Err(Error::ReplayDetected));
}

#[test]
fn counters_never_move_back() {
    let (mut dev, mut gw) = pair(Version::V2);
    let mut out = [0u8; 8];
    for _ in 0..3 {
        let mut f = seal_message(&mut gw, b"m").unwrap().remove(0);
        assert_eq!(dev.receive(&mut f, &mut out), Ok(Rx::Message(1)));
    }
    assert_eq!(dev.rx_next(), 3);
    dev.set_rx_next(0);
    assert_eq!(
        dev.rx_next(),
        3,
        "set_rx_next cannot move the receive counter back"
    );
    let mut replay = {
        let (mut _d2, mut g2) = pair(Version::V2);
        seal_message(&mut g2, b"m").unwrap().remove(0)
    };
    assert_eq!(
        dev.receive(&mut replay, &mut out),
        Err(Error::ReplayDetected)
    );
    dev.set_tx_next(0);
    assert_eq!(dev.tx_next(), 0);
    dev.set_tx_next(10);
    dev.set_tx_next(2);
    assert_eq!(
        dev.tx_next(),
        10,
        "set_tx_next cannot move the send counter back"
    );
}

/// Seals `parts` as consecutive frames of one message: fragments, then (when `ends`) the
/// last as DATA.
fn seal_parts(s: &mut Session, parts: &[&[u8]], ends: bool) -> Vec<Vec<u8>> {
    let mut buf = [0u8; MAX_FRAME];
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ty = if ends && i + 1 == parts.len() {
                FrameType::Data
            } else {
                FrameType::DataFrag
            };
            let n = s.seal_plaintext(ty, p, &mut buf).unwrap();
            buf[..n].to_vec()
        })
        .collect()
}

#[test]
fn a_gateway_message_across_the_device_rekey_is_whole_on_datagrams_refused_on_streams() {
    // usmp 1.2.2 takes the device's REKEY between two fragments of its own message and seals
    // the rest under the new keys from seq 0. On a datagram link (stop-and-wait) that is the
    // only way frames of two keys meet in one message; on a stream an attacker who deletes
    // the old key's last frames could splice two messages the same way, so it is refused.
    for dgram in [false, true] {
        let (mut dev, mut gw) = pair(Version::V2);
        dev.set_datagram(dgram);
        gw.set_datagram(dgram);
        let msg = pattern(1000, 7);
        let mut first = seal_parts(&mut gw, &[&msg[..452]], false);
        let mut buf = [0u8; MAX_FRAME];
        let n = dev.start_rekey(&[9; 32], &mut buf).unwrap();
        let mut out = vec![0u8; MAX_MESSAGE];
        assert_eq!(gw.receive(&mut buf[..n], &mut out), Ok(Rx::Rekeyed));
        let mut rest = seal_parts(&mut gw, &[&msg[452..904], &msg[904..]], true);
        assert_eq!(header_seq_of(&rest[0]), 0);
        assert_eq!(dev.receive(&mut first[0], &mut out), Ok(Rx::Fragment));
        let r = deliver(&mut dev, &mut rest, &mut out);
        if dgram {
            assert_eq!(r, Ok(Rx::Message(1000)));
            assert_eq!(&out[..1000], &msg[..]);
        } else {
            assert_eq!(r, Err(Error::Fragmentation));
        }
    }
}

#[test]
fn a_gap_under_the_previous_key_drops_the_message_held_under_it() {
    // Datagram link: the gateway's first message ends under the old key (three frames), then
    // its next one starts under the new key at seq 0. The device got the first fragment,
    // lost the second and sees the third: the first message has lost a part, and the second
    // must come alone, not spliced onto it.
    let (mut dev, mut gw) = pair(Version::V2);
    dev.set_datagram(true);
    gw.set_datagram(true);
    let m1 = pattern(1000, 1);
    let mut f = seal_parts(&mut gw, &[&m1[..452], &m1[452..904], &m1[904..]], true);
    let mut buf = [0u8; MAX_FRAME];
    let n = dev.start_rekey(&[3; 32], &mut buf).unwrap();
    let mut out = vec![0u8; MAX_MESSAGE];
    assert_eq!(gw.receive(&mut buf[..n], &mut out), Ok(Rx::Rekeyed));
    let m2 = pattern(30, 2);
    let mut g = seal_parts(&mut gw, &[&m2], true);
    assert_eq!(dev.receive(&mut f[0], &mut out), Ok(Rx::Fragment));
    assert_eq!(dev.receive(&mut f[2], &mut out), Err(Error::ReplayDetected));
    assert!(!dev.reassembling());
    assert_eq!(dev.receive(&mut g[0], &mut out), Ok(Rx::Message(30)));
    assert_eq!(&out[..30], &m2[..]);
}

fn header_seq_of(f: &[u8]) -> u32 {
    u32::from_le_bytes([f[4], f[5], f[6], f[7]])
}
