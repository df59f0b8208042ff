//! The C API of the update receiver: `include/usmp_ota.h`, generated from this file by
//! cbindgen (`cbindgen --config cbindgen-ota.toml`). The image goes through the
//! `usmp_port_ota_*` hooks, which the application (or the component's weak defaults for
//! POSIX files and ESP-IDF OTA partitions) defines.
//!
//! Every function checks its pointers and lengths first and returns a code; none panics.
#![allow(non_camel_case_types)]

use core::ffi::{c_char, c_int};
use core::mem::size_of;

use super::{wire, Config, Event, Manifest, Receiver, Slot, SlotError, Status};

/// Longest reply a device sends; the reply buffer of `usmp_ota_handle` must hold it.
pub const USMP_OTA_MAX_REPLY: usize = 16;
/// Largest chunk of image data in one message (1808 - 8).
pub const USMP_OTA_MAX_CHUNK: usize = 1800;
/// Ed25519 public key length.
pub const USMP_OTA_PUBLIC_KEY_LEN: usize = 32;
/// Product id length.
pub const USMP_OTA_PRODUCT_ID_LEN: usize = 16;
/// Words of library-private state inside `usmp_ota_t`.
pub const USMP_OTA_OPAQUE_WORDS: usize = 34;

/// Outcome and refusal codes. 0..31 travel to the gateway in the RESULT message; 32 and
/// above are local to this API. `usmp_ota_status_name` gives the name.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum usmp_ota_status_t {
    /// Accepted, written, or (after DONE) installed.
    USMP_OTA_OK = 0,
    /// An OTA message of unknown type or the wrong length.
    USMP_OTA_BAD_MESSAGE = 1,
    /// An OTA message of another protocol version.
    USMP_OTA_UNSUPPORTED_PROTOCOL = 2,
    /// A manifest of another magic or format, reserved bytes set, or an empty image.
    USMP_OTA_BAD_MANIFEST = 3,
    /// The manifest names a signing key that is not this device's owner key.
    USMP_OTA_WRONG_KEY = 4,
    /// The signature's S is not reduced (S >= L): a malleated signature.
    USMP_OTA_NONCANONICAL_SIGNATURE = 5,
    /// The signature does not verify with the owner key (strict rules).
    USMP_OTA_BAD_SIGNATURE = 6,
    /// The image is for another product.
    USMP_OTA_WRONG_PRODUCT = 7,
    /// The version is not above the running (or just installed) firmware's.
    USMP_OTA_DOWNGRADE = 8,
    /// The image is larger than the update slot, or more bytes came than the manifest says.
    USMP_OTA_TOO_LARGE = 9,
    /// A chunk or DONE without an accepted offer.
    USMP_OTA_NO_TRANSFER = 10,
    /// A chunk not at the next offset: out of order, overlapping, or leaving a gap.
    USMP_OTA_BAD_OFFSET = 11,
    /// DONE before the manifest's image size was received.
    USMP_OTA_TRUNCATED = 12,
    /// The received image's SHA-256 is not the manifest's.
    USMP_OTA_DIGEST_MISMATCH = 13,
    /// `usmp_port_ota_begin` or `usmp_port_ota_write` failed.
    USMP_OTA_STORAGE_FAILED = 14,
    /// Everything verified, but `usmp_port_ota_finish` failed.
    USMP_OTA_COMMIT_FAILED = 15,
    /// The gateway aborted the transfer.
    USMP_OTA_ABORTED = 16,
    /// A null pointer, a reply buffer below `USMP_OTA_MAX_REPLY`, a context
    /// `usmp_ota_init` did not set up, or an invalid setting. Nothing was sent or changed.
    USMP_OTA_INVALID_ARGUMENT = 32,
    /// `usmp_ota_init`: the public key is not a valid Ed25519 key (or has small order).
    USMP_OTA_BAD_KEY = 33,
}

/// What `usmp_ota_handle` did (`usmp_ota_event_t.kind`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum usmp_ota_event_kind_t {
    /// Nothing (the call was refused with `USMP_OTA_INVALID_ARGUMENT`).
    USMP_OTA_EVENT_NONE = 0,
    /// An offer verified and was taken; `offset` > 0 when an interrupted transfer resumes.
    USMP_OTA_EVENT_ACCEPTED = 1,
    /// A chunk was written; `offset` bytes of `size` so far.
    USMP_OTA_EVENT_PROGRESS = 2,
    /// The image verified and was committed (`usmp_port_ota_finish`): restart into it.
    USMP_OTA_EVENT_INSTALLED = 3,
    /// Refused with `status` (also sent to the gateway); nothing was committed.
    USMP_OTA_EVENT_REFUSED = 4,
    /// The gateway aborted; `usmp_port_ota_abort` dropped what was written.
    USMP_OTA_EVENT_ABORTED = 5,
}

