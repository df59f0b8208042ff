//! The update receiver (feature `ota`) through the Rust API: Ed25519 against RFC 8032,
//! the shared message vectors (tests/ota/vectors.json, also read by the Python and CLI
//! tests), a whole transfer into RAM, every refusal with nothing committed, and resume.
#![cfg(feature = "ota")]

use ed25519_dalek::{Signer, SigningKey};
use usmp::ota::wire::{self, Message, MAX_MESSAGE};
use usmp::ota::{
    key_id, product_id, verify, Config, Event, Manifest, Receiver, Slot, SlotError, Status,
    MAX_CHUNK, MAX_REPLY,
};

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn json(path: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

// --------------------------------------------------------------------------- Ed25519

#[test]
fn rfc8032_vectors_verify_and_strictness_holds() {
    let v = json("tests/ota/rfc8032_ed25519.json");
    let vectors = v["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 5, "all five vectors of RFC 8032 7.1");
    for t in vectors {
        let name = t["name"].as_str().unwrap();
        let pk: [u8; 32] = unhex(t["public_key"].as_str().unwrap()).try_into().unwrap();
        let msg = unhex(t["message"].as_str().unwrap());
        let sig: [u8; 64] = unhex(t["signature"].as_str().unwrap()).try_into().unwrap();
        let sk: [u8; 32] = unhex(t["secret_key"].as_str().unwrap()).try_into().unwrap();
        // The host signer (the CLI's) reproduces the RFC's key and signature.
        let signer = SigningKey::from_bytes(&sk);
        assert_eq!(signer.verifying_key().to_bytes(), pk, "{name}");
        assert_eq!(signer.sign(&msg).to_bytes(), sig, "{name}");

        assert_eq!(verify(&pk, &msg, &sig), Ok(()), "{name}");
        // One flipped bit anywhere in message, R or S: refused.
        if !msg.is_empty() {
            let mut m = msg.clone();
            m[msg.len() / 2] ^= 0x10;
            assert_eq!(verify(&pk, &m, &sig), Err(Status::BadSignature), "{name}");
        }
        for bit in [0usize, 255, 256, 300, 500] {
            let mut s = sig;
            s[bit / 8] ^= 1 << (bit % 8);
            assert!(verify(&pk, &msg, &s).is_err(), "{name} bit {bit}");
        }
        // S + L verifies under a non-strict check; here it is named malleated.
        assert_eq!(
            verify(&pk, &msg, &add_group_order(&sig)),
            Err(Status::NonCanonicalSignature),
            "{name}"
        );
        // Another vector's key: refused.
        let other: [u8; 32] = unhex(
            vectors[(vectors.iter().position(|x| x == t).unwrap() + 1) % 5]["public_key"]
                .as_str()
                .unwrap(),
        )
        .try_into()
        .unwrap();
        assert_eq!(
            verify(&other, &msg, &sig),
            Err(Status::BadSignature),
            "{name}"
        );
    }
}

/// S + L (little-endian add of the group order to the signature's S half).
fn add_group_order(sig: &[u8; 64]) -> [u8; 64] {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = *sig;
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(sig[32 + i]) + u16::from(L[i]) + carry;
        out[32 + i] = v as u8;
        carry = v >> 8;
    }
    out
}

#[test]
fn small_order_keys_and_r_are_refused() {
    // An 8-torsion point as key: every "signature" with R = identity, S = 0 satisfies the
    // cofactored equation for some messages; verify_strict refuses the key outright.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(verify(&identity, b"x", &[0u8; 64]), Err(Status::BadKey));
    assert_eq!(
        Receiver::new(&Config::new(identity, [0; 16], 0, 100)).err(),
        Some(Status::BadKey)
    );
    // A valid key, a signature whose R is the identity (small order) and S = 0.
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let mut sig = [0u8; 64];
    sig[0] = 1;
    assert_eq!(
        verify(&key.verifying_key().to_bytes(), b"x", &sig),
        Err(Status::BadSignature)
    );
}

// --------------------------------------------------------------------------- a RAM slot

#[derive(Default)]
struct Ram {
    image: Vec<u8>,
    capacity: usize,
    begins: u32,
    aborts: u32,
    committed: Option<Vec<u8>>,
    fail_write_at: Option<u32>,
    fail_finish: bool,
}

impl Ram {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }
}

