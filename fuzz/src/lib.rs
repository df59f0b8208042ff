//! Shared helpers of the fuzz targets: a cursor over the fuzzer's bytes, the golden-vector
//! inputs (so the fuzzer can reach past the handshake MACs and the AEAD tags), a known-key
//! session pair, frame mutations and the port hooks of the C API targets.
//!
//! Input format used by every target (also what `seed_corpus.py` writes): a few fixed-size
//! fields read with [`Input::u8`] / [`Input::u16`] / ..., and frames as *chunks*, each a
//! little-endian `u16` length (masked to 11 bits) followed by that many bytes; message
//! contents as a length and one pattern byte ([`Input::message`]). A read past the end yields
//! zeros / an empty chunk, so every byte string is a valid input.

use std::collections::HashSet;

use usmp::frame::{self, FrameType, HEADER_LEN, MAX_FRAME};
use usmp::session::{fragments, Session, MAX_DATA, PLAINTEXT_OFFSET, SESSION_ID_LEN};
use usmp::{Error, Version};

pub mod keyed;
pub mod targets;

// ---- golden-vector inputs (tests/vectors/v*/handshake.json, rekey.json) ----------------

/// `inputs.psk` ("usmp-dev-psk-change-me-before-prod").
pub const PSK: &[u8] = b"usmp-dev-psk-change-me-before-prod";
/// `inputs.device_id`.
pub const DEVICE_ID: [u8; 6] = [0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e];
/// `inputs.client_x25519_private`.
pub const CLIENT_PRIV: [u8; 32] =
    hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
/// `inputs.server_x25519_private`.
pub const SERVER_PRIV: [u8; 32] =
    hex32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
/// `inputs.nonce`.
pub const NONCE: [u8; 32] =
    hex32("404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f");
/// `inputs.session_id` ("0123456789abcdef").
pub const SESSION_ID: [u8; SESSION_ID_LEN] = *b"0123456789abcdef";
/// v1 `session_key` (both directions).
pub const V1_KEY: [u8; 32] =
    hex32("bcb06cf8935a28593c79958fc369b66213788ee77812036d928f265a6d4cd483");
/// v2 `k_c2s` (device tx).
pub const V2_C2S: [u8; 32] =
    hex32("e78344d4e72b119d7a50c028cc12deff64a9c18566dba92f177f017f232790e1");
/// v2 `k_s2c` (device rx).
pub const V2_S2C: [u8; 32] =
    hex32("7f96dbae3f2acc37e8449dc10bd77734727149aeb0e84cf80aa2efd58501013a");

const fn hex32(s: &str) -> [u8; 32] {
    const fn nib(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("bad hex"),
        }
    }
    let b = s.as_bytes();
    assert!(b.len() == 64);
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nib(b[2 * i]) << 4 | nib(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// The wire version a target runs, from bit 0 of its configuration byte (0: v2, 1: v1).
pub fn version_from(cfg: u8) -> Version {
    if cfg & 1 == 0 {
        Version::V2
    } else {
        Version::V1
    }
}

/// `(device tx, device rx)` session keys of the vector handshake.
pub fn vector_keys(version: Version) -> ([u8; 32], [u8; 32]) {
    match version {
        Version::V1 => (V1_KEY, V1_KEY),
        Version::V2 => (V2_C2S, V2_S2C),
    }
}

/// The `(device, gateway)` sessions the vector handshake establishes.
pub fn vector_pair(version: Version) -> (Session, Session) {
    let (tx, rx) = vector_keys(version);
    (
        Session::new(version, &tx, &rx, &SESSION_ID),
        Session::new(version, &rx, &tx, &SESSION_ID),
    )
}

// ---- input cursor --------------------------------------------------------------------

/// A cursor over the fuzzer's bytes; reads past the end give zeros.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// Up to `n` bytes (fewer at the end of the input).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }
    /// `N` bytes, zero-padded at the end of the input.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let t = self.take(N);
        out[..t.len()].copy_from_slice(t);
        out
    }
    /// A length-prefixed chunk; `None` once the input is used up.
    pub fn chunk(&mut self) -> Option<&'a [u8]> {
        if self.data.is_empty() {
            return None;
        }
        let n = usize::from(self.u16() & 0x07FF);
        Some(self.take(n))
    }
    /// `len` message bytes: a pattern started by one input byte (so that a long message does
    /// not swallow the rest of the input).
    pub fn message(&mut self, len: usize) -> Vec<u8> {
        let seed = self.u8();
        (0..len)
            .map(|i| seed.wrapping_add((i as u8).wrapping_mul(31)))
            .collect()
    }
}

