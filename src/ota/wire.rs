//! OTA messages (docs/OTA.md, "Messages"). Each is one application message of the
//! session: a 4-byte header — `O`, `T`, the OTA protocol version (1) and the type — and
//! a body of fixed layout (little-endian). A message of the wrong length for its type is
//! malformed; nothing is read past the end.

use super::manifest::{MANIFEST_LEN, SIGNATURE_LEN};

/// The first two bytes of every OTA message.
pub const MAGIC: [u8; 2] = *b"OT";
/// The OTA protocol version this library speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Header length: magic, version, type.
pub const HEADER_LEN: usize = 4;
/// Largest message: the session's largest (1808 bytes).
pub const MAX_MESSAGE: usize = crate::session::MAX_MESSAGE;
/// Largest chunk of image data in one CHUNK message.
pub const MAX_CHUNK: usize = MAX_MESSAGE - HEADER_LEN - 4;
/// Longest message a device sends (RESULT, ACCEPT, ACK all fit).
pub const MAX_REPLY: usize = 16;

/// The message types.
pub mod kind {
    /// Gateway → device: manifest and signature.
    pub const OFFER: u8 = 1;
    /// Device → gateway: the offer is taken; send from this offset.
    pub const ACCEPT: u8 = 2;
    /// Gateway → device: image bytes at an offset.
    pub const CHUNK: u8 = 3;
    /// Device → gateway: the chunk is written; the next offset.
    pub const ACK: u8 = 4;
    /// Gateway → device: the whole image was sent.
    pub const DONE: u8 = 5;
    /// Device → gateway: the outcome (0 = installed) or a refusal.
    pub const RESULT: u8 = 6;
    /// Gateway → device: give up the transfer in progress.
    pub const ABORT: u8 = 7;
}

/// One OTA message, borrowing from the bytes it was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// The signed manifest on offer.
    Offer {
        /// The manifest's 80 bytes.
        manifest: &'a [u8; MANIFEST_LEN],
        /// Ed25519 signature over them.
        signature: &'a [u8; SIGNATURE_LEN],
    },
    /// The device takes the offer.
    Accept {
        /// Where the gateway continues (0, or where an interrupted transfer stopped).
        next_offset: u32,
        /// Largest chunk the device takes.
        max_chunk: u16,
    },
    /// Image bytes.
    Chunk {
        /// Where `data` goes in the image.
        offset: u32,
        /// 1..=MAX_CHUNK bytes.
        data: &'a [u8],
    },
    /// A chunk was written.
    Ack {
        /// Bytes of the image written so far.
        next_offset: u32,
    },
    /// All bytes sent.
    Done,
    /// The outcome: status 0 = installed, else the refusal code.
    Result {
        /// A [`super::Status`] number.
        status: u8,
        /// Bytes of the image written when it was sent.
        next_offset: u32,
    },
    /// The gateway gives up.
    Abort,
}

/// Why bytes are not an OTA message this library reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// No OTA header: some other application message.
    NotOta,
    /// An OTA header with another protocol version.
    UnsupportedVersion(u8),
    /// Unknown type, or the wrong length for the type.
    Malformed,
}

/// Whether `msg` carries the OTA header (any version): the test an application uses to
/// tell OTA messages from its own.
pub fn is_ota(msg: &[u8]) -> bool {
    msg.len() >= HEADER_LEN && msg.get(..2) == Some(&MAGIC[..])
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let mut w = [0u8; 4];
    w.copy_from_slice(b.get(at..at + 4)?);
    Some(u32::from_le_bytes(w))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let mut w = [0u8; 2];
    w.copy_from_slice(b.get(at..at + 2)?);
    Some(u16::from_le_bytes(w))
}

/// Reads one OTA message.
pub fn parse(msg: &[u8]) -> Result<Message<'_>, ParseError> {
    if !is_ota(msg) {
        return Err(ParseError::NotOta);
    }
    let (head, body) = msg.split_at(HEADER_LEN);
    let version = head.get(2).copied().unwrap_or(0);
    if version != PROTOCOL_VERSION {
        return Err(ParseError::UnsupportedVersion(version));
    }
    let bad = ParseError::Malformed;
    let exact = |n: usize| if body.len() == n { Ok(()) } else { Err(bad) };
    match head.get(3).copied().unwrap_or(0) {
        kind::OFFER => {
            exact(MANIFEST_LEN + SIGNATURE_LEN)?;
            let (m, s) = body.split_at(MANIFEST_LEN);
            Ok(Message::Offer {
                manifest: m.try_into().map_err(|_| bad)?,
                signature: s.try_into().map_err(|_| bad)?,
            })
        }
        kind::ACCEPT => {
            exact(6)?;
            Ok(Message::Accept {
                next_offset: u32_at(body, 0).ok_or(bad)?,
                max_chunk: u16_at(body, 4).ok_or(bad)?,
            })
        }
        kind::CHUNK => {
            if body.len() < 5 || body.len() > 4 + MAX_CHUNK {
                return Err(bad);
            }
            let (o, data) = body.split_at(4);
            Ok(Message::Chunk {
                offset: u32_at(o, 0).ok_or(bad)?,
                data,
            })
        }
        kind::ACK => {
            exact(4)?;
            Ok(Message::Ack {
                next_offset: u32_at(body, 0).ok_or(bad)?,
            })
        }
        kind::DONE => exact(0).map(|()| Message::Done),
        kind::RESULT => {
            exact(5)?;
            Ok(Message::Result {
                status: body.first().copied().ok_or(bad)?,
                next_offset: u32_at(body, 1).ok_or(bad)?,
            })
        }
        kind::ABORT => exact(0).map(|()| Message::Abort),
        _ => Err(bad),
    }
}

