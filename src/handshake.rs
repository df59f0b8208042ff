//! The 4-message handshake, both roles, both wire versions:
//!
//! ```text
//! device                                              gateway
//! HELLO      [device_id(6) || pub_C(32) (|| cookie(16), v2 UDP)]  ->
//!            <- CHALLENGE  [nonce(32) || pub_S(32)]      (v2 UDP may first send HELLO_RETRY)
//! HELLO_ACK  [HMAC(psk, T_c)]                             ->
//!            <- SESSION_OK [session_id(16) || HMAC(psk, T_s)]
//! ```
//! `T_c = prefix(HELLO_ACK) || nonce || device_id || pub_C || pub_S` and
//! `T_s = prefix(SESSION_OK) || nonce || session_id || pub_C || pub_S`, where the prefix is
//! `CD AB 02 type` in v2 and empty in v1. Keys: `HKDF-SHA256(salt = nonce,
//! ikm = X25519(priv, peer_pub), info = "usmp-vN" || pub_C || pub_S)`, 32 bytes in v1 (one
//! key), 64 in v2 (`k_c2s || k_s2c`). Handshake frames carry seq 0.

use zeroize::Zeroize;

use crate::crypto::{self, KEY_LEN};
use crate::frame::{self, FrameType, MAX_FRAME};
use crate::session::{Session, SESSION_ID_LEN};
use crate::{Error, Version};

/// Device id length (the ESP32 Wi-Fi MAC).
pub const DEVICE_ID_LEN: usize = 6;
/// CHALLENGE nonce length.
pub const CHALLENGE_NONCE_LEN: usize = 32;
/// HELLO_RETRY cookie length (v2, UDP).
pub const COOKIE_LEN: usize = 16;
/// HMAC length.
pub const MAC_LEN: usize = 32;

const HELLO_LEN: usize = DEVICE_ID_LEN + KEY_LEN;
const CHALLENGE_LEN: usize = CHALLENGE_NONCE_LEN + KEY_LEN;
const SESSION_OK_LEN: usize = SESSION_ID_LEN + MAC_LEN;

/// Transcript MAC shared by both roles: `HMAC(psk, prefix || nonce || middle || pub_C || pub_S)`.
fn transcript_mac(
    version: Version,
    psk: &[u8],
    ty: FrameType,
    nonce: &[u8; CHALLENGE_NONCE_LEN],
    middle: &[u8],
    pub_c: &[u8; KEY_LEN],
    pub_s: &[u8; KEY_LEN],
) -> [u8; MAC_LEN] {
    let h = frame::header10(version, ty as u8, 0, 0);
    let prefix: &[u8] = if version.prefixed_transcripts() {
        h.get(..4).unwrap_or(&[])
    } else {
        &[]
    };
    crypto::hmac(psk, &[prefix, nonce, middle, pub_c, pub_s])
}

/// Session keys from the DH result: `(device tx, device rx)`; v1 gives the same key twice.
fn derive_keys(
    version: Version,
    shared: &[u8; KEY_LEN],
    nonce: &[u8; CHALLENGE_NONCE_LEN],
    pub_c: &[u8; KEY_LEN],
    pub_s: &[u8; KEY_LEN],
) -> Result<[u8; 2 * KEY_LEN], Error> {
    let mut okm = [0u8; 2 * KEY_LEN];
    let n = version.okm_len();
    let out = okm.get_mut(..n).ok_or(Error::CryptoFailed)?;
    crypto::hkdf(nonce, shared, &[version.kdf_label(), pub_c, pub_s], out)?;
    if n == KEY_LEN {
        let (a, b) = okm.split_at_mut(KEY_LEN);
        b.copy_from_slice(a);
    }
    Ok(okm)
}

fn split_keys(okm: &[u8; 2 * KEY_LEN]) -> (&[u8; KEY_LEN], &[u8; KEY_LEN]) {
    let (a, b) = okm.split_at(KEY_LEN);
    // Both halves are exactly KEY_LEN long, so the conversions cannot fail.
    (
        a.try_into().unwrap_or(&[0u8; KEY_LEN]),
        b.try_into().unwrap_or(&[0u8; KEY_LEN]),
    )
}

