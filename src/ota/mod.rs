//! Signed firmware updates over an established session (feature `ota`; the protocol is
//! docs/OTA.md).
//!
//! The gateway offers an image with a manifest signed by the firmware's owner (Ed25519);
//! the device checks the signature against the owner key compiled into it, the product id
//! and the version (no downgrades), then takes the image in chunks at explicit offsets,
//! hashing it as it streams, and commits it only when size and digest match the signed
//! manifest. Every refusal is a named [`Status`](crate::ota::Status), sent to the gateway and returned to the
//! application. An interrupted transfer resumes from the last written offset when the
//! gateway offers the same manifest again (in a new session, say).
//!
//! Sans-IO: [`Receiver::handle`](crate::ota::Receiver::handle) takes one OTA message (as received with the session's
//! `recv`) and writes the reply (to send with the session's `send`) into a caller buffer;
//! the image goes to a [`Slot`](crate::ota::Slot) (flash, a file, RAM) the caller provides. No heap; the
//! receiver is plain data (any bit pattern is a valid state).
//!
//! ```
//! use usmp::ota::{Config, Event, Receiver, Slot, SlotError, wire, MAX_REPLY};
//!
//! struct Ram<'a>(&'a mut [u8]);
//! impl Slot for Ram<'_> {
//!     fn begin(&mut self, _m: &usmp::ota::Manifest) -> Result<(), SlotError> { Ok(()) }
//!     fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), SlotError> {
//!         let at = offset as usize;
//!         self.0.get_mut(at..at + data.len()).ok_or(SlotError)?.copy_from_slice(data);
//!         Ok(())
//!     }
//!     fn finish(&mut self, _m: &usmp::ota::Manifest) -> Result<(), SlotError> { Ok(()) }
//!     fn abort(&mut self) {}
//! }
//!
//! # let owner_public_key = [0x3d, 0x40, 0x17, 0xc3, 0xe8, 0x43, 0x89, 0x5a, 0x92, 0xb7, 0x0a,
//! #     0xa7, 0x4d, 0x1b, 0x7e, 0xbc, 0x9c, 0x98, 0x2c, 0xcf, 0x2e, 0xc4, 0x96, 0x8c, 0xc0, 0xcd,
//! #     0x55, 0xf1, 0x2a, 0xf4, 0x66, 0x0c];
//! let config = Config::new(owner_public_key, *b"my-board\0\0\0\0\0\0\0\0", 7, 64 * 1024);
//! let mut rx = Receiver::new(&config).expect("a valid owner key");
//! let mut image = [0u8; 64 * 1024];
//! let mut reply = [0u8; MAX_REPLY];
//! // for each message `msg` from the session with wire::is_ota(msg):
//! # let msg: &[u8] = b"OT\x01\x05";
//! let out = rx.handle(msg, &mut Ram(&mut image), &mut reply);
//! // send &reply[..out.reply_len] to the gateway, then look at out.event:
//! assert_eq!(out.event, Event::Refused(usmp::ota::Status::NoTransfer));
//! ```

mod digest;
pub mod manifest;
pub mod wire;

#[cfg(feature = "capi")]
pub mod capi;

pub use manifest::{
    key_id, product_id, verify, Manifest, DIGEST_LEN, KEY_ID_LEN, MANIFEST_LEN, PRODUCT_ID_LEN,
    PUBLIC_KEY_LEN, SIGNATURE_LEN,
};
pub use wire::{Message, MAX_CHUNK, MAX_REPLY};

use digest::Sha256Stream;
use subtle::ConstantTimeEq;