/// What a device accepts. The public key and product id are compiled into the firmware
/// (`usmp ota keygen` prints the key as a C initializer).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct usmp_ota_config_t {
    /// The owner's Ed25519 public key.
    pub public_key: [u8; USMP_OTA_PUBLIC_KEY_LEN],
    /// This hardware's product id (a name padded with zero bytes, as `usmp ota sign
    /// --product` writes it).
    pub product_id: [u8; USMP_OTA_PRODUCT_ID_LEN],
    /// The running firmware's version: only higher versions are installed.
    pub current_version: u64,
    /// Capacity of the update slot in bytes: larger images are refused.
    pub max_image_size: u32,
    /// Largest chunk accepted (0 = `USMP_OTA_MAX_CHUNK`).
    pub max_chunk: u16,
    /// Reserved, keep 0.
    pub reserved: [u8; 2],
}

/// An update receiver. Zero-initialise it, then `usmp_ota_init`. Keep it across sessions
/// (a static): an interrupted transfer resumes from where it stopped when the gateway
/// offers the same image in the next session. One task at a time: the functions taking it
/// are not thread-safe (call them from the task that runs `usmp_recv`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct usmp_ota_t {
    /// Library-private state. Do not touch.
    pub opaque: [u64; USMP_OTA_OPAQUE_WORDS],
}

/// What a handled message meant.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct usmp_ota_event_t {
    /// A `usmp_ota_event_kind_t`.
    pub kind: u8,
    /// A `usmp_ota_status_t`: the refusal for `USMP_OTA_EVENT_REFUSED`, else 0.
    pub status: u8,
    /// Reserved.
    pub reserved: [u8; 2],
    /// Bytes of the image written so far (ACCEPTED, PROGRESS, INSTALLED).
    pub offset: u32,
    /// Image size from the manifest (ACCEPTED, PROGRESS, INSTALLED).
    pub size: u32,
    /// Reserved.
    pub reserved2: u32,
    /// Firmware version from the manifest (ACCEPTED, INSTALLED).
    pub version: u64,
}

// Port hooks: where the image goes. The library calls the first four from
// usmp_ota_handle (and usmp_ota_cancel); each returns 0 on success. The component ships
// weak defaults: a file on POSIX (component/usmp_ota_posix.c) and the OTA partitions on
// ESP-IDF (component/usmp_ota_esp32.c); bare-metal applications define their own
// (examples/stm32_uart/src/ota_ram_slot.c writes RAM).
extern "C" {
    /// Port hook: a verified offer was taken; prepare to receive `image_size` bytes (erase,
    /// open). Not called again when an interrupted transfer resumes. 0 = ready.
    fn usmp_port_ota_begin(image_size: u32, version: u64) -> c_int;
    /// Port hook: store `len` bytes at `offset` of the image. Offsets are strictly
    /// consecutive, starting at 0. 0 = written.
    fn usmp_port_ota_write(offset: u32, data: *const u8, len: usize) -> c_int;
    /// Port hook: size, SHA-256 and signature verified; commit the image (make it
    /// bootable). 0 = committed.
    fn usmp_port_ota_finish(image_size: u32, version: u64) -> c_int;
    /// Port hook: drop the image being written (after a refusal, an abort, or a failed
    /// finish).
    fn usmp_port_ota_abort();
    /// Not called by the library: the application calls it once the new firmware has
    /// connected to its gateway (the rollback check-in). ESP-IDF default:
    /// `esp_ota_mark_app_valid_cancel_rollback()` when the running image is pending
    /// verification; POSIX default: nothing. 0 = done.
    pub fn usmp_port_ota_confirm() -> c_int;
    /// POSIX default hooks only: the file the image is written to (default
    /// "usmp-ota.bin"; written as `PATH.part`, renamed to PATH on commit). The string is
    /// copied. 0, or -1 for NULL or a path longer than 511 bytes.
    pub fn usmp_ota_posix_set_path(path: *const c_char) -> c_int;
}

/// The `usmp_port_ota_*` hooks as a [`Slot`].
struct PortSlot;

