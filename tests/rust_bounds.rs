//! The Rust clients against a scripted gateway on a virtual clock (issue H items 3 and 5):
//! legitimate PINGs spread over minutes never trip the flood guard of one long receive; a
//! receive with a deadline ends by it while junk keeps arriving; and a cancelled async
//! receive never splices the rest of its message onto the next one.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/port.rs"]
mod port;
#[path = "common/scripted.rs"]
mod scripted;
#[path = "../examples/rust_host_echo/spin.rs"]
mod spin;

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

use scripted::Gateway;
use usmp::frame::FrameType;
use usmp::{
    AsyncClient, AsyncClock, AsyncTransport, Client, Clock, Config, Error, Transport, Version,
};

const PSK: &[u8] = b"usmp-bounds-psk-0123456789abcdef";
const ID: [u8; 6] = [0x02, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e];

/// A virtual millisecond clock shared by the test and the client.
#[derive(Clone, Default)]
struct VClock(Rc<Cell<u32>>);

impl VClock {
    fn now(&self) -> u32 {
        self.0.get()
    }
    fn advance(&self, ms: u32) {
        self.0.set(self.0.get().wrapping_add(ms));
    }
}

impl Clock for VClock {
    fn now_ms(&mut self) -> u32 {
        self.now()
    }
    fn idle(&mut self) {
        self.advance(1);
    }
}

/// For the async client: the virtual time, and sleeps that never end (the tests decide
/// when a wait is over, with [`yield_twice`] in a `select`).
#[derive(Clone, Default)]
struct AClock(VClock);

impl AsyncClock for AClock {
    fn now_ms(&mut self) -> u32 {
        self.0.now()
    }
    async fn sleep_ms(&mut self, _ms: u32) {
        std::future::pending::<()>().await;
    }
}

/// A timer that fires at its second poll (after the other side of a `select` has had its
/// turn and found nothing more to do).
async fn yield_twice() {
    let mut polled = false;
    std::future::poll_fn(|cx| {
        if polled {
            return Poll::Ready(());
        }
        polled = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// A fixed RNG (the gateway is scripted; no secrecy is tested here).
struct TestRng(u8);

impl rand_core::RngCore for TestRng {
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
    fn fill_bytes(&mut self, d: &mut [u8]) {
        for b in d {
            self.0 = self.0.wrapping_mul(37).wrapping_add(11);
            *b = self.0;
        }
    }
    fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(d);
        Ok(())
    }
}
impl rand_core::CryptoRng for TestRng {}

/// The scripted gateway as a byte stream, with a schedule of what it sends on its own: at
/// each (virtual ms, frame type) the gateway sends a PING or a message.
struct Wire {
    g: Box<Gateway>,
    clock: VClock,
    pending: Option<(Vec<u8>, usize)>,
    schedule: Vec<(u32, FrameType)>,
}

impl Wire {
    fn due(&mut self) {
        while let Some(&(at, ty)) = self.schedule.first() {
            if (self.clock.now().wrapping_sub(at) as i32) < 0 {
                break;
            }
            self.schedule.remove(0);
            match ty {
                FrameType::Ping => self.g.send_control(FrameType::Ping),
                _ => self.g.send_message(b"the message"),
            }
        }
    }
}

impl Transport for Wire {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.g.on_device_frame(bytes);
        Ok(())
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        self.due();
        if self.pending.is_none() {
            self.pending = self.g.to_device.pop_front().map(|f| (f, 0));
        }
        let Some((f, at)) = self.pending.as_mut() else {
            return Ok(None);
        };
        let n = buf.len().min(f.len() - *at);
        buf[..n].copy_from_slice(&f[*at..*at + n]);
        *at += n;
        if *at == f.len() {
            self.pending = None;
        }
        Ok(Some(n))
    }
}

#[test]
fn pings_minutes_apart_never_trip_the_flood_guard_of_one_receive() {
    // Before: the blocking Client counted every control frame of one long recv() call, so
    // the ninth legitimate PING (30 s apart) ended the session with Flood.
    for v in [Version::V1, Version::V2] {
        let clock = VClock::default();
        let mut schedule: Vec<(u32, FrameType)> =
            (1..=12).map(|k| (k * 30_000, FrameType::Ping)).collect();
        schedule.push((12 * 30_000 + 5_000, FrameType::Data));
        let wire = Wire {
            g: Gateway::new(v, PSK),
            clock: clock.clone(),
            pending: None,
            schedule,
        };
        let cfg = Config::new(PSK, ID).with_version(v);
        let mut c = Client::new(wire, TestRng(1), clock.clone(), cfg);
        c.connect().unwrap();
        let mut buf = [0u8; 64];
        let n = c.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"the message", "{v:?}");
        let (wire, _, _) = c.into_parts();
        assert_eq!(wire.g.pongs, 12, "{v:?}: every PING was answered");
        assert!(clock.now() >= 12 * 30_000);
    }
}

/// A datagram link on which a junk datagram arrives every 50 ms (from the gateway's address:
/// nothing the device can tell apart before authenticating it).
struct JunkLink {
    g: Box<Gateway>,
    clock: VClock,
    next_junk: u32,
    junk: bool,
}

impl Transport for JunkLink {
    fn is_datagram(&self) -> bool {
        true
    }
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        // The scripted gateway is a stream peer: the device's UTACKs are not for it.
        if !usmp::datagram::is_utack(bytes) {
            self.g.on_device_frame(bytes);
        }
        Ok(())
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        if let Some(f) = self.g.to_device.pop_front() {
            buf[..f.len()].copy_from_slice(&f);
            return Ok(Some(f.len()));
        }
        if self.junk && (self.clock.now().wrapping_sub(self.next_junk) as i32) >= 0 {
            self.next_junk = self.clock.now().wrapping_add(50);
            let mut f = vec![0xCD, 0xAB, 2, 5, 3, 0, 0, 0, 28, 0, 0, 0];
            f.extend_from_slice(&[0xA5; 28]);
            buf[..f.len()].copy_from_slice(&f);
            return Ok(Some(f.len()));
        }
        Ok(None)
    }
}

