//! The C API (blocking and non-blocking) and the Rust API are faces of one connection
//! machine: given the same inputs (device id, random bytes, clock) and the same gateway,
//! they put the same bytes on the wire and return the same results. Any protocol decision
//! taken in one face and not the others would show up here as a differing transcript.
//!
//! The gateway is tests/common/scripted.rs: the core's own responder in memory
//! (deterministic: fixed X25519 scalar, nonce and session id), echoing each message and
//! pinging after it; interop with the real gateway is proven in tests/interop.
#![allow(clippy::unwrap_used)]

#[path = "common/nb.rs"]
mod nb_api;
#[path = "common/port.rs"]
mod port;
#[path = "common/scripted.rs"]
mod scripted;

use std::ffi::c_int;

use scripted::Gateway;
use usmp::ffi::*;
use usmp::{Client, Clock, Config, Error, Transport, Version};

const PSK: &[u8] = b"usmp-faces-psk-0123456789abcdef";
/// port.rs's device id.
const DEVICE_ID: [u8; 6] = [0x02, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e];

/// What one face produced: the results of each step, and the gateway's record.
#[derive(Debug, PartialEq)]
struct Run {
    results: Vec<Result<Vec<u8>, Error>>,
    wire: Vec<Vec<u8>>,
}

fn code_to_result(rc: c_int) -> Result<Vec<u8>, Error> {
    if rc >= 0 {
        return Ok(Vec::new());
    }
    Err(*Error::ALL.iter().find(|e| e.code() == rc).unwrap())
}

const SIZES: [usize; 5] = [0, 5, 452, 453, 1808];

fn message(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 + len) as u8).collect()
}

fn run_c(version: Version) -> Run {
    port::reset_rng();
    port::auto_tick(1);
    let mut g = Gateway::new(version, PSK);
    g.ping_after_message = true;
    let mut t = scripted::transport(&mut g);
    // Whole frames, no `available`: the same view of the link the Rust face has.
    t.available = None;
    // SAFETY: a zeroed usmp_t is the documented initial state.
    let mut c: Box<usmp_t> = Box::new(unsafe { std::mem::zeroed() });
    c.psk = PSK.as_ptr();
    c.psk_len = PSK.len();
    c.protocol_version = version as u8;
    let mut results = Vec::new();
    let mut buf = [0u8; 2048];
    unsafe {
        results.push(code_to_result(usmp_connect(&mut *c, &mut t)));
        for len in SIZES {
            let m = message(len);
            results.push(code_to_result(usmp_send(&mut *c, m.as_ptr(), len as u16)));
            let n = usmp_recv(&mut *c, buf.as_mut_ptr(), buf.len() as u16);
            results.push(if n >= 0 {
                Ok(buf[..n as usize].to_vec())
            } else {
                code_to_result(n)
            });
            // The PING the gateway sends after each echo, answered inside this receive.
            results.push(code_to_result(usmp_recv(
                &mut *c,
                buf.as_mut_ptr(),
                buf.len() as u16,
            )));
        }
        results.push(code_to_result(usmp_send(&mut *c, buf.as_ptr(), 1809)));
        results.push(code_to_result(usmp_ping(&mut *c)));
        results.push(code_to_result(usmp_rekey(&mut *c)));
        let m = message(100);
        results.push(code_to_result(usmp_send(&mut *c, m.as_ptr(), 100)));
        let n = usmp_recv(&mut *c, buf.as_mut_ptr(), buf.len() as u16);
        results.push(if n >= 0 {
            Ok(buf[..n as usize].to_vec())
        } else {
            code_to_result(n)
        });
        usmp_close(&mut *c);
    }
    Run {
        results,
        wire: std::mem::take(&mut g.wire),
    }
}

// -------------------------------------------------------------------- the Rust face

/// The same gateway behind the Rust [`Transport`] trait.
struct Memory<'g>(&'g mut Gateway, Option<Vec<u8>>, usize);

impl Transport for Memory<'_> {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.0.on_device_frame(bytes);
        Ok(())
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        // A byte stream: hand out the queued frames in the pieces the reader asks for.
        if self.1.is_none() {
            self.1 = self.0.to_device.pop_front();
            self.2 = 0;
        }
        let Some(f) = self.1.as_ref() else {
            return Ok(None);
        };
        let n = buf.len().min(f.len() - self.2);
        buf[..n].copy_from_slice(&f[self.2..self.2 + n]);
        self.2 += n;
        if self.2 == f.len() {
            self.1 = None;
        }
        Ok(Some(n))
    }
}