impl Slot for Ram {
    fn begin(&mut self, m: &Manifest) -> Result<(), SlotError> {
        self.begins += 1;
        self.image = vec![0xEE; m.image_size as usize];
        Ok(())
    }
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), SlotError> {
        if self.fail_write_at == Some(offset) {
            return Err(SlotError);
        }
        let at = offset as usize;
        assert!(
            at + data.len() <= self.capacity,
            "the receiver wrote past the slot"
        );
        self.image
            .get_mut(at..at + data.len())
            .ok_or(SlotError)?
            .copy_from_slice(data);
        Ok(())
    }
    fn finish(&mut self, _m: &Manifest) -> Result<(), SlotError> {
        if self.fail_finish {
            return Err(SlotError);
        }
        self.committed = Some(self.image.clone());
        Ok(())
    }
    fn abort(&mut self) {
        self.aborts += 1;
        self.image.clear();
    }
}

// --------------------------------------------------------------------------- bundles

const PRODUCT: &[u8] = b"test-board";
const CURRENT: u64 = 10;
const CAPACITY: u32 = 64 * 1024;

fn owner() -> SigningKey {
    SigningKey::from_bytes(&[0x42; 32])
}

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
}

struct Bundle {
    manifest: [u8; 80],
    signature: [u8; 64],
    image: Vec<u8>,
}

fn sign(key: &SigningKey, m: &Manifest, image: Vec<u8>) -> Bundle {
    let manifest = m.encode();
    Bundle {
        manifest,
        signature: key.sign(&manifest).to_bytes(),
        image,
    }
}

