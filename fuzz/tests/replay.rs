//! Replays fuzz inputs through the harnesses without libFuzzer, so they also run under Miri
//! (which checks the library's `unsafe` code: the C API, the private state inside `usmp_t`):
//!
//! ```sh
//! python3 fuzz/seed_corpus.py
//! MIRIFLAGS=-Zmiri-disable-isolation cargo +nightly miri test --manifest-path fuzz/Cargo.toml --test replay
//! cargo test --manifest-path fuzz/Cargo.toml --test replay     # natively, fast
//! ```
//!
//! Inputs: `fuzz/corpus/<target>/seed-*` (the seeds; `USMP_REPLAY_ALL=1` takes the whole
//! corpus) and `fuzz/regressions/<target>/*` minus the open findings of
//! `fuzz/regressions/EXPECTED_FAILURES`. `USMP_REPLAY_MAX=n` caps the corpus inputs per target
//! (regressions always run).

use std::path::PathBuf;

usmp_fuzz::port_hooks!();
usmp_fuzz::ota_hooks!();

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let root: PathBuf = [env!("CARGO_MANIFEST_DIR")].iter().collect();
    let all = std::env::var_os("USMP_REPLAY_ALL").is_some();
    let expected =
        std::fs::read_to_string(root.join("regressions/EXPECTED_FAILURES")).unwrap_or_default();
    let max = std::env::var("USMP_REPLAY_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    let mut files = vec![];
    for dir in ["corpus", "regressions"] {
        let Ok(rd) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut found = vec![];
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let wanted = dir == "regressions" || all || name.starts_with("seed-");
            let open = expected
                .lines()
                .any(|l| l.trim() == format!("{target}/{name}"));
            if wanted && !open {
                found.push(e.path());
            }
        }
        found.sort();
        if dir == "corpus" {
            found.truncate(max); // the cap is for the corpus: regressions always run
        }
        files.extend(found);
    }
    assert!(
        !files.is_empty(),
        "no inputs for {target}: run python3 fuzz/seed_corpus.py"
    );
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

macro_rules! replay {
    ($($(#[$m:meta])* $t:ident),*) => {$(
        #[test]
        $(#[$m])*
        fn $t() {
            for d in inputs(stringify!($t)) {
                usmp_fuzz::targets::$t::run(&d);
            }
        }
    )*};
}

replay!(
    frame,
    handshake,
    responder,
    session_raw,
    session_keyed,
    datagram,
    capi,
    // Each seed is a handshake and up to hundreds of polls: tens of minutes under Miri, where
    // `interleave_curated` runs instead.
    #[cfg_attr(miri, ignore)]
    interleave,
    // Safe code only (its C face is not driven here), and slow under Miri (two minutes for
    // one seed): natively only.
    #[cfg_attr(miri, ignore)]
    discovery,
    cobs
);

/// The OTA target's seeds and regressions. Not under Miri: they verify Ed25519 signatures,
/// minutes each there; `ota_curated` covers the C API's unsafe code instead.
#[test]
#[cfg_attr(miri, ignore)]
fn ota() {
    for d in inputs("ota") {
        usmp_fuzz::targets::ota::run(&d);
    }
}

/// The OTA C API without a signature check, short enough for Miri: a clean receiver fed
/// a chunk, DONE, ABORT and a message of another version; then a receiver whose private
/// state is input bytes, laid out (Receiver, src/ota/mod.rs) as a transfer in progress of
/// the vector manifest at offset 0, fed a chunk (the lax slot refuses it: no begin), DONE
/// and a malformed message. Misuse (short reply buffer) is in every run.
#[test]
fn ota_curated() {
    fn chunk(out: &mut Vec<u8>, m: &[u8]) {
        out.extend_from_slice(&(m.len() as u16).to_le_bytes());
        out.extend_from_slice(m);
    }
    let msgs: [&[u8]; 4] = [
        b"OT\x01\x03\0\0\0\0abc",
        b"OT\x01\x05",
        b"OT\x01\x07",
        b"OT\x02\x01",
    ];
    let mut clean = vec![1u8];
    for m in msgs {
        chunk(&mut clean, m);
    }
    usmp_fuzz::targets::ota::run(&clean);

    let vectors = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/ota/vectors.json"
    ))
    .unwrap();
    let at = vectors.find("\"manifest\": \"").unwrap() + 13;
    let manifest: Vec<u8> = (0..80)
        .map(|i| u8::from_str_radix(&vectors[at + 2 * i..at + 2 * i + 2], 16).unwrap())
        .collect();
    let mut state = vec![0u8; 8 * (usmp::ota::capi::USMP_OTA_OPAQUE_WORDS - 1)];
    state[68..70].copy_from_slice(&1800u16.to_le_bytes()); // max_chunk
    state[70] = 1; // RECEIVING
    state[72..152].copy_from_slice(&manifest);
    let mut garbage = vec![3u8];
    garbage.extend_from_slice(&state);
    for m in [&b"OT\x01\x03\0\0\0\0abc"[..], b"OT\x01\x05", b"OT\x01"] {
        chunk(&mut garbage, m);
    }
    usmp_fuzz::targets::ota::run(&garbage);
}

