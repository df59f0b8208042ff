use crate::frame::FrameError;

/// Every way an operation can fail. The numbers are the stable C codes (`usmp_err_t`):
/// −1..−9 keep the numbering of the original 1.2 `usmp_err_t`; the rest are ours and are
/// never reordered or reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Error {
    /// A null pointer, a bad length or an invalid setting.
    InvalidArg = -1,
    /// The transport failed or the peer closed the connection.
    TransportFailed = -2,
    /// The peer's handshake MAC did not verify, or it hung up after our HELLO_ACK (PSK refused).
    AuthFailed = -3,
    /// No answer in time.
    Timeout = -4,
    /// An authentic frame arrived out of order (replay, gap or reordering).
    ReplayDetected = -5,
    /// A message above 1808 bytes, or a received message larger than the caller's buffer.
    BufferOverflow = -6,
    /// The sequence space of this session is used up: reconnect.
    SeqExhausted = -7,
    /// AEAD tag, embedded nonce or payload size wrong, or a non-contributory X25519 key.
    CryptoFailed = -8,
    /// No session.
    NotConnected = -9,
    /// Not a frame: too short, bad magic, length above 480 or truncated.
    BadFrame = -10,
    /// Frame CRC mismatch.
    BadCrc = -11,
    /// The frame's version byte is not the configured wire version.
    VersionMismatch = -12,
    /// Unknown type, or a type (or payload size) not valid at this point.
    UnexpectedFrame = -13,
    /// The peer sent BYE.
    ClosedByPeer = -14,
    /// Too many control frames (PING/PONG/REKEY) in one receive call.
    Flood = -15,
    /// PSK missing or shorter than the wire version allows (v2: 16 bytes).
    PskTooShort = -16,
    /// The gateway closed before CHALLENGE: unknown device id, other wire version,
    /// lockout after failed handshakes, or its connection limit.
    Rejected = -17,
    /// A port hook (`usmp_port_random`, `usmp_port_get_device_id`) failed.
    PortFailed = -18,
    /// Not available here: REKEY on v1, or a transport without `reconnect`.
    Unsupported = -19,
    /// The `usmp_t` was copied or moved after `usmp_connect`; the copy is wiped.
    ContextMoved = -20,
    /// Fragmentation rule broken: more than 4 fragments, or a control frame between them.
    Fragmentation = -21,
    /// Another task is connecting, reconnecting or closing this context, or is already
    /// receiving on it: try again when that call has returned.
    Busy = -22,
}

impl Error {
    /// The C return code.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// All errors, for tables and tests.
    pub const ALL: [Error; 22] = [
        Self::InvalidArg,
        Self::TransportFailed,
        Self::AuthFailed,
        Self::Timeout,
        Self::ReplayDetected,
        Self::BufferOverflow,
        Self::SeqExhausted,
        Self::CryptoFailed,
        Self::NotConnected,
        Self::BadFrame,
        Self::BadCrc,
        Self::VersionMismatch,
        Self::UnexpectedFrame,
        Self::ClosedByPeer,
        Self::Flood,
        Self::PskTooShort,
        Self::Rejected,
        Self::PortFailed,
        Self::Unsupported,
        Self::ContextMoved,
        Self::Fragmentation,
        Self::Busy,
    ];

    /// The error of a C code (an unknown code reads as [`Error::InvalidArg`]).
    pub fn from_code(code: i32) -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|e| e.code() == code)
            .unwrap_or(Self::InvalidArg)
    }

    /// The C name of the code, NUL-terminated (without the `names` feature: `USMP_ERR`).
    pub const fn name(self) -> &'static [u8] {
        if !cfg!(feature = "names") {
            return b"USMP_ERR\0";
        }
        match self {
            Self::InvalidArg => b"USMP_ERR_INVALID_ARG\0",
            Self::TransportFailed => b"USMP_ERR_TRANSPORT_FAILED\0",
            Self::AuthFailed => b"USMP_ERR_AUTH_FAILED\0",
            Self::Timeout => b"USMP_ERR_TIMEOUT\0",
            Self::ReplayDetected => b"USMP_ERR_REPLAY_DETECTED\0",
            Self::BufferOverflow => b"USMP_ERR_BUFFER_OVERFLOW\0",
            Self::SeqExhausted => b"USMP_ERR_SEQ_EXHAUSTED\0",
            Self::CryptoFailed => b"USMP_ERR_CRYPTO_FAILED\0",
            Self::NotConnected => b"USMP_ERR_NOT_CONNECTED\0",
            Self::BadFrame => b"USMP_ERR_BAD_FRAME\0",
            Self::BadCrc => b"USMP_ERR_BAD_CRC\0",
            Self::VersionMismatch => b"USMP_ERR_VERSION_MISMATCH\0",
            Self::UnexpectedFrame => b"USMP_ERR_UNEXPECTED_FRAME\0",
            Self::ClosedByPeer => b"USMP_ERR_CLOSED_BY_PEER\0",
            Self::Flood => b"USMP_ERR_FLOOD\0",
            Self::PskTooShort => b"USMP_ERR_PSK_TOO_SHORT\0",
            Self::Rejected => b"USMP_ERR_REJECTED\0",
            Self::PortFailed => b"USMP_ERR_PORT_FAILED\0",
            Self::Unsupported => b"USMP_ERR_UNSUPPORTED\0",
            Self::ContextMoved => b"USMP_ERR_CONTEXT_MOVED\0",
            Self::Fragmentation => b"USMP_ERR_FRAGMENTATION\0",
            Self::Busy => b"USMP_ERR_BUSY\0",
        }
    }
}

impl From<FrameError> for Error {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooShort | FrameError::BadMagic | FrameError::TooLong => Self::BadFrame,
            FrameError::Truncated => Self::BadFrame,
            FrameError::BadVersion => Self::VersionMismatch,
            FrameError::BadCrc => Self::BadCrc,
            FrameError::UnknownType => Self::UnexpectedFrame,
        }
    }
}

impl core::fmt::Display for Error {
    /// The C name, e.g. `USMP_ERR_AUTH_FAILED`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if !cfg!(feature = "names") {
            return write!(f, "USMP_ERR {}", self.code());
        }
        let name = self.name();
        let name = name.strip_suffix(&[0]).unwrap_or(name);
        f.write_str(core::str::from_utf8(name).unwrap_or("USMP_ERR_UNKNOWN"))
    }
}

impl core::error::Error for Error {}
