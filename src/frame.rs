//! Frame codec: the 12-byte header, CRC-16/MODBUS, and every decode error by name.
//!
//! ```text
//! offset size field
//! 0      2    magic    0xABCD, little-endian (bytes CD AB)
//! 2      1    version  0x01 (v1) or 0x02 (v2)
//! 3      1    type
//! 4      4    seq      u32 LE
//! 8      2    length   u16 LE, payload bytes, 0..=480
//! 10     2    crc      u16 LE over bytes 0..10 then the payload
//! 12     len  payload
//! ```

use crate::Version;

/// Frame magic, little-endian on the wire.
pub const MAGIC: u16 = 0xABCD;
/// Header size in bytes.
pub const HEADER_LEN: usize = 12;
/// Largest payload a frame may carry.
pub const MAX_PAYLOAD: usize = 480;
/// Largest frame on the wire (header + payload).
pub const MAX_FRAME: usize = HEADER_LEN + MAX_PAYLOAD;

/// Packet types (PROTOCOL.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    /// Device → gateway: device id, ephemeral public key (handshake 1/4).
    Hello = 0x01,
    /// Gateway → device: its public key, a nonce and its MAC (handshake 2/4).
    Challenge = 0x02,
    /// Device → gateway: the device's MAC (handshake 3/4).
    HelloAck = 0x03,
    /// Gateway → device: session id and confirmation MAC (handshake 4/4).
    SessionOk = 0x04,
    /// An encrypted message, or the last fragment of one.
    Data = 0x05,
    /// Encrypted keepalive request.
    Ping = 0x06,
    /// Encrypted keepalive answer.
    Pong = 0x07,
    /// Encrypted end of session.
    Bye = 0x08,
    /// An encrypted fragment of a message, more to follow.
    DataFrag = 0x09,
    /// v2 over UDP: the gateway's cookie, to be echoed in a second HELLO.
    HelloRetry = 0x0A,
    /// v2: encrypted key rotation with a fresh salt.
    Rekey = 0x0B,
    /// Reserved; no implementation sends it (an unexpected frame if one arrives).
    Error = 0xFF,
}

impl FrameType {
    /// Maps a type byte to a type known to `version`; v2-only types are unknown to v1.
    pub fn from_byte(b: u8, version: Version) -> Option<Self> {
        let t = match b {
            0x01 => Self::Hello,
            0x02 => Self::Challenge,
            0x03 => Self::HelloAck,
            0x04 => Self::SessionOk,
            0x05 => Self::Data,
            0x06 => Self::Ping,
            0x07 => Self::Pong,
            0x08 => Self::Bye,
            0x09 => Self::DataFrag,
            0x0A if version == Version::V2 => Self::HelloRetry,
            0x0B if version == Version::V2 => Self::Rekey,
            0xFF => Self::Error,
            _ => return None,
        };
        Some(t)
    }

    /// True for the encrypted session types (DATA, PING, PONG, BYE, DATA_FRAG, REKEY, ERROR).
    pub fn is_encrypted(self) -> bool {
        !matches!(
            self,
            Self::Hello | Self::Challenge | Self::HelloAck | Self::SessionOk | Self::HelloRetry
        )
    }
}

/// Why a byte string is not a frame. Each maps to a named C error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer than 12 bytes.
    TooShort,
    /// Magic is not 0xABCD.
    BadMagic,
    /// Version byte differs from ours.
    BadVersion,
    /// Length field above 480.
    TooLong,
    /// Fewer payload bytes than the length field says.
    Truncated,
    /// CRC mismatch.
    BadCrc,
    /// Type byte not defined for this version.
    UnknownType,
}

/// CRC-16/MODBUS of each 4-bit value (reflected polynomial 0xA001): two table steps per byte.
const CRC_NIBBLE: [u16; 16] = [
    0x0000, 0xCC01, 0xD801, 0x1400, 0xF001, 0x3C00, 0x2800, 0xE401, 0xA001, 0x6C00, 0x7800, 0xB401,
    0x5000, 0x9C01, 0x8801, 0x4400,
];

/// CRC-16/MODBUS: reflected polynomial 0xA001, init 0xFFFF, no final XOR.
pub fn crc16_update(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..2 {
            let t = CRC_NIBBLE.get(usize::from(crc & 0xF)).copied().unwrap_or(0);
            crc = (crc >> 4) ^ t;
        }
    }
    crc
}

/// CRC-16/MODBUS of `data`.
pub fn crc16(data: &[u8]) -> u16 {
    crc16_update(0xFFFF, data)
}

/// The first 10 header bytes: magic, version, type, seq, length. Also the AEAD's AAD.
pub fn header10(version: Version, ty: u8, seq: u32, len: u16) -> [u8; 10] {
    let m = MAGIC.to_le_bytes();
    let s = seq.to_le_bytes();
    let l = len.to_le_bytes();
    [
        m[0],
        m[1],
        version.byte(),
        ty,
        s[0],
        s[1],
        s[2],
        s[3],
        l[0],
        l[1],
    ]
}