fn manifest_for(key: &SigningKey, image: &[u8], version: u64) -> Manifest {
    Manifest {
        image_size: image.len() as u32,
        version,
        product_id: product_id(PRODUCT).unwrap(),
        digest: sha256(image),
        key_id: key_id(&key.verifying_key().to_bytes()),
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

fn good_bundle(len: usize, version: u64) -> Bundle {
    let img = image(len);
    sign(&owner(), &manifest_for(&owner(), &img, version), img)
}

fn receiver() -> Receiver {
    Receiver::new(&Config::new(
        owner().verifying_key().to_bytes(),
        product_id(PRODUCT).unwrap(),
        CURRENT,
        CAPACITY,
    ))
    .unwrap()
}

/// Feeds one message; checks the reply parses and carries the event's status.
fn send(rx: &mut Receiver, slot: &mut Ram, msg: Message<'_>) -> (Event, Message<'static>) {
    let mut buf = [0u8; MAX_MESSAGE];
    let n = msg.encode(&mut buf).unwrap();
    send_raw(rx, slot, &buf[..n])
}

fn send_raw(rx: &mut Receiver, slot: &mut Ram, bytes: &[u8]) -> (Event, Message<'static>) {
    let mut reply = [0u8; MAX_REPLY];
    let h = rx.handle(bytes, slot, &mut reply);
    assert!(h.reply_len > 0, "every message gets a reply");
    let parsed = match wire::parse(&reply[..h.reply_len]).unwrap() {
        Message::Accept {
            next_offset,
            max_chunk,
        } => Message::Accept {
            next_offset,
            max_chunk,
        },
        Message::Ack { next_offset } => Message::Ack { next_offset },
        Message::Result {
            status,
            next_offset,
        } => {
            assert_eq!(status, h.status().code());
            Message::Result {
                status,
                next_offset,
            }
        }
        other => panic!("a device never sends {other:?}"),
    };
    (h.event, parsed)
}

fn offer(rx: &mut Receiver, slot: &mut Ram, b: &Bundle) -> (Event, Message<'static>) {
    send(
        rx,
        slot,
        Message::Offer {
            manifest: &b.manifest,
            signature: &b.signature,
        },
    )
}

/// Sends the image from `from` in chunks of `chunk`, stopping early at `stop`.
fn stream(rx: &mut Receiver, slot: &mut Ram, b: &Bundle, from: usize, chunk: usize, stop: usize) {
    let mut at = from;
    while at < stop.min(b.image.len()) {
        let end = (at + chunk).min(b.image.len());
        let (ev, reply) = send(
            rx,
            slot,
            Message::Chunk {
                offset: at as u32,
                data: &b.image[at..end],
            },
        );
        assert_eq!(
            ev,
            Event::Progress {
                offset: end as u32,
                size: b.image.len() as u32
            }
        );
        assert_eq!(
            reply,
            Message::Ack {
                next_offset: end as u32
            }
        );
        at = end;
    }
}

fn refused(ev: Event) -> Status {
    match ev {
        Event::Refused(s) => s,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

// --------------------------------------------------------------------------- transfers

#[test]
fn a_whole_transfer_installs_the_exact_image() {
    for (len, chunk) in [(1usize, 1usize), (5000, 1800), (5000, 1000), (4096, 512)] {
        let b = good_bundle(len, 11);
        let mut rx = receiver();
        let mut slot = Ram::new(CAPACITY as usize);
        let (ev, reply) = offer(&mut rx, &mut slot, &b);
        assert_eq!(
            ev,
            Event::Accepted {
                version: 11,
                size: len as u32,
                offset: 0
            }
        );
        assert_eq!(
            reply,
            Message::Accept {
                next_offset: 0,
                max_chunk: MAX_CHUNK as u16
            }
        );
        stream(&mut rx, &mut slot, &b, 0, chunk, len);
        let (ev, reply) = send(&mut rx, &mut slot, Message::Done);
        assert_eq!(
            ev,
            Event::Installed {
                version: 11,
                size: len as u32
            }
        );
        assert_eq!(
            reply,
            Message::Result {
                status: 0,
                next_offset: 0
            }
        );
        assert_eq!(slot.committed.as_deref(), Some(&b.image[..]));
        assert_eq!((slot.begins, slot.aborts), (1, 0));
        assert_eq!(rx.current_version(), 11);
        // The same image again is no longer an upgrade.
        assert_eq!(refused(offer(&mut rx, &mut slot, &b).0), Status::Downgrade);
    }
}

/// Runs a transfer that the receiver must refuse with `want`; checks nothing was committed
/// and the refusal reached the reply.
fn expect_refusal(want: Status, run: impl FnOnce(&mut Receiver, &mut Ram) -> Event) {
    let mut rx = receiver();
    let mut slot = Ram::new(CAPACITY as usize);
    let ev = run(&mut rx, &mut slot);
    assert_eq!(refused(ev), want);
    assert!(slot.committed.is_none(), "{want}: nothing may be committed");
    assert!(rx.in_progress().is_none(), "{want}: no transfer left");
    assert_eq!(
        slot.aborts, slot.begins,
        "{want}: every begun image was aborted"
    );
}

#[test]
fn a_flipped_image_bit_is_a_digest_mismatch() {
    expect_refusal(Status::DigestMismatch, |rx, slot| {
        let mut b = good_bundle(3000, 11);
        b.image[1234] ^= 0x04;
        offer(rx, slot, &b);
        stream(rx, slot, &b, 0, 1000, 3000);
        send(rx, slot, Message::Done).0
    });
}

#[test]
fn offers_that_are_refused() {
    let img = image(2000);
    let m = manifest_for(&owner(), &img, 11);
    let stranger = SigningKey::from_bytes(&[0x99; 32]);
    let cases: Vec<(Status, Bundle)> = vec![
        (Status::BadSignature, {
            let mut b = sign(&owner(), &m, img.clone());
            b.signature[10] ^= 0x01;
            b
        }),
        (Status::BadSignature, {
            let mut b = sign(&owner(), &m, img.clone());
            b.signature[40] ^= 0x80;
            b
        }),
        // Signed by another key that claims to be the owner's (key id): the signature fails.
        (Status::BadSignature, sign(&stranger, &m, img.clone())),
        // Signed by another key under its own id.
        (
            Status::WrongKey,
            sign(&stranger, &manifest_for(&stranger, &img, 11), img.clone()),
        ),
        (Status::NonCanonicalSignature, {
            let mut b = sign(&owner(), &m, img.clone());
            b.signature = add_group_order(&b.signature);
            b
        }),
        (
            Status::Downgrade,
            sign(
                &owner(),
                &Manifest {
                    version: CURRENT,
                    ..m
                },
                img.clone(),
            ),
        ),
        (
            Status::Downgrade,
            sign(&owner(), &Manifest { version: 3, ..m }, img.clone()),
        ),
        (
            Status::WrongProduct,
            sign(
                &owner(),
                &Manifest {
                    product_id: product_id(b"other-board").unwrap(),
                    ..m
                },
                img.clone(),
            ),
        ),
        (
            Status::TooLarge,
            sign(
                &owner(),
                &Manifest {
                    image_size: CAPACITY + 1,
                    ..m
                },
                img.clone(),
            ),
        ),
        (Status::BadManifest, {
            let mut b = sign(&owner(), &m, img.clone());
            b.manifest[8] = 2; // another format
            b
        }),
    ];
    for (want, b) in cases {
        expect_refusal(want, |rx, slot| {
            let ev = offer(rx, slot, &b).0;
            assert_eq!(slot.begins, 0, "{want}: the slot was not touched");
            // Chunks after a refused offer have no transfer to go to.
            let (ev2, _) = send(
                rx,
                slot,
                Message::Chunk {
                    offset: 0,
                    data: &b.image[..10],
                },
            );
            assert_eq!(refused(ev2), Status::NoTransfer);
            ev
        });
    }
}

#[test]
fn chunks_out_of_order_overlapping_or_beyond_the_image() {
    let b = good_bundle(4000, 11);
    // (what, refusal, bytes streamed first, offset, length)
    let cases: [(&str, Status, usize, usize, usize); 4] = [
        ("skips ahead (gap)", Status::BadOffset, 1000, 2000, 100),
        ("out of order (back to 0)", Status::BadOffset, 1000, 0, 100),
        ("overlapping", Status::BadOffset, 1000, 900, 200),
        (
            "more bytes than the manifest",
            Status::TooLarge,
            3000,
            3000,
            1001,
        ),
    ];
    for (what, want, streamed, offset, len) in cases {
        expect_refusal(want, |rx, slot| {
            offer(rx, slot, &b);
            stream(rx, slot, &b, 0, 1000, streamed);
            let mut data = vec![0x5A; len];
            let n = data.len().min(b.image.len().saturating_sub(offset));
            data[..n].copy_from_slice(&b.image[offset..offset + n]);
            let mut buf = vec![0u8; 8 + len];
            buf[..4].copy_from_slice(b"OT\x01\x03");
            buf[4..8].copy_from_slice(&(offset as u32).to_le_bytes());
            buf[8..].copy_from_slice(&data);
            let (ev, reply) = send_raw(rx, slot, &buf);
            if let Message::Result { next_offset, .. } = reply {
                assert_eq!(next_offset, 0, "{what}: the transfer is dropped");
            }
            ev
        });
    }
}

#[test]
fn truncated_and_orphan_messages() {
    expect_refusal(Status::Truncated, |rx, slot| {
        let b = good_bundle(4000, 11);
        offer(rx, slot, &b);
        stream(rx, slot, &b, 0, 1000, 3000);
        send(rx, slot, Message::Done).0
    });
    expect_refusal(Status::NoTransfer, |rx, slot| {
        send(rx, slot, Message::Done).0
    });
    expect_refusal(Status::BadMessage, |rx, slot| {
        send(rx, slot, Message::Ack { next_offset: 0 }).0
    });
    expect_refusal(Status::BadMessage, |rx, slot| {
        send_raw(rx, slot, b"OT\x01\x05extra").0
    });
    expect_refusal(Status::UnsupportedProtocol, |rx, slot| {
        send_raw(rx, slot, b"OT\x02\x01").0
    });
}

#[test]
fn storage_failures_are_named_and_nothing_is_committed() {
    let b = good_bundle(3000, 11);
    expect_refusal(Status::StorageFailed, |rx, slot| {
        slot.fail_write_at = Some(1000);
        offer(rx, slot, &b);
        stream(rx, slot, &b, 0, 1000, 1000);
        send(
            rx,
            slot,
            Message::Chunk {
                offset: 1000,
                data: &b.image[1000..2000],
            },
        )
        .0
    });
    expect_refusal(Status::CommitFailed, |rx, slot| {
        slot.fail_finish = true;
        offer(rx, slot, &b);
        stream(rx, slot, &b, 0, 1000, 3000);
        send(rx, slot, Message::Done).0
    });
}

#[test]
fn the_gateway_can_abort() {
    let b = good_bundle(3000, 11);
    let mut rx = receiver();
    let mut slot = Ram::new(CAPACITY as usize);
    offer(&mut rx, &mut slot, &b);
    stream(&mut rx, &mut slot, &b, 0, 1000, 1000);
    let (ev, reply) = send(&mut rx, &mut slot, Message::Abort);
    assert_eq!(ev, Event::Aborted);
    assert_eq!(
        reply,
        Message::Result {
            status: Status::Aborted.code(),
            next_offset: 0
        }
    );
    assert_eq!(slot.aborts, 1);
    assert!(rx.in_progress().is_none());
}

#[test]
fn an_interrupted_transfer_resumes_from_the_last_written_offset() {
    let b = good_bundle(5000, 12);
    let mut rx = receiver();
    let mut slot = Ram::new(CAPACITY as usize);
    offer(&mut rx, &mut slot, &b);
    stream(&mut rx, &mut slot, &b, 0, 1024, 2048);
    // The session drops; in a new one the gateway offers the same bundle again.
    let (ev, reply) = offer(&mut rx, &mut slot, &b);
    assert_eq!(
        ev,
        Event::Accepted {
            version: 12,
            size: 5000,
            offset: 2048
        }
    );
    assert_eq!(
        reply,
        Message::Accept {
            next_offset: 2048,
            max_chunk: MAX_CHUNK as u16
        }
    );
    // A forged offer in between does not disturb it.
    let mut forged = good_bundle(5000, 13);
    forged.signature[0] ^= 1;
    assert_eq!(
        refused(offer(&mut rx, &mut slot, &forged).0),
        Status::BadSignature
    );
    assert_eq!(rx.in_progress().map(|(_, w)| w), Some(2048));
    stream(&mut rx, &mut slot, &b, 2048, 1500, 5000);
    assert!(matches!(
        send(&mut rx, &mut slot, Message::Done).0,
        Event::Installed { version: 12, .. }
    ));
    assert_eq!(slot.committed.as_deref(), Some(&b.image[..]));
    assert_eq!(
        (slot.begins, slot.aborts),
        (1, 0),
        "begin once, never aborted"
    );
}

#[test]
fn a_new_offer_replaces_the_transfer_in_progress() {
    let old = good_bundle(5000, 12);
    let new = good_bundle(3000, 13);
    let mut rx = receiver();
    let mut slot = Ram::new(CAPACITY as usize);
    offer(&mut rx, &mut slot, &old);
    stream(&mut rx, &mut slot, &old, 0, 1000, 2000);
    let (ev, _) = offer(&mut rx, &mut slot, &new);
    assert_eq!(
        ev,
        Event::Accepted {
            version: 13,
            size: 3000,
            offset: 0
        }
    );
    assert_eq!((slot.begins, slot.aborts), (2, 1));
    stream(&mut rx, &mut slot, &new, 0, 1000, 3000);
    send(&mut rx, &mut slot, Message::Done);
    assert_eq!(slot.committed.as_deref(), Some(&new.image[..]));
}

#[test]
fn a_smaller_max_chunk_is_announced_and_enforced() {
    let mut cfg = Config::new(
        owner().verifying_key().to_bytes(),
        product_id(PRODUCT).unwrap(),
        CURRENT,
        CAPACITY,
    );
    cfg.max_chunk = 256;
    let mut rx = Receiver::new(&cfg).unwrap();
    let mut slot = Ram::new(CAPACITY as usize);
    let b = good_bundle(1000, 11);
    assert_eq!(
        offer(&mut rx, &mut slot, &b).1,
        Message::Accept {
            next_offset: 0,
            max_chunk: 256
        }
    );
    let (ev, _) = send(
        &mut rx,
        &mut slot,
        Message::Chunk {
            offset: 0,
            data: &b.image[..257],
        },
    );
    assert_eq!(refused(ev), Status::BadMessage);
    cfg.max_chunk = 0;
    assert_eq!(Receiver::new(&cfg).err(), Some(Status::InvalidArgument));
    cfg.max_chunk = MAX_CHUNK as u16 + 1;
    assert_eq!(Receiver::new(&cfg).err(), Some(Status::InvalidArgument));
}

// --------------------------------------------------------------------------- vectors

/// tests/ota/vectors.json: one signed bundle and every message, byte for byte. The Python
/// push helper's tests and the CLI's read the same file. Regenerate with
/// `USMP_OTA_WRITE_VECTORS=1 cargo test --features std,ota --test ota vectors`.
#[test]
fn shared_vectors() {
    let seed = [0x11u8; 32];
    let key = SigningKey::from_bytes(&seed);
    let img: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let m = Manifest {
        image_size: img.len() as u32,
        version: 5,
        product_id: product_id(b"vector-board").unwrap(),
        digest: sha256(&img),
        key_id: key_id(&key.verifying_key().to_bytes()),
    };
    let b = sign(&key, &m, img.clone());
    let enc = |msg: Message<'_>| {
        let mut buf = [0u8; MAX_MESSAGE];
        let n = msg.encode(&mut buf).unwrap();
        hex::encode(&buf[..n])
    };
    let mut bundle = b.manifest.to_vec();
    bundle.extend_from_slice(&b.signature);
    bundle.extend_from_slice(&img);
    let got = serde_json::json!({
        "comment": "One signed OTA bundle and every OTA message (docs/OTA.md), byte for byte; \
                    checked by tests/ota.rs, python/tests and cli/tests.",
        "seed": hex::encode(seed),
        "public_key": hex::encode(key.verifying_key().to_bytes()),
        "key_id": hex::encode(m.key_id),
        "product": "vector-board",
        "version": 5,
        "image": hex::encode(&img),
        "manifest": hex::encode(b.manifest),
        "signature": hex::encode(b.signature),
        "bundle_sha256": hex::encode(sha256(&bundle)),
        "messages": {
            "offer": enc(Message::Offer { manifest: &b.manifest, signature: &b.signature }),
            "accept": enc(Message::Accept { next_offset: 600, max_chunk: 1800 }),
            "chunk": enc(Message::Chunk { offset: 600, data: &img[600..616] }),
            "ack": enc(Message::Ack { next_offset: 616 }),
            "done": enc(Message::Done),
            "result_installed": enc(Message::Result { status: 0, next_offset: 0 }),
            "result_digest_mismatch": enc(Message::Result { status: 13, next_offset: 1000 }),
            "abort": enc(Message::Abort),
        },
    });
    let path = format!("{}/tests/ota/vectors.json", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("USMP_OTA_WRITE_VECTORS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
    }
    let want = json("tests/ota/vectors.json");
    assert_eq!(got, want, "tests/ota/vectors.json differs from the encoder");

    // And the receiver installs that bundle.
    let mut rx = Receiver::new(&Config::new(
        key.verifying_key().to_bytes(),
        product_id(b"vector-board").unwrap(),
        4,
        4096,
    ))
    .unwrap();
    let mut slot = Ram::new(4096);
    offer(&mut rx, &mut slot, &b);
    stream(&mut rx, &mut slot, &b, 0, 1800, 1000);
    assert!(matches!(
        send(&mut rx, &mut slot, Message::Done).0,
        Event::Installed { version: 5, .. }
    ));
}
