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
use crate::frame::{self, FrameType};
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

/// Checks a received handshake frame: decodes it (CRC included), requires type `want` and
/// exactly `want_len` payload bytes.
fn expect(
    version: Version,
    bytes: &[u8],
    want: FrameType,
    want_len: usize,
) -> Result<&[u8], Error> {
    let (h, ty) = frame::decode(bytes, version)?;
    if ty != want {
        return Err(Error::UnexpectedFrame);
    }
    let p = frame::payload(bytes, &h);
    if p.len() != want_len {
        return Err(Error::BadFrame);
    }
    Ok(p)
}

// Device handshake states (plain bytes, so any value is valid: unknown ones read as Done).
const AWAIT_CHALLENGE: u8 = 0;
const AWAIT_SESSION_OK: u8 = 1;
const DONE: u8 = 2;

/// CHALLENGEs a datagram handshake answers before it stops taking new ones: a forged
/// CHALLENGE that arrives before the gateway's own cannot then make the device miss it.
pub const MAX_CANDIDATES: usize = 3;

/// What the device does after a gateway frame.
#[derive(Debug)]
pub enum DeviceStep {
    /// Send `out[..n]` (HELLO_ACK, or HELLO again with the cookie) and wait for more.
    Send(usize),
    /// SESSION_OK verified: the session is up.
    Established(Session),
    /// A CHALLENGE answered before (or one too many): nothing to send.
    Nothing,
}

/// The device handshake's state as plain data (any bit pattern is valid), with the PSK
/// passed to each step instead of held: the non-blocking C API keeps it in application
/// memory between calls. [`DeviceHandshake`] is the safe wrapper.
#[repr(C)]
pub(crate) struct HsCore {
    ver: u8,
    state: u8,
    answered: u8,
    datagram: u8,
    device_id: [u8; DEVICE_ID_LEN],
    secret: [u8; KEY_LEN],
    pub_c: [u8; KEY_LEN],
    /// `nonce || pub_S || X25519 shared secret` of each CHALLENGE answered.
    candidates: [[u8; CANDIDATE_LEN]; MAX_CANDIDATES],
}

/// A CHALLENGE answered: its nonce and public key, and the shared secret with it.
const CANDIDATE_LEN: usize = CHALLENGE_LEN + KEY_LEN;

impl HsCore {
    /// No handshake (wiped).
    pub(crate) const EMPTY: Self = Self {
        ver: 0,
        state: DONE,
        answered: 0,
        datagram: 0,
        device_id: [0; DEVICE_ID_LEN],
        secret: [0; KEY_LEN],
        pub_c: [0; KEY_LEN],
        candidates: [[0; CANDIDATE_LEN]; MAX_CANDIDATES],
    };

    pub(crate) fn new(
        version: Version,
        psk: &[u8],
        device_id: &[u8; DEVICE_ID_LEN],
        secret: &[u8; KEY_LEN],
    ) -> Result<Self, Error> {
        let mut s = Self::EMPTY;
        s.init(version, psk, device_id, secret)?;
        Ok(s)
    }

    /// Starts a handshake in place (no copy of the state passes through the stack).
    pub(crate) fn init(
        &mut self,
        version: Version,
        psk: &[u8],
        device_id: &[u8; DEVICE_ID_LEN],
        secret: &[u8; KEY_LEN],
    ) -> Result<(), Error> {
        if !version.built_in() {
            return Err(Error::Unsupported);
        }
        if psk.len() < version.min_psk_len() {
            return Err(Error::PskTooShort);
        }
        self.ver = version.byte();
        self.state = AWAIT_CHALLENGE;
        self.answered = 0;
        self.datagram = 0;
        self.device_id = *device_id;
        self.secret = *secret;
        self.pub_c = crypto::x25519_public(secret);
        self.candidates.zeroize();
        Ok(())
    }

    pub(crate) fn version(&self) -> Version {
        if cfg!(feature = "v1") && self.ver == 1 {
            Version::V1
        } else {
            Version::V2
        }
    }

    pub(crate) fn set_datagram(&mut self, on: bool) {
        self.datagram = u8::from(on && cfg!(feature = "datagram"));
    }

    pub(crate) fn awaiting_session_ok(&self) -> bool {
        self.state == AWAIT_SESSION_OK
    }

    /// CHALLENGEs answered so far.
    pub(crate) fn answered(&self) -> usize {
        usize::from(self.answered)
    }

