//! Shared helpers for the integration tests: vector loading and a device/responder pair
//! established from the golden handshake inputs.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;
use usmp::frame::MAX_FRAME;
use usmp::handshake::{DeviceHandshake, DeviceStep, Responder, ResponderStep};
use usmp::session::{fragments, Session};
use usmp::Version;

pub fn vector(version: Version, name: &str) -> Value {
    let dir = match version {
        Version::V1 => "v1",
        Version::V2 => "v2",
    };
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "vectors", dir, name]
        .iter()
        .collect();
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn hx(v: &Value) -> Vec<u8> {
    hex::decode(
        v.as_str()
            .unwrap_or_else(|| panic!("not a hex string: {v}")),
    )
    .unwrap()
}

pub fn arr<const N: usize>(v: &Value) -> [u8; N] {
    hx(v).try_into().unwrap()
}

pub struct Inputs {
    pub client_secret: [u8; 32],
    pub server_secret: [u8; 32],
    pub nonce: [u8; 32],
    pub session_id: [u8; 16],
    pub psk: Vec<u8>,
    pub device_id: [u8; 6],
}

pub fn inputs(version: Version) -> Inputs {
    let h = vector(version, "handshake.json");
    let i = &h["inputs"];
    Inputs {
        client_secret: arr(&i["client_x25519_private"]),
        server_secret: arr(&i["server_x25519_private"]),
        nonce: arr(&i["nonce"]),
        session_id: arr(&i["session_id"]),
        psk: hx(&i["psk"]),
        device_id: arr(&i["device_id"]),
    }
}

/// Runs both handshake roles against each other in memory: (device, gateway) sessions.
pub fn pair(version: Version) -> (Session, Session) {
    let i = inputs(version);
    pair_with(version, &i.psk, &i.psk, &i).unwrap_or_else(|e| panic!("handshake failed: {e:?}"))
}

pub fn pair_with(
    version: Version,
    device_psk: &[u8],
    gateway_psk: &[u8],
    i: &Inputs,
) -> Result<(Session, Session), usmp::Error> {
    let mut dev = DeviceHandshake::new(version, device_psk, &i.device_id, &i.client_secret)?;
    let mut gw = Responder::new(
        version,
        gateway_psk,
        &i.server_secret,
        &i.nonce,
        &i.session_id,
    )?;
    let mut a = [0u8; MAX_FRAME];
    let mut b = [0u8; MAX_FRAME];
    let n = dev.hello(None, &mut a);
    let ResponderStep::Send(m) = gw.receive(&a[..n], &mut b)? else {
        panic!("responder established on HELLO")
    };
    let DeviceStep::Send(n) = dev.receive(&b[..m], &mut a)? else {
        panic!("device established on CHALLENGE")
    };
    let ResponderStep::Established(m, gs) = gw.receive(&a[..n], &mut b)? else {
        panic!("responder did not establish")
    };
    let DeviceStep::Established(ds) = dev.receive(&b[..m], &mut a)? else {
        panic!("device did not establish")
    };
    Ok((ds, gs))
}

/// Every (tx key, nonce) a test sealed, to check that none repeats.
pub type SealLog = Vec<([u8; 32], [u8; 12])>;

/// Seals a message the way `usmp_send` does (DATA_FRAG... DATA, 452-byte chunks, one empty
/// DATA for an empty message) and returns the frames; `log` records each (key, nonce).
pub fn seal_logged(
    s: &mut Session,
    msg: &[u8],
    log: &mut SealLog,
) -> Result<Vec<Vec<u8>>, usmp::Error> {
    let n = Session::frames_for(msg.len())?;
    s.check_room(n)?;
    let mut out = Vec::new();
    for (ty, c) in fragments(msg)? {
        let mut buf = [0u8; MAX_FRAME];
        let key = *s.tx_key();
        let len = s.seal_plaintext(ty, c, &mut buf)?;
        log.push((key, buf[12..24].try_into().unwrap()));
        out.push(buf[..len].to_vec());
    }
    Ok(out)
}

/// [`seal_logged`] without the log.
pub fn seal_message(s: &mut Session, msg: &[u8]) -> Result<Vec<Vec<u8>>, usmp::Error> {
    seal_logged(s, msg, &mut Vec::new())
}