// ---- frames ----------------------------------------------------------------------------

/// Recomputes the CRC of a frame in place over header bytes 0..10 and the payload bytes the
/// length field names (as far as they exist). Inputs shorter than a header are left alone.
pub fn fix_crc(f: &mut [u8]) {
    if f.len() < HEADER_LEN {
        return;
    }
    let len = usize::from(u16::from_le_bytes([f[8], f[9]]));
    let end = (HEADER_LEN + len).min(f.len());
    let crc = frame::crc16_update(frame::crc16(&f[..10]), &f[HEADER_LEN..end]);
    f[10..12].copy_from_slice(&crc.to_le_bytes());
}

/// What an AEAD tag authenticates in a frame: header bytes 0..10 and the payload. Two frames
/// with the same id are the same frame as far as the receiver can tell.
pub fn frame_id(f: &[u8]) -> Option<Vec<u8>> {
    let len = usize::from(u16::from_le_bytes([*f.get(8)?, *f.get(9)?]));
    let payload = f.get(HEADER_LEN..HEADER_LEN + len)?;
    let mut id = f[..10].to_vec();
    id.extend_from_slice(payload);
    Some(id)
}

/// Seals one frame of type `ty` with plaintext `pt` (more than 452 bytes must be refused).
pub fn seal(s: &mut Session, ty: FrameType, pt: &[u8]) -> Result<Vec<u8>, Error> {
    let mut buf = [0u8; MAX_FRAME];
    let fit = pt.len().min(MAX_FRAME - PLAINTEXT_OFFSET);
    buf[PLAINTEXT_OFFSET..PLAINTEXT_OFFSET + fit].copy_from_slice(&pt[..fit]);
    // An oversize `pt` is passed on as is: `seal` must refuse it (InvalidArg).
    let n = s.seal(ty, &mut buf, pt.len())?;
    assert!(pt.len() <= MAX_DATA, "sealed {} plaintext bytes", pt.len());
    Ok(buf[..n].to_vec())
}

/// Seals a message as `usmp_send` does (DATA_FRAG..., DATA), all or nothing.
pub fn seal_message(s: &mut Session, msg: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let frames = Session::frames_for(msg.len())?;
    s.check_room(frames)?;
    let mut out = Vec::with_capacity(frames);
    for (ty, c) in fragments(msg)? {
        out.push(seal(s, ty, c)?);
    }
    Ok(out)
}

/// Applies one mutation chosen by the input. Returns true when the frame may have changed.
pub fn mutate(f: &mut Vec<u8>, inp: &mut Input<'_>) -> bool {
    let kind = inp.u8() % 10;
    let pos = usize::from(inp.u16());
    match kind {
        0 if !f.is_empty() => {
            let i = pos % f.len();
            f[i] ^= 1 << (inp.u8() % 8);
        }
        1 if !f.is_empty() => {
            let i = pos % f.len();
            f[i] = inp.u8();
        }
        2 => f.truncate(pos % (f.len() + 1)),
        3 => {
            let n = usize::from(inp.u8() % 24);
            f.extend_from_slice(inp.take(n));
        }
        4 if f.len() >= HEADER_LEN => {
            let seq = inp.u32();
            f[4..8].copy_from_slice(&seq.to_le_bytes());
            fix_crc(f);
        }
        5 if f.len() >= HEADER_LEN => {
            f[3] = inp.u8();
            fix_crc(f);
        }
        6 if f.len() >= HEADER_LEN => {
            let len = inp.u16() % 512;
            f[8..10].copy_from_slice(&len.to_le_bytes());
            fix_crc(f);
        }
        7 if f.len() > HEADER_LEN => {
            let i = HEADER_LEN + pos % (f.len() - HEADER_LEN);
            f[i] ^= 1 << (inp.u8() % 8);
            fix_crc(f);
        }
        8 if f.len() >= HEADER_LEN => {
            f[2] ^= 3; // 1 <-> 2
            fix_crc(f);
        }
        _ => {
            fix_crc(f);
            return false;
        }
    }
    true
}

