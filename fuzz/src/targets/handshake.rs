//! The device handshake (`DeviceHandshake::receive`) fed arbitrary gateway frames in
//! sequence, with the vector's X25519 key and PSK, so the vector CHALLENGE and SESSION_OK in
//! the corpus reach the MAC check and establish; once established, the remaining chunks go
//! to the session. Input: cfg byte (bit 0: v1, bit 1: repair CRCs, bit 2: PSK from the input),
//! [psk len + psk], then chunks.
//! Invariants: no panic; replies are well-formed frames of the expected type; a session is
//! only established with the vector PSK (the fuzzer cannot forge the SESSION_OK MAC), and
//! then with the vector keys.
use crate::{fix_crc, version_from, Input, CLIENT_PRIV, DEVICE_ID, PSK};
use usmp::frame::{self, FrameType, MAX_FRAME};
use usmp::handshake::{DeviceHandshake, DeviceStep};
use usmp::session::MAX_MESSAGE;
use usmp::{Error, Version};

/// One execution of the target.
pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let cfg = inp.u8();
    let version = version_from(cfg);
    let repair = cfg & 2 != 0;
    let psk: &[u8] = if cfg & 4 != 0 {
        let n = usize::from(inp.u8() % 48);
        inp.take(n)
    } else {
        PSK
    };
    let mut hs = match DeviceHandshake::new(version, psk, &DEVICE_ID, &CLIENT_PRIV) {
        Ok(h) => h,
        Err(e) => {
            assert_eq!(e, Error::PskTooShort);
            assert!(psk.len() < version.min_psk_len());
            return;
        }
    };
    let mut out = [0u8; MAX_FRAME];
    let n = hs.hello(None, &mut out);
    let (h, ty) = frame::decode(&out[..n], version).expect("HELLO decodes");
    assert_eq!((ty, h.length), (FrameType::Hello, 38));

    let mut session = None;
    let mut msg = vec![0u8; MAX_MESSAGE];
    while let Some(c) = inp.chunk() {
        let mut f = c.to_vec();
        if repair {
            fix_crc(&mut f);
        }
        if let Some(s) = session.as_mut() {
            crate::feed_session(s, &mut f, &mut msg);
            continue;
        }
        let waiting = hs.awaiting_session_ok();
        match hs.receive(&f, &mut out) {
            Ok(DeviceStep::Send(n)) => {
                let (h, ty) = frame::decode(&out[..n], version).expect("reply decodes");
                match ty {
                    FrameType::HelloAck => assert_eq!(h.length, 32),
                    FrameType::Hello => {
                        assert_eq!(version, Version::V2);
                        assert_eq!(h.length, 54);
                    }
                    t => panic!("device replied with {t:?}"),
                }
                assert!(hs.awaiting_session_ok() || ty == FrameType::Hello);
            }
            // A stream answers one CHALLENGE; a repeated one is refused (an error), so this
            // only comes in datagram mode, which this target does not use.
            Ok(DeviceStep::Nothing) => panic!("a stream handshake ignored a frame"),
            Ok(DeviceStep::Established(s)) => {
                crate::trace!("established");
                assert!(waiting, "established without HELLO_ACK");
                assert_eq!(psk, PSK, "SESSION_OK accepted under another PSK");
                let (h, _) = frame::decode(&f, version).expect("SESSION_OK decodes");
                let p = frame::payload(&f, &h);
                assert_eq!(&s.session_id()[..], &p[..16]);
                assert_eq!((s.tx_next(), s.rx_next()), (0, 0));
                // The SESSION_OK MAC binds the CHALLENGE nonce and pub_S, and only the vector's
                // verifies under the vector PSK: the keys must be the vector keys, derived from
                // the device's own X25519 secret.
                let (tx, rx) = crate::vector_keys(version);
                assert!(
                    s.tx_key() == &tx && s.rx_key() == &rx,
                    "established with keys that are not X25519(own secret, pub_S) \
                     (secret wiped by an earlier failed CHALLENGE?)"
                );
                session = Some(s);
            }
            Err(e) => crate::check_error(e),
        }
    }
}
