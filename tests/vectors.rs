//! Every golden vector of the real gateway (tests/vectors/v1, v2), byte-exact, both roles.

mod common;

use common::{arr, hx, inputs, pair, vector};
use serde_json::Value;
use usmp::frame::{self, FrameError, FrameType, MAX_FRAME};
use usmp::handshake::{DeviceHandshake, DeviceStep, Responder, ResponderStep};
use usmp::session::{Rx, Session, PLAINTEXT_OFFSET};
use usmp::{Error, Version};

const BOTH: [Version; 2] = [Version::V1, Version::V2];

fn cases(v: &Value) -> &Vec<Value> {
    v["cases"].as_array().unwrap()
}

#[test]
fn crc16_vectors() {
    for version in BOTH {
        for c in cases(&vector(version, "crc16.json")) {
            let want =
                u16::from_str_radix(c["crc16"].as_str().unwrap().trim_start_matches("0x"), 16)
                    .unwrap();
            assert_eq!(frame::crc16(&hx(&c["input"])), want, "{}", c["label"]);
        }
    }
}

#[test]
fn frame_vectors_encode_and_decode() {
    for version in BOTH {
        for c in cases(&vector(version, "frames.json")) {
            let payload = hx(&c["payload"]);
            let ty = c["type"].as_u64().unwrap() as u8;
            let seq = c["seq"].as_u64().unwrap() as u32;
            let mut buf = [0u8; MAX_FRAME];
            let n = frame::encode(&mut buf, version, ty, seq, &payload).unwrap();
            assert_eq!(
                hex::encode(&buf[..n]),
                c["hex"].as_str().unwrap(),
                "{}",
                c["call"]
            );
            let (h, t) = frame::decode(&buf[..n], version).unwrap();
            assert_eq!(
                (h.seq, t as u8, frame::payload(&buf[..n], &h)),
                (seq, ty, &payload[..])
            );
        }
    }
}

#[test]
fn handshake_vectors_device_side() {
    for version in BOTH {
        let h = vector(version, "handshake.json");
        let i = inputs(version);
        let frames = h["frames"].as_array().unwrap();
        let mut dev =
            DeviceHandshake::new(version, &i.psk, &i.device_id, &i.client_secret).unwrap();
        assert_eq!(
            dev.public_key()[..],
            hx(&h["inputs"]["client_x25519_public (pub_C)"])[..]
        );
        let mut out = [0u8; MAX_FRAME];
        let n = dev.hello(None, &mut out);
        assert_eq!(hex::encode(&out[..n]), frames[0]["hex"].as_str().unwrap());
        let DeviceStep::Send(n) = dev.receive(&hx(&frames[1]["hex"]), &mut out).unwrap() else {
            panic!()
        };
        // The Python 1.1+ client numbers HELLO_ACK seq 2; we send 0 like the C device.
        let (hd, ty) = frame::decode(&out[..n], version).unwrap();
        assert_eq!((ty, hd.seq), (FrameType::HelloAck, 0));
        assert_eq!(frame::payload(&out[..n], &hd), &hx(&h["hmac_client"])[..]);
        assert_eq!(
            frame::payload(&out[..n], &hd),
            &hx(&frames[2]["payload"])[..]
        );
        let DeviceStep::Established(s) = dev.receive(&hx(&frames[3]["hex"]), &mut out).unwrap()
        else {
            panic!()
        };
        let info = &h["client_session_info"];
        match version {
            Version::V1 => {
                assert_eq!(s.tx_key(), &arr::<32>(&h["session_key"]));
                assert_eq!(s.rx_key(), &arr::<32>(&h["session_key"]));
            }
            Version::V2 => {
                assert_eq!(s.tx_key(), &arr::<32>(&info["tx_key"]));
                assert_eq!(s.rx_key(), &arr::<32>(&info["rx_key"]));
                assert_eq!(s.tx_key(), &arr::<32>(&h["k_c2s"]));
            }
        }
        assert_eq!(s.session_id(), &i.session_id);
        assert_eq!(hx(&h["hkdf"]["okm"]).len(), version.okm_len());
    }
}

