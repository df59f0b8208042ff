//! The async Rust API: [`AsyncClient`] over any [`AsyncTransport`], for embassy and other
//! executors. It needs no runtime of its own: waits are the transport's and the
//! [`AsyncClock`]'s futures, raced against each other with a small `select`.
//!
//! A byte stream that implements the `embedded-io-async` traits plugs in through
//! [`crate::Stream`]; a datagram socket implements [`AsyncTransport`] itself.
//!
//! Cancelling an operation (dropping its future before it completes) leaves the session in
//! an unknown state: call [`AsyncClient::close`] or [`AsyncClient::connect`] afterwards.
//! To bound a wait, use [`AsyncClient::recv_timeout`] instead.

use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::Poll;

use rand_core::{CryptoRng, RngCore};

use crate::client::{client_accessors, face, face_state, Config, Stream};
use crate::driver::{self, Bufs, Conn, RecvFail, Stats};
use crate::frame::{self, FrameType, MAX_FRAME};
use crate::handshake::DEVICE_ID_LEN;
use crate::session::Session;
use crate::Error;

/// Time for the async client.
pub trait AsyncClock {
    /// Monotonic milliseconds; wrapping at 2^32 is fine.
    fn now_ms(&mut self) -> u32;
    /// Completes after `ms` milliseconds (e.g. `embassy_time::Timer::after_millis`).
    fn sleep_ms(&mut self, ms: u32) -> impl Future<Output = ()>;
}

/// An async transport, already connected to the gateway.
pub trait AsyncTransport {
    /// True for a datagram transport (UDP), false (the default) for a byte stream.
    fn is_datagram(&self) -> bool {
        false
    }
    /// Sends all of `bytes` (a datagram transport: as one datagram).
    fn send(&mut self, bytes: &[u8]) -> impl Future<Output = Result<(), Error>>;
    /// Waits for input: a stream returns at least one byte (0: the peer closed it), a
    /// datagram transport one datagram (cut to `buf`'s length). It must be cancel-safe:
    /// when the future is dropped before it completes, no input may be lost.
    fn recv(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<usize, Error>>;
}

impl<T> AsyncTransport for Stream<T>
where
    T: embedded_io_async::Read + embedded_io_async::Write,
{
    async fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.0
            .write_all(bytes)
            .await
            .map_err(|_| Error::TransportFailed)?;
        self.0.flush().await.map_err(|_| Error::TransportFailed)
    }

    async fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.0.read(buf).await.map_err(|_| Error::TransportFailed)
    }
}

