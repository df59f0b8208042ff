//! Frame codec: `frame::decode` (both wire versions), `frame::wire_len` and the C helper
//! `usmp_frame_size` on arbitrary bytes, raw and with the CRC repaired (so the type check and
//! the payload slicing behind the CRC are reached). Invariants: decode and wire_len agree,
//! an accepted frame re-encodes to the same bytes, every error maps to a named C code.
use crate::fix_crc;
use usmp::frame::{self, FrameError, FrameType, HEADER_LEN, MAX_FRAME, MAX_PAYLOAD};
use usmp::{Error, Version};

fn check(data: &[u8]) {
    let wl = frame::wire_len(data);
    if let Ok(n) = wl {
        assert!((HEADER_LEN..=MAX_FRAME).contains(&n));
    }
    // SAFETY: `data` is readable for its length.
    let rc = unsafe { usmp::ffi::usmp_frame_size(data.as_ptr(), data.len()) };
    match wl {
        Ok(n) => assert_eq!(rc, n as i32),
        Err(FrameError::TooShort) => assert_eq!(rc, Error::InvalidArg.code()),
        Err(e) => assert_eq!(rc, Error::from(e).code()),
    }
    for v in [Version::V1, Version::V2] {
        match frame::decode(data, v) {
            Ok((h, ty)) => {
                assert_eq!(wl, Ok(h.frame_len()));
                assert!(h.frame_len() <= data.len());
                assert!(usize::from(h.length) <= MAX_PAYLOAD);
                assert_eq!(h.version, v.byte());
                assert_eq!(FrameType::from_byte(h.ty, v), Some(ty));
                let p = frame::payload(data, &h);
                assert_eq!(p.len(), usize::from(h.length));
                let mut out = [0u8; MAX_FRAME];
                let n = frame::encode(&mut out, v, h.ty, h.seq, p).expect("re-encode");
                assert_eq!(&out[..n], &data[..n], "round trip");
            }
            Err(e) => {
                let code = Error::from(e);
                crate::check_error(code);
                match e {
                    FrameError::TooShort | FrameError::BadMagic | FrameError::TooLong => {
                        assert_eq!(wl, Err(e))
                    }
                    _ => assert!(wl.is_ok(), "{e:?} but wire_len {wl:?}"),
                }
            }
        }
    }
}

/// One execution of the target.
pub fn run(data: &[u8]) {
    check(data);
    if data.len() >= HEADER_LEN {
        let mut f = data.to_vec();
        fix_crc(&mut f);
        check(&f);
    }
}