/// Writes header + CRC in front of a payload already placed at `buf[12..12 + len]`.
/// Returns the frame length. `buf` must hold at least `12 + len` bytes and `len <= 480`.
pub fn finish(buf: &mut [u8], version: Version, ty: u8, seq: u32, len: usize) -> Option<usize> {
    if len > MAX_PAYLOAD {
        return None;
    }
    let total = HEADER_LEN + len;
    let frame = buf.get_mut(..total)?;
    let (hdr, payload) = frame.split_at_mut(HEADER_LEN);
    let hdr: &mut [u8; HEADER_LEN] = hdr.try_into().ok()?;
    let h = header10(version, ty, seq, len as u16);
    let crc = crc16_update(crc16(&h), payload);
    hdr[..10].copy_from_slice(&h);
    hdr[10..].copy_from_slice(&crc.to_le_bytes());
    Some(total)
}

/// Encodes a whole frame from a separate payload into `out`. Returns its length.
pub fn encode(out: &mut [u8], version: Version, ty: u8, seq: u32, payload: &[u8]) -> Option<usize> {
    if payload.len() > MAX_PAYLOAD {
        return None;
    }
    out.get_mut(HEADER_LEN..HEADER_LEN + payload.len())?
        .copy_from_slice(payload);
    finish(out, version, ty, seq, payload.len())
}

/// A decoded header. The payload is `bytes[12..12 + length]` of the checked input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Wire version byte.
    pub version: u8,
    /// Frame type byte.
    pub ty: u8,
    /// Sequence number.
    pub seq: u32,
    /// Payload length (at most 480).
    pub length: u16,
    /// CRC-16 of the first 10 header bytes and the payload.
    pub crc: u16,
}

impl Header {
    /// Total frame length on the wire.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + usize::from(self.length)
    }
}

/// Checks the fixed part of a header (magic, length bound) and returns the whole frame's
/// length, so a byte-stream reader knows how many bytes to read after the first 12.
pub fn wire_len(header: &[u8]) -> Result<usize, FrameError> {
    let h = parse_header(header)?;
    Ok(h.frame_len())
}

/// Reading a frame from a byte stream: given the bytes of it received so far, the length
/// to read up to. Before 12 bytes, the header; then the frame length the header announces.
/// A header that is not one (bad magic, length above 480) gives the header alone: the
/// reader hands it on and the core names the fault.
pub fn stream_target(received: &[u8]) -> usize {
    if received.len() < HEADER_LEN {
        return HEADER_LEN;
    }
    wire_len(received).unwrap_or(HEADER_LEN)
}

/// Reading frames from a byte stream a few bytes at a time (a non-blocking read returns
/// what is there): the bytes of the frame so far stay in the caller's buffer, this
/// remembers how many there are and when the first came. Plain data: any bit pattern is a
/// valid reader (at worst it names a frame that fails its checks).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamReader {
    started: u32,
    have: u16,
}

impl StreamReader {
    /// Where the next bytes go in `buf` (the same buffer at every call until the frame is
    /// whole): at most what the frame still needs, so the next frame's bytes stay in the
    /// transport. `None` when the frame does not fit in `buf`.
    pub fn want<'b>(&self, buf: &'b mut [u8]) -> Option<&'b mut [u8]> {
        let have = usize::from(self.have);
        let need = stream_target(buf.get(..have)?);
        buf.get_mut(have..need)
    }

    /// `n` bytes went into [`StreamReader::want`]'s slice at `now`: the frame's length once
    /// it is whole (the reader then starts on the next one).
    pub fn got(&mut self, buf: &[u8], n: usize, now: u32) -> Option<usize> {
        if self.have == 0 {
            self.started = now;
        }
        let have = usize::from(self.have).saturating_add(n).min(MAX_FRAME);
        self.have = have as u16;
        if have >= stream_target(buf.get(..have)?) {
            self.have = 0;
            return Some(have);
        }
        None
    }

    /// When the first byte of the frame in progress came (`None`: no frame in progress).
    pub fn started(&self) -> Option<u32> {
        (self.have != 0).then_some(self.started)
    }

    /// Forgets the frame in progress.
    pub fn reset(&mut self) {
        self.have = 0;
    }
}

fn parse_header(bytes: &[u8]) -> Result<Header, FrameError> {
    let h: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(FrameError::TooShort)?;
    if u16::from_le_bytes([h[0], h[1]]) != MAGIC {
        return Err(FrameError::BadMagic);
    }
    let length = u16::from_le_bytes([h[8], h[9]]);
    if usize::from(length) > MAX_PAYLOAD {
        return Err(FrameError::TooLong);
    }
    Ok(Header {
        version: h[2],
        ty: h[3],
        seq: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
        length,
        crc: u16::from_le_bytes([h[10], h[11]]),
    })
}

