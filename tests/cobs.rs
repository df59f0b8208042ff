//! Property tests of the COBS codec (src/cobs.rs): round trips for any datagram in output
//! pieces of any size, sequences, damage that stays inside the datagram it hit, and
//! resynchronisation after arbitrary bytes; then examples and edge cases. The decoder is also
//! fuzzed (fuzz/fuzz_targets/cobs.rs).
#![cfg(feature = "uart")]

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use usmp::cobs::{
    encode, encoded_len, encoded_len_max, Decoder, DropReason, Encoder, Event, MAX_DATAGRAM,
};

/// CI runs a fixed seed (reproducible); set PROPTEST_SEED=random (or a number) to explore.
fn seed() -> RngSeed {
    match std::env::var("PROPTEST_SEED").as_deref() {
        Ok("random") => RngSeed::Random,
        Ok(n) => RngSeed::Fixed(n.parse().unwrap_or(0xC0B5)),
        Err(_) => RngSeed::Fixed(0xC0B5),
    }
}

fn wire(d: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; encoded_len_max(d.len())];
    let n = encode(d, &mut out).unwrap();
    out.truncate(n);
    out
}

/// Every datagram and every drop, in order.
fn decode_all(bytes: &[u8]) -> (Vec<Vec<u8>>, Vec<DropReason>) {
    let mut dec = Decoder::new();
    let (mut got, mut drops) = (Vec::new(), Vec::new());
    for &b in bytes {
        match dec.push(b) {
            Some(Event::Datagram(n)) => got.push(dec.datagram(n).to_vec()),
            Some(Event::Dropped(d)) => drops.push(d),
            None => {}
        }
    }
    (got, drops)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, rng_seed: seed(), failure_persistence: None, ..ProptestConfig::default() })]

    /// encode then decode is the identity, for any datagram up to the limit, however
    /// small the output pieces are.
    #[test]
    fn round_trip(d in prop::collection::vec(any::<u8>(), 0..=MAX_DATAGRAM), piece in 1usize..40) {
        let mut enc = Encoder::new(&d);
        let mut line = Vec::new();
        let mut buf = vec![0u8; piece];
        loop {
            let n = enc.fill(&mut buf);
            if n == 0 { break; }
            line.extend_from_slice(&buf[..n]);
        }
        prop_assert!(enc.is_done());
        prop_assert_eq!(line.len(), wire(&d).len());
        prop_assert!(line.len() <= encoded_len_max(d.len()));
        // Zeros only at the two ends.
        prop_assert_eq!(line.iter().filter(|&&b| b == 0).count(), 2);
        prop_assert_eq!((line[0], line[line.len() - 1]), (0, 0));
        prop_assert_eq!(decode_all(&line), (vec![d], vec![]));
    }

    /// Several datagrams back to back come out one by one, in order.
    #[test]
    fn sequences(ds in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8)) {
        let line: Vec<u8> = ds.iter().flat_map(|d| wire(d)).collect();
        prop_assert_eq!(decode_all(&line), (ds, vec![]));
    }

    /// Damage to one datagram's bytes (a changed, lost or extra byte) never costs a
    /// neighbour: the datagrams before and after it come out intact.
    #[test]
    fn damage_stays_local(
        a in prop::collection::vec(any::<u8>(), 0..200),
        b in prop::collection::vec(any::<u8>(), 1..200),
        c in prop::collection::vec(any::<u8>(), 0..200),
        at in any::<prop::sample::Index>(),
        kind in 0u8..3,
        val in any::<u8>(),
    ) {
        let mut hit = wire(&b);
        // Damage strictly inside the datagram (not its delimiters).
        let i = 1 + at.index(hit.len() - 2);
        match kind {
            0 => hit[i] = val,
            1 => { hit.remove(i); }
            _ => hit.insert(i, val),
        }
        let mut line = wire(&a);
        line.extend(&hit);
        line.extend(wire(&c));
        let (got, _) = decode_all(&line);
        prop_assert_eq!(got.first(), Some(&a));
        prop_assert_eq!(got.last(), Some(&c));
        prop_assert!(got.len() <= 4, "one fault, at most one extra piece: {}", got.len());
    }

    /// Arbitrary bytes: no panic, every datagram fits, and a good datagram after them
    /// is always found.
    #[test]
    fn any_input_then_resync(junk in prop::collection::vec(any::<u8>(), 0..2000), d in prop::collection::vec(any::<u8>(), 0..100)) {
        let mut line = junk;
        line.extend(wire(&d));
        let (got, _) = decode_all(&line);
        prop_assert!(got.iter().all(|g| g.len() <= MAX_DATAGRAM));
        prop_assert_eq!(got.last(), Some(&d));
    }
}

