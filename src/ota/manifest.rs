//! The signed manifest (docs/OTA.md, "Manifest") and Ed25519 verification.
//!
//! 80 bytes, little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `USMP-OTA` |
//! | 8 | 1 | format, 1 |
//! | 9 | 3 | reserved, zero |
//! | 12 | 4 | image size in bytes (u32, at least 1) |
//! | 16 | 8 | firmware version (u64) |
//! | 24 | 16 | product id |
//! | 40 | 32 | SHA-256 of the image |
//! | 72 | 8 | key id: the first 8 bytes of SHA-256(owner's public key) |
//!
//! The owner signs these 80 bytes with Ed25519 (RFC 8032, pure); the device checks the
//! signature with `verify_strict` (no small-order keys or R, canonical S and R).

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use super::Status;

/// Manifest length in bytes.
pub const MANIFEST_LEN: usize = 80;
/// The manifest's first bytes (they also separate its signatures from any other use of the key).
pub const MANIFEST_MAGIC: [u8; 8] = *b"USMP-OTA";
/// The manifest format this library reads.
pub const MANIFEST_FORMAT: u8 = 1;
/// Ed25519 signature length.
pub const SIGNATURE_LEN: usize = 64;
/// Ed25519 public key length.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Product id length (an ASCII name padded with zero bytes, or any 16 bytes).
pub const PRODUCT_ID_LEN: usize = 16;
/// Key id length.
pub const KEY_ID_LEN: usize = 8;
/// Image digest (SHA-256) length.
pub const DIGEST_LEN: usize = 32;

/// The group order L of edwards25519, little-endian: a signature's S must be below it.
const GROUP_ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// What a manifest says about an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Image size in bytes.
    pub image_size: u32,
    /// Firmware version; a device installs only versions above its own.
    pub version: u64,
    /// The hardware the image is for.
    pub product_id: [u8; PRODUCT_ID_LEN],
    /// SHA-256 of the image.
    pub digest: [u8; DIGEST_LEN],
    /// Which owner key signed it ([`key_id`]).
    pub key_id: [u8; KEY_ID_LEN],
}

