//! OTA update receiver (feature `ota`): arbitrary message sequences through the message
//! parser (`ota::wire::parse`) and the receiver, either the Rust `Receiver` or the C API
//! (`usmp_ota_handle` with the `usmp_port_ota_*` hooks writing a RAM slot), optionally from
//! a `usmp_ota_t` whose private words are fuzzer bytes.
//!
//! Input: a configuration byte (bit 0: C API, bit 1: garbage `usmp_ota_t` state (C API
//! only), bit 2: the slot fails one write, bits 3..: the max chunk), then messages as chunks.
//! Seeds (fuzz/seed_corpus.py) are the signed bundle of tests/ota/vectors.json in messages.
//!
//! Invariants: a parsed message re-encodes to the same bytes; every message gets exactly one
//! reply, which is a device message (ACCEPT, ACK or RESULT) carrying the status of the event;
//! the slot sees `begin` before writes, strictly consecutive writes inside the image, `finish`
//! only with every byte written and the image's SHA-256 equal to the manifest's; and an
//! install happens only for a manifest that was offered with a signature that verifies
//! under the owner key, with a version above the running one, for this product.
use std::cell::RefCell;

use sha2::{Digest, Sha256};
use usmp::ota::{
    self, capi, wire, Config, Event, Manifest, Message, Receiver, Slot, SlotError, Status,
    MAX_REPLY,
};

use crate::Input;

/// tests/ota/vectors.json `public_key` (seed 0x11 * 32).
pub const OWNER: [u8; 32] =
    crate::hex32("d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737");
/// tests/ota/vectors.json `product`.
pub const PRODUCT: [u8; 16] = *b"vector-board\0\0\0\0";
/// Below the vector bundle's version 5.
pub const RUNNING: u64 = 4;
/// Room for the vector image (1000 bytes) and a bit more.
pub const CAPACITY: u32 = 1500;

/// A RAM slot that checks the receiver keeps the hook contract.
#[derive(Default)]
pub struct RamSlot {
    image: Vec<u8>,
    open: bool,
    next: u32,
    writes: u32,
    /// Fail this write (count from 0), to reach the storage-failure path.
    pub fail_write: Option<u32>,
    /// Contract checks off (garbage receiver state may write without a begin).
    pub lax: bool,
    /// Committed images: (size, version).
    pub committed: Vec<(u32, u64)>,
    begun: Option<(u32, u64, [u8; 32])>,
}

impl RamSlot {
    fn begin_raw(&mut self, size: u32, version: u64, digest: [u8; 32]) -> Result<(), SlotError> {
        assert!(
            self.lax || size <= CAPACITY,
            "begin of {size} bytes past the capacity"
        );
        self.image = vec![0; size.min(CAPACITY) as usize];
        self.open = true;
        self.next = 0;
        self.begun = Some((size, version, digest));
        Ok(())
    }

    fn write_raw(&mut self, offset: u32, data: &[u8]) -> Result<(), SlotError> {
        let n = self.writes;
        self.writes += 1;
        if !self.open || offset != self.next {
            assert!(
                self.lax,
                "write at {offset}: open {}, next {}",
                self.open, self.next
            );
            return Err(SlotError);
        }
        let end = offset as usize + data.len();
        let Some(dst) = self.image.get_mut(offset as usize..end) else {
            assert!(
                self.lax,
                "write of {} bytes at {offset} past the image",
                data.len()
            );
            return Err(SlotError);
        };
        if self.fail_write == Some(n) {
            return Err(SlotError);
        }
        dst.copy_from_slice(data);
        self.next = end as u32;
        Ok(())
    }

    fn finish_raw(&mut self, size: u32, version: u64) -> Result<(), SlotError> {
        let Some((bsize, bversion, digest)) = self.begun else {
            assert!(self.lax, "finish without begin");
            return Err(SlotError);
        };
        if !self.lax {
            assert!(self.open && self.next == size && bsize == size && bversion == version);
            let got: [u8; 32] = Sha256::digest(&self.image).into();
            assert_eq!(
                got, digest,
                "finish with an image that does not match its manifest"
            );
        }
        self.open = false;
        self.committed.push((size, version));
        Ok(())
    }

    #[doc(hidden)]
    pub fn abort_raw(&mut self) {
        self.open = false;
        self.begun = None;
    }
}

impl Slot for RamSlot {
    fn begin(&mut self, m: &Manifest) -> Result<(), SlotError> {
        self.begin_raw(m.image_size, m.version, m.digest)
    }
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), SlotError> {
        self.write_raw(offset, data)
    }
    fn finish(&mut self, m: &Manifest) -> Result<(), SlotError> {
        self.finish_raw(m.image_size, m.version)
    }
    fn abort(&mut self) {
        self.abort_raw()
    }
}

thread_local! {
    /// The slot behind the C hooks of `ota_hooks!()`, and the digest the C `begin` lacks.
    pub static SLOT: RefCell<(RamSlot, [u8; 32])> = RefCell::new((RamSlot::default(), [0; 32]));
}

