//! Streaming SHA-256 of the image over plain state: eight words, one block and a byte
//! count. Every bit pattern is a valid state (the fill level is derived from the count), so
//! the receiver can live in a C struct the application zero-initialises or copies; the
//! compression function is sha2's.

use sha2::digest::generic_array::GenericArray;

/// SHA-256 initial hash value (FIPS 180-4, 5.3.3).
const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

const BLOCK: usize = 64;

/// A SHA-256 computation in progress.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct Sha256Stream {
    h: [u32; 8],
    total: u64,
    block: [u8; BLOCK],
}

impl Sha256Stream {
    pub(crate) const fn new() -> Self {
        Self {
            h: H0,
            total: 0,
            block: [0; BLOCK],
        }
    }

    fn compress(&mut self, block: [u8; BLOCK]) {
        sha2::compress256(&mut self.h, &[GenericArray::from(block)]);
    }

    /// Bytes hashed so far.
    pub(crate) const fn len(&self) -> u64 {
        self.total
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        // The buffered bytes are the tail of the input: total mod 64 of them.
        let fill = (self.total % BLOCK as u64) as usize;
        self.total = self.total.wrapping_add(data.len() as u64);
        if fill > 0 {
            let take = core::cmp::min(BLOCK - fill, data.len());
            let (head, rest) = data.split_at(take);
            if let Some(dst) = self.block.get_mut(fill..fill + take) {
                dst.copy_from_slice(head);
            }
            data = rest;
            if fill + take < BLOCK {
                return;
            }
            self.compress(self.block);
        }
        let mut blocks = data.chunks_exact(BLOCK);
        for b in &mut blocks {
            let mut one = [0u8; BLOCK];
            one.copy_from_slice(b);
            self.compress(one);
        }
        let rem = blocks.remainder();
        if let Some(dst) = self.block.get_mut(..rem.len()) {
            dst.copy_from_slice(rem);
        }
    }

    /// The digest of everything hashed so far (the state itself is left as it is).
    pub(crate) fn digest(&self) -> [u8; 32] {
        let mut s = *self;
        let bits = self.total.wrapping_mul(8);
        let fill = (self.total % BLOCK as u64) as usize;
        // 0x80, zeros up to 56 mod 64, then the bit count (big-endian).
        let pad_len = if fill < 56 { 56 - fill } else { 120 - fill };
        let mut pad = [0u8; 72];
        pad[0] = 0x80;
        s.update(pad.get(..pad_len).unwrap_or(&pad));
        s.update(&bits.to_be_bytes());
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(s.h.iter()) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn matches_sha2_for_every_split() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0usize, 1, 55, 56, 63, 64, 65, 119, 120, 128, 300] {
            let want: [u8; 32] = Sha256::digest(&data[..len]).into();
            for split in [0usize, 1, 3, 63, 64, 65, 100] {
                let split = split.min(len);
                let mut s = Sha256Stream::new();
                s.update(&data[..split]);
                for c in data[split..len].chunks(17) {
                    s.update(c);
                }
                assert_eq!(s.digest(), want, "len {len} split {split}");
                assert_eq!(s.len(), len as u64);
            }
        }
    }

    #[test]
    fn fips_abc() {
        let mut s = Sha256Stream::new();
        s.update(b"abc");
        assert_eq!(
            hex::encode(s.digest()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