/// Frames a peer really sealed, by [`frame_id`]: the only ones a receiver may accept.
#[derive(Default)]
pub struct Authentic {
    ids: HashSet<Vec<u8>>,
}

impl Authentic {
    pub fn add(&mut self, f: &[u8]) {
        if let Some(id) = frame_id(f) {
            self.ids.insert(id);
        }
    }
    pub fn add_all(&mut self, fs: &[Vec<u8>]) {
        for f in fs {
            self.add(f);
        }
    }
    /// True when `id` (a [`frame_id`]) is a frame a peer sealed.
    pub fn contains_id(&self, id: &[u8]) -> bool {
        self.ids.contains(id)
    }
    /// Panics (a fuzz finding) when an accepted frame was never sealed by a peer.
    pub fn check_accepted(&self, f: &[u8], what: &str) {
        let ok = frame_id(f).is_some_and(|id| self.ids.contains(&id));
        assert!(ok, "{what}: accepted a frame no peer sealed: {f:02x?}");
    }
}

/// Feeds one frame to an established session, as the device does in a receive call; any
/// error must be a named one ([`check_error`]).
pub fn feed_session(s: &mut Session, f: &mut [u8], msg: &mut [u8]) {
    if let Err(e) = s.receive(f, msg) {
        check_error(e);
    }
}

/// Every error the core returns must be one of the 22 named codes (trivially true for the
/// enum; kept so a future `Error` variant without a C code shows up here).
pub fn check_error(e: Error) {
    assert!(Error::ALL.contains(&e), "unnamed error {e:?}");
}

/// True when `USMP_FUZZ_TRACE` is set: the targets then print what they do (for reading a
/// crash input: `USMP_FUZZ_TRACE=1 cargo fuzz run <target> <file>`).
pub fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("USMP_FUZZ_TRACE").is_some())
}

/// True when `USMP_FUZZ_OPEN_FINDINGS` is set (not empty): a harness then takes the paths of findings
/// still open (`regressions/EXPECTED_FAILURES`) instead of stepping around them, so that
/// fuzzing goes on finding other things meanwhile; `scripts/fuzz.sh regress` sets it for the
/// open findings' inputs, which must keep failing until the fix lands.
pub fn open_findings() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("USMP_FUZZ_OPEN_FINDINGS").is_some_and(|v| !v.is_empty()))
}

/// `eprintln!` when tracing.
#[macro_export]
macro_rules! trace {
    ($($t:tt)*) => {
        if $crate::tracing() {
            eprintln!($($t)*);
        }
    };
}

// ---- port hooks for targets that link the C API ------------------------------------------

/// State behind the port hooks (see [`port_hooks!`]).
pub mod port {
    use std::cell::Cell;

    thread_local! {
        pub static CLOCK: Cell<u32> = const { Cell::new(1000) };
        /// What every `usmp_port_millis` call adds to the clock first (0: a clock that moves
        /// only through [`advance`] and `usmp_port_delay_ms`).
        pub static TICK: Cell<u32> = const { Cell::new(100) };
        pub static RNG: Cell<u8> = const { Cell::new(1) };
        pub static RANDOM_FAIL: Cell<bool> = const { Cell::new(false) };
        pub static DEVID_FAIL: Cell<bool> = const { Cell::new(false) };
        /// The context whose lock is held (null: none).
        pub static LOCKED: Cell<*const core::ffi::c_void> = const { Cell::new(core::ptr::null()) };
    }

    /// Back to the start: clock at `clock` (100 ms a reading), no failures.
    pub fn reset(clock: u32) {
        CLOCK.with(|c| c.set(clock));
        TICK.with(|t| t.set(100));
        RNG.with(|r| r.set(1));
        RANDOM_FAIL.with(|f| f.set(false));
        DEVID_FAIL.with(|f| f.set(false));
    }

