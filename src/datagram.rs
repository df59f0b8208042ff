//! Datagram mode (UDP): one frame per datagram, stop-and-wait acknowledgements (UTACK),
//! the adaptive retransmission timeout, and the v2 replay window. The stop-and-wait
//! scheduling itself is the connection machine's ([`crate::conn`]).
//!
//! UTACK: `AC AC || type || seq u32 LE` (7 bytes). In v2, once the session keys exist, a
//! UTACK for a session frame (type >= 5) carries `HMAC-SHA256(key, those 7 bytes)[0..8]`
//! (15 bytes): the acknowledger MACs with its rx key, the sender checks with its tx key.

use crate::crypto;

/// UTACK marker bytes.
pub const UTACK_MAGIC: [u8; 2] = [0xAC, 0xAC];
/// Plain UTACK length.
pub const UTACK_LEN: usize = 7;
/// MAC'd UTACK length (v2 session frames).
pub const UTACK_MAC_LEN: usize = 15;

/// Default attempts per frame (the gateways use 5).
pub const DEFAULT_ATTEMPTS: u8 = 5;
/// Initial retransmission timeout, ms (the v2 gateway starts at 500 ms).
pub const DEFAULT_RTO_MS: u32 = 500;
/// RTO bounds, ms (the v2 gateway clamps to 50 ms .. 5 s).
pub const MIN_RTO_MS: u32 = 50;
/// Upper RTO bound, ms.
pub const MAX_RTO_MS: u32 = 5000;
/// Longest wait a fixed retransmission timeout doubles up to, ms (a longer fixed one is
/// kept as it is): after a network comes back, a frame goes out again within a minute,
/// whatever the attempt (the ceiling RFC 6298 allows for TCP's).
pub const MAX_FIXED_RTO_MS: u32 = 60_000;

/// Builds a UTACK for a received frame of type `ty` and sequence `seq`; with `mac_key`
/// (v2 session frames) the 8-byte MAC is appended. Returns the datagram length.
pub fn utack(ty: u8, seq: u32, mac_key: Option<&[u8; 32]>, out: &mut [u8; UTACK_MAC_LEN]) -> usize {
    let s = seq.to_le_bytes();
    let head = [UTACK_MAGIC[0], UTACK_MAGIC[1], ty, s[0], s[1], s[2], s[3]];
    out[..UTACK_LEN].copy_from_slice(&head);
    match mac_key {
        Some(k) => {
            let mac = crypto::hmac(k, &[&head]);
            out[UTACK_LEN..].copy_from_slice(&mac[..UTACK_MAC_LEN - UTACK_LEN]);
            UTACK_MAC_LEN
        }
        None => UTACK_LEN,
    }
}

/// True when the datagram starts like a UTACK (marker bytes), whatever its length.
pub fn is_utack(d: &[u8]) -> bool {
    d.get(..2) == Some(&UTACK_MAGIC[..])
}

/// Checks a received UTACK against the frame in flight: same type and seq and, when
/// `mac_key` is given, a valid MAC (constant-time). Anything else is ignored by the caller.
pub fn utack_matches(d: &[u8], ty: u8, seq: u32, mac_key: Option<&[u8; 32]>) -> bool {
    let mut want = [0u8; UTACK_MAC_LEN];
    let n = utack(ty, seq, mac_key, &mut want);
    d.len() == n && crypto::ct_eq(d, want.get(..n).unwrap_or(&[]))
}

/// Adaptive retransmission timeout in the spirit of the v2 gateway: Jacobson/Karn, samples
/// only from first-attempt acknowledgements, backoff doubling per attempt, clamped. Compact
/// (4 bytes, any bit pattern valid): `srtt == 0` means no sample yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Rto {
    srtt_ms: u16,
    rttvar_ms: u16,
}

impl Rto {
    /// No sample yet: the timeout is [`DEFAULT_RTO_MS`].
    pub const fn new() -> Self {
        Self {
            srtt_ms: 0,
            rttvar_ms: 0,
        }
    }

    /// Current base timeout, ms.
    pub fn rto_ms(&self) -> u32 {
        if self.srtt_ms == 0 {
            return DEFAULT_RTO_MS;
        }
        let rto = u32::from(self.srtt_ms) + 4 * u32::from(self.rttvar_ms);
        rto.clamp(MIN_RTO_MS * 2, MAX_RTO_MS)
    }

    /// Timeout for attempt `attempt` (0-based): `rto * 2^attempt`, clamped; with a fixed
    /// first wait (`fixed_ms` > 0) that one doubled instead, up to [`MAX_FIXED_RTO_MS`]
    /// (or `fixed_ms` itself when it is longer).
    pub fn timeout_ms(&self, attempt: u8, fixed_ms: u32) -> u32 {
        if fixed_ms > 0 {
            let t = fixed_ms.saturating_mul(1 << attempt.min(8));
            return t.min(fixed_ms.max(MAX_FIXED_RTO_MS));
        }
        let t = self.rto_ms().saturating_mul(1u32 << attempt.min(16));
        t.clamp(MIN_RTO_MS, MAX_RTO_MS)
    }