fn le_u32(b: &[u8; MANIFEST_LEN], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

fn le_u64(b: &[u8; MANIFEST_LEN], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

fn put(out: &mut [u8; MANIFEST_LEN], at: usize, bytes: &[u8]) {
    if let Some(d) = out.get_mut(at..at + bytes.len()) {
        d.copy_from_slice(bytes);
    }
}

fn take<const N: usize>(b: &[u8; MANIFEST_LEN], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = b.get(at..at + N) {
        out.copy_from_slice(s);
    }
    out
}

impl Manifest {
    /// Reads a manifest: [`Status::BadManifest`] for another magic or format, reserved
    /// bytes that are not zero, or an empty image.
    pub fn decode(b: &[u8; MANIFEST_LEN]) -> Result<Self, Status> {
        if take::<8>(b, 0) != MANIFEST_MAGIC
            || b.get(8) != Some(&MANIFEST_FORMAT)
            || take::<3>(b, 9) != [0; 3]
        {
            return Err(Status::BadManifest);
        }
        let m = Self {
            image_size: le_u32(b, 12),
            version: le_u64(b, 16),
            product_id: take(b, 24),
            digest: take(b, 40),
            key_id: take(b, 72),
        };
        if m.image_size == 0 {
            return Err(Status::BadManifest);
        }
        Ok(m)
    }

    /// The 80 bytes the owner signs.
    pub fn encode(&self) -> [u8; MANIFEST_LEN] {
        let mut out = [0u8; MANIFEST_LEN];
        put(&mut out, 0, &MANIFEST_MAGIC);
        put(&mut out, 8, &[MANIFEST_FORMAT]);
        put(&mut out, 12, &self.image_size.to_le_bytes());
        put(&mut out, 16, &self.version.to_le_bytes());
        put(&mut out, 24, &self.product_id);
        put(&mut out, 40, &self.digest);
        put(&mut out, 72, &self.key_id);
        out
    }
}

/// The key id of an owner key: the first 8 bytes of SHA-256 of the 32-byte public key.
/// It only routes (a device names a foreign key [`Status::WrongKey`]); the signature decides.
pub fn key_id(public_key: &[u8; PUBLIC_KEY_LEN]) -> [u8; KEY_ID_LEN] {
    let h = Sha256::digest(public_key);
    let mut id = [0u8; KEY_ID_LEN];
    if let Some(s) = h.get(..KEY_ID_LEN) {
        id.copy_from_slice(s);
    }
    id
}

/// A product id from a name: its bytes, zero-padded to 16; `None` when longer than 16.
pub fn product_id(name: &[u8]) -> Option<[u8; PRODUCT_ID_LEN]> {
    let mut id = [0u8; PRODUCT_ID_LEN];
    id.get_mut(..name.len())?.copy_from_slice(name);
    Some(id)
}

/// Whether a public key can verify anything: a valid point of edwards25519, not of small
/// order ([`Status::BadKey`] otherwise).
pub fn check_public_key(public_key: &[u8; PUBLIC_KEY_LEN]) -> Result<(), Status> {
    match VerifyingKey::from_bytes(public_key) {
        Ok(k) if !k.is_weak() => Ok(()),
        _ => Err(Status::BadKey),
    }
}

/// Whether the S half of a signature is reduced (below the group order L). A signature
/// with S + L in its place would pass a check that reduces S first (malleability).
pub fn signature_is_canonical(signature: &[u8; SIGNATURE_LEN]) -> bool {
    // Compare S (bytes 32..64, little-endian) with L from the most significant byte down.
    for (s, l) in signature
        .iter()
        .skip(32)
        .rev()
        .zip(GROUP_ORDER.iter().rev())
    {
        if s != l {
            return s < l;
        }
    }
    false // S == L
}

/// Ed25519 (RFC 8032 PureEdDSA) verification with strict rules: a non-canonical S gives
/// [`Status::NonCanonicalSignature`]; a bad or small-order key [`Status::BadKey`]; every other
/// failure (wrong key, altered message or signature, small-order or non-canonical R)
/// [`Status::BadSignature`].
pub fn verify(
    public_key: &[u8; PUBLIC_KEY_LEN],
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<(), Status> {
    if !signature_is_canonical(signature) {
        return Err(Status::NonCanonicalSignature);
    }
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| Status::BadKey)?;
    if key.is_weak() {
        return Err(Status::BadKey);
    }
    key.verify_strict(message, &Signature::from_bytes(signature))
        .map_err(|_| Status::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            image_size: 0x0102_0304,
            version: 0x1122_3344_5566_7788,
            product_id: product_id(b"board-a").unwrap(),
            digest: [0xAB; 32],
            key_id: [0xCD; 8],
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let m = sample();
        let b = m.encode();
        assert_eq!(&b[..8], b"USMP-OTA");
        assert_eq!(b[8], 1);
        assert_eq!(&b[12..16], &[4, 3, 2, 1]);
        assert_eq!(
            &b[16..24],
            &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
        );
        assert_eq!(&b[24..31], b"board-a");
        assert_eq!(Manifest::decode(&b), Ok(m));
    }

    #[test]
    fn bad_manifests() {
        let good = sample().encode();
        for (at, v) in [(0usize, b'X'), (8, 2), (9, 1), (11, 1)] {
            let mut b = good;
            b[at] = v;
            assert_eq!(Manifest::decode(&b), Err(Status::BadManifest), "byte {at}");
        }
        let mut empty = sample();
        empty.image_size = 0;
        assert_eq!(Manifest::decode(&empty.encode()), Err(Status::BadManifest));
    }

    #[test]
    fn canonical_s() {
        let mut sig = [0u8; 64];
        sig[32..].copy_from_slice(&GROUP_ORDER);
        assert!(!signature_is_canonical(&sig)); // S = L
        sig[32] -= 1;
        assert!(signature_is_canonical(&sig)); // S = L - 1
        sig[63] = 0x20;
        assert!(!signature_is_canonical(&sig)); // S > L
        assert!(signature_is_canonical(&[0u8; 64]));
    }

    #[test]
    fn product_ids() {
        assert_eq!(product_id(b"").unwrap(), [0; 16]);
        assert!(product_id(&[b'x'; 16]).is_some());
        assert!(product_id(&[b'x'; 17]).is_none());
    }

    #[test]
    fn weak_keys() {
        // The identity point (y = 1) has small order; y = 2 is not on the curve.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(check_public_key(&identity), Err(Status::BadKey));
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert_eq!(check_public_key(&off_curve), Err(Status::BadKey));
        assert_eq!(verify(&identity, b"m", &[0u8; 64]), Err(Status::BadKey));
    }
}