/// Outcome and refusal codes of an update: one byte on the wire (RESULT), the same
/// numbers in C (`usmp_ota_status_t`). Codes 0..=31 can travel to the gateway; 32 and
/// above are local to the device's API. Never renumbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Accepted, written, or (in RESULT after DONE) installed.
    Ok = 0,
    /// An OTA message of unknown type or the wrong length.
    BadMessage = 1,
    /// An OTA message of another protocol version.
    UnsupportedProtocol = 2,
    /// A manifest of another magic or format, reserved bytes set, or an empty image.
    BadManifest = 3,
    /// The manifest names a signing key that is not this device's owner key.
    WrongKey = 4,
    /// The signature's S is not reduced (S ≥ L): a malleated signature.
    NonCanonicalSignature = 5,
    /// The signature does not verify with the owner key (strict rules).
    BadSignature = 6,
    /// The image is for another product.
    WrongProduct = 7,
    /// The version is not above the running (or just installed) firmware's.
    Downgrade = 8,
    /// The image is larger than the update slot, or more bytes came than the manifest says.
    TooLarge = 9,
    /// A chunk or DONE without an accepted offer.
    NoTransfer = 10,
    /// A chunk not at the next offset: out of order, overlapping, or leaving a gap.
    BadOffset = 11,
    /// DONE before the manifest's image size was received.
    Truncated = 12,
    /// The received image's SHA-256 is not the manifest's.
    DigestMismatch = 13,
    /// The slot refused to prepare or write (flash error).
    StorageFailed = 14,
    /// Everything verified, but making the image bootable failed.
    CommitFailed = 15,
    /// The gateway aborted the transfer.
    Aborted = 16,
    /// C API: a null pointer, a reply buffer below `USMP_OTA_MAX_REPLY`, a context
    /// `usmp_ota_init` did not set up, or an invalid setting.
    InvalidArgument = 32,
    /// The owner public key is not a valid Ed25519 key (or has small order).
    BadKey = 33,
}

impl Status {
    /// Every status, for tables and tests.
    pub const ALL: [Status; 19] = [
        Self::Ok,
        Self::BadMessage,
        Self::UnsupportedProtocol,
        Self::BadManifest,
        Self::WrongKey,
        Self::NonCanonicalSignature,
        Self::BadSignature,
        Self::WrongProduct,
        Self::Downgrade,
        Self::TooLarge,
        Self::NoTransfer,
        Self::BadOffset,
        Self::Truncated,
        Self::DigestMismatch,
        Self::StorageFailed,
        Self::CommitFailed,
        Self::Aborted,
        Self::InvalidArgument,
        Self::BadKey,
    ];

    /// The number (wire and C).
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The status with this number.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.code() == code)
    }

    /// The C name, NUL-terminated (`USMP_OTA_BAD_SIGNATURE`).
    pub const fn name(self) -> &'static [u8] {
        match self {
            Self::Ok => b"USMP_OTA_OK\0",
            Self::BadMessage => b"USMP_OTA_BAD_MESSAGE\0",
            Self::UnsupportedProtocol => b"USMP_OTA_UNSUPPORTED_PROTOCOL\0",
            Self::BadManifest => b"USMP_OTA_BAD_MANIFEST\0",
            Self::WrongKey => b"USMP_OTA_WRONG_KEY\0",
            Self::NonCanonicalSignature => b"USMP_OTA_NONCANONICAL_SIGNATURE\0",
            Self::BadSignature => b"USMP_OTA_BAD_SIGNATURE\0",
            Self::WrongProduct => b"USMP_OTA_WRONG_PRODUCT\0",
            Self::Downgrade => b"USMP_OTA_DOWNGRADE\0",
            Self::TooLarge => b"USMP_OTA_TOO_LARGE\0",
            Self::NoTransfer => b"USMP_OTA_NO_TRANSFER\0",
            Self::BadOffset => b"USMP_OTA_BAD_OFFSET\0",
            Self::Truncated => b"USMP_OTA_TRUNCATED\0",
            Self::DigestMismatch => b"USMP_OTA_DIGEST_MISMATCH\0",
            Self::StorageFailed => b"USMP_OTA_STORAGE_FAILED\0",
            Self::CommitFailed => b"USMP_OTA_COMMIT_FAILED\0",
            Self::Aborted => b"USMP_OTA_ABORTED\0",
            Self::InvalidArgument => b"USMP_OTA_INVALID_ARGUMENT\0",
            Self::BadKey => b"USMP_OTA_BAD_KEY\0",
        }
    }
}

