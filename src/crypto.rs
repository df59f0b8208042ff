//! Thin wrappers over RustCrypto and x25519-dalek: in-place AEAD with detached tags,
//! HMAC-SHA256 over a transcript given in parts, HKDF-SHA256, X25519 on raw bytes.
//! Nothing here allocates; secrets handed out are plain arrays the callers zeroize.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::Error;

/// AES-GCM nonce length.
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Key length (AES-256, HMAC outputs, X25519 scalars and points).
pub const KEY_LEN: usize = 32;

/// AES-256-GCM encryption of `buf` in place; returns the tag.
pub fn seal(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], Error> {
    let cipher = Aes256Gcm::new(key.into());
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf)
        .map_err(|_| Error::CryptoFailed)?;
    Ok(tag.into())
}

/// AES-256-GCM decryption of `buf` in place; on a bad tag `buf` is left as ciphertext.
pub fn open(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), Error> {
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf, Tag::from_slice(tag))
        .map_err(|_| Error::CryptoFailed)
}

/// HMAC-SHA256 of the concatenation of `parts`.
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // new_from_slice accepts keys of any length for HMAC; the error arm cannot occur but
    // still yields a MAC no honest peer produces.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return [0xA5; 32];
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time equality of two MACs or keys.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// HKDF-SHA256 extract-and-expand: `okm = HKDF(salt, ikm, info = concat(info_parts))`.
pub fn hkdf(salt: &[u8], ikm: &[u8], info_parts: &[&[u8]], okm: &mut [u8]) -> Result<(), Error> {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(salt), ikm);
    hk.expand_multi_info(info_parts, okm)
        .map_err(|_| Error::CryptoFailed)
}

/// X25519 public key for a secret scalar (clamped inside).
pub fn x25519_public(secret: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    x25519_dalek::x25519(*secret, x25519_dalek::X25519_BASEPOINT_BYTES)
}

/// X25519 shared secret; refuses the all-zero (non-contributory) result in constant time.
pub fn x25519_shared(
    secret: &[u8; KEY_LEN],
    peer_public: &[u8; KEY_LEN],
) -> Result<[u8; KEY_LEN], Error> {
    let mut shared = x25519_dalek::x25519(*secret, *peer_public);
    if bool::from(shared.ct_eq(&[0u8; KEY_LEN])) {
        shared.zeroize();
        return Err(Error::CryptoFailed);
    }
    Ok(shared)
}
