//! The cryptography of usmp and nothing else, for the crypto-floor measurement (see
//! Cargo.toml). Same calls as the library's src/crypto.rs makes, plain C entry points.
#![no_std]

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

unsafe fn arr<'a, const N: usize>(p: *const u8) -> &'a [u8; N] {
    &*p.cast::<[u8; N]>()
}

/// X25519(k, u) -> out; `u` NULL = the base point.
#[no_mangle]
pub unsafe extern "C" fn cf_x25519(out: *mut u8, k: *const u8, u: *const u8) -> i32 {
    let u = if u.is_null() {
        x25519_dalek::X25519_BASEPOINT_BYTES
    } else {
        *arr::<32>(u)
    };
    let r = x25519_dalek::x25519(*arr::<32>(k), u);
    core::ptr::copy_nonoverlapping(r.as_ptr(), out, 32);
    i32::from(r.ct_eq(&[0u8; 32]).unwrap_u8())
}

/// HMAC-SHA-256(key, msg) -> out[32].
#[no_mangle]
pub unsafe extern "C" fn cf_hmac(
    key: *const u8,
    klen: usize,
    msg: *const u8,
    mlen: usize,
    out: *mut u8,
) {
    let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(core::slice::from_raw_parts(key, klen))
    else {
        return;
    };
    m.update(core::slice::from_raw_parts(msg, mlen));
    core::ptr::copy_nonoverlapping(m.finalize().into_bytes().as_ptr(), out, 32);
}

/// HKDF-SHA-256(salt, ikm, info) -> out[olen].
#[no_mangle]
pub unsafe extern "C" fn cf_hkdf(
    salt: *const u8,
    slen: usize,
    ikm: *const u8,
    ilen: usize,
    info: *const u8,
    nlen: usize,
    out: *mut u8,
    olen: usize,
) -> i32 {
    let hk = hkdf::Hkdf::<Sha256>::new(
        Some(core::slice::from_raw_parts(salt, slen)),
        core::slice::from_raw_parts(ikm, ilen),
    );
    let info = [core::slice::from_raw_parts(info, nlen)];
    match hk.expand_multi_info(&info, core::slice::from_raw_parts_mut(out, olen)) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// AES-256-GCM in place: encrypt (dir 0, tag written) or decrypt (dir 1, tag checked).
#[no_mangle]
pub unsafe extern "C" fn cf_gcm(
    dir: i32,
    key: *const u8,
    nonce: *const u8,
    aad: *const u8,
    alen: usize,
    buf: *mut u8,
    len: usize,
    tag: *mut u8,
) -> i32 {
    let c = Aes256Gcm::new(arr::<32>(key).into());
    let n = Nonce::from_slice(core::slice::from_raw_parts(nonce, 12));
    let aad = core::slice::from_raw_parts(aad, alen);
    let buf = core::slice::from_raw_parts_mut(buf, len);
    if dir == 0 {
        match c.encrypt_in_place_detached(n, aad, buf) {
            Ok(t) => {
                core::ptr::copy_nonoverlapping(t.as_ptr(), tag, 16);
                0
            }
            Err(_) => -1,
        }
    } else {
        let t = Tag::from_slice(core::slice::from_raw_parts(tag, 16));
        match c.decrypt_in_place_detached(n, aad, buf, t) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