impl core::fmt::Display for Status {
    /// The C name, e.g. `USMP_OTA_DOWNGRADE`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = self.name();
        let name = name.strip_suffix(&[0]).unwrap_or(name);
        f.write_str(core::str::from_utf8(name).unwrap_or("USMP_OTA_UNKNOWN"))
    }
}

/// A slot failed (flash error, no room, ...): the transfer is refused with
/// [`Status::StorageFailed`] or [`Status::CommitFailed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotError;

/// Where an image goes: the update partition, a file, RAM. The receiver calls `begin` once
/// per accepted offer (not again when a transfer resumes), `write` with strictly
/// consecutive offsets, then either `finish` (size, digest and signature verified: make the
/// image bootable) or `abort` (drop what was written; also called after a failed `finish`).
pub trait Slot {
    /// Prepare for an image of `manifest.image_size` bytes (erase, open).
    fn begin(&mut self, manifest: &Manifest) -> Result<(), SlotError>;
    /// Store `data` at `offset` of the image.
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), SlotError>;
    /// The whole image is written and verified: commit it (mark bootable, rename into place).
    fn finish(&mut self, manifest: &Manifest) -> Result<(), SlotError>;
    /// Give up the image being written.
    fn abort(&mut self);
}

/// What a device accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The owner's Ed25519 public key (compiled into the firmware).
    pub public_key: [u8; PUBLIC_KEY_LEN],
    /// This hardware's product id.
    pub product_id: [u8; PRODUCT_ID_LEN],
    /// The running firmware's version: only higher versions are installed.
    pub current_version: u64,
    /// Capacity of the update slot in bytes.
    pub max_image_size: u32,
    /// Largest chunk accepted (1..=[`MAX_CHUNK`]; the gateway sends no larger ones).
    pub max_chunk: u16,
}

impl Config {
    /// A configuration with the largest chunk size.
    pub const fn new(
        public_key: [u8; PUBLIC_KEY_LEN],
        product_id: [u8; PRODUCT_ID_LEN],
        current_version: u64,
        max_image_size: u32,
    ) -> Self {
        Self {
            public_key,
            product_id,
            current_version,
            max_image_size,
            max_chunk: MAX_CHUNK as u16,
        }
    }
}

/// What a handled message meant for the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An offer was verified and taken; `offset` > 0 when an interrupted transfer resumes.
    Accepted {
        /// Firmware version on offer.
        version: u64,
        /// Image size.
        size: u32,
        /// Where the transfer continues.
        offset: u32,
    },
    /// A chunk was written.
    Progress {
        /// Bytes written so far.
        offset: u32,
        /// Image size.
        size: u32,
    },
    /// The image verified and was committed: restart into it when convenient.
    Installed {
        /// The new firmware's version.
        version: u64,
        /// Image size.
        size: u32,
    },
    /// Refused with this code (also sent to the gateway); nothing was committed.
    Refused(Status),
    /// The gateway aborted; what was written is dropped.
    Aborted,
}

/// The result of [`Receiver::handle`]: the reply to send (always one) and the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handled {
    /// Bytes of the reply buffer to send to the gateway.
    pub reply_len: usize,
    /// What happened.
    pub event: Event,
}

impl Handled {
    /// The status the reply carries: [`Status::Ok`] unless the event is a refusal or an abort.
    pub const fn status(&self) -> Status {
        match self.event {
            Event::Refused(s) => s,
            Event::Aborted => Status::Aborted,
            _ => Status::Ok,
        }
    }
}

const IDLE: u8 = 0;
const RECEIVING: u8 = 1;