/// Writes `parts` one after the other into `out`; the total length, or `None` if it does
/// not fit.
fn write_parts(out: &mut [u8], parts: &[&[u8]]) -> Option<usize> {
    let mut at = 0usize;
    for p in parts {
        out.get_mut(at..at + p.len())?.copy_from_slice(p);
        at += p.len();
    }
    Some(at)
}

impl Message<'_> {
    /// The message type byte.
    pub const fn kind(&self) -> u8 {
        match self {
            Self::Offer { .. } => kind::OFFER,
            Self::Accept { .. } => kind::ACCEPT,
            Self::Chunk { .. } => kind::CHUNK,
            Self::Ack { .. } => kind::ACK,
            Self::Done => kind::DONE,
            Self::Result { .. } => kind::RESULT,
            Self::Abort => kind::ABORT,
        }
    }

    /// Writes the message into `out`; its length, or `None` when `out` is too short (or a
    /// chunk's data is empty or above [`MAX_CHUNK`]).
    pub fn encode(&self, out: &mut [u8]) -> Option<usize> {
        let head = [MAGIC[0], MAGIC[1], PROTOCOL_VERSION, self.kind()];
        match *self {
            Self::Offer {
                manifest,
                signature,
            } => write_parts(out, &[&head, manifest, signature]),
            Self::Accept {
                next_offset,
                max_chunk,
            } => write_parts(
                out,
                &[&head, &next_offset.to_le_bytes(), &max_chunk.to_le_bytes()],
            ),
            Self::Chunk { offset, data } => {
                if data.is_empty() || data.len() > MAX_CHUNK {
                    return None;
                }
                write_parts(out, &[&head, &offset.to_le_bytes(), data])
            }
            Self::Ack { next_offset } => write_parts(out, &[&head, &next_offset.to_le_bytes()]),
            Self::Result {
                status,
                next_offset,
            } => write_parts(out, &[&head, &[status], &next_offset.to_le_bytes()]),
            Self::Done | Self::Abort => write_parts(out, &[&head]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let manifest = [7u8; MANIFEST_LEN];
        let signature = [9u8; SIGNATURE_LEN];
        let data = [1u8, 2, 3];
        let msgs = [
            Message::Offer {
                manifest: &manifest,
                signature: &signature,
            },
            Message::Accept {
                next_offset: 1234,
                max_chunk: 1800,
            },
            Message::Chunk {
                offset: 99,
                data: &data,
            },
            Message::Ack { next_offset: 102 },
            Message::Done,
            Message::Result {
                status: 13,
                next_offset: 5,
            },
            Message::Abort,
        ];
        for m in msgs {
            let mut buf = [0u8; MAX_MESSAGE];
            let n = m.encode(&mut buf).unwrap();
            assert_eq!(parse(&buf[..n]), Ok(m));
            // One byte more or less is malformed (a chunk one byte shorter is still a chunk
            // when data remains, so it parses as a shorter one).
            if !matches!(m, Message::Chunk { .. }) {
                assert_eq!(parse(&buf[..n + 1]), Err(ParseError::Malformed), "{m:?}");
                if n > HEADER_LEN {
                    assert_eq!(parse(&buf[..n - 1]), Err(ParseError::Malformed), "{m:?}");
                }
            }
            if m.kind() != kind::OFFER && m.kind() != kind::CHUNK {
                assert!(n <= MAX_REPLY);
            }
        }
    }

    #[test]
    fn headers() {
        assert_eq!(parse(b"hello"), Err(ParseError::NotOta));
        assert_eq!(parse(b"OT"), Err(ParseError::NotOta));
        assert_eq!(parse(b"OT\x02\x05"), Err(ParseError::UnsupportedVersion(2)));
        assert_eq!(parse(b"OT\x01\x00"), Err(ParseError::Malformed));
        assert_eq!(parse(b"OT\x01\x08"), Err(ParseError::Malformed));
        assert_eq!(parse(b"OT\x01\x05"), Ok(Message::Done));
        assert!(is_ota(b"OT\x09\x09"));
        assert!(!is_ota(b"OT\x01"));
    }

    #[test]
    fn chunk_bounds() {
        let mut buf = [0u8; MAX_MESSAGE + 1];
        let big = [0u8; MAX_CHUNK + 1];
        assert_eq!(
            Message::Chunk {
                offset: 0,
                data: &big
            }
            .encode(&mut buf),
            None
        );
        let n = Message::Chunk {
            offset: 0,
            data: &big[..MAX_CHUNK],
        }
        .encode(&mut buf)
        .unwrap();
        assert_eq!(n, MAX_MESSAGE);
        buf[n] = 0;
        assert_eq!(parse(&buf[..n + 1]), Err(ParseError::Malformed));
        assert_eq!(parse(b"OT\x01\x03\0\0\0\0"), Err(ParseError::Malformed)); // no data
        assert_eq!(
            Message::Chunk {
                offset: 0,
                data: &[]
            }
            .encode(&mut buf),
            None
        );
        assert_eq!(Message::Done.encode(&mut [0u8; 3]), None);
    }
}
