//! Datagram mode (UDP): one frame per datagram, stop-and-wait acknowledgements (UTACK),
//! retransmission with an adaptive timeout, and the v2 replay window. Sans-IO: the driver
//! feeds datagrams and the time, and asks what to send and how long to wait.
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
/// only from first-attempt acknowledgements, backoff doubling per attempt, clamped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rto {
    srtt_ms: u32,
    rttvar_ms: u32,
    rto_ms: u32,
    sampled: bool,
}

impl Default for Rto {
    fn default() -> Self {
        Self::new(DEFAULT_RTO_MS)
    }
}

impl Rto {
    /// Starts at `initial_ms` until the first sample.
    pub const fn new(initial_ms: u32) -> Self {
        Self {
            srtt_ms: 0,
            rttvar_ms: 0,
            rto_ms: initial_ms,
            sampled: false,
        }
    }

    /// Current base timeout, ms.
    pub fn rto_ms(&self) -> u32 {
        self.rto_ms
    }

    /// Timeout for attempt `attempt` (0-based): `rto * 2^attempt`, clamped.
    pub fn timeout_ms(&self, attempt: u8) -> u32 {
        let t = self.rto_ms.saturating_mul(1u32 << attempt.min(16));
        t.clamp(MIN_RTO_MS, MAX_RTO_MS)
    }

    /// Feeds a round-trip sample (first-attempt ACKs only: Karn).
    pub fn sample(&mut self, rtt_ms: u32) {
        if self.sampled {
            let err = self.srtt_ms.abs_diff(rtt_ms);
            self.rttvar_ms = (3 * self.rttvar_ms + err) / 4;
            self.srtt_ms = (7 * self.srtt_ms + rtt_ms) / 8;
        } else {
            self.srtt_ms = rtt_ms;
            self.rttvar_ms = rtt_ms / 2;
            self.sampled = true;
        }
        let rto = self
            .srtt_ms
            .saturating_add(self.rttvar_ms.saturating_mul(4));
        self.rto_ms = rto.clamp(MIN_RTO_MS * 2, MAX_RTO_MS);
    }
}

/// Stop-and-wait for one frame in flight, sans-IO: the driver sends when told, feeds the
/// datagrams that arrive and the time, and waits as long as [`Arq::step`] says.
///
/// Attempt `k` (0-based) waits `rto * 2^k` (adaptive [`Rto`], or a fixed first wait),
/// never past an optional overall deadline; a UTACK for the frame's type and seq (with a
/// valid MAC where a key is given) ends it, and only a first-attempt acknowledgement is a
/// round-trip sample (Karn).
#[derive(Clone, Copy, Debug)]
pub struct Arq {
    ty: u8,
    seq: u32,
    attempt: u8,
    attempts: u8,
    fixed_ms: u32,
    sent_at: u32,
    limit: u32,
    deadline: Option<(u32, u32)>,
}

/// What the driver does next for the frame in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArqStep {
    /// Send the frame (first time or again) now, then call [`Arq::sent`].
    Send,
    /// Wait for a datagram at most this many ms.
    Wait(u32),
    /// No acknowledgement after every attempt (or the deadline passed): give up.
    GiveUp,
}

impl Arq {
    /// A frame to deliver (its header gives the type and seq the UTACK must echo), with
    /// `attempts` tries (at least one), a fixed first wait (`fixed_ms` > 0) or the adaptive
    /// one, and an optional deadline `(start, budget_ms)`.
    pub fn new(
        frame: &[u8],
        attempts: u8,
        fixed_ms: u32,
        deadline: Option<(u32, u32)>,
    ) -> Option<Self> {
        let ty = *frame.get(3)?;
        let seq = u32::from_le_bytes(frame.get(4..8)?.try_into().ok()?);
        Some(Self {
            ty,
            seq,
            attempt: 0,
            attempts: attempts.max(1),
            fixed_ms,
            sent_at: 0,
            limit: 0,
            deadline,
        })
    }

    /// Attempts made so far beyond the first (retransmissions).
    pub fn retransmissions(&self) -> u8 {
        self.attempt.saturating_sub(1)
    }