impl Slot for PortSlot {
    fn begin(&mut self, m: &Manifest) -> Result<(), SlotError> {
        // SAFETY: an application hook taking plain values.
        ok(unsafe { usmp_port_ota_begin(m.image_size, m.version) })
    }
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), SlotError> {
        // SAFETY: `data` is valid for `len` bytes for the duration of the call.
        ok(unsafe { usmp_port_ota_write(offset, data.as_ptr(), data.len()) })
    }
    fn finish(&mut self, m: &Manifest) -> Result<(), SlotError> {
        // SAFETY: as begin.
        ok(unsafe { usmp_port_ota_finish(m.image_size, m.version) })
    }
    fn abort(&mut self) {
        // SAFETY: as begin.
        unsafe { usmp_port_ota_abort() }
    }
}

fn ok(rc: c_int) -> Result<(), SlotError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(SlotError)
    }
}

/// What `usmp_ota_t.opaque` holds: a marker set by `usmp_ota_init`, then the receiver.
/// Both are plain integers, so any bit pattern is a valid value; the receiver is used only
/// when the marker is there.
#[repr(C)]
struct Inner {
    marker: u64,
    rx: Receiver,
}

const MARKER: u64 = u64::from_le_bytes(*b"usmpOTA1");

const _: () = assert!(size_of::<Inner>() <= size_of::<[u64; USMP_OTA_OPAQUE_WORDS]>());
const _: () = assert!(core::mem::align_of::<Inner>() <= core::mem::align_of::<u64>());
const _: () = assert!(USMP_OTA_MAX_REPLY == wire::MAX_REPLY);
const _: () = assert!(USMP_OTA_MAX_CHUNK == wire::MAX_CHUNK);

/// The receiver inside `ota`, when `usmp_ota_init` set it up.
///
/// # Safety
/// `ota` is null or points to a valid `usmp_ota_t` not otherwise borrowed for `'a`.
unsafe fn inner<'a>(ota: *mut usmp_ota_t) -> Option<&'a mut Receiver> {
    if ota.is_null() {
        return None;
    }
    // SAFETY: non-null and valid per the contract; `opaque` is u64-aligned and large enough
    // (checked at compile time), and Inner accepts any bit pattern.
    let st = unsafe { &mut *core::ptr::addr_of_mut!((*ota).opaque).cast::<Inner>() };
    (st.marker == MARKER).then_some(&mut st.rx)
}

/// As [`inner`], read only: for the entry points that take a `const usmp_ota_t *` (a caller
/// may hold only a shared reference to it).
///
/// # Safety
/// `ota` is null or points to a valid `usmp_ota_t` not mutably borrowed for `'a`.
unsafe fn inner_ref<'a>(ota: *const usmp_ota_t) -> Option<&'a Receiver> {
    if ota.is_null() {
        return None;
    }
    // SAFETY: as in `inner`, through a shared reference.
    let st = unsafe { &*core::ptr::addr_of!((*ota).opaque).cast::<Inner>() };
    (st.marker == MARKER).then_some(&st.rx)
}

impl From<Status> for usmp_ota_status_t {
    fn from(s: Status) -> Self {
        use usmp_ota_status_t::*;
        match s {
            Status::Ok => USMP_OTA_OK,
            Status::BadMessage => USMP_OTA_BAD_MESSAGE,
            Status::UnsupportedProtocol => USMP_OTA_UNSUPPORTED_PROTOCOL,
            Status::BadManifest => USMP_OTA_BAD_MANIFEST,
            Status::WrongKey => USMP_OTA_WRONG_KEY,
            Status::NonCanonicalSignature => USMP_OTA_NONCANONICAL_SIGNATURE,
            Status::BadSignature => USMP_OTA_BAD_SIGNATURE,
            Status::WrongProduct => USMP_OTA_WRONG_PRODUCT,
            Status::Downgrade => USMP_OTA_DOWNGRADE,
            Status::TooLarge => USMP_OTA_TOO_LARGE,
            Status::NoTransfer => USMP_OTA_NO_TRANSFER,
            Status::BadOffset => USMP_OTA_BAD_OFFSET,
            Status::Truncated => USMP_OTA_TRUNCATED,
            Status::DigestMismatch => USMP_OTA_DIGEST_MISMATCH,
            Status::StorageFailed => USMP_OTA_STORAGE_FAILED,
            Status::CommitFailed => USMP_OTA_COMMIT_FAILED,
            Status::Aborted => USMP_OTA_ABORTED,
            Status::InvalidArgument => USMP_OTA_INVALID_ARGUMENT,
            Status::BadKey => USMP_OTA_BAD_KEY,
        }
    }
}