    pub fn device_id(out: &mut [u8]) -> bool {
        if DEVID_FAIL.with(|f| f.get()) {
            return false;
        }
        out[..6].copy_from_slice(&crate::DEVICE_ID);
        true
    }

    /// 32-byte requests get the vector client key, others a counter pattern.
    pub fn random(out: &mut [u8]) -> bool {
        if RANDOM_FAIL.with(|f| f.get()) {
            return false;
        }
        if out.len() == 32 {
            out.copy_from_slice(&crate::CLIENT_PRIV);
        } else {
            RNG.with(|r| {
                for b in out.iter_mut() {
                    let v = r.get().wrapping_mul(37).wrapping_add(11);
                    r.set(v);
                    *b = v;
                }
            });
        }
        true
    }

    /// `usmp_port_millis`: the clock, moved on by [`TICK`] first.
    pub fn millis() -> u32 {
        advance(TICK.with(|t| t.get()))
    }

    pub fn advance(ms: u32) -> u32 {
        CLOCK.with(|c| {
            let v = c.get().wrapping_add(ms);
            c.set(v);
            v
        })
    }
}

/// Defines the `usmp_port_*` hooks in the calling binary (strong symbols, as an application
/// would), over [`port`]: random bytes are the vector client key for 32-byte requests (so the
/// vector CHALLENGE / SESSION_OK establish a session); the clock advances 100 ms per call, so
/// every timeout is reached in ~100 calls (a target may freeze it: [`port::TICK`]).
#[macro_export]
macro_rules! port_hooks {
    () => {
        #[allow(clippy::not_unsafe_ptr_arg_deref)] // C hooks: the library's contract
        mod port_hooks {
            use std::ffi::{c_char, c_int};

            #[no_mangle]
            pub extern "C" fn usmp_port_get_device_id(out: *mut u8, len: usize) -> c_int {
                assert!(!out.is_null() && len >= 6, "get_device_id({out:?}, {len})");
                // SAFETY: non-null with `len` writable bytes (library contract).
                let out = unsafe { std::slice::from_raw_parts_mut(out, len) };
                if $crate::port::device_id(out) {
                    0
                } else {
                    -1
                }
            }

            #[no_mangle]
            pub extern "C" fn usmp_port_random(out: *mut u8, len: usize) -> c_int {
                assert!(!out.is_null() || len == 0, "random(NULL, {len})");
                if len == 0 {
                    return 0;
                }
                // SAFETY: `len` writable bytes (library contract); ASan checks it.
                let out = unsafe { std::slice::from_raw_parts_mut(out, len) };
                if $crate::port::random(out) {
                    0
                } else {
                    -1
                }
            }

            #[no_mangle]
            pub extern "C" fn usmp_port_delay_ms(ms: u32) {
                $crate::port::advance(ms);
            }

            #[no_mangle]
            pub extern "C" fn usmp_port_millis() -> u32 {
                $crate::port::millis()
            }

            #[no_mangle]
            pub extern "C" fn usmp_port_log(level: c_char, tag: *const c_char, msg: *const c_char) {
                assert!(!tag.is_null() && !msg.is_null(), "log with a NULL string");
                assert!(b"EWID".contains(&(level as u8)), "log level {level}");
                // SAFETY: NUL-terminated per the hook's contract; ASan checks the reads.
                let _ = unsafe { (std::ffi::CStr::from_ptr(tag), std::ffi::CStr::from_ptr(msg)) };
            }

            // One thread here: the lock hooks check that the library pairs them, never takes
            // the lock twice and never holds it when a call returns.
            #[no_mangle]
            pub extern "C" fn usmp_port_lock(ctx: *const core::ffi::c_void) {
                $crate::port::LOCKED.with(|l| {
                    assert!(l.get().is_null(), "usmp_port_lock taken twice");
                    l.set(ctx);
                });
            }

            #[no_mangle]
            pub extern "C" fn usmp_port_unlock(ctx: *const core::ffi::c_void) {
                $crate::port::LOCKED.with(|l| {
                    assert_eq!(l.get(), ctx, "usmp_port_unlock without usmp_port_lock");
                    l.set(core::ptr::null());
                });
            }
        }
    };
}
