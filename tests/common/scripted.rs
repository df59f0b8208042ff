//! A scripted gateway for the tests that drive the C API (and, in tests/faces.rs, the Rust
//! API) in one process: the core's responder with fixed randomness, then an echo session,
//! behind a `usmp_transport_t` whose callbacks deliver whole frames.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::ffi::{c_int, c_void};

use usmp::ffi::*;
use usmp::frame::{FrameType, MAX_FRAME};
use usmp::handshake::{Responder, ResponderStep};
use usmp::session::{fragments, Rx, Session};
use usmp::Version;

/// The gateway end of an in-memory link: a responder, then an echo session.
pub struct Gateway {
    pub version: Version,
    pub psk: Vec<u8>,
    pub hs: Option<Responder<'static>>,
    pub session: Option<Session>,
    pub to_device: VecDeque<Vec<u8>>,
    pub received: Vec<Vec<u8>>,
    pub pongs: usize,
    pub pings: usize,
    pub closed_by_device: bool,
    pub echo: bool,
    pub fail_sends_after: Option<usize>,
    pub sends: usize,
    pub closes: usize,
    pub msg: Vec<u8>,
    /// Every frame the device sent, in order.
    pub wire: Vec<Vec<u8>>,
    /// Send a PING after each echoed message.
    pub ping_after_message: bool,
}

impl Gateway {
    pub fn new(version: Version, psk: &[u8]) -> Box<Self> {
        let psk_static: &'static [u8] = Box::leak(psk.to_vec().into_boxed_slice());
        Box::new(Self {
            version,
            psk: psk.to_vec(),
            hs: Some(
                Responder::new(
                    version,
                    psk_static,
                    &[9; 32],
                    &[0x40; 32],
                    b"0123456789abcdef",
                )
                .unwrap(),
            ),
            session: None,
            to_device: VecDeque::new(),
            received: Vec::new(),
            pongs: 0,
            pings: 0,
            closed_by_device: false,
            echo: true,
            fail_sends_after: None,
            sends: 0,
            closes: 0,
            msg: vec![0; 4000],
            wire: Vec::new(),
            ping_after_message: false,
        })
    }

    pub fn on_device_frame(&mut self, frame: &[u8]) {
        self.wire.push(frame.to_vec());
        let mut out = [0u8; MAX_FRAME];
        if let Some(hs) = self.hs.as_mut() {
            match hs.receive(frame, &mut out) {
                Ok(ResponderStep::Send(n)) => self.to_device.push_back(out[..n].to_vec()),
                Ok(ResponderStep::Established(n, s)) => {
                    self.to_device.push_back(out[..n].to_vec());
                    self.session = Some(s);
                    self.hs = None;
                }
                Err(_) => self.hs = None, // hang up, like the real gateway
            }
            return;
        }
        let Some(s) = self.session.as_mut() else {
            return;
        };
        let mut f = frame.to_vec();
        let mut msg = std::mem::take(&mut self.msg);
        match s.receive(&mut f, &mut msg) {
            Ok(Rx::Message(n)) => {
                self.received.push(msg[..n].to_vec());
                if self.echo {
                    let m = msg[..n].to_vec();
                    self.send_message(&m);
                }
                if self.ping_after_message {
                    self.send_control(FrameType::Ping);
                }
            }
            Ok(Rx::Ping) => {
                self.pings += 1;
                self.send_control(FrameType::Pong);
            }
            Ok(Rx::Pong) => self.pongs += 1,
            Ok(_) => {}
            Err(usmp::Error::ClosedByPeer) => self.closed_by_device = true,
            Err(e) => panic!("gateway refused a device frame: {e:?}"),
        }
        self.msg = msg;
    }

    pub fn send_message(&mut self, m: &[u8]) {
        let s = self.session.as_mut().unwrap();
        for (ty, c) in fragments(m).unwrap() {
            let mut buf = [0u8; MAX_FRAME];
            let n = s.seal_plaintext(ty, c, &mut buf).unwrap();
            self.to_device.push_back(buf[..n].to_vec());
        }
    }

    pub fn send_control(&mut self, ty: FrameType) {
        let mut buf = [0u8; MAX_FRAME];
        let n = self
            .session
            .as_mut()
            .unwrap()
            .seal_control(ty, &mut buf)
            .unwrap();
        self.to_device.push_back(buf[..n].to_vec());
    }

    pub fn rekey(&mut self, salt: [u8; 32]) {
        let mut buf = [0u8; MAX_FRAME];
        let n = self
            .session
            .as_mut()
            .unwrap()
            .start_rekey(&salt, &mut buf)
            .unwrap();
        self.to_device.push_back(buf[..n].to_vec());
    }

    pub fn restart(&mut self) {
        let psk_static: &'static [u8] = Box::leak(self.psk.clone().into_boxed_slice());
        self.hs = Some(
            Responder::new(
                self.version,
                psk_static,
                &[7; 32],
                &[0x41; 32],
                b"fedcba9876543210",
            )
            .unwrap(),
        );
        self.session = None;
        self.to_device.clear();
    }
}

pub fn gw<'a>(t: *mut usmp_transport_t) -> &'a mut Gateway {
    unsafe { &mut *((*t).ctx as *mut Gateway) }
}

pub unsafe extern "C" fn t_send(t: *mut usmp_transport_t, data: *const u8, len: usize) -> c_int {
    let g = gw(t);
    g.sends += 1;
    if g.fail_sends_after.is_some_and(|k| g.sends > k) {
        return -1;
    }
    let f = unsafe { std::slice::from_raw_parts(data, len) }.to_vec();
    g.on_device_frame(&f);
    0
}
pub unsafe extern "C" fn t_recv(t: *mut usmp_transport_t, buf: *mut u8, max: usize) -> c_int {
    let g = gw(t);
    if g.hs.is_none() && g.session.is_none() {
        return -1; // hung up
    }
    match g.to_device.pop_front() {
        None => 0,
        Some(f) => {
            assert!(f.len() <= max);
            unsafe { std::ptr::copy_nonoverlapping(f.as_ptr(), buf, f.len()) };
            f.len() as c_int
        }
    }
}
pub unsafe extern "C" fn t_close(t: *mut usmp_transport_t) {
    gw(t).closes += 1;
}
pub unsafe extern "C" fn t_reconnect(t: *mut usmp_transport_t) -> c_int {
    gw(t).restart();
    0
}
pub unsafe extern "C" fn t_available(t: *mut usmp_transport_t) -> c_int {
    !gw(t).to_device.is_empty() as c_int
}

pub fn transport(g: &mut Gateway) -> usmp_transport_t {
    usmp_transport_t {
        send: Some(t_send),
        recv: Some(t_recv),
        close: Some(t_close),
        reconnect: Some(t_reconnect),
        available: Some(t_available),
        destroy: None,
        ctx: g as *mut Gateway as *mut c_void,
        flags: 0,
        recv_timeout: None,
    }
}
