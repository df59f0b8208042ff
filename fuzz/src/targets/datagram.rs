//! The datagram layer: `datagram::utack` / `utack_matches` on arbitrary bytes, keys, types
//! and seqs; the replay `Window` against a model; and a known-key session pair in datagram
//! mode (`set_datagram(true)`, `open` + `process`) under loss, duplication, reordering and
//! forgery (oracles in `crate::keyed`). Input: selector byte (0: UTACK, 1: window,
//! else: sessions, bit 1 of it = v1), then the part's bytes.
use std::collections::BTreeSet;

use crate::keyed::Harness;
use crate::{version_from, Input};
use usmp::datagram::{self, Window, UTACK_MAC_LEN};

fn utacks(inp: &mut Input<'_>) {
    while !inp.is_empty() {
        let ty = inp.u8();
        let seq = inp.u32();
        let keyed = inp.u8() & 1 == 1;
        let key: [u8; 32] = inp.array();
        let key = keyed.then_some(&key);
        let n = usize::from(inp.u8() % 20);
        let d = inp.take(n);
        let mut want = [0u8; UTACK_MAC_LEN];
        let n = datagram::utack(ty, seq, key, &mut want);
        assert_eq!(n, if keyed { 15 } else { 7 });
        assert!(datagram::is_utack(&want[..n]));
        assert!(datagram::utack_matches(&want[..n], ty, seq, key));
        assert_eq!(datagram::utack_matches(d, ty, seq, key), d == &want[..n]);
        let _ = datagram::is_utack(d);
    }
}

/// The v2 window (PROTOCOL.md §6) against a set of seen seqs and the highest accepted.
fn window(inp: &mut Input<'_>) {
    let mut w = Window::default();
    let mut seen: BTreeSet<u32> = BTreeSet::new();
    let mut high = 0u32;
    let mut base = 0u32;
    while !inp.is_empty() {
        // Mostly small steps around the current high, sometimes anywhere.
        let b = inp.u8();
        let seq = if b & 0x80 != 0 {
            inp.u32()
        } else {
            let d = u32::from(b & 0x7F);
            if inp.u8() & 1 == 0 {
                base.wrapping_add(d)
            } else {
                base.wrapping_sub(d)
            }
        };
        let too_old = high >= 64 && seq <= high - 64;
        let model_fresh = !too_old && !seen.contains(&seq);
        assert_eq!(w.fresh(seq), model_fresh, "seq {seq}, high {high}");
        if model_fresh {
            w.accept(seq);
            seen.insert(seq);
            high = high.max(seq);
            base = seq;
            assert_eq!(w.high, high);
        }
    }
}

/// One execution of the target.
pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    match inp.u8() {
        0 => utacks(&mut inp),
        1 => window(&mut inp),
        sel => {
            let version = version_from(sel >> 1);
            Harness::new(version, true).run(&mut inp);
        }
    }
}
