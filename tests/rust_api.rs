//! The Rust API in one process: `Client` (blocking) and `AsyncClient` (driven by the small
//! executor of examples/rust_host_echo/spin.rs — the library needs no runtime) against the
//! crate's `host::EchoPeer` over loopback TCP, through the `embedded-io` adapters and the
//! std ones. Interop with the real gateway: tests/interop/test_rust_api.py.
#![allow(clippy::unwrap_used)]

#[path = "../examples/rust_host_echo/spin.rs"]
mod spin;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use usmp::host::{EchoPeer, OsRng, StdClock, TcpTransport};
use usmp::{AsyncClient, AsyncClock, Client, Clock, Config, Error, Stream, Transport, Version};

const PSK: &[u8] = b"usmp-rust-api-psk-0123456789";
const ID: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x07];
const SIZES: [usize; 7] = [0, 1, 100, 452, 453, 1000, 1808];

fn message(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7) ^ salt).collect()
}

fn peer(
    version: Version,
) -> (
    std::net::SocketAddr,
    std::thread::JoinHandle<Result<usize, Error>>,
) {
    let p = EchoPeer::bind("127.0.0.1:0", PSK, version).unwrap();
    let addr = p.local_addr().unwrap();
    (addr, p.spawn())
}

/// A TCP stream seen only through the blocking `embedded-io` traits, as a HAL's would be.
struct EioTcp(TcpStream);

impl embedded_io::ErrorType for EioTcp {
    type Error = std::io::Error;
}
impl embedded_io::Read for EioTcp {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.0.read(buf)
    }
}
impl embedded_io::Write for EioTcp {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush()
    }
}
impl embedded_io::ReadReady for EioTcp {
    fn read_ready(&mut self) -> Result<bool, Self::Error> {
        self.0.set_nonblocking(true)?;
        let r = self.0.peek(&mut [0u8; 1]);
        self.0.set_nonblocking(false)?;
        match r {
            Ok(_) => Ok(true), // data, or end of stream: a read will not block
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A non-blocking TCP stream seen only through the `embedded-io-async` traits.
struct EioAsyncTcp(TcpStream);

impl embedded_io_async::ErrorType for EioAsyncTcp {
    type Error = std::io::Error;
}
impl embedded_io_async::Read for EioAsyncTcp {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => yield_once().await,
                r => return r,
            }
        }
    }
}
impl embedded_io_async::Write for EioAsyncTcp {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        loop {
            match self.0.write(buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => yield_once().await,
                r => return r,
            }
        }
    }
    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush()
    }
}

async fn yield_once() {
    let mut done = false;
    std::future::poll_fn(|_| {
        if done {
            std::task::Poll::Ready(())
        } else {
            done = true;
            std::task::Poll::Pending
        }
    })
    .await
}

fn blocking_session<T: Transport>(mut c: Client<'_, T, OsRng, StdClock>) -> usize {
    c.connect().unwrap();
    assert!(c.is_connected());
    let mut buf = [0u8; 1808];
    for (i, len) in SIZES.into_iter().enumerate() {
        let m = message(len, i as u8);
        c.send(&m).unwrap();
        let n = c.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &m[..], "echo of {len}");
    }
    assert_eq!(c.send(&[0; 1809]), Err(Error::BufferOverflow));
    c.ping().unwrap();
    // The PONG is consumed here; nothing else comes.
    assert_eq!(c.recv_timeout(&mut buf, 50), Ok(None));
    // A message larger than the buffer: dropped with a named error, the session stays.
    c.send(&message(300, 9)).unwrap();
    assert_eq!(c.recv(&mut buf[..100]), Err(Error::BufferOverflow));
    assert!(c.is_connected());
    c.send(b"still here").unwrap();
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"still here");
    c.close();
    assert!(!c.is_connected());
    assert_eq!(c.send(b"x"), Err(Error::NotConnected));
    SIZES.len() + 2
}

#[test]
fn blocking_client_over_std_and_embedded_io_transports() {
    for version in [Version::V1, Version::V2] {
        let cfg = Config::new(PSK, ID).with_version(version);
        let (addr, p) = peer(version);
        let t = TcpTransport::connect(addr).unwrap();
        let echoed = blocking_session(Client::new(t, OsRng, StdClock::new(), cfg));
        assert_eq!(p.join().unwrap(), Ok(echoed), "{version:?}");

        let (addr, p) = peer(version);
        let t = Stream(EioTcp(TcpStream::connect(addr).unwrap()));
        let echoed = blocking_session(Client::new(t, OsRng, StdClock::new(), cfg));
        assert_eq!(p.join().unwrap(), Ok(echoed), "{version:?} embedded-io");
    }
}