/// Checks a received handshake frame: decodes it (CRC included), requires `want` (or
/// HELLO_RETRY where `retry_ok`), and the exact payload length for its type.
fn expect(
    version: Version,
    bytes: &[u8],
    want: FrameType,
    want_len: usize,
) -> Result<(FrameType, &[u8]), Error> {
    let (h, ty) = frame::decode(bytes, version)?;
    let p = frame::payload(bytes, &h);
    let ok_len = match ty {
        t if t == want => p.len() == want_len,
        FrameType::HelloRetry if want == FrameType::Challenge => p.len() == COOKIE_LEN,
        FrameType::Hello if want == FrameType::Hello => p.len() == HELLO_LEN + COOKIE_LEN,
        _ => return Err(Error::UnexpectedFrame),
    };
    if !ok_len {
        return Err(Error::BadFrame);
    }
    Ok((ty, p))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeviceState {
    AwaitChallenge,
    AwaitSessionOk,
    Done,
}

/// What the device does after a gateway frame.
#[derive(Debug)]
pub enum DeviceStep {
    /// Send `out[..n]` (HELLO_ACK, or HELLO again with the cookie) and wait for more.
    Send(usize),
    /// SESSION_OK verified: the session is up.
    Established(Session),
}

/// Device (client) side of the handshake.
pub struct DeviceHandshake<'p> {
    version: Version,
    psk: &'p [u8],
    device_id: [u8; DEVICE_ID_LEN],
    secret: [u8; KEY_LEN],
    pub_c: [u8; KEY_LEN],
    pub_s: [u8; KEY_LEN],
    nonce: [u8; CHALLENGE_NONCE_LEN],
    keys: [u8; 2 * KEY_LEN],
    state: DeviceState,
}

impl Drop for DeviceHandshake<'_> {
    fn drop(&mut self) {
        self.secret.zeroize();
        self.keys.zeroize();
    }
}

impl<'p> DeviceHandshake<'p> {
    /// Starts a handshake with a fresh 32-byte random `secret` (X25519 scalar). Refuses a PSK
    /// the version does not allow before anything is sent.
    pub fn new(
        version: Version,
        psk: &'p [u8],
        device_id: &[u8; DEVICE_ID_LEN],
        secret: &[u8; KEY_LEN],
    ) -> Result<Self, Error> {
        if psk.len() < version.min_psk_len() {
            return Err(Error::PskTooShort);
        }
        Ok(Self {
            version,
            psk,
            device_id: *device_id,
            secret: *secret,
            pub_c: crypto::x25519_public(secret),
            pub_s: [0; KEY_LEN],
            nonce: [0; CHALLENGE_NONCE_LEN],
            keys: [0; 2 * KEY_LEN],
            state: DeviceState::AwaitChallenge,
        })
    }

    /// Our ephemeral public key.
    pub fn public_key(&self) -> &[u8; KEY_LEN] {
        &self.pub_c
    }

    /// The wire version this handshake speaks.
    pub fn version(&self) -> Version {
        self.version
    }

    /// True once HELLO_ACK has gone out (a hang-up now means the PSK was refused).
    pub fn awaiting_session_ok(&self) -> bool {
        self.state == DeviceState::AwaitSessionOk
    }

    /// Writes HELLO (with the v2 cookie when given) into `out`; returns its length.
    pub fn hello(&self, cookie: Option<&[u8; COOKIE_LEN]>, out: &mut [u8; MAX_FRAME]) -> usize {
        let mut p = [0u8; HELLO_LEN + COOKIE_LEN];
        p[..DEVICE_ID_LEN].copy_from_slice(&self.device_id);
        p[DEVICE_ID_LEN..HELLO_LEN].copy_from_slice(&self.pub_c);
        let len = match cookie {
            Some(c) => {
                p[HELLO_LEN..].copy_from_slice(c);
                p.len()
            }
            None => HELLO_LEN,
        };
        frame::encode(
            out,
            self.version,
            FrameType::Hello as u8,
            0,
            p.get(..len).unwrap_or(&[]),
        )
        .unwrap_or(0)
    }