/// The `usmp_port_ota_*` hooks over [`SLOT`], for the final binary (like `port_hooks!`).
#[macro_export]
macro_rules! ota_hooks {
    () => {
        #[allow(clippy::not_unsafe_ptr_arg_deref)] // C hooks: the library's contract
        mod ota_hooks {
            use std::ffi::c_int;
            use $crate::targets::ota::SLOT;

            #[no_mangle]
            pub extern "C" fn usmp_port_ota_begin(size: u32, version: u64) -> c_int {
                SLOT.with(|s| {
                    let mut s = s.borrow_mut();
                    let d = s.1;
                    s.0.begin_c(size, version, d)
                })
            }
            #[no_mangle]
            pub extern "C" fn usmp_port_ota_write(
                offset: u32,
                data: *const u8,
                len: usize,
            ) -> c_int {
                assert!(!data.is_null() && len > 0, "write({data:?}, {len})");
                // SAFETY: `len` readable bytes (library contract); ASan checks it.
                let d = unsafe { std::slice::from_raw_parts(data, len) };
                SLOT.with(|s| s.borrow_mut().0.write_c(offset, d))
            }
            #[no_mangle]
            pub extern "C" fn usmp_port_ota_finish(size: u32, version: u64) -> c_int {
                SLOT.with(|s| s.borrow_mut().0.finish_c(size, version))
            }
            #[no_mangle]
            pub extern "C" fn usmp_port_ota_abort() {
                SLOT.with(|s| s.borrow_mut().0.abort_raw())
            }
        }
    };
}

impl RamSlot {
    #[doc(hidden)]
    pub fn begin_c(&mut self, size: u32, version: u64, digest: [u8; 32]) -> i32 {
        -i32::from(self.begin_raw(size, version, digest).is_err())
    }
    #[doc(hidden)]
    pub fn write_c(&mut self, offset: u32, data: &[u8]) -> i32 {
        -i32::from(self.write_raw(offset, data).is_err())
    }
    #[doc(hidden)]
    pub fn finish_c(&mut self, size: u32, version: u64) -> i32 {
        -i32::from(self.finish_raw(size, version).is_err())
    }
}

/// Parser invariants for one message.
fn check_parse(msg: &[u8]) {
    match wire::parse(msg) {
        Ok(m) => {
            let mut buf = [0u8; wire::MAX_MESSAGE];
            let n = m.encode(&mut buf).expect("a parsed message encodes");
            assert_eq!(&buf[..n], msg, "round trip");
        }
        Err(wire::ParseError::NotOta) => assert!(!wire::is_ota(msg)),
        Err(_) => assert!(wire::is_ota(msg)),
    }
}

/// The reply is one device message that carries the event's status.
fn check_reply(reply: &[u8], event: Event) {
    let status = match event {
        Event::Refused(s) => s,
        Event::Aborted => Status::Aborted,
        _ => Status::Ok,
    };
    match wire::parse(reply).expect("the reply parses") {
        Message::Accept { max_chunk, .. } => {
            assert!(matches!(event, Event::Accepted { .. }));
            assert!(max_chunk > 0 && usize::from(max_chunk) <= wire::MAX_CHUNK);
        }
        Message::Ack { next_offset } => {
            assert!(matches!(event, Event::Progress { offset, .. } if offset == next_offset))
        }
        Message::Result { status: s, .. } => {
            assert_eq!(s, status.code());
            assert!(!matches!(
                event,
                Event::Accepted { .. } | Event::Progress { .. }
            ));
        }
        other => panic!("a device never sends {other:?}"),
    }
}

/// Offers seen so far whose signature verifies (what an install may come from).
fn note_offer(msg: &[u8], signed: &mut Vec<[u8; ota::MANIFEST_LEN]>) {
    if let Ok(Message::Offer {
        manifest,
        signature,
    }) = wire::parse(msg)
    {
        if ota::verify(&OWNER, manifest, signature).is_ok() {
            signed.push(*manifest);
        }
    }
}

fn check_install(event: Event, signed: &[[u8; ota::MANIFEST_LEN]], lax: bool) {
    let Event::Installed { version, size } = event else {
        return;
    };
    if lax {
        return;
    }
    let ok = signed
        .iter()
        .filter_map(|m| Manifest::decode(m).ok())
        .any(|m| {
            m.version == version
                && m.image_size == size
                && m.version > RUNNING
                && m.product_id == PRODUCT
                && size <= CAPACITY
        });
    assert!(
        ok,
        "installed version {version} ({size} bytes) without a signed offer for it"
    );
}

fn c_config(max_chunk: u16) -> capi::usmp_ota_config_t {
    capi::usmp_ota_config_t {
        public_key: OWNER,
        product_id: PRODUCT,
        current_version: RUNNING,
        max_image_size: CAPACITY,
        max_chunk,
        reserved: [0; 2],
    }
}