#[test]
fn async_client_on_a_small_executor() {
    for version in [Version::V1, Version::V2] {
        for adapter in ["AsyncTransport", "embedded-io-async"] {
            let cfg = Config::new(PSK, ID).with_version(version);
            let (addr, p) = peer(version);
            let echoed = spin::block_on(async {
                let mut buf = [0u8; 1808];
                macro_rules! go {
                    ($c:ident) => {{
                        $c.connect().await.unwrap();
                        for (i, len) in SIZES.into_iter().enumerate() {
                            let m = message(len, i as u8);
                            $c.send(&m).await.unwrap();
                            let n = $c.recv(&mut buf).await.unwrap();
                            assert_eq!(&buf[..n], &m[..], "{version:?} {adapter}: echo of {len}");
                        }
                        $c.ping().await.unwrap();
                        assert_eq!($c.recv_timeout(&mut buf, 50).await, Ok(None));
                        assert_eq!($c.send(&[0; 1809]).await, Err(Error::BufferOverflow));
                        $c.close().await;
                        assert!(!$c.is_connected());
                    }};
                }
                if adapter == "AsyncTransport" {
                    let t = spin::AsyncTcp::connect(addr).unwrap();
                    let mut c = AsyncClient::new(t, OsRng, spin::SpinClock::new(), cfg);
                    go!(c);
                } else {
                    let s = TcpStream::connect(addr).unwrap();
                    s.set_nonblocking(true).unwrap();
                    let mut c = AsyncClient::new(
                        Stream(EioAsyncTcp(s)),
                        OsRng,
                        spin::SpinClock::new(),
                        cfg,
                    );
                    go!(c);
                }
                SIZES.len()
            });
            assert_eq!(p.join().unwrap(), Ok(echoed), "{version:?} {adapter}");
        }
    }
}

#[test]
fn wrong_psk_is_auth_failed_in_both_clients() {
    for version in [Version::V1, Version::V2] {
        let wrong = b"a-different-psk-0123456789";
        let cfg = Config::new(wrong, ID).with_version(version);
        let (addr, p) = peer(version);
        let mut c = Client::new(
            TcpTransport::connect(addr).unwrap(),
            OsRng,
            StdClock::new(),
            cfg,
        );
        assert_eq!(c.connect(), Err(Error::AuthFailed), "{version:?}");
        assert!(!c.is_connected());
        assert!(p.join().unwrap().is_err());

        let (addr, p) = peer(version);
        let t = spin::AsyncTcp::connect(addr).unwrap();
        let mut c = AsyncClient::new(t, OsRng, spin::SpinClock::new(), cfg);
        assert_eq!(
            spin::block_on(c.connect()),
            Err(Error::AuthFailed),
            "{version:?} async"
        );
        assert!(p.join().unwrap().is_err());
    }
}

#[test]
fn short_psk_is_refused_before_anything_is_sent() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = Config::new(b"too-short", ID);
    let t = TcpTransport::connect(l.local_addr().unwrap()).unwrap();
    let mut c = Client::new(t, OsRng, StdClock::new(), cfg);
    let (mut gw, _) = l.accept().unwrap();
    assert_eq!(c.connect(), Err(Error::PskTooShort));
    // Nothing went out: no HELLO reaches the other end.
    gw.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let r = gw.read(&mut [0u8; 64]);
    assert!(
        matches!(&r, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "{r:?}"
    );
}

/// A clock that moves 250 ms on each read, so the 10 s handshake limit comes at once.
struct FastClock(u32);
impl Clock for FastClock {
    fn now_ms(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(250);
        self.0
    }
}
impl AsyncClock for FastClock {
    fn now_ms(&mut self) -> u32 {
        Clock::now_ms(self)
    }
    async fn sleep_ms(&mut self, _ms: u32) {
        yield_once().await;
    }
}

#[test]
fn silent_peer_times_out_with_the_caller_s_clock() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let cfg = Config::new(PSK, ID);
    let mut c = Client::new(
        TcpTransport::connect(addr).unwrap(),
        OsRng,
        FastClock(u32::MAX - 2000),
        cfg,
    );
    let (_held, _) = l.accept().unwrap();
    assert_eq!(c.connect(), Err(Error::Timeout));

    let t = spin::AsyncTcp::connect(addr).unwrap();
    let (_held2, _) = l.accept().unwrap();
    let mut c = AsyncClient::new(t, OsRng, FastClock(0), cfg);
    assert_eq!(spin::block_on(c.connect()), Err(Error::Timeout));
}

/// A transport whose sends fail after the handshake.
struct Failing(TcpTransport, usize);
impl Transport for Failing {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.1 += 1;
        if self.1 > 2 {
            return Err(Error::TransportFailed);
        }
        self.0.send(bytes)
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        self.0.try_recv(buf)
    }
}

#[test]
fn a_transport_failure_ends_the_session_and_is_named() {
    let (addr, _p) = peer(Version::V2);
    let t = Failing(TcpTransport::connect(addr).unwrap(), 0);
    let mut c = Client::new(t, OsRng, StdClock::new(), Config::new(PSK, ID));
    c.connect().unwrap();
    assert_eq!(c.send(b"lost"), Err(Error::TransportFailed));
    assert!(!c.is_connected());
    assert_eq!(c.recv_timeout(&mut [0; 8], 10), Err(Error::NotConnected));
}

#[test]
fn errors_map_one_to_one_onto_the_c_codes() {
    let mut codes: Vec<i32> = Error::ALL.iter().map(|e| e.code()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), Error::ALL.len());
    for e in Error::ALL {
        // SAFETY: usmp_err_name returns a static NUL-terminated string.
        let c_name = unsafe { std::ffi::CStr::from_ptr(usmp::ffi::usmp_err_name(e.code())) };
        assert_eq!(c_name.to_str().unwrap(), e.to_string());
    }
}