    /// Handles a gateway frame; the reply (if any) goes to `out`.
    pub fn receive(
        &mut self,
        bytes: &[u8],
        out: &mut [u8; MAX_FRAME],
    ) -> Result<DeviceStep, Error> {
        match self.state {
            DeviceState::AwaitChallenge => {
                let (ty, p) = expect(self.version, bytes, FrameType::Challenge, CHALLENGE_LEN)?;
                if ty == FrameType::HelloRetry {
                    let cookie: &[u8; COOKIE_LEN] = p.try_into().map_err(|_| Error::BadFrame)?;
                    return Ok(DeviceStep::Send(self.hello(Some(cookie), out)));
                }
                let (n, s) = p.split_at(CHALLENGE_NONCE_LEN);
                self.nonce.copy_from_slice(n);
                self.pub_s.copy_from_slice(s);
                let shared = crypto::x25519_shared(&self.secret, &self.pub_s);
                self.secret.zeroize();
                // The secret is gone: whatever happens next, this handshake is over (a later
                // CHALLENGE would otherwise be answered with the all-zero scalar).
                self.state = DeviceState::Done;
                let mut shared = shared?;
                let keys =
                    derive_keys(self.version, &shared, &self.nonce, &self.pub_c, &self.pub_s);
                shared.zeroize();
                self.keys = keys?;
                let mac = transcript_mac(
                    self.version,
                    self.psk,
                    FrameType::HelloAck,
                    &self.nonce,
                    &self.device_id,
                    &self.pub_c,
                    &self.pub_s,
                );
                let n = frame::encode(out, self.version, FrameType::HelloAck as u8, 0, &mac)
                    .ok_or(Error::InvalidArg)?;
                self.state = DeviceState::AwaitSessionOk;
                Ok(DeviceStep::Send(n))
            }
            DeviceState::AwaitSessionOk => {
                let (_, p) = expect(self.version, bytes, FrameType::SessionOk, SESSION_OK_LEN)?;
                let (sid, mac) = p.split_at(SESSION_ID_LEN);
                let want = transcript_mac(
                    self.version,
                    self.psk,
                    FrameType::SessionOk,
                    &self.nonce,
                    sid,
                    &self.pub_c,
                    &self.pub_s,
                );
                if !crypto::ct_eq(&want, mac) {
                    self.keys.zeroize();
                    self.state = DeviceState::Done;
                    return Err(Error::AuthFailed);
                }
                let sid: &[u8; SESSION_ID_LEN] = sid.try_into().map_err(|_| Error::BadFrame)?;
                let (tx, rx) = split_keys(&self.keys);
                let s = Session::new(self.version, tx, rx, sid);
                self.keys.zeroize();
                self.state = DeviceState::Done;
                Ok(DeviceStep::Established(s))
            }
            DeviceState::Done => Err(Error::UnexpectedFrame),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResponderState {
    AwaitHello,
    AwaitHelloAck,
    Done,
}

/// What the responder does after a device frame.
#[derive(Debug)]
pub enum ResponderStep {
    /// Send `out[..n]` (CHALLENGE) and wait for HELLO_ACK.
    Send(usize),
    /// HELLO_ACK verified: send `out[..n]` (SESSION_OK); the session is up.
    Established(usize, Session),
}

/// Gateway (responder) side of the handshake, for device-to-device links and tests.
pub struct Responder<'p> {
    version: Version,
    psk: &'p [u8],
    secret: [u8; KEY_LEN],
    pub_s: [u8; KEY_LEN],
    pub_c: [u8; KEY_LEN],
    nonce: [u8; CHALLENGE_NONCE_LEN],
    session_id: [u8; SESSION_ID_LEN],
    device_id: [u8; DEVICE_ID_LEN],
    keys: [u8; 2 * KEY_LEN],
    state: ResponderState,
}

impl Drop for Responder<'_> {
    fn drop(&mut self) {
        self.secret.zeroize();
        self.keys.zeroize();
    }
}

impl<'p> Responder<'p> {
    /// A responder with its random inputs: X25519 scalar, CHALLENGE nonce, session id.
    pub fn new(
        version: Version,
        psk: &'p [u8],
        secret: &[u8; KEY_LEN],
        nonce: &[u8; CHALLENGE_NONCE_LEN],
        session_id: &[u8; SESSION_ID_LEN],
    ) -> Result<Self, Error> {
        if psk.len() < version.min_psk_len() {
            return Err(Error::PskTooShort);
        }
        Ok(Self {
            version,
            psk,
            secret: *secret,
            pub_s: crypto::x25519_public(secret),
            pub_c: [0; KEY_LEN],
            nonce: *nonce,
            session_id: *session_id,
            device_id: [0; DEVICE_ID_LEN],
            keys: [0; 2 * KEY_LEN],
            state: ResponderState::AwaitHello,
        })
    }