/// Sets up `ota` for `config`: `USMP_OTA_OK`, `USMP_OTA_BAD_KEY` when the public key
/// cannot verify anything, `USMP_OTA_INVALID_ARGUMENT` for a null pointer or `max_chunk`
/// above `USMP_OTA_MAX_CHUNK`. Drops any state `ota` had (without calling a hook).
///
/// # Safety
/// `ota` and `config` are null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_ota_init(
    ota: *mut usmp_ota_t,
    config: *const usmp_ota_config_t,
) -> usmp_ota_status_t {
    if ota.is_null() || config.is_null() {
        return usmp_ota_status_t::USMP_OTA_INVALID_ARGUMENT;
    }
    // SAFETY: non-null and valid per the contract; plain data.
    let c = unsafe { *config };
    let mut cfg = Config::new(
        c.public_key,
        c.product_id,
        c.current_version,
        c.max_image_size,
    );
    if c.max_chunk != 0 {
        cfg.max_chunk = c.max_chunk;
    }
    let rx = match Receiver::new(&cfg) {
        Ok(rx) => rx,
        Err(s) => return s.into(),
    };
    // SAFETY: non-null and valid; `opaque` is u64-aligned and large enough (compile-time
    // checks above). A plain write of a plain value.
    unsafe {
        core::ptr::addr_of_mut!((*ota).opaque)
            .cast::<Inner>()
            .write(Inner { marker: MARKER, rx });
    }
    usmp_ota_status_t::USMP_OTA_OK
}

/// Whether a received message is an OTA message (its first bytes are the OTA header):
/// hand those to `usmp_ota_handle`, keep the others for the application.
///
/// # Safety
/// `msg` is null or valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn usmp_ota_is_message(msg: *const u8, len: usize) -> bool {
    if msg.is_null() || len < wire::HEADER_LEN {
        return false;
    }
    // SAFETY: valid for len >= HEADER_LEN bytes per the contract; only the header is read.
    wire::is_ota(unsafe { core::slice::from_raw_parts(msg, wire::HEADER_LEN) })
}

/// Handles one OTA message received on the session. Writes the reply into `reply`
/// (at least `USMP_OTA_MAX_REPLY` bytes) and its length into `*reply_len`: send it to the
/// gateway with `usmp_send`. Fills `*event` (may be NULL) with what happened and returns
/// the status the reply carries: `USMP_OTA_OK`, or the refusal (nothing was committed).
/// `USMP_OTA_INVALID_ARGUMENT` (nothing sent, `*reply_len` = 0 when it can be written):
/// a null pointer, a short reply buffer, or an `ota` that `usmp_ota_init` did not set up.
///
/// Each call does a bounded amount of work: at most one Ed25519 verification (OFFER) or
/// one chunk hashed and passed to `usmp_port_ota_write`.
///
/// # Safety
/// Pointers are null or valid: `msg` for `len` bytes, `reply` for `reply_cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn usmp_ota_handle(
    ota: *mut usmp_ota_t,
    msg: *const u8,
    len: usize,
    reply: *mut u8,
    reply_cap: usize,
    reply_len: *mut usize,
    event: *mut usmp_ota_event_t,
) -> usmp_ota_status_t {
    let mut ev = usmp_ota_event_t {
        kind: usmp_ota_event_kind_t::USMP_OTA_EVENT_NONE as u8,
        status: usmp_ota_status_t::USMP_OTA_INVALID_ARGUMENT as u8,
        reserved: [0; 2],
        offset: 0,
        size: 0,
        reserved2: 0,
        version: 0,
    };
    let status = 'call: {
        if !reply_len.is_null() {
            // SAFETY: non-null and valid per the contract.
            unsafe { reply_len.write(0) };
        }
        // SAFETY: caller contract.
        let Some(rx) = (unsafe { inner(ota) }) else {
            break 'call Status::InvalidArgument;
        };
        if msg.is_null() || reply.is_null() || reply_len.is_null() || reply_cap < wire::MAX_REPLY {
            break 'call Status::InvalidArgument;
        }
        // Longer than any session message: not one (and never turned into a huge slice).
        let msg: &[u8] = if len > wire::MAX_MESSAGE {
            b"OT\x01\x00"
        } else {
            // SAFETY: non-null and valid for `len` bytes per the contract.
            unsafe { core::slice::from_raw_parts(msg, len) }
        };
        let mut out = [0u8; wire::MAX_REPLY];
        let h = rx.handle(msg, &mut PortSlot, &mut out);
        // SAFETY: `reply` is valid for reply_cap >= MAX_REPLY >= h.reply_len bytes;
        // `reply_len` is non-null and valid.
        unsafe {
            core::ptr::copy_nonoverlapping(out.as_ptr(), reply, h.reply_len);
            reply_len.write(h.reply_len);
        }
        let (kind, offset, size, version) = match h.event {
            Event::Accepted {
                version,
                size,
                offset,
            } => (
                usmp_ota_event_kind_t::USMP_OTA_EVENT_ACCEPTED,
                offset,
                size,
                version,
            ),
            Event::Progress { offset, size } => (
                usmp_ota_event_kind_t::USMP_OTA_EVENT_PROGRESS,
                offset,
                size,
                0,
            ),
            Event::Installed { version, size } => (
                usmp_ota_event_kind_t::USMP_OTA_EVENT_INSTALLED,
                size,
                size,
                version,
            ),
            Event::Refused(_) => (usmp_ota_event_kind_t::USMP_OTA_EVENT_REFUSED, 0, 0, 0),
            Event::Aborted => (usmp_ota_event_kind_t::USMP_OTA_EVENT_ABORTED, 0, 0, 0),
        };
        ev.kind = kind as u8;
        ev.offset = offset;
        ev.size = size;
        ev.version = version;
        h.status()
    };
    ev.status = status.code();
    if !event.is_null() {
        // SAFETY: non-null and valid per the contract.
        unsafe { event.write(ev) };
    }
    status.into()
}