    /// The frame went out at `now`: starts this attempt's wait.
    pub fn sent(&mut self, now: u32, rto: &Rto) {
        let k = self.attempt;
        self.attempt = self.attempt.saturating_add(1);
        self.sent_at = now;
        self.limit = if self.fixed_ms > 0 {
            self.fixed_ms.saturating_mul(1 << k.min(8))
        } else {
            rto.timeout_ms(k)
        };
        if let Some((t0, budget)) = self.deadline {
            self.limit = self.limit.min(budget.saturating_sub(now.wrapping_sub(t0)));
        }
    }

    /// What to do at `now`.
    pub fn step(&self, now: u32) -> ArqStep {
        if self.attempt == 0 {
            return ArqStep::Send;
        }
        let waited = now.wrapping_sub(self.sent_at);
        if waited < self.limit {
            return ArqStep::Wait(self.limit - waited);
        }
        let past_deadline = self
            .deadline
            .is_some_and(|(t0, budget)| now.wrapping_sub(t0) >= budget);
        if self.attempt >= self.attempts || past_deadline {
            ArqStep::GiveUp
        } else {
            ArqStep::Send
        }
    }

    /// Checks a UTACK that arrived at `now`; true when it acknowledges the frame. A match on
    /// the first attempt feeds the round trip to `rto` (unless the wait is fixed).
    pub fn on_utack(&self, d: &[u8], key: Option<&[u8; 32]>, now: u32, rto: &mut Rto) -> bool {
        if !utack_matches(d, self.ty, self.seq, key) {
            return false;
        }
        if self.attempt == 1 && self.fixed_ms == 0 {
            rto.sample(now.wrapping_sub(self.sent_at));
        }
        true
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
    fn arq_backs_off_gives_up_and_respects_the_deadline() {
        let frame = [0xCD, 0xAB, 2, 5, 7, 0, 0, 0, 0, 0, 0, 0];
        let rto = Rto::default();
        let mut a = Arq::new(&frame, 3, 0, None).unwrap();
        let mut now = 1000u32;
        let mut sends = 0;
        loop {
            match a.step(now) {
                ArqStep::Send => {
                    sends += 1;
                    a.sent(now, &rto);
                }
                ArqStep::Wait(ms) => now = now.wrapping_add(ms),
                ArqStep::GiveUp => break,
            }
        }
        assert_eq!(
            (sends, now - 1000, a.retransmissions()),
            (3, 500 + 1000 + 2000, 2)
        );
        let mut a = Arq::new(&frame, 5, 0, Some((1000, 1200))).unwrap();
        let mut now = 1000u32;
        while let Some(ms) = match a.step(now) {
            ArqStep::Send => {
                a.sent(now, &rto);
                Some(0)
            }
            ArqStep::Wait(ms) => Some(ms),
            ArqStep::GiveUp => None,
        } {
            now += ms;
        }
        assert_eq!(now - 1000, 1200);
        let mut rto2 = Rto::default();
        let mut a = Arq::new(&frame, 5, 0, None).unwrap();
        a.sent(0, &rto2);
        let mut ack = [0u8; UTACK_MAC_LEN];
        let n = utack(5, 7, None, &mut ack);
        assert!(!a.on_utack(&ack[..n], None.or(Some(&[1; 32])), 40, &mut rto2));
        assert!(a.on_utack(&ack[..n], None, 40, &mut rto2));
        assert!(rto2.rto_ms() < 500);
    }

    #[test]
    fn rto_backs_off_and_adapts() {
        let mut r = Rto::default();
        assert_eq!(r.timeout_ms(0), 500);
        assert_eq!(r.timeout_ms(1), 1000);
        assert_eq!(r.timeout_ms(5), MAX_RTO_MS);
        r.sample(10);
        assert!(r.rto_ms() >= MIN_RTO_MS && r.rto_ms() < 500);
        for _ in 0..20 {
            r.sample(300);
        }
        assert!(r.rto_ms() >= 300);
    }
}