// Examples and edge cases.

#[test]
fn known_encodings() {
    // The textbook cases, between our delimiters.
    assert_eq!(wire(&[]), [0, 1, 0]);
    assert_eq!(wire(&[0]), [0, 1, 1, 0]);
    assert_eq!(wire(&[0, 0]), [0, 1, 1, 1, 0]);
    assert_eq!(wire(&[0x11, 0x22, 0, 0x33]), [0, 3, 0x11, 0x22, 2, 0x33, 0]);
    assert_eq!(
        wire(&[0x11, 0x22, 0x33, 0x44]),
        [0, 5, 0x11, 0x22, 0x33, 0x44, 0]
    );
    assert_eq!(wire(&[0x11, 0, 0, 0]), [0, 2, 0x11, 1, 1, 1, 0]);
    let run: Vec<u8> = (1..=254).collect();
    let mut want = vec![0, 0xFF];
    want.extend(&run);
    want.push(0);
    assert_eq!(
        wire(&run),
        want,
        "254 non-zero bytes: one full run, nothing after it"
    );
    let mut run255 = run.clone();
    run255.push(0xFF);
    let mut want = vec![0, 0xFF];
    want.extend(&run);
    want.extend([2, 0xFF, 0]);
    assert_eq!(wire(&run255), want);
    let mut zero_then_run = vec![0u8];
    zero_then_run.extend(&run);
    let mut want = vec![0, 1, 0xFF];
    want.extend(&run);
    want.push(0);
    assert_eq!(wire(&zero_then_run), want);
}

#[test]
fn encoded_len_is_exact_without_zeros() {
    for len in [0usize, 1, 2, 253, 254, 255, 492, 508, 509] {
        let d = vec![0x5A; len];
        assert_eq!(wire(&d).len(), encoded_len(len), "len {len}");
        assert!(encoded_len(len) <= encoded_len_max(len));
    }
    assert_eq!(encoded_len_max(MAX_DATAGRAM), 496);
}

#[test]
fn encode_refuses_a_short_buffer() {
    let d = [7u8; 10];
    let mut out = [0u8; 12];
    assert_eq!(encode(&d, &mut out), None);
    let mut out = [0u8; 13];
    assert_eq!(encode(&d, &mut out), Some(13));
}

#[test]
fn decoder_drops_and_resynchronises() {
    // A run that promises 5 data bytes but the delimiter comes after 2.
    assert_eq!(
        decode_all(&[0, 6, 1, 2, 0]),
        (vec![], vec![DropReason::Truncated])
    );
    // Delimiters alone are nothing.
    assert_eq!(decode_all(&[0, 0, 0]), (vec![], vec![]));
    // Garbage, then a good datagram.
    let mut line = vec![0x42, 0x13, 0x99];
    line.extend(wire(b"ok"));
    assert_eq!(
        decode_all(&line),
        (vec![b"ok".to_vec()], vec![DropReason::Truncated])
    );
    // Too long: 600 non-zero bytes with no delimiter, then a good datagram.
    let mut line = vec![0xFF; 600];
    line.extend(wire(b"after"));
    assert_eq!(
        decode_all(&line),
        (vec![b"after".to_vec()], vec![DropReason::TooLong])
    );
}

#[test]
fn largest_datagram_fits_and_one_more_does_not() {
    let d = vec![0x33u8; MAX_DATAGRAM];
    assert_eq!(decode_all(&wire(&d)), (vec![d.clone()], vec![]));
    let d = vec![0x33u8; MAX_DATAGRAM + 1];
    assert_eq!(decode_all(&wire(&d)), (vec![], vec![DropReason::TooLong]));
    // Trailing zeros count too: 492 bytes + an owed zero is 493.
    let mut d = vec![0x33u8; MAX_DATAGRAM];
    d.push(0);
    assert_eq!(decode_all(&wire(&d)), (vec![], vec![DropReason::TooLong]));
}

#[test]
fn feed_stops_at_each_event() {
    let mut line = wire(b"one");
    line.extend(wire(b"two"));
    let mut dec = Decoder::new();
    let (n, ev) = dec.feed(&line);
    assert_eq!(ev, Some(Event::Datagram(3)));
    assert_eq!(dec.datagram(3), b"one");
    let (m, ev) = dec.feed(&line[n..]);
    assert_eq!(ev, Some(Event::Datagram(3)));
    assert_eq!(dec.datagram(3), b"two");
    assert_eq!(n + m, line.len());
    assert!(!dec.in_datagram());
}