/// A few C API scenarios, short enough for Miri (an X25519 takes about a minute there):
/// v2 and v1 streams, a datagram link with acknowledgements, fragments with a PING between
/// them, REKEY both ways, send failure, copy, move, reconnect, close.
#[test]
fn capi_curated() {
    const HS: &[u8] = &[0x0a, 0x0a]; // the responder's CHALLENGE, then its SESSION_OK
    fn recv() -> Vec<u8> {
        vec![0x01, 9] // usmp_recv into 1808 bytes
    }
    fn gw_msg(n: u16) -> Vec<u8> {
        vec![0x06, n as u8, (n >> 8) as u8, 0x33, 0x01] // length, pattern, not mutated
    }
    const GW_NEXT: &[u8] = &[0x07, 0x01];
    const GW_PING: &[u8] = &[0x08, 0x00, 0x00, 0x00, 0x01];
    let mut gw_rekey = vec![0x08, 0x04, 0x00];
    gw_rekey.extend([0xC0; 32]);
    gw_rekey.push(0x01);
    let send = |n: u16| vec![0x04, n as u8, (n >> 8) as u8];
    let cat = |parts: &[&[u8]]| parts.concat();
    let programs: Vec<Vec<u8>> = vec![
        // v2 stream: a fragmented message with a PING between fragments (refused), reconnect
        cat(&[
            &[0x00, 0x00],
            HS,
            &recv(),
            &gw_msg(1000),
            GW_PING,
            &[0x08, 0x00], // usmp_reconnect; the dial succeeds
            HS,
            &send(5),
        ]),
        // v2 stream: message, gateway REKEY, message, device REKEY, fragmented send, close
        cat(&[
            &[0x00, 0x00],
            HS,
            &recv(),
            &gw_msg(3),
            &recv(),
            &gw_rekey,
            &gw_msg(2),
            &[0x07],
            &send(1000),
            &[0x09],
        ]),
        // v1 stream: echo, ping, copy refused, move
        cat(&[
            &[0x01, 0x00],
            HS,
            &send(5),
            &recv(),
            &gw_msg(4),
            &[0x05, 0x0a, 0x00, 0x0a, 0x04],
            &send(1),
        ]),
        // v2 datagram with acknowledgements: message and REKEY
        cat(&[
            &[0x12, 0x00],
            HS,
            &recv(),
            &gw_msg(500),
            GW_NEXT,
            &[0x07],
            &send(3),
        ]),
        // v2: the 3rd transport send (the first frame of a message) fails; connect again
        cat(&[&[0x00, 0x03], HS, &send(1000), &[0x00], HS, &send(1)]),
    ];
    for p in programs {
        usmp_fuzz::targets::capi::run(&p);
    }
}

/// The non-blocking C API in two short runs, for Miri: a v2 byte stream in 64-byte pieces
/// (a fragmented message each way with a gateway PING among them, the device's REKEY, a
/// message under the new keys, `usmp_nb_close`) and a v2 datagram link (a lost fragment sent
/// again, a duplicated UTACK, a replayed datagram, the device's PING, `usmp_close` from
/// another caller, then CLOSED).
#[test]
fn interleave_curated() {
    const P1: u8 = 0x00; // one poll
    const P8: u8 = 0xe0; // eight polls
    let len = |op: u8, n: u16| vec![op, 0x06, n as u8, (n >> 8) as u8];
    let cat = |parts: &[&[u8]]| parts.concat();
    let stream = cat(&[
        &[0x08, 0xa3, P8], // v2 stream, gateway echo; 30 attempts, 64-byte pieces
        &len(0x06, 1000),  // usmp_nb_send(1000)
        &[0x0c, 0x00, P8], // gateway PING
        &len(0x0a, 1000),  // gateway message
        &[P8, 0x09, P8],   // usmp_nb_rekey
        &len(0x06, 5),
        &[P8, 0x12, 0x00], // usmp_nb_close
    ]);
    let datagram = cat(&[
        &[0x02, 0x03, P8, 0x0d, 0x00], // v2 datagram, 30 attempts; the next fragment lost
        &len(0x06, 600),
        &[P1, 0x0d, 0x03, 0x10, 0x06, P8], // the next UTACK duplicated; 500 ms
        &[0x0e, 0x01, 0x00],               // a gateway datagram replayed
        &[0x08, P8, 0x12, 0x01, P8],       // usmp_nb_ping; usmp_close
    ]);
    for p in [stream, datagram] {
        usmp_fuzz::targets::interleave::run(&p);
    }
}

/// The responder's answers the harnesses know in advance (`capi::check_vector_memo`) are the
/// responder's. Natively only (four X25519).
#[test]
#[cfg_attr(miri, ignore)]
fn vector_memo_is_the_responders() {
    usmp_fuzz::targets::capi::check_vector_memo();
}
