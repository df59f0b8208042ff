//! The responder (`handshake::Responder`) fed arbitrary device frames in sequence, with the
//! vector's server key, nonce and session id, so the vector HELLO and HELLO_ACK in the corpus
//! establish; then the remaining chunks go to the session. Input: cfg byte (bit 0: v1,
//! bit 1: repair CRCs, bit 2: PSK from the input), [psk len + psk], then chunks.
//! Invariants: no panic; CHALLENGE / SESSION_OK well-formed; established only with the vector
//! PSK, for the device id and key whose HELLO_ACK MAC verified, with the vector keys.
use crate::{fix_crc, version_from, Input, DEVICE_ID, NONCE, PSK, SERVER_PRIV, SESSION_ID};
use usmp::frame::{self, FrameType, MAX_FRAME};
use usmp::handshake::{Responder, ResponderStep};
use usmp::session::MAX_MESSAGE;
use usmp::Error;

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
    let mut r = match Responder::new(version, psk, &SERVER_PRIV, &NONCE, &SESSION_ID) {
        Ok(r) => r,
        Err(e) => {
            assert_eq!(e, Error::PskTooShort);
            return;
        }
    };
    let mut out = [0u8; MAX_FRAME];
    let mut session = None;
    let mut msg = vec![0u8; MAX_MESSAGE];
    let mut challenged = false;
    while let Some(c) = inp.chunk() {
        let mut f = c.to_vec();
        if repair {
            fix_crc(&mut f);
        }
        if let Some(s) = session.as_mut() {
            crate::feed_session(s, &mut f, &mut msg);
            continue;
        }
        match r.receive(&f, &mut out) {
            Ok(ResponderStep::Send(n)) => {
                let (h, ty) = frame::decode(&out[..n], version).expect("CHALLENGE decodes");
                assert_eq!((ty, h.length), (FrameType::Challenge, 64));
                assert_eq!(&out[12..44], &NONCE[..]);
                challenged = true;
            }
            Ok(ResponderStep::Established(n, s)) => {
                crate::trace!("established");
                assert!(challenged);
                assert_eq!(psk, PSK, "HELLO_ACK accepted under another PSK");
                assert_eq!(
                    r.device_id(),
                    &DEVICE_ID,
                    "HELLO_ACK MAC binds the device id"
                );
                let (h, ty) = frame::decode(&out[..n], version).expect("SESSION_OK decodes");
                assert_eq!((ty, h.length), (FrameType::SessionOk, 48));
                assert_eq!(&out[12..28], &SESSION_ID[..]);
                // The HELLO_ACK MAC binds pub_C: only the vector's verifies, so the keys must be
                // the vector keys (swapped), derived from the responder's own X25519 secret.
                let (dev_tx, dev_rx) = crate::vector_keys(version);
                assert!(
                    s.tx_key() == &dev_rx && s.rx_key() == &dev_tx,
                    "established with keys that are not X25519(own secret, pub_C) \
                     (secret wiped by an earlier failed HELLO?)"
                );
                session = Some(s);
            }
            Err(e) => crate::check_error(e),
        }
    }
}