/// The device side of the update protocol. Plain data: it can be kept across sessions
/// (that is how a transfer resumes) and stored in any memory.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Receiver {
    current_version: u64,
    public_key: [u8; PUBLIC_KEY_LEN],
    key_id: [u8; KEY_ID_LEN],
    product_id: [u8; PRODUCT_ID_LEN],
    max_image_size: u32,
    max_chunk: u16,
    state: u8,
    _reserved: u8,
    /// The manifest of the transfer in progress (when `state` is RECEIVING).
    manifest: [u8; MANIFEST_LEN],
    /// Image hash so far; its byte count is the next offset.
    hash: Sha256Stream,
}

impl Receiver {
    /// A receiver for `config`; [`Status::BadKey`] when the public key cannot verify
    /// anything, [`Status::InvalidArgument`] for a zero chunk size or one above
    /// [`MAX_CHUNK`].
    pub fn new(config: &Config) -> Result<Self, Status> {
        manifest::check_public_key(&config.public_key)?;
        if config.max_chunk == 0 || usize::from(config.max_chunk) > MAX_CHUNK {
            return Err(Status::InvalidArgument);
        }
        Ok(Self {
            current_version: config.current_version,
            public_key: config.public_key,
            key_id: key_id(&config.public_key),
            product_id: config.product_id,
            max_image_size: config.max_image_size,
            max_chunk: config.max_chunk,
            state: IDLE,
            _reserved: 0,
            manifest: [0; MANIFEST_LEN],
            hash: Sha256Stream::new(),
        })
    }

    /// The running firmware's version, or the one just installed.
    pub const fn current_version(&self) -> u64 {
        self.current_version
    }

    /// The manifest of the transfer in progress and the bytes written so far.
    pub fn in_progress(&self) -> Option<(Manifest, u32)> {
        if self.state != RECEIVING {
            return None;
        }
        let m = Manifest::decode(&self.manifest).ok()?;
        Some((m, self.written()))
    }

    fn written(&self) -> u32 {
        u32::try_from(self.hash.len()).unwrap_or(u32::MAX)
    }

    /// Drops the transfer in progress, if any (`slot.abort()`); a later offer starts at 0.
    pub fn cancel(&mut self, slot: &mut impl Slot) {
        if self.state == RECEIVING {
            slot.abort();
        }
        self.state = IDLE;
        self.hash = Sha256Stream::new();
    }

    /// Handles one OTA message (bytes for which [`wire::is_ota`] holds): writes the reply
    /// into `reply` and says what happened. Each call does a bounded amount of work: at
    /// most one signature check, or one chunk hashed and written.
    pub fn handle(
        &mut self,
        msg: &[u8],
        slot: &mut impl Slot,
        reply: &mut [u8; MAX_REPLY],
    ) -> Handled {
        let (out, event) = match wire::parse(msg) {
            Ok(Message::Offer {
                manifest,
                signature,
            }) => self.offer(manifest, signature, slot),
            Ok(Message::Chunk { offset, data }) => self.chunk(offset, data, slot),
            Ok(Message::Done) => self.done(slot),
            Ok(Message::Abort) => {
                self.cancel(slot);
                (self.result(Status::Aborted), Event::Aborted)
            }
            // Device-to-gateway types coming the wrong way, and unknown ones.
            Ok(_) | Err(wire::ParseError::Malformed) | Err(wire::ParseError::NotOta) => {
                self.refuse(Status::BadMessage)
            }
            Err(wire::ParseError::UnsupportedVersion(_)) => {
                self.refuse(Status::UnsupportedProtocol)
            }
        };
        Handled {
            reply_len: out.encode(reply).unwrap_or(0),
            event,
        }
    }