/// Runs `f` for at most `ms` (None: as long as it takes); None when the time ran out.
async fn with_timeout<C: AsyncClock, F: Future>(
    clock: &mut C,
    ms: Option<u32>,
    f: F,
) -> Option<F::Output> {
    let Some(ms) = ms else {
        return Some(f.await);
    };
    let mut f = pin!(f);
    let mut timer = pin!(clock.sleep_ms(ms));
    poll_fn(|cx| {
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

/// The driver's view of an [`AsyncClient`] during one call.
struct Face<'c, 'a, T, R, C> {
    t: &'c mut T,
    rng: &'c mut R,
    clock: &'c mut C,
    cfg: &'c Config<'a>,
    conn: &'c mut Conn,
    session: &'c mut Option<Session>,
}

impl<T: AsyncTransport, R: RngCore + CryptoRng, C: AsyncClock> Face<'_, '_, T, R, C> {
    /// One whole frame from a byte stream: the header, then the length it announces.
    /// Nothing within `wait` gives 0; a frame that starts must complete within
    /// [`crate::REASSEMBLY_TIMEOUT_MS`] (else the stream is out of step: broken).
    async fn recv_stream(
        &mut self,
        buf: &mut [u8; MAX_FRAME],
        wait: Option<u32>,
    ) -> Result<usize, RecvFail> {
        let mut have = 0usize;
        let mut t0 = 0u32;
        loop {
            let need = frame::stream_target(buf.get(..have).unwrap_or(&[]));
            if have >= need {
                return Ok(have);
            }
            // Before the first byte the caller's wait applies; after it, the frame must
            // complete within the reassembly time.
            let limit = if have == 0 {
                wait
            } else {
                let spent = self.clock.now_ms().wrapping_sub(t0);
                Some(crate::REASSEMBLY_TIMEOUT_MS.saturating_sub(spent))
            };
            let part = buf.get_mut(have..need).ok_or(RecvFail::Broken)?;
            let len = part.len();
            match with_timeout(self.clock, limit, self.t.recv(part)).await {
                None if have == 0 => return Ok(0),
                None => return Err(RecvFail::Broken),
                Some(Ok(0)) | Some(Err(_)) => return Err(RecvFail::HangUp),
                Some(Ok(n)) if n <= len => {
                    if have == 0 {
                        t0 = self.clock.now_ms();
                    }
                    have += n;
                }
                Some(Ok(_)) => return Err(RecvFail::Broken),
            }
        }
    }
}

impl<T: AsyncTransport, R: RngCore + CryptoRng, C: AsyncClock> driver::Link
    for Face<'_, '_, T, R, C>
{
    fn datagram(&self) -> bool {
        self.t.is_datagram()
    }
    fn now(&mut self) -> u32 {
        self.clock.now_ms()
    }
    async fn send(&mut self, d: &[u8]) -> Result<(), Error> {
        self.t.send(d).await.map_err(|_| Error::TransportFailed)
    }
    async fn recv(
        &mut self,
        buf: &mut [u8; MAX_FRAME],
        wait: Option<u32>,
    ) -> Result<usize, RecvFail> {
        if !self.t.is_datagram() {
            return self.recv_stream(buf, wait).await;
        }
        let len = buf.len();
        match with_timeout(self.clock, wait, self.t.recv(&mut buf[..])).await {
            None => Ok(0),
            Some(Ok(n)) if n <= len => Ok(n),
            Some(Ok(_)) => Err(RecvFail::Broken),
            Some(Err(_)) => Err(RecvFail::HangUp),
        }
    }
    face_state!();
}

/// A USMP connection over an [`AsyncTransport`]: the same operations as
/// [`crate::Client`], as futures. Keys are zeroized when the session ends and when the
/// client is dropped.
pub struct AsyncClient<'a, T, R, C> {
    transport: T,
    rng: R,
    clock: C,
    config: Config<'a>,
    conn: Conn,
    session: Option<Session>,
}

/// Runs one driver operation on an [`AsyncClient`]'s parts.
macro_rules! op {
    ($self:ident, |$l:ident, $b:ident| $call:expr) => {{
        let mut $b = Bufs::new();
        let mut face = face!($self);
        let $l = &mut face;
        let $b = &mut $b;
        let r = $call.await;
        r
    }};
}

impl<'a, T: AsyncTransport, R: RngCore + CryptoRng, C: AsyncClock> AsyncClient<'a, T, R, C> {
    /// A client over `transport` (already connected to the gateway), not yet in session.
    pub fn new(transport: T, rng: R, clock: C, config: Config<'a>) -> Self {
        Self {
            transport,
            rng,
            clock,
            config,
            conn: Conn::default(),
            session: None,
        }
    }

    /// Runs the handshake (at most [`crate::HANDSHAKE_TIMEOUT_MS`]); see
    /// [`crate::Client::connect`].
    pub async fn connect(&mut self) -> Result<(), Error> {
        self.conn.reset(self.config.retransmit_timeout_ms);
        let (psk, version) = (self.config.psk, self.config.version);
        op!(self, |l, b| driver::handshake(l, psk, version, b))
    }

    /// Sends one message of 0..=1808 bytes; see [`crate::Client::send`].
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        op!(self, |l, b| driver::send_message(l, msg, b))
    }

    /// Waits for the next message and returns its length; see [`crate::Client::recv`].
    pub async fn recv(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        loop {
            if let Some(n) = op!(self, |l, b| driver::recv_message(l, out, None, b))? {
                return Ok(n);
            }
        }
    }

    /// As [`AsyncClient::recv`], waiting at most `ms`: `Ok(None)` when no message came.
    pub async fn recv_timeout(&mut self, out: &mut [u8], ms: u32) -> Result<Option<usize>, Error> {
        op!(self, |l, b| driver::recv_message(l, out, Some(ms), b))
    }

    /// Sends a PING now.
    pub async fn ping(&mut self) -> Result<(), Error> {
        op!(self, |l, b| driver::send_control(l, FrameType::Ping, b))
    }

    /// Sends a PING when [`Config::keepalive_ms`] have passed since the last transmission:
    /// `Ok(true)` when it sent one; see [`crate::Client::keepalive_tick`].
    pub async fn keepalive_tick(&mut self) -> Result<bool, Error> {
        let period = self.config.keepalive_ms;
        op!(self, |l, b| driver::keepalive(l, period, b))
    }

    /// Rotates the session keys (wire v2; [`Error::Unsupported`] on v1).
    pub async fn rekey(&mut self) -> Result<(), Error> {
        op!(self, |l, b| driver::rekey(l, b))
    }

    /// Ends the session: a best-effort BYE, keys zeroized. The transport stays yours.
    pub async fn close(&mut self) {
        op!(self, |l, b| driver::bye(l, b));
    }

    client_accessors!();
}
