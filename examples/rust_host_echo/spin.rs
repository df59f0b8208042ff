//! A minimal async runtime for host examples and tests, std only: an executor that polls
//! one future until it completes, and async adapters over non-blocking `std::net` sockets
//! whose futures are `Pending` until the socket has data. It polls in a loop with a short
//! sleep (no reactor): fine for a demo and tests; firmware uses embassy or another
//! executor with its HAL's async traits instead.
#![allow(dead_code)]

use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use usmp::{AsyncClock, AsyncTransport, Error};

/// Runs `f` to completion on this thread.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Yields once: `Pending` the first time it is polled.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|_| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            Poll::Pending
        }
    })
    .await
}

/// Milliseconds since creation; `sleep_ms` yields until the time has come.
pub struct SpinClock(Instant);

impl SpinClock {
    pub fn new() -> Self {
        Self(Instant::now())
    }
}

impl AsyncClock for SpinClock {
    fn now_ms(&mut self) -> u32 {
        self.0.elapsed().as_millis() as u32
    }

    async fn sleep_ms(&mut self, ms: u32) {
        let until = Instant::now() + Duration::from_millis(u64::from(ms));
        while Instant::now() < until {
            yield_now().await;
        }
    }
}

/// TCP, non-blocking underneath.
pub struct AsyncTcp(pub TcpStream);

impl AsyncTcp {
    pub fn connect(addr: impl ToSocketAddrs) -> std::io::Result<Self> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        Ok(Self(s))
    }
}

impl AsyncTransport for AsyncTcp {
    async fn send(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        while !bytes.is_empty() {
            match self.0.write(bytes) {
                Ok(0) => return Err(Error::TransportFailed),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => yield_now().await,
                Err(_) => return Err(Error::TransportFailed),
            }
        }
        Ok(())
    }

    async fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        loop {
            match self.0.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => yield_now().await,
                Err(_) => return Err(Error::TransportFailed),
            }
        }
    }
}

/// UDP connected to the gateway, non-blocking underneath.
pub struct AsyncUdp(pub UdpSocket);

impl AsyncUdp {
    pub fn connect(addr: impl ToSocketAddrs) -> std::io::Result<Self> {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.connect(addr)?;
        s.set_nonblocking(true)?;
        Ok(Self(s))
    }
}

impl AsyncTransport for AsyncUdp {
    fn is_datagram(&self) -> bool {
        true
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        match self.0.send(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(()),
            Err(_) => Err(Error::TransportFailed),
        }
    }

    async fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        loop {
            match self.0.recv(buf) {
                Ok(n) => return Ok(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::ConnectionRefused
                    ) =>
                {
                    yield_now().await
                }
                Err(_) => return Err(Error::TransportFailed),
            }
        }
    }
}
