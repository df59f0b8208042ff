//! Compile-time settings, from environment variables at build time (`option_env!`; build.rs
//! makes cargo rebuild when one changes). An unset or empty variable takes the default; a
//! malformed one stops the build with a message (the parsers are `const`).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `USMP_FW_PSK` | `usmp-dev-psk-change-me-before-prod` | the pre-shared key, as text (v2: at least 16 bytes) |
//! | `USMP_FW_WIRE` | `2` | wire version: `1` (PyPI usmp 0.5.1 gateways) or `2` (usmp 1.x) |
//! | `USMP_FW_DEVICE_ID` | `024d50533201` | the 6-byte device id, 12 hex digits (`:` allowed between bytes) |
//! | `USMP_FW_KEEPALIVE_MS` | `300` | keepalive period, ms (50..=30000); the run idles 1.5 times this |
//!
//! A PSK compiled into the image is for this demonstration only: a product keeps it in
//! protected storage, provisioned per device.

use usmp::Version;

/// The gateway's default PSK (tests/interop/gateway.py, examples/rust_host_echo).
const DEFAULT_PSK: &[u8] = b"usmp-dev-psk-change-me-before-prod";
/// 02 (locally administered) "MPS2" 01.
const DEFAULT_DEVICE_ID: [u8; 6] = [0x02, 0x4D, 0x50, 0x53, 0x32, 0x01];

/// The pre-shared key.
pub const PSK: &[u8] = match option_env!("USMP_FW_PSK") {
    Some(s) if !s.is_empty() => s.as_bytes(),
    _ => DEFAULT_PSK,
};

/// The wire version.
pub const WIRE: Version = match option_env!("USMP_FW_WIRE") {
    Some(s) if !s.is_empty() => parse_wire(s),
    _ => Version::V2,
};

/// The device id the gateway sees.
pub const DEVICE_ID: [u8; 6] = match option_env!("USMP_FW_DEVICE_ID") {
    Some(s) if !s.is_empty() => parse_device_id(s),
    _ => DEFAULT_DEVICE_ID,
};

/// Keepalive period, ms.
pub const KEEPALIVE_MS: u32 = match option_env!("USMP_FW_KEEPALIVE_MS") {
    Some(s) if !s.is_empty() => parse_ms(s),
    _ => 300,
};

const _: () = assert!(
    PSK.len() >= WIRE.min_psk_len(),
    "USMP_FW_PSK is shorter than the wire version allows (v2: 16 bytes)"
);
const _: () = assert!(
    KEEPALIVE_MS >= 50 && KEEPALIVE_MS <= 30_000,
    "USMP_FW_KEEPALIVE_MS must be 50..=30000"
);

#[allow(clippy::panic)] // evaluated at compile time: a bad setting stops the build
const fn parse_wire(s: &str) -> Version {
    match s.as_bytes() {
        b"1" | b"v1" => Version::V1,
        b"2" | b"v2" => Version::V2,
        _ => panic!("USMP_FW_WIRE must be 1 or 2"),
    }
}

#[allow(clippy::panic)]
const fn hex_digit(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("USMP_FW_DEVICE_ID must be 12 hex digits"),
    }
}

#[allow(clippy::panic, clippy::indexing_slicing)] // compile time; `i` < s.len(), `n` < 12
const fn parse_device_id(s: &str) -> [u8; 6] {
    let s = s.as_bytes();
    let mut id = [0u8; 6];
    let mut n = 0; // hex digits seen
    let mut i = 0;
    while i < s.len() {
        if s[i] != b':' {
            if n == 12 {
                panic!("USMP_FW_DEVICE_ID must be 12 hex digits");
            }
            id[n / 2] = (id[n / 2] << 4) | hex_digit(s[i]);
            n += 1;
        }
        i += 1;
    }
    if n != 12 {
        panic!("USMP_FW_DEVICE_ID must be 12 hex digits");
    }
    id
}

#[allow(clippy::panic, clippy::indexing_slicing)] // compile time; `i` < s.len()
const fn parse_ms(s: &str) -> u32 {
    let s = s.as_bytes();
    let mut v: u32 = 0;
    let mut i = 0;
    while i < s.len() {
        if !s[i].is_ascii_digit() || v > 100_000 {
            panic!("USMP_FW_KEEPALIVE_MS must be a number of milliseconds");
        }
        v = v * 10 + (s[i] - b'0') as u32;
        i += 1;
    }
    v
}