/// port.rs's generator, as a rand_core RNG.
struct PortRng;
impl rand_core::RngCore for PortRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        port::fill_random(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rand_core::CryptoRng for PortRng {}

/// port.rs's clock.
struct PortClock;
impl Clock for PortClock {
    fn now_ms(&mut self) -> u32 {
        port::now()
    }
}

fn run_rust(version: Version) -> Run {
    port::reset_rng();
    port::auto_tick(1);
    let mut g = Gateway::new(version, PSK);
    g.ping_after_message = true;
    let mut results = Vec::new();
    {
        let cfg = Config::new(PSK, DEVICE_ID).with_version(version);
        let mut c = Client::new(Memory(&mut g, None, 0), PortRng, PortClock, cfg);
        let mut buf = [0u8; 2048];
        let ok = |r: Result<(), Error>| r.map(|()| Vec::new());
        results.push(ok(c.connect()));
        for len in SIZES {
            results.push(ok(c.send(&message(len))));
            let r = c.recv_timeout(&mut buf, 0);
            results.push(r.map(|n| buf[..n.unwrap_or(0)].to_vec()));
            results.push(c.recv_timeout(&mut buf, 0).map(|_| Vec::new()));
        }
        results.push(ok(c.send(&[0u8; 1809])));
        results.push(ok(c.ping()));
        results.push(ok(c.rekey()));
        results.push(ok(c.send(&message(100))));
        let r = c.recv_timeout(&mut buf, 0);
        results.push(r.map(|n| buf[..n.unwrap_or(0)].to_vec()));
        c.close();
    }
    Run {
        results,
        wire: std::mem::take(&mut g.wire),
    }
}

// -------------------------------------------------------------------- the non-blocking C face

/// The same session through `usmp_nb_*`, over the gateway as a byte stream in pieces: each
/// step polls until its event (and, after an echo, until the gateway's PING is answered).
fn run_nb(version: Version) -> Run {
    use usmp_event_kind_t::*;
    port::reset_rng();
    port::auto_tick(1);
    let mut g = Gateway::new(version, PSK);
    g.ping_after_message = true;
    let mut b = nb_api::Bytes::new(g);
    let mut t = nb_api::bytes_transport(&b);
    // SAFETY: zeroed usmp_t and usmp_nb_t are the documented initial states.
    let mut c: Box<usmp_t> = Box::new(unsafe { std::mem::zeroed() });
    let mut nb = nb_api::new_nb();
    c.psk = PSK.as_ptr();
    c.psk_len = PSK.len();
    c.protocol_version = version as u8;
    let mut rx = vec![0u8; 2048];
    let mut results = Vec::new();
    // Polls until an event of `kind`; its result as the blocking face reports it.
    let until = |c: &mut usmp_t, nb: &mut usmp_nb_t, kind| {
        let ev = nb_api::poll_until(c, nb, kind, 1000).pop().unwrap();
        if ev.error < 0 {
            code_to_result(ev.error)
        } else {
            Ok(Vec::new())
        }
    };
    unsafe {
        let rc = usmp_nb_connect(&mut *c, &mut *nb, &mut t, rx.as_mut_ptr(), 2048);
        assert_eq!(rc, 0);
        results.push(until(&mut c, &mut nb, USMP_EVENT_CONNECTED));
        for len in SIZES {
            let m = message(len);
            assert_eq!(usmp_nb_send(&mut *c, &mut *nb, m.as_ptr(), len as u16), 0);
            results.push(until(&mut c, &mut nb, USMP_EVENT_SENT));
            let ev = nb_api::poll_until(&mut c, &mut nb, USMP_EVENT_MESSAGE, 1000)
                .pop()
                .unwrap();
            results.push(Ok(rx[..usize::from(ev.len)].to_vec()));
            let pongs = b.g.pongs;
            for _ in 0..100 {
                if b.g.pongs > pongs {
                    break;
                }
                assert_eq!(nb_api::poll(&mut c, &mut nb).kind, USMP_EVENT_NONE);
            }
            results.push(if b.g.pongs > pongs {
                Ok(Vec::new())
            } else {
                Err(Error::Timeout)
            });
        }
        results.push(code_to_result(usmp_nb_send(
            &mut *c,
            &mut *nb,
            rx.as_ptr(),
            1809,
        )));
        let pings = b.g.pings;
        let rc = usmp_nb_ping(&mut *c, &mut *nb);
        for _ in 0..100 {
            if b.g.pings > pings {
                break;
            }
            nb_api::poll(&mut c, &mut nb);
        }
        results.push(if rc < 0 {
            code_to_result(rc)
        } else {
            Ok(Vec::new())
        });
        let rc = usmp_nb_rekey(&mut *c, &mut *nb);
        results.push(code_to_result(rc));
        let m = message(100);
        assert_eq!(usmp_nb_send(&mut *c, &mut *nb, m.as_ptr(), 100), 0);
        results.push(until(&mut c, &mut nb, USMP_EVENT_SENT));
        let ev = nb_api::poll_until(&mut c, &mut nb, USMP_EVENT_MESSAGE, 1000)
            .pop()
            .unwrap();
        results.push(Ok(rx[..usize::from(ev.len)].to_vec()));
        usmp_nb_close(&mut *c, &mut *nb);
    }
    Run {
        results,
        wire: std::mem::take(&mut b.g.wire),
    }
}

#[test]
fn c_and_rust_faces_put_the_same_bytes_on_the_wire() {
    for version in [Version::V1, Version::V2] {
        let c = run_c(version);
        let r = run_rust(version);
        let n = run_nb(version);
        assert_eq!(
            c.results, n.results,
            "{version:?}: non-blocking results differ"
        );
        assert_eq!(
            c.wire, n.wire,
            "{version:?}: the non-blocking face's frames differ"
        );
        // The session really ran: every echo came back, 1809 was refused, and REKEY is
        // v2-only.
        let echoes: Vec<&Vec<u8>> = c
            .results
            .iter()
            .skip(2)
            .step_by(3)
            .take(SIZES.len())
            .map(|x| x.as_ref().unwrap())
            .collect();
        for (e, len) in echoes.iter().zip(SIZES) {
            assert_eq!(**e, message(len), "{version:?}: echo of {len}");
        }
        assert!(c.results.contains(&Err(Error::BufferOverflow)));
        assert_eq!(
            c.results.contains(&Err(Error::Unsupported)),
            version == Version::V1
        );
        assert!(
            c.wire.len() > 15,
            "{version:?}: only {} frames",
            c.wire.len()
        );
        assert_eq!(c.results, r.results, "{version:?}: results differ");
        assert_eq!(
            c.wire.len(),
            r.wire.len(),
            "{version:?}: frame counts differ"
        );
        for (i, (a, b)) in c.wire.iter().zip(&r.wire).enumerate() {
            assert_eq!(a, b, "{version:?}: frame {i} differs");
        }
    }
}