#[test]
fn handshake_vectors_responder_side() {
    for version in BOTH {
        let h = vector(version, "handshake.json");
        let i = inputs(version);
        let frames = h["frames"].as_array().unwrap();
        let mut gw =
            Responder::new(version, &i.psk, &i.server_secret, &i.nonce, &i.session_id).unwrap();
        let mut out = [0u8; MAX_FRAME];
        let ResponderStep::Send(n) = gw.receive(&hx(&frames[0]["hex"]), &mut out).unwrap() else {
            panic!()
        };
        assert_eq!(hex::encode(&out[..n]), frames[1]["hex"].as_str().unwrap());
        assert_eq!(gw.device_id(), &i.device_id);
        let ResponderStep::Established(n, s) =
            gw.receive(&hx(&frames[2]["hex"]), &mut out).unwrap()
        else {
            panic!()
        };
        assert_eq!(hex::encode(&out[..n]), frames[3]["hex"].as_str().unwrap());
        let info = &h["server_session_info"];
        if version == Version::V2 {
            assert_eq!(s.tx_key(), &arr::<32>(&info["tx_key"]));
            assert_eq!(s.rx_key(), &arr::<32>(&info["rx_key"]));
        }
    }
}

/// Seals every session vector frame with our Session at the vector's seq (byte-exact) and
/// opens it with the peer role, checking what the peer's recv() returned.
#[test]
fn session_vectors_seal_and_open() {
    for version in BOTH {
        for c in cases(&vector(version, "session.json")) {
            let (mut dev, mut gw) = pair(version);
            let (tx, rx) = if c["sender"] == "client" {
                (&mut dev, &mut gw)
            } else {
                (&mut gw, &mut dev)
            };
            let start = c["start_tx_seq"].as_u64().unwrap();
            tx.set_tx_next(start);
            rx.set_rx_next(start);
            let returned = c["peer_recv_results"][0]["returned"]
                .as_str()
                .map(|s| hex::decode(s).unwrap());
            let frames = c["frames"].as_array().unwrap();
            // Plaintext per frame: split the returned message the way send() does.
            let mut msg = returned.clone().unwrap_or_default().into_iter();
            let mut out = vec![0u8; 2000];
            for (k, f) in frames.iter().enumerate() {
                let ty = FrameType::from_byte(f["type"].as_u64().unwrap() as u8, version).unwrap();
                let pt_len = f["ciphertext"].as_str().unwrap().len() / 2;
                let pt: Vec<u8> = msg.by_ref().take(pt_len).collect();
                let mut buf = [0u8; MAX_FRAME];
                buf[PLAINTEXT_OFFSET..PLAINTEXT_OFFSET + pt.len()].copy_from_slice(&pt);
                let n = tx.seal(ty, &mut buf, pt.len()).unwrap();
                assert_eq!(
                    hex::encode(&buf[..n]),
                    f["hex"].as_str().unwrap(),
                    "{} frame {k}",
                    c["label"]
                );
                let mut wire = hx(&f["hex"]);
                let r = rx.receive(&mut wire, &mut out);
                let last = k + 1 == frames.len();
                match ty {
                    FrameType::Data => {
                        assert_eq!(r, Ok(Rx::Message(returned.as_ref().unwrap().len())))
                    }
                    FrameType::DataFrag => assert_eq!(r, Ok(Rx::Fragment)),
                    FrameType::Ping => assert_eq!(r, Ok(Rx::Ping)),
                    FrameType::Pong => assert_eq!(r, Ok(Rx::Pong)),
                    FrameType::Bye => assert_eq!(r, Err(Error::ClosedByPeer)),
                    _ => unreachable!(),
                }
                if last && ty == FrameType::Data {
                    let want = returned.as_ref().unwrap();
                    assert_eq!(&out[..want.len()], &want[..], "{}", c["label"]);
                }
            }
            assert_eq!(
                tx.tx_next(),
                c["tx_seq_after"].as_u64().unwrap(),
                "{}",
                c["label"]
            );
        }
    }
}

fn negative_frame_error(c: &Value) -> Option<Error> {
    let label = c["label"].as_str().unwrap();
    Some(match c["exception"].as_str()? {
        "CRCError" => Error::BadCrc,
        "MagicError" => Error::BadFrame,
        "VersionError" => Error::VersionMismatch,
        "FrameError" if label.starts_with("unknown type") => Error::UnexpectedFrame,
        "ValueError" if label.starts_with("unknown type") => Error::UnexpectedFrame,
        "FrameError" | "PayloadError" => Error::BadFrame,
        _ => return None,
    })
}