    /// Back to the start (datagram): the CHALLENGEs answered are forgotten; the ephemeral
    /// key stays (no session was made with it).
    pub(crate) fn restart(&mut self) {
        if self.state == AWAIT_SESSION_OK {
            for c in &mut self.candidates {
                c.zeroize();
            }
            self.answered = 0;
            self.state = AWAIT_CHALLENGE;
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state != AWAIT_CHALLENGE && self.state != AWAIT_SESSION_OK
    }

    pub(crate) fn hello(&self, cookie: Option<&[u8; COOKIE_LEN]>, out: &mut [u8]) -> usize {
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
            self.version(),
            FrameType::Hello as u8,
            0,
            p.get(..len).unwrap_or(&[]),
        )
        .unwrap_or(0)
    }

    /// HELLO_ACK for the last CHALLENGE answered (0 before any).
    pub(crate) fn hello_ack(&self, psk: &[u8], out: &mut [u8]) -> usize {
        let i = usize::from(self.answered).min(MAX_CANDIDATES);
        let Some(c) = i.checked_sub(1).and_then(|i| self.candidates.get(i)) else {
            return 0;
        };
        let (nonce, pub_s, _) = split_candidate(c);
        let mac = transcript_mac(
            self.version(),
            psk,
            FrameType::HelloAck,
            nonce,
            &self.device_id,
            &self.pub_c,
            pub_s,
        );
        frame::encode(out, self.version(), FrameType::HelloAck as u8, 0, &mac).unwrap_or(0)
    }

    pub(crate) fn receive(
        &mut self,
        psk: &[u8],
        bytes: &[u8],
        out: &mut [u8],
    ) -> Result<DeviceStep, Error> {
        if self.is_done() {
            return Err(Error::UnexpectedFrame);
        }
        let (h, ty) = frame::decode(bytes, self.version())?;
        let p = frame::payload(bytes, &h);
        let awaiting_challenge = self.state == AWAIT_CHALLENGE;
        let (want_len, fits) = match ty {
            FrameType::HelloRetry => (COOKIE_LEN, awaiting_challenge),
            FrameType::Challenge => (CHALLENGE_LEN, awaiting_challenge || self.datagram != 0),
            FrameType::SessionOk => (SESSION_OK_LEN, !awaiting_challenge),
            _ => (0, false),
        };
        if !fits {
            return Err(Error::UnexpectedFrame);
        }
        if p.len() != want_len {
            return Err(Error::BadFrame);
        }
        match ty {
            FrameType::HelloRetry => {
                let cookie: &[u8; COOKIE_LEN] = p.try_into().map_err(|_| Error::BadFrame)?;
                Ok(DeviceStep::Send(self.hello(Some(cookie), out)))
            }
            FrameType::Challenge => self.challenge(psk, p, out),
            _ => self.session_ok(psk, p),
        }
    }

    // Not inlined (nor is session_ok): each one's buffers are on the stack only while it runs.
    #[inline(never)]
    fn challenge(&mut self, psk: &[u8], p: &[u8], out: &mut [u8]) -> Result<DeviceStep, Error> {
        let answered = usize::from(self.answered).min(MAX_CANDIDATES);
        if self
            .candidates
            .iter()
            .take(answered)
            .any(|c| c.get(..CHALLENGE_LEN) == Some(p))
        {
            return Ok(DeviceStep::Nothing);
        }
        if answered == MAX_CANDIDATES {
            return Ok(DeviceStep::Nothing);
        }
        let pub_s: &[u8; KEY_LEN] = p
            .get(CHALLENGE_NONCE_LEN..)
            .and_then(|k| k.try_into().ok())
            .ok_or(Error::BadFrame)?;
        // A key of small order gives the all-zero secret: refused before anything is sent.
        let shared = crypto::x25519_shared(&self.secret, pub_s);
        if self.datagram == 0 {
            // A stream has one CHALLENGE: the secret is used once.
            self.secret.zeroize();
            if shared.is_err() {
                self.state = DONE;
            }
        }
        let mut shared = shared?;
        if let Some(slot) = self.candidates.get_mut(answered) {
            let (c, sh) = slot.split_at_mut(CHALLENGE_LEN);
            c.copy_from_slice(p);
            sh.copy_from_slice(&shared);
        }
        shared.zeroize();
        self.answered = answered as u8 + 1;
        self.state = AWAIT_SESSION_OK;
        match self.hello_ack(psk, out) {
            0 => Err(Error::InvalidArg),
            n => Ok(DeviceStep::Send(n)),
        }
    }