/// Drops the transfer in progress, if any (`usmp_port_ota_abort`): for example when the
/// gateway has not come back for a long time. A later offer starts from offset 0.
///
/// # Safety
/// `ota` is null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_ota_cancel(ota: *mut usmp_ota_t) {
    // SAFETY: caller contract.
    if let Some(rx) = unsafe { inner(ota) } {
        rx.cancel(&mut PortSlot);
    }
}

/// Whether a transfer is in progress; then `*written` (may be NULL) is the bytes written
/// so far and `*size` (may be NULL) the image size.
///
/// # Safety
/// Pointers are null or valid.
#[no_mangle]
pub unsafe extern "C" fn usmp_ota_progress(
    ota: *const usmp_ota_t,
    written: *mut u32,
    size: *mut u32,
) -> bool {
    // SAFETY: caller contract.
    let Some(rx) = (unsafe { inner_ref(ota) }) else {
        return false;
    };
    let Some((m, w)) = rx.in_progress() else {
        return false;
    };
    // SAFETY: each is null or valid per the contract.
    unsafe {
        if !written.is_null() {
            written.write(w);
        }
        if !size.is_null() {
            size.write(m.image_size);
        }
    }
    true
}

/// The name of a status ("USMP_OTA_OK", "USMP_OTA_BAD_SIGNATURE", ...), or
/// "USMP_OTA_UNKNOWN" for a number that is not one.
#[no_mangle]
pub extern "C" fn usmp_ota_status_name(status: c_int) -> *const c_char {
    let name = u8::try_from(status)
        .ok()
        .and_then(Status::from_code)
        .map_or(&b"USMP_OTA_UNKNOWN\0"[..], Status::name);
    name.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_enum_matches_status() {
        for s in Status::ALL {
            let c: usmp_ota_status_t = s.into();
            assert_eq!(c as u8, s.code());
            let name = core::str::from_utf8(s.name()).unwrap();
            assert_eq!(format!("{c:?}\0"), name);
        }
    }

    #[test]
    fn the_private_state_has_no_padding() {
        // Every byte of `opaque` is an initialised integer after usmp_ota_init (no padding
        // to read as uninitialised memory when C or Rust copies the words).
        assert_eq!(
            size_of::<Receiver>(),
            8 + 32 + 8 + 16 + 4 + 2 + 1 + 1 + 80 + 32 + 8 + 64
        );
        assert_eq!(size_of::<Inner>(), 8 + size_of::<Receiver>());
    }

    #[test]
    fn status_names() {
        // SAFETY: the names are static NUL-terminated strings.
        let name = |c| unsafe { core::ffi::CStr::from_ptr(usmp_ota_status_name(c)) };
        assert_eq!(name(6).to_str().unwrap(), "USMP_OTA_BAD_SIGNATURE");
        assert_eq!(name(0).to_str().unwrap(), "USMP_OTA_OK");
        for bad in [-1, 17, 31, 34, 256, c_int::MAX] {
            assert_eq!(name(bad).to_str().unwrap(), "USMP_OTA_UNKNOWN");
        }
    }
}