/// One execution of the target.
pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let cfg = inp.u8();
    let use_c = cfg & 1 != 0;
    let garbage = use_c && cfg & 2 != 0;
    let max_chunk = match cfg >> 3 {
        0 => wire::MAX_CHUNK as u16,
        n => u16::from(n) * 64,
    };
    let mut config = Config::new(OWNER, PRODUCT, RUNNING, CAPACITY);
    config.max_chunk = max_chunk;
    if usize::from(max_chunk) > wire::MAX_CHUNK {
        // Above what one message carries: both APIs refuse the setting.
        assert_eq!(Receiver::new(&config).err(), Some(Status::InvalidArgument));
        let mut ota = capi::usmp_ota_t {
            opaque: [0; capi::USMP_OTA_OPAQUE_WORDS],
        };
        let c_cfg = c_config(max_chunk);
        // SAFETY: valid pointers.
        let st = unsafe { capi::usmp_ota_init(&mut ota, &c_cfg) };
        assert_eq!(st, capi::usmp_ota_status_t::USMP_OTA_INVALID_ARGUMENT);
        return;
    }
    let mut slot = RamSlot {
        fail_write: (cfg & 4 != 0).then_some(1),
        lax: garbage,
        ..RamSlot::default()
    };
    let mut signed = Vec::new();

    if !use_c {
        let mut rx = Receiver::new(&config).expect("the vector key is valid");
        while let Some(msg) = inp.chunk() {
            check_parse(msg);
            note_offer(msg, &mut signed);
            let mut reply = [0u8; MAX_REPLY];
            let h = rx.handle(msg, &mut slot, &mut reply);
            check_reply(&reply[..h.reply_len], h.event);
            check_install(h.event, &signed, false);
            if let Some((m, w)) = rx.in_progress() {
                assert!(w <= m.image_size && m.image_size <= CAPACITY);
            }
        }
        assert!(slot.committed.is_empty() || rx.current_version() > RUNNING);
        return;
    }

    let mut ota = capi::usmp_ota_t {
        opaque: [0; capi::USMP_OTA_OPAQUE_WORDS],
    };
    let c_cfg = c_config(max_chunk);
    // SAFETY: valid pointers.
    let st = unsafe { capi::usmp_ota_init(&mut ota, &c_cfg) };
    assert_eq!(st, capi::usmp_ota_status_t::USMP_OTA_OK);
    if garbage {
        // Keep word 0 (the marker); the receiver's state becomes fuzzer bytes.
        for w in ota.opaque.iter_mut().skip(1) {
            *w = u64::from_le_bytes(inp.array());
        }
    }
    SLOT.with(|s| *s.borrow_mut() = (slot, [0; 32]));
    while let Some(msg) = inp.chunk() {
        check_parse(msg);
        note_offer(msg, &mut signed);
        // The C begin hook gets no digest: hand the slot the one on offer, for its check.
        if let Ok(Message::Offer { manifest, .. }) = wire::parse(msg) {
            if let Ok(m) = Manifest::decode(manifest) {
                SLOT.with(|s| s.borrow_mut().1 = m.digest);
            }
        }
        let mut reply = [0u8; MAX_REPLY];
        let mut len = usize::MAX;
        let mut ev = std::mem::MaybeUninit::<capi::usmp_ota_event_t>::uninit();
        // SAFETY: valid pointers and lengths.
        let st = unsafe {
            capi::usmp_ota_handle(
                &mut ota,
                msg.as_ptr(),
                msg.len(),
                reply.as_mut_ptr(),
                reply.len(),
                &mut len,
                ev.as_mut_ptr(),
            )
        };
        // SAFETY: usmp_ota_handle always writes the event.
        let ev = unsafe { ev.assume_init() };
        assert!(len > 0 && len <= MAX_REPLY, "reply of {len} bytes");
        assert_eq!(st as u8, ev.status);
        let event = match ev.kind {
            1 => Event::Accepted {
                version: ev.version,
                size: ev.size,
                offset: ev.offset,
            },
            2 => Event::Progress {
                offset: ev.offset,
                size: ev.size,
            },
            3 => Event::Installed {
                version: ev.version,
                size: ev.size,
            },
            4 => Event::Refused(Status::from_code(ev.status).expect("a named status")),
            5 => Event::Aborted,
            k => panic!("event kind {k}"),
        };
        check_reply(&reply[..len], event);
        check_install(event, &signed, garbage);
        // SAFETY: valid pointers.
        let _ =
            unsafe { capi::usmp_ota_progress(&ota, std::ptr::null_mut(), std::ptr::null_mut()) };
    }
    // SAFETY: valid pointer.
    unsafe { capi::usmp_ota_cancel(&mut ota) };
    // Misuse: a short reply buffer and null pointers are refused without a reply.
    let mut len = 7usize;
    // SAFETY: valid pointers; the reply buffer is declared shorter than it is.
    let st = unsafe {
        capi::usmp_ota_handle(
            &mut ota,
            data.as_ptr(),
            data.len(),
            [0u8; 16].as_mut_ptr(),
            8,
            &mut len,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(
        (st, len),
        (capi::usmp_ota_status_t::USMP_OTA_INVALID_ARGUMENT, 0)
    );
}