#[test]
fn negative_vectors() {
    for version in BOTH {
        let mut checked = 0;
        for c in cases(&vector(version, "negative.json")) {
            let label = c["label"].as_str().unwrap();
            if let Some(input) = c.get("input").filter(|_| !label.starts_with("handshake")) {
                let bytes = hx(input);
                let r = frame::decode(&bytes, version).map_err(Error::from);
                if c["verify_crc"] == false {
                    // We always check the CRC, like the C device (the gateway skips it in the
                    // handshake but never sends a bad one).
                    assert_eq!(r.err(), Some(Error::BadCrc), "{label}");
                } else if c["result"] == "accepted" {
                    let (h, t) = r.unwrap();
                    assert_eq!(
                        (t as u64, frame::payload(&bytes, &h)),
                        (c["type"].as_u64().unwrap(), &hx(&c["payload"])[..])
                    );
                } else {
                    assert_eq!(r.err(), negative_frame_error(c), "{label}");
                }
                checked += 1;
                continue;
            }
            if let Some(frames) = c["frames"].as_array() {
                let (mut dev, mut gw) = pair(version);
                // Session cases: frames are client->server; feed them to the gateway role, except
                // the "wrong key" case, which feeds them to the device.
                let wrong_key = label.contains("wrong key");
                let rx = if wrong_key { &mut dev } else { &mut gw };
                let mut out = vec![0u8; 2000];
                if label.contains("9 consecutive PINGs") {
                    // The flood guard is the connection's (control frames per second).
                    let mut conn = usmp::conn::Conn::default();
                    conn.establish(std::mem::take(rx), false, 0);
                    let mut reply = usmp::conn::Reply::new();
                    let mut last = Ok(usmp::conn::Got::Nothing);
                    for f in frames {
                        let mut b = hx(f);
                        last = conn.on_input(10, &mut b, Some(&mut out), &mut reply);
                        if last.is_err() {
                            break;
                        }
                    }
                    assert_eq!(last, Err(Error::Flood), "{label}");
                    assert!(!conn.is_established(), "{label}: a flood ends the session");
                    checked += 1;
                    continue;
                }
                let mut last = Ok(Rx::Pong);
                for f in frames {
                    let mut b = hx(f);
                    last = rx.receive(&mut b, &mut out);
                    if last.is_err() {
                        break;
                    }
                }
                let want = if wrong_key && version == Version::V1 {
                    // v1 uses one key both ways: a reflected frame is accepted.
                    Ok(Rx::Message(5))
                } else {
                    Err(
                        match c["results"].as_array().unwrap().last().unwrap()["exception"]
                            .as_str()
                            .unwrap()
                        {
                            "CryptoError" => Error::CryptoFailed,
                            "SequenceError" if label.contains("PING between") => {
                                Error::Fragmentation
                            }
                            "SequenceError" => Error::ReplayDetected,
                            "PayloadError" => Error::Fragmentation,
                            "ConnectionClosedError" => Error::ClosedByPeer,
                            e => panic!("{label}: unmapped {e}"),
                        },
                    )
                };
                assert_eq!(last, want, "{label}");
                checked += 1;
                continue;
            }
            match label {
                l if l.starts_with("send(1809") => {
                    assert_eq!(Session::frames_for(1809), Err(Error::BufferOverflow));
                    assert_eq!(Session::frames_for(1808), Ok(4));
                }
                l if l.starts_with("send() with tx_seq=0xFFFFFFFF") => {
                    let (mut dev, _) = pair(version);
                    dev.set_tx_next(0xFFFF_FFFF);
                    assert_eq!(dev.check_room(1), Err(Error::SeqExhausted));
                    let mut buf = [0u8; MAX_FRAME];
                    assert_eq!(
                        dev.seal(FrameType::Data, &mut buf, 0),
                        Err(Error::SeqExhausted)
                    );
                    // BYE may still take the last number, once.
                    assert!(dev.seal_control(FrameType::Bye, &mut buf).is_ok());
                    assert_eq!(
                        dev.seal_control(FrameType::Bye, &mut buf),
                        Err(Error::SeqExhausted)
                    );
                }
                l if l.starts_with("encode_frame with 481") => {
                    let mut buf = [0u8; 600];
                    assert!(frame::encode(&mut buf, version, 5, 0, &[0; 481]).is_none());
                }
                l if l.contains("server PSK differs") => {
                    let i = inputs(version);
                    let r =
                        common::pair_with(version, &i.psk, b"another-psk-of-enough-length!!", &i);
                    assert_eq!(r.err(), Some(Error::AuthFailed));
                }
                l if l.contains("HELLO payload 37") || l.contains("HELLO with corrupted CRC") => {
                    let i = inputs(version);
                    let mut gw =
                        Responder::new(version, &i.psk, &i.server_secret, &i.nonce, &i.session_id)
                            .unwrap();
                    let mut out = [0u8; MAX_FRAME];
                    let want = if l.contains("37") {
                        Error::BadFrame
                    } else {
                        Error::BadCrc
                    };
                    assert_eq!(
                        gw.receive(&hx(&c["input"]), &mut out).err(),
                        Some(want),
                        "{l}"
                    );
                }
                l if l.contains("EMPTY psk") => {
                    // The v1 gateway accepts an empty PSK; we refuse it: it authenticates nobody.
                    let i = inputs(version);
                    assert_eq!(
                        DeviceHandshake::new(version, b"", &i.device_id, &i.client_secret).err(),
                        Some(Error::PskTooShort)
                    );
                }
                l if l.contains("9-byte PSK") => {
                    let i = inputs(version);
                    assert_eq!(
                        DeviceHandshake::new(version, b"123456789", &i.device_id, &i.client_secret)
                            .err(),
                        Some(Error::PskTooShort)
                    );
                }
                l if l.contains("USMPServer(psk=5 bytes)") => {
                    let i = inputs(version);
                    assert_eq!(
                        Responder::new(
                            version,
                            b"12345",
                            &i.server_secret,
                            &i.nonce,
                            &i.session_id
                        )
                        .err(),
                        Some(Error::PskTooShort)
                    );
                }
                l => panic!("negative vector not covered: {l}"),
            }
            checked += 1;
        }
        assert!(checked >= 25, "{version:?}: only {checked} negative cases");
    }
}

