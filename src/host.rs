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

/// A minimal USMP peer for tests and documentation: it accepts one TCP connection, answers
/// the handshake with the crate's own [`crate::handshake::Responder`], echoes every
/// message, answers PINGs and ends on BYE or when the device hangs up.
///
/// It is not a gateway (one session, no UDP, no lockout, no REKEY of its own): interop is
/// tested against the real gateway. It lets a doc example or a unit test run a whole
/// session in one process.
#[derive(Debug)]
pub struct EchoPeer {
    listener: std::net::TcpListener,
    psk: Vec<u8>,
    version: crate::Version,
}

impl EchoPeer {
    /// Listens on `addr` (port 0: any free port) for a device with `psk` speaking `version`.
    pub fn bind(
        addr: impl ToSocketAddrs,
        psk: &[u8],
        version: crate::Version,
    ) -> std::io::Result<Self> {
        Ok(Self {
            listener: std::net::TcpListener::bind(addr)?,
            psk: psk.to_vec(),
            version,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves one device on a new thread; the thread returns the number of messages it
    /// echoed once the device said BYE or hung up.
    pub fn spawn(self) -> std::thread::JoinHandle<Result<usize, Error>> {
        std::thread::spawn(move || self.serve_one())
    }

    /// Serves one device on this thread (see [`EchoPeer::spawn`]).
    pub fn serve_one(self) -> Result<usize, Error> {
        use crate::frame::{FrameType, MAX_FRAME};
        use crate::handshake::{Responder, ResponderStep};
        use crate::session::{fragments, Rx, Session, MAX_MESSAGE};
        use rand_core::RngCore;

        fn read_frame(
            s: &mut TcpStream,
            buf: &mut [u8; MAX_FRAME],
        ) -> Result<Option<usize>, Error> {
            let mut have = 0;
            loop {
                let need = crate::frame::stream_target(buf.get(..have).unwrap_or(&[]));
                if have >= need {
                    return Ok(Some(have));
                }
                let part = buf.get_mut(have..need).ok_or(Error::BadFrame)?;
                match s.read_exact(part) {
                    Ok(()) => have = need,
                    Err(e) if e.kind() == ErrorKind::UnexpectedEof && have == 0 => return Ok(None),
                    Err(_) => return Err(Error::TransportFailed),
                }
            }
        }

        fn write(s: &mut TcpStream, d: Option<&[u8]>) -> Result<(), Error> {
            s.write_all(d.ok_or(Error::InvalidArg)?)
                .map_err(|_| Error::TransportFailed)
        }

        fn send_message(s: &mut TcpStream, session: &mut Session, msg: &[u8]) -> Result<(), Error> {
            let mut buf = [0u8; MAX_FRAME];
            for (ty, chunk) in fragments(msg)? {
                let n = session.seal_plaintext(ty, chunk, &mut buf)?;
                write(s, buf.get(..n))?;
            }
            Ok(())
        }

        let (mut s, _) = self.listener.accept().map_err(|_| Error::TransportFailed)?;
        let mut secret = [0u8; 32];
        let mut nonce = [0u8; 32];
        let mut sid = [0u8; 16];
        OsRng.fill_bytes(&mut secret);
        OsRng.fill_bytes(&mut nonce);
        OsRng.fill_bytes(&mut sid);
        let mut responder = Responder::new(self.version, &self.psk, &secret, &nonce, &sid)?;
        let mut buf = [0u8; MAX_FRAME];
        let mut out = [0u8; MAX_FRAME];
        let mut session = loop {
            let n = read_frame(&mut s, &mut buf)?.ok_or(Error::TransportFailed)?;
            match responder.receive(buf.get(..n).ok_or(Error::BadFrame)?, &mut out)? {
                ResponderStep::Send(m) => write(&mut s, out.get(..m))?,
                ResponderStep::Established(m, session) => {
                    write(&mut s, out.get(..m))?;
                    break session;
                }
            }
        };
        let mut msg = [0u8; MAX_MESSAGE];
        let mut echoed = 0;
        while let Some(n) = read_frame(&mut s, &mut buf)? {
            let frame = buf.get_mut(..n).ok_or(Error::BadFrame)?;
            match session.receive(frame, &mut msg) {
                Ok(Rx::Message(len)) => {
                    send_message(&mut s, &mut session, msg.get(..len).unwrap_or(&[]))?;
                    echoed += 1;
                }
                Ok(Rx::Ping) => {
                    let m = session.seal_control(FrameType::Pong, &mut out)?;
                    write(&mut s, out.get(..m))?;
                }
                Ok(Rx::Fragment | Rx::Pong | Rx::Rekeyed | Rx::Dropped) => {}
                Err(Error::ClosedByPeer) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(echoed)
    }
}