    #[inline(never)]
    fn session_ok(&mut self, psk: &[u8], p: &[u8]) -> Result<DeviceStep, Error> {
        let (sid, mac) = p.split_at(SESSION_ID_LEN);
        let answered = usize::from(self.answered).min(MAX_CANDIDATES);
        let version = self.version();
        let found = self.candidates.iter().take(answered).position(|c| {
            let (nonce, pub_s, _) = split_candidate(c);
            let want = transcript_mac(
                version,
                psk,
                FrameType::SessionOk,
                nonce,
                sid,
                &self.pub_c,
                pub_s,
            );
            crypto::ct_eq(&want, mac)
        });
        let Some(c) = found.and_then(|i| self.candidates.get(i)) else {
            if self.datagram == 0 {
                self.finish();
            }
            return Err(Error::AuthFailed);
        };
        let (nonce, pub_s, shared) = split_candidate(c);
        let keys = derive_keys(version, shared, nonce, &self.pub_c, pub_s);
        // Whatever happens next, this handshake is over.
        self.finish();
        let mut keys = keys?;
        let sid: &[u8; SESSION_ID_LEN] = sid.try_into().map_err(|_| Error::BadFrame)?;
        let (tx, rx) = split_keys(&keys);
        let s = Session::new(version, tx, rx, sid);
        keys.zeroize();
        Ok(DeviceStep::Established(s))
    }

    /// Wipes the secrets; the handshake is over.
    pub(crate) fn finish(&mut self) {
        self.secret.zeroize();
        for c in &mut self.candidates {
            c.zeroize();
        }
        self.state = DONE;
    }
}

/// Device (client) side of the handshake.
///
/// On a stream the gateway's frames come in order from the gateway alone. On a datagram
/// link anybody can send a datagram from the gateway's address, so the device answers up to
/// [`MAX_CANDIDATES`] different CHALLENGEs ([`DeviceHandshake::set_datagram`]) and keeps its
/// X25519 secret until a SESSION_OK proves (by its PSK MAC) which one was the gateway's; only
/// then does it compute the shared secret and the keys.
pub struct DeviceHandshake<'p> {
    core: HsCore,
    psk: &'p [u8],
}

impl Drop for DeviceHandshake<'_> {
    fn drop(&mut self) {
        self.core.finish();
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
        Ok(Self {
            core: HsCore::new(version, psk, device_id, secret)?,
            psk,
        })
    }

    /// Datagram mode: several CHALLENGEs may be answered, a SESSION_OK that does not verify
    /// is an error that leaves the handshake usable (the caller drops that datagram).
    pub fn set_datagram(&mut self, on: bool) {
        self.core.set_datagram(on);
    }

    /// Our ephemeral public key.
    pub fn public_key(&self) -> &[u8; KEY_LEN] {
        &self.core.pub_c
    }

    /// The wire version this handshake speaks.
    pub fn version(&self) -> Version {
        self.core.version()
    }

    /// True once HELLO_ACK has gone out (a hang-up now means the PSK was refused).
    pub fn awaiting_session_ok(&self) -> bool {
        self.core.awaiting_session_ok()
    }

    /// True once the handshake is over (established or failed for good).
    pub fn is_done(&self) -> bool {
        self.core.is_done()
    }

    /// Writes HELLO (with the v2 cookie when given) into `out` (at least 66 bytes); returns
    /// its length (0 when `out` is too short).
    pub fn hello(&self, cookie: Option<&[u8; COOKIE_LEN]>, out: &mut [u8]) -> usize {
        self.core.hello(cookie, out)
    }

    /// Handles a gateway frame; the reply (if any) goes to `out` (at least 76 bytes).
    pub fn receive(&mut self, bytes: &[u8], out: &mut [u8]) -> Result<DeviceStep, Error> {
        self.core.receive(self.psk, bytes, out)
    }
}

fn split_candidate(
    c: &[u8; CANDIDATE_LEN],
) -> (&[u8; CHALLENGE_NONCE_LEN], &[u8; KEY_LEN], &[u8; KEY_LEN]) {
    let (n, rest) = c.split_at(CHALLENGE_NONCE_LEN);
    let (p, sh) = rest.split_at(KEY_LEN);
    // The parts are exactly 32 bytes long, so the conversions cannot fail.
    (
        n.try_into().unwrap_or(&[0u8; CHALLENGE_NONCE_LEN]),
        p.try_into().unwrap_or(&[0u8; KEY_LEN]),
        sh.try_into().unwrap_or(&[0u8; KEY_LEN]),
    )
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
    pub fn receive(&mut self, bytes: &[u8], out: &mut [u8]) -> Result<ResponderStep, Error> {
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
                let p = expect(self.version, bytes, FrameType::HelloAck, MAC_LEN)?;
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