#[test]
fn rekey_vector() {
    let r = vector(Version::V2, "rekey.json");
    let (mut dev, mut gw) = pair(Version::V2);
    dev.set_tx_next(5);
    gw.set_rx_next(5);
    let frames = r["frames"].as_array().unwrap();
    let mut buf = [0u8; MAX_FRAME];
    let n = dev.start_rekey(&arr(&r["salt"]), &mut buf).unwrap();
    assert_eq!(hex::encode(&buf[..n]), frames[0]["hex"].as_str().unwrap());
    assert_eq!(dev.tx_key(), &arr::<32>(&r["initiator_new_tx"]));
    assert_eq!(dev.rx_key(), &arr::<32>(&r["initiator_new_rx"]));
    let mut out = [0u8; 64];
    let mut wire = hx(&frames[0]["hex"]);
    assert_eq!(gw.receive(&mut wire, &mut out), Ok(Rx::Rekeyed));
    assert_eq!(gw.tx_key(), &arr::<32>(&r["responder_new_tx"]));
    assert_eq!(gw.rx_key(), &arr::<32>(&r["responder_new_rx"]));
    let msg = hx(&r["server_recv_results"][0]["returned"]);
    buf[PLAINTEXT_OFFSET..PLAINTEXT_OFFSET + msg.len()].copy_from_slice(&msg);
    let n = dev.seal(FrameType::Data, &mut buf, msg.len()).unwrap();
    assert_eq!(hex::encode(&buf[..n]), frames[1]["hex"].as_str().unwrap());
    let mut wire = hx(&frames[1]["hex"]);
    assert_eq!(gw.receive(&mut wire, &mut out), Ok(Rx::Message(msg.len())));
    assert_eq!(&out[..msg.len()], &msg[..]);
    let after = &r["client_state_after"];
    assert_eq!(dev.tx_next(), after["tx_seq"].as_u64().unwrap());
    assert_eq!(dev.rx_next(), after["rx_seq"].as_u64().unwrap());
}

/// The v2 HELLO_RETRY round as the device sees it (its UDP use comes with datagram mode).
#[test]
fn hello_retry_cookie_vector() {
    let v = vector(Version::V2, "udp_cookie.json");
    let i = inputs(Version::V2);
    let mut dev =
        DeviceHandshake::new(Version::V2, &i.psk, &i.device_id, &i.client_secret).unwrap();
    let mut out = [0u8; MAX_FRAME];
    let n = dev.hello(None, &mut out);
    assert_eq!(
        hex::encode(&out[..n]),
        v["client_hello_datagram"].as_str().unwrap()
    );
    let retry = hx(&v["server_replies"][1]);
    let DeviceStep::Send(n) = dev.receive(&retry, &mut out).unwrap() else {
        panic!()
    };
    let py = hx(&v["client_hello_with_cookie_datagram (Python client, seq=1)"]);
    // Same payload (device id, pub key, cookie); we number it seq 0 like the C device.
    assert_eq!(&out[12..n], &py[12..]);
    assert_eq!(&out[12 + 38..n], &hx(&v["cookie"])[..]);
    let (h, t) = frame::decode(&out[..n], Version::V2).unwrap();
    assert_eq!((t, h.seq, h.length), (FrameType::Hello, 0, 54));
    // v1 has no HELLO_RETRY: type 0x0A is unknown there.
    assert_eq!(FrameType::from_byte(0x0A, Version::V1), None);
    let _ = FrameError::UnknownType;
}