    /// The device id from HELLO (zero before it).
    pub fn device_id(&self) -> &[u8; DEVICE_ID_LEN] {
        &self.device_id
    }

    /// Handles a device frame; the reply goes to `out`.
    pub fn receive(
        &mut self,
        bytes: &[u8],
        out: &mut [u8; MAX_FRAME],
    ) -> Result<ResponderStep, Error> {
        match self.state {
            ResponderState::AwaitHello => {
                let (h, ty) = frame::decode(bytes, self.version)?;
                let p = frame::payload(bytes, &h);
                if ty != FrameType::Hello {
                    return Err(Error::UnexpectedFrame);
                }
                // v2 HELLOs may carry a 16-byte cookie (ignored on a stream, as the gateway does).
                let cookie_ok = self.version.has_rekey() && p.len() == HELLO_LEN + COOKIE_LEN;
                if p.len() != HELLO_LEN && !cookie_ok {
                    return Err(Error::BadFrame);
                }
                let (id, rest) = p.split_at(DEVICE_ID_LEN);
                self.device_id.copy_from_slice(id);
                self.pub_c
                    .copy_from_slice(rest.get(..KEY_LEN).ok_or(Error::BadFrame)?);
                let shared = crypto::x25519_shared(&self.secret, &self.pub_c);
                self.secret.zeroize();
                self.state = ResponderState::Done;
                let mut shared = shared?;
                let keys =
                    derive_keys(self.version, &shared, &self.nonce, &self.pub_c, &self.pub_s);
                shared.zeroize();
                self.keys = keys?;
                let mut c = [0u8; CHALLENGE_LEN];
                c[..CHALLENGE_NONCE_LEN].copy_from_slice(&self.nonce);
                c[CHALLENGE_NONCE_LEN..].copy_from_slice(&self.pub_s);
                let n = frame::encode(out, self.version, FrameType::Challenge as u8, 0, &c)
                    .ok_or(Error::InvalidArg)?;
                self.state = ResponderState::AwaitHelloAck;
                Ok(ResponderStep::Send(n))
            }
            ResponderState::AwaitHelloAck => {
                let (_, p) = expect(self.version, bytes, FrameType::HelloAck, MAC_LEN)?;
                let want = transcript_mac(
                    self.version,
                    self.psk,
                    FrameType::HelloAck,
                    &self.nonce,
                    &self.device_id,
                    &self.pub_c,
                    &self.pub_s,
                );
                self.state = ResponderState::Done;
                if !crypto::ct_eq(&want, p) {
                    self.keys.zeroize();
                    return Err(Error::AuthFailed);
                }
                let mac = transcript_mac(
                    self.version,
                    self.psk,
                    FrameType::SessionOk,
                    &self.nonce,
                    &self.session_id,
                    &self.pub_c,
                    &self.pub_s,
                );
                let mut ok = [0u8; SESSION_OK_LEN];
                ok[..SESSION_ID_LEN].copy_from_slice(&self.session_id);
                ok[SESSION_ID_LEN..].copy_from_slice(&mac);
                let n = frame::encode(out, self.version, FrameType::SessionOk as u8, 0, &ok)
                    .ok_or(Error::InvalidArg)?;
                // The gateway sends with k_s2c and receives with k_c2s: the device's keys swapped.
                let (c2s, s2c) = split_keys(&self.keys);
                let s = Session::new(self.version, s2c, c2s, &self.session_id);
                self.keys.zeroize();
                Ok(ResponderStep::Established(n, s))
            }
            ResponderState::Done => Err(Error::UnexpectedFrame),
        }
    }
}