#[test]
fn recv_timeout_ends_by_its_deadline_while_junk_keeps_arriving() {
    // Handshake over a clean stream first, then switch the same client to a junk datagram
    // link: the session's own datagram rules apply to the receive.
    let clock = VClock::default();
    let link = JunkLink {
        g: Gateway::new(Version::V2, PSK),
        clock: clock.clone(),
        next_junk: 0,
        junk: false,
    };
    let cfg = Config::new(PSK, ID);
    let mut c = Client::new(link, TestRng(2), clock.clone(), cfg);
    // The scripted gateway answers frames synchronously, so the datagram handshake
    // completes without loss.
    c.connect().unwrap();
    c.transport_mut().junk = true;
    let t0 = clock.now();
    let mut buf = [0u8; 64];
    assert_eq!(c.recv_timeout(&mut buf, 500).unwrap(), None);
    let took = clock.now().wrapping_sub(t0);
    assert!(took <= 500 + 60, "recv_timeout(500) took {took} ms");
    assert!(
        c.stats().rejected >= 8,
        "the junk was read: {:?}",
        c.stats()
    );
    assert!(c.is_connected());
}

/// The scripted gateway as an async byte stream: reads wait (stay pending) once
/// `open_frames` frames have been delivered; sends stall forever after `send_limit` frames.
struct Held {
    g: Box<Gateway>,
    pending: Option<(Vec<u8>, usize)>,
    delivered: usize,
    open_frames: Rc<Cell<usize>>,
    sends: usize,
    send_limit: usize,
}

impl Held {
    fn new(open: Rc<Cell<usize>>, send_limit: usize) -> Self {
        Self {
            g: Gateway::new(Version::V2, PSK),
            pending: None,
            delivered: 0,
            open_frames: open,
            sends: 0,
            send_limit,
        }
    }
}

impl AsyncTransport for Held {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.sends += 1;
        if self.sends > self.send_limit {
            std::future::pending::<()>().await;
        }
        self.g.on_device_frame(bytes);
        Ok(())
    }
    async fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        std::future::poll_fn(|_| {
            if self.pending.is_none() {
                if self.delivered >= self.open_frames.get() {
                    return Poll::Pending;
                }
                match self.g.to_device.pop_front() {
                    Some(f) => {
                        self.delivered += 1;
                        self.pending = Some((f, 0));
                    }
                    None => return Poll::Pending,
                }
            }
            let (f, at) = self.pending.as_mut().unwrap();
            let n = buf.len().min(f.len() - *at);
            buf[..n].copy_from_slice(&f[*at..*at + n]);
            *at += n;
            if *at == f.len() {
                self.pending = None;
            }
            Poll::Ready(Ok(n))
        })
        .await
    }
}

/// Polls `f` until it completes or `timer` does first (a `select`): Some(output) or None.
async fn select_timeout<F: Future, T: Future>(f: F, timer: T) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut timer = pin!(timer);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = f.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

#[test]
fn a_cancelled_async_receive_never_splices_two_messages() {
    // Before: the rest of the first message was appended to the partial one kept from the
    // cancelled receive, and the next receive returned a mix of both.
    spin::block_on(async {
        let open = Rc::new(Cell::new(usize::MAX));
        let held = Held::new(open.clone(), usize::MAX);
        let mut c = AsyncClient::new(held, TestRng(3), AClock::default(), Config::new(PSK, ID));
        c.connect().await.unwrap();
        // The gateway sends a 1000-byte message (3 frames) and then a 5-byte one; only the
        // first frame is let through before the receive is cancelled.
        let first: Vec<u8> = (0..1000).map(|i| i as u8).collect();
        let g = &mut c.transport_mut().g;
        g.send_message(&first);
        g.send_message(b"whole");
        let delivered = c.transport_mut().delivered;
        open.set(delivered + 1);
        let mut buf = [0u8; 1808];
        let r = select_timeout(c.recv(&mut buf), yield_twice()).await;
        assert!(r.is_none(), "the receive was cancelled midway: {r:?}");
        assert_eq!(c.transport_mut().delivered, delivered + 1);
        // Everything is let through now: the next receive gets the 5-byte message, whole.
        open.set(usize::MAX);
        let n = c.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"whole");
        assert!(c.is_connected());
    });
}

#[test]
fn a_cancelled_async_send_ends_the_session_instead_of_a_broken_message() {
    // A message cut off after its first fragment cannot be finished (the gateway holds part
    // of it): the next call finds the session ended rather than sending a second message
    // the gateway would append to the first.
    spin::block_on(async {
        // Connect (2 frames sent), then the first fragment of a message goes out and the
        // second send never completes.
        let t = Held::new(Rc::new(Cell::new(usize::MAX)), 3);
        let mut c = AsyncClient::new(t, TestRng(4), AClock::default(), Config::new(PSK, ID));
        c.connect().await.unwrap();
        let big = [7u8; 1808];
        let r = select_timeout(c.send(&big), yield_twice()).await;
        assert!(r.is_none());
        assert_eq!(c.transport_mut().g.received.len(), 0);
        assert_eq!(c.send(b"x").await, Err(Error::NotConnected));
        assert!(!c.is_connected());
    });
}