    /// Feeds a round-trip sample (first-attempt ACKs only: Karn).
    pub fn sample(&mut self, rtt_ms: u32) {
        let rtt = rtt_ms.clamp(1, 60_000);
        let (srtt, var) = if self.srtt_ms == 0 {
            (rtt, rtt / 2)
        } else {
            let srtt = u32::from(self.srtt_ms);
            let err = srtt.abs_diff(rtt);
            (
                (7 * srtt + rtt) / 8,
                (3 * u32::from(self.rttvar_ms) + err) / 4,
            )
        };
        self.srtt_ms = srtt.clamp(1, 60_000) as u16;
        self.rttvar_ms = var.min(60_000) as u16;
    }
}

/// The 64-frame replay window of v2 (PROTOCOL.md §6): `high` is the highest accepted seq,
/// bit `i` of `bitmap` marks `high - i` as seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Highest accepted seq.
    pub high: u32,
    /// Seen-bits below `high`.
    pub bitmap: u64,
}

impl Window {
    /// True when `seq` may still be accepted (not too old, not seen).
    pub fn fresh(&self, seq: u32) -> bool {
        if self.high >= 64 && seq <= self.high - 64 {
            return false;
        }
        if seq <= self.high {
            let bit = self.high - seq;
            return self.bitmap & (1u64 << bit) == 0;
        }
        true
    }

    /// Marks an authenticated `seq` as seen. Call only after [`Window::fresh`] said yes.
    pub fn accept(&mut self, seq: u32) {
        if seq > self.high {
            let shift = seq - self.high;
            self.bitmap = if shift < 64 {
                (self.bitmap << shift) | 1
            } else {
                1
            };
            self.high = seq;
        } else {
            self.bitmap |= 1u64 << (self.high - seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_utack_mac_vector() {
        let key: [u8; 32] = core::array::from_fn(|i| i as u8 + 1);
        let mut out = [0u8; UTACK_MAC_LEN];
        assert_eq!(utack(5, 7, Some(&key), &mut out), 15);
        assert_eq!(out[7..], [0x40, 0x79, 0xb9, 0x59, 0x9a, 0x16, 0x0b, 0x87]);
        assert!(utack_matches(&out, 5, 7, Some(&key)));
        assert!(!utack_matches(&out[..7], 5, 7, Some(&key)));
        assert!(!utack_matches(&out, 5, 8, Some(&key)));
        out[14] ^= 1;
        assert!(!utack_matches(&out, 5, 7, Some(&key)));
    }

    #[test]
    fn window_sequence_of_the_gateway() {
        let mut w = Window::default();
        let mut delivered = [0u32; 16];
        let mut n = 0;
        for seq in [0, 1, 1, 3, 2, 0, 70, 6, 7, 5, 70, 69] {
            if w.fresh(seq) {
                w.accept(seq);
                delivered[n] = seq;
                n += 1;
            }
        }
        assert_eq!(delivered[..n], [0, 1, 3, 2, 70, 7, 69]);
        assert_eq!((w.high, w.bitmap), (70, 0x8000_0000_0000_0003));
    }

    #[test]
    fn rto_backs_off_and_adapts() {
        let mut r = Rto::default();
        assert_eq!(r.timeout_ms(0, 0), 500);
        assert_eq!(r.timeout_ms(1, 0), 1000);
        assert_eq!(r.timeout_ms(5, 0), MAX_RTO_MS);
        assert_eq!(r.timeout_ms(2, 100), 400);
        // A fixed wait doubles up to a minute (found by the interleave target: 1,240 ms
        // doubled to 158 s, so a healed network went unused for minutes), a longer one
        // stays as it is.
        assert_eq!(r.timeout_ms(5, 1240), 39_680);
        assert_eq!(r.timeout_ms(6, 1240), MAX_FIXED_RTO_MS);
        assert_eq!(r.timeout_ms(30, 1240), MAX_FIXED_RTO_MS);
        assert_eq!(r.timeout_ms(0, 90_000), 90_000);
        assert_eq!(r.timeout_ms(9, 90_000), 90_000);
        assert_eq!(r.timeout_ms(3, u32::MAX), u32::MAX);
        r.sample(10);
        assert!(r.rto_ms() >= MIN_RTO_MS && r.rto_ms() < 500);
        for _ in 0..20 {
            r.sample(300);
        }
        assert!(r.rto_ms() >= 300);
    }
}