/// Decodes a frame in the gateway's order: size, magic, version, length, truncation, CRC,
/// type. Bytes after `12 + length` are ignored. Returns the header and the known type.
pub fn decode(bytes: &[u8], version: Version) -> Result<(Header, FrameType), FrameError> {
    let h = parse_header(bytes)?;
    if h.version != version.byte() {
        return Err(FrameError::BadVersion);
    }
    let payload = bytes
        .get(HEADER_LEN..h.frame_len())
        .ok_or(FrameError::Truncated)?;
    let head = bytes.get(..10).ok_or(FrameError::TooShort)?;
    if crc16_update(crc16(head), payload) != h.crc {
        return Err(FrameError::BadCrc);
    }
    let ty = FrameType::from_byte(h.ty, version).ok_or(FrameError::UnknownType)?;
    Ok((h, ty))
}

/// The payload slice of a frame that [`decode`] accepted.
pub fn payload<'a>(bytes: &'a [u8], h: &Header) -> &'a [u8] {
    bytes.get(HEADER_LEN..h.frame_len()).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_target_reads_the_header_then_what_it_announces() {
        let mut f = [0u8; MAX_FRAME];
        let n = encode(
            &mut f,
            Version::V2,
            FrameType::Data as u8,
            7,
            &[1, 2, 3, 4, 5],
        )
        .unwrap();
        assert_eq!(n, HEADER_LEN + 5);
        for have in 0..HEADER_LEN {
            assert_eq!(stream_target(&f[..have]), HEADER_LEN);
        }
        assert_eq!(stream_target(&f[..HEADER_LEN]), HEADER_LEN + 5);
        assert_eq!(stream_target(&f[..n]), HEADER_LEN + 5);
        // Not a header: the reader stops at 12 bytes and the core names the fault.
        let mut bad = f;
        bad[0] ^= 0xFF;
        assert_eq!(stream_target(&bad[..HEADER_LEN]), HEADER_LEN);
        let mut long = f;
        long[8..10].copy_from_slice(&(MAX_PAYLOAD as u16 + 1).to_le_bytes());
        assert_eq!(stream_target(&long[..HEADER_LEN]), HEADER_LEN);
    }

    #[test]
    fn stream_reader_takes_a_frame_in_pieces_and_never_more() {
        let mut f = [0u8; MAX_FRAME];
        let n = encode(&mut f, Version::V2, FrameType::Data as u8, 3, &[9; 40]).unwrap();
        let mut buf = [0u8; 64];
        let mut r = StreamReader::default();
        let mut off = 0;
        let mut now = 100;
        // Three bytes at a time: the slice offered never reaches past the frame.
        let len = loop {
            let part = r.want(&mut buf).unwrap();
            let k = part.len().min(3);
            assert!(off + part.len() <= n, "offered bytes past the frame");
            part[..k].copy_from_slice(&f[off..off + k]);
            off += k;
            now += 1;
            if let Some(len) = r.got(&buf, k, now) {
                break len;
            }
            assert_eq!(r.started(), Some(101));
        };
        assert_eq!((len, &buf[..len]), (n, &f[..n]));
        assert_eq!(r.started(), None);
        // A frame larger than the buffer: nowhere to put it.
        let big = encode(&mut f, Version::V2, FrameType::Data as u8, 4, &[1; 100]).unwrap();
        let part = r.want(&mut buf).unwrap();
        part.copy_from_slice(&f[..HEADER_LEN]);
        assert_eq!(r.got(&buf, HEADER_LEN, now), None);
        assert!(big > buf.len() && r.want(&mut buf).is_none());
        // Not a header: handed on after 12 bytes, for the core to name the fault.
        r.reset();
        let part = r.want(&mut buf).unwrap();
        part.copy_from_slice(&[0xEE; HEADER_LEN]);
        assert_eq!(r.got(&buf, HEADER_LEN, now), Some(HEADER_LEN));
    }

    #[test]
    fn crc_check_values() {
        assert_eq!(crc16(b"123456789"), 0x4B37);
        assert_eq!(crc16(b"hello"), 0x34F6);
    }

    #[test]
    fn roundtrip_and_errors() {
        let mut buf = [0u8; MAX_FRAME];
        let n = encode(&mut buf, Version::V2, 5, 7, b"hello").unwrap();
        let (h, t) = decode(&buf[..n], Version::V2).unwrap();
        assert_eq!((h.seq, h.length, t), (7, 5, FrameType::Data));
        assert_eq!(decode(&buf[..n], Version::V1), Err(FrameError::BadVersion));
        assert_eq!(
            decode(&buf[..n - 1], Version::V2),
            Err(FrameError::Truncated)
        );
        assert_eq!(decode(&buf[..11], Version::V2), Err(FrameError::TooShort));
        buf[n - 1] ^= 1;
        assert_eq!(decode(&buf[..n], Version::V2), Err(FrameError::BadCrc));
        assert!(encode(&mut buf, Version::V2, 5, 0, &[0u8; 481]).is_none());
    }
}
