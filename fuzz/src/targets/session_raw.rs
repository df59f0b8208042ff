//! The session receive path with keys the frames do not know: `Session::receive` (and in
//! datagram mode `open` + `process`) on arbitrary frames, CRCs optionally repaired so the
//! nonce and tag checks are reached; interleaved with seals and (v2) REKEYs of our own.
//! Input: cfg (bit 0: v1, bit 1: datagram, bit 2: repair CRCs), tx key, rx key, session id,
//! then ops. Invariants: no panic, no out-of-bounds write of the message buffer (ASan; it is
//! heap-allocated at the requested size), and nothing is accepted unless the input chose a
//! vector key (the fuzzer cannot produce an AES-GCM tag).
use crate::{fix_crc, version_from, Input, V1_KEY, V2_C2S, V2_S2C};
use usmp::frame::FrameType;
use usmp::session::{Session, MAX_MESSAGE};

/// One execution of the target.
pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let cfg = inp.u8();
    let version = version_from(cfg);
    let tx: [u8; 32] = inp.array();
    let rx: [u8; 32] = inp.array();
    let sid: [u8; 16] = inp.array();
    let mut s = Session::new(version, &tx, &rx, &sid);
    s.set_datagram(cfg & 2 != 0);
    while !inp.is_empty() {
        match inp.u8() % 8 {
            0..=4 => {
                let Some(c) = inp.chunk() else { break };
                let mut f = c.to_vec();
                if cfg & 4 != 0 {
                    fix_crc(&mut f);
                }
                let cap = usize::from(inp.u16()) % (MAX_MESSAGE + 64);
                let mut msg = vec![0u8; cap];
                let r = s.receive(&mut f, &mut msg);
                // Only the vector keys can open the vector frames; anything accepted under
                // another key would be a forgery.
                let vector_key = [V1_KEY, V2_C2S, V2_S2C].contains(s.rx_key());
                assert!(
                    r.is_err() || vector_key,
                    "accepted a frame under an unknown key: {r:?}"
                );
            }
            5 => s.abandon_message(),
            6 => {
                let ty = [
                    FrameType::Data,
                    FrameType::DataFrag,
                    FrameType::Ping,
                    FrameType::Pong,
                    FrameType::Bye,
                    FrameType::Hello,
                    FrameType::Error,
                ][usize::from(inp.u8() % 7)];
                let n = usize::from(inp.u16() % 600);
                let pt = inp.message(n);
                let _ = crate::seal(&mut s, ty, &pt);
            }
            _ => {
                let salt: [u8; 32] = inp.array();
                let mut buf = [0u8; usmp::frame::MAX_FRAME];
                let _ = s.start_rekey(&salt, &mut buf);
            }
        }
    }
}