    fn result(&self, status: Status) -> Message<'static> {
        Message::Result {
            status: status.code(),
            next_offset: if self.state == RECEIVING {
                self.written()
            } else {
                0
            },
        }
    }

    fn refuse(&self, status: Status) -> (Message<'static>, Event) {
        (self.result(status), Event::Refused(status))
    }

    /// Refuses and drops the transfer in progress.
    fn fail(&mut self, status: Status, slot: &mut impl Slot) -> (Message<'static>, Event) {
        self.cancel(slot);
        self.refuse(status)
    }

    fn check_offer(
        &self,
        raw: &[u8; MANIFEST_LEN],
        signature: &[u8; SIGNATURE_LEN],
    ) -> Result<Manifest, Status> {
        let m = Manifest::decode(raw)?;
        if !bool::from(m.key_id.ct_eq(&self.key_id)) {
            return Err(Status::WrongKey);
        }
        // Nothing else in the manifest is believed before the signature verifies.
        verify(&self.public_key, raw, signature)?;
        if m.product_id != self.product_id {
            return Err(Status::WrongProduct);
        }
        if m.version <= self.current_version {
            return Err(Status::Downgrade);
        }
        if m.image_size > self.max_image_size {
            return Err(Status::TooLarge);
        }
        Ok(m)
    }

    // Out of line: the signature check's frames (about 2 KB of curve and SHA-512 state)
    // are then on the stack only while an OFFER is handled, not for every chunk.
    #[inline(never)]
    fn offer(
        &mut self,
        raw: &[u8; MANIFEST_LEN],
        signature: &[u8; SIGNATURE_LEN],
        slot: &mut impl Slot,
    ) -> (Message<'static>, Event) {
        // A refused offer leaves a transfer in progress alone.
        let m = match self.check_offer(raw, signature) {
            Ok(m) => m,
            Err(s) => return self.refuse(s),
        };
        let resume = self.state == RECEIVING && self.manifest == *raw;
        if !resume {
            self.cancel(slot);
            if slot.begin(&m).is_err() {
                return self.refuse(Status::StorageFailed);
            }
            self.manifest = *raw;
            self.state = RECEIVING;
        }
        let offset = self.written();
        (
            Message::Accept {
                next_offset: offset,
                max_chunk: self.max_chunk,
            },
            Event::Accepted {
                version: m.version,
                size: m.image_size,
                offset,
            },
        )
    }

    fn chunk(
        &mut self,
        offset: u32,
        data: &[u8],
        slot: &mut impl Slot,
    ) -> (Message<'static>, Event) {
        let Some((m, written)) = self.in_progress() else {
            return self.refuse(Status::NoTransfer);
        };
        if offset != written {
            return self.fail(Status::BadOffset, slot);
        }
        if data.len() > usize::from(self.max_chunk) {
            return self.fail(Status::BadMessage, slot);
        }
        let end = u64::from(offset) + data.len() as u64;
        if end > u64::from(m.image_size) {
            return self.fail(Status::TooLarge, slot);
        }
        if slot.write(offset, data).is_err() {
            return self.fail(Status::StorageFailed, slot);
        }
        self.hash.update(data);
        let next = self.written();
        (
            Message::Ack { next_offset: next },
            Event::Progress {
                offset: next,
                size: m.image_size,
            },
        )
    }

    fn done(&mut self, slot: &mut impl Slot) -> (Message<'static>, Event) {
        let Some((m, written)) = self.in_progress() else {
            return self.refuse(Status::NoTransfer);
        };
        if written != m.image_size {
            return self.fail(Status::Truncated, slot);
        }
        if !bool::from(self.hash.digest().ct_eq(&m.digest)) {
            return self.fail(Status::DigestMismatch, slot);
        }
        if slot.finish(&m).is_err() {
            return self.fail(Status::CommitFailed, slot);
        }
        self.state = IDLE;
        self.hash = Sha256Stream::new();
        self.current_version = m.version;
        (
            self.result(Status::Ok),
            Event::Installed {
                version: m.version,
                size: m.image_size,
            },
        )
    }
}
