//! Adapters for hosts (feature `std`): [`TcpTransport`] and [`UdpTransport`] over
//! `std::net`, [`StdClock`], and [`OsRng`] (the operating system's random source).
//!
//! ```no_run
//! use usmp::host::{OsRng, StdClock, TcpTransport};
//! use usmp::{Client, Config};
//!
//! let psk = [0x42u8; 32];
//! let transport = TcpTransport::connect("127.0.0.1:9000")?;
//! let mut client = Client::new(transport, OsRng, StdClock::new(), Config::new(&psk, [1, 2, 3, 4, 5, 6]));
//! client.connect()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

pub use rand_core::OsRng;

use crate::client::{Clock, Transport};
use crate::Error;

/// A TCP connection to the gateway.
#[derive(Debug)]
pub struct TcpTransport(pub TcpStream);

impl TcpTransport {
    /// Dials `addr` (Nagle off: frames go out as they are written).
    pub fn connect(addr: impl ToSocketAddrs) -> std::io::Result<Self> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        Ok(Self(s))
    }
}

impl Transport for TcpTransport {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.0.write_all(bytes).map_err(|_| Error::TransportFailed)
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        self.0
            .set_nonblocking(true)
            .map_err(|_| Error::TransportFailed)?;
        let r = self.0.read(buf);
        self.0
            .set_nonblocking(false)
            .map_err(|_| Error::TransportFailed)?;
        match r {
            Ok(n) => Ok(Some(n)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                Ok(None)
            }
            Err(_) => Err(Error::TransportFailed),
        }
    }
}

/// A UDP socket connected to the gateway (datagram mode).
#[derive(Debug)]
pub struct UdpTransport(pub UdpSocket);

impl UdpTransport {
    /// Binds an ephemeral local port and connects it to `addr`.
    pub fn connect(addr: impl ToSocketAddrs) -> std::io::Result<Self> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "no address"))?;
        let local = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let s = UdpSocket::bind(local)?;
        s.connect(addr)?;
        s.set_nonblocking(true)?;
        Ok(Self(s))
    }
}

impl Transport for UdpTransport {
    fn is_datagram(&self) -> bool {
        true
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        match self.0.send(bytes) {
            Ok(n) if n == bytes.len() => Ok(()),
            // The gateway's port was unreachable a moment ago (ICMP): the datagram is lost
            // like any other, and retransmission deals with it.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(()),
            _ => Err(Error::TransportFailed),
        }
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        match self.0.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::Interrupted | ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(None)
            }
            Err(_) => Err(Error::TransportFailed),
        }
    }
}

/// Milliseconds since the clock was made; waits sleep 200 µs per turn.
#[derive(Clone, Copy, Debug)]
pub struct StdClock(Instant);

impl StdClock {
    /// A clock starting at 0 now.
    pub fn new() -> Self {
        Self(Instant::now())
    }
}

impl Default for StdClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for StdClock {
    fn now_ms(&mut self) -> u32 {
        // Wraps after 49 days, as the protocol's clock may.
        self.0.elapsed().as_millis() as u32
    }

    fn idle(&mut self) {
        std::thread::sleep(Duration::from_micros(200));
    }
}
