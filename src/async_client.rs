//! The async Rust API: [`AsyncClient`] over any [`AsyncTransport`], for embassy and other
//! executors. It needs no runtime of its own: waits are the transport's and the
//! [`AsyncClock`]'s futures, raced against each other with a small `select`.
//!
//! A byte stream that implements the `embedded-io-async` traits plugs in through
//! [`crate::Stream`]; a datagram socket implements [`AsyncTransport`] itself.
//!
//! Cancelling an operation (dropping its future before it completes) is safe: see
//! [`AsyncClient`].

use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::Poll;

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use crate::client::{client_accessors, client_struct, Config, Stream};
use crate::conn::{Conn, Reply, Stats, Timing, SMALL_FRAME};
use crate::frame::{self, FrameType, MAX_FRAME};
use crate::ops::{
    self, in_buf, out_bytes, Action, Bufs, ConnectOp, ControlOp, Env, Input, Op, RecvOp, SendOp,
    NO_MESSAGE,
};
use crate::session::REKEY_SALT_LEN;
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

client_struct!(
    /// A USMP connection over an [`AsyncTransport`]: the same operations as
    /// [`crate::Client`], as futures. Keys are zeroized when the session ends and when the
    /// client is dropped.
    ///
    /// Cancelling an operation (dropping its future, e.g. in a `select` with a timer) is
    /// safe: a message partly received is dropped (its remaining fragments are consumed
    /// and discarded by the next receive, never spliced onto the next message), and a
    /// message or REKEY partly sent ends the session (the gateway holds part of it), so the
    /// next call returns [`Error::NotConnected`]: connect again. To bound a wait without
    /// cancelling, use [`AsyncClient::recv_timeout`].
    AsyncClient
);

impl<'a, T: AsyncTransport, R: RngCore + CryptoRng, C: AsyncClock> AsyncClient<'a, T, R, C> {
    /// A client over `transport` (already connected to the gateway), not yet in session.
    pub fn new(transport: T, rng: R, clock: C, config: Config<'a>) -> Self {
        Self {
            transport,
            rng,
            clock,
            config,
            conn: Conn::default(),
        }
    }

    /// Runs one operation: step, await what it asks, feed the result back.
    async fn run(&mut self, b: &mut Bufs<'_>, op: &mut Op<'_, '_>) -> Result<usize, Error> {
        let timing = self.timing();
        let mut input = Input::None;
        let mut reply = Reply::new();
        loop {
            let now = self.clock.now_ms();
            let mut x = Env {
                c: &mut self.conn,
                now,
                t: timing,
                b,
                reply: &mut reply,
            };
            input = match op.step(&mut x, input) {
                Action::Transmit(out) => {
                    let bytes = out_bytes(out, b, &reply);
                    Input::Sent(self.transport.send(bytes).await.is_ok())
                }
                Action::Receive { small, wait } => {
                    let buf = in_buf(small, b);
                    if self.transport.is_datagram() {
                        let len = buf.len();
                        match with_timeout(&mut self.clock, wait, self.transport.recv(buf)).await {
                            None => Input::Nothing,
                            Some(Ok(n)) if n <= len => Input::Received(n),
                            Some(Ok(_)) => Input::Broken,
                            Some(Err(_)) => Input::Closed,
                        }
                    } else {
                        self.recv_stream(buf, wait).await
                    }
                }
                Action::Available => Input::Available(None),
                Action::Sleep(ms) => {
                    self.clock.sleep_ms(ms).await;
                    Input::None
                }
                Action::Done(r) => return r,
            };
        }
    }

    /// One whole frame from a byte stream: the header, then the length it announces.
    /// Nothing within `wait` gives [`Input::Nothing`]; a frame that starts must be complete
    /// [`crate::REASSEMBLY_TIMEOUT_MS`] after its first byte (else the stream is out of
    /// step: broken).
    async fn recv_stream(&mut self, buf: &mut [u8], wait: Option<u32>) -> Input {
        let mut have = 0usize;
        let mut t0 = 0u32;
        loop {
            let need = frame::stream_target(buf.get(..have).unwrap_or(&[]));
            if have >= need {
                return Input::Received(have);
            }
            // Before the first byte the caller's wait applies; after it, the frame must
            // complete within the reassembly time.
            let limit = if have == 0 {
                wait
            } else {
                let spent = self.clock.now_ms().wrapping_sub(t0);
                Some(crate::REASSEMBLY_TIMEOUT_MS.saturating_sub(spent))
            };
            let Some(part) = buf.get_mut(have..need) else {
                return Input::Broken;
            };
            let len = part.len();
            match with_timeout(&mut self.clock, limit, self.transport.recv(part)).await {
                None if have == 0 => return Input::Nothing,
                None => return Input::Broken,
                Some(Ok(0)) | Some(Err(_)) => return Input::Closed,
                Some(Ok(n)) if n <= len => {
                    if have == 0 {
                        t0 = self.clock.now_ms();
                    }
                    have += n;
                }
                Some(Ok(_)) => return Input::Broken,
            }
        }
    }

    /// Runs an operation with a frame buffer and a small one (the frame wiped afterwards).
    async fn with_bufs(&mut self, mut op: Op<'_, '_>) -> Result<usize, Error> {
        ops::reenter(&mut self.conn);
        let mut frame = [0u8; MAX_FRAME];
        let mut small = [0u8; SMALL_FRAME];
        let mut b = Bufs {
            frame: &mut frame,
            small: &mut small,
        };
        let r = self.run(&mut b, &mut op).await;
        frame.zeroize();
        r
    }

    /// Runs the handshake (at most [`crate::HANDSHAKE_TIMEOUT_MS`]); see
    /// [`crate::Client::connect`].
    pub async fn connect(&mut self) -> Result<(), Error> {
        let now = self.clock.now_ms();
        let mut op = self.start_handshake(now)?;
        let psk = self.config.psk;
        let mut small = [0u8; SMALL_FRAME];
        let mut b = Bufs {
            frame: &mut [],
            small: &mut small,
        };
        self.run(&mut b, &mut Op::Connect(&mut op, psk))
            .await
            .map(|_| ())
    }

    /// Sends one message of 0..=1808 bytes; see [`crate::Client::send`].
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        let mut op = SendOp::default();
        self.with_bufs(Op::Send(&mut op, msg)).await.map(|_| ())
    }

    /// Waits for the next message and returns its length; see [`crate::Client::recv`].
    pub async fn recv(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        loop {
            if let Some(n) = self.recv_timeout(out, 60_000).await? {
                return Ok(n);
            }
        }
    }

    /// As [`AsyncClient::recv`], waiting at most `ms`: `Ok(None)` when no message came.
    pub async fn recv_timeout(&mut self, out: &mut [u8], ms: u32) -> Result<Option<usize>, Error> {
        let mut op = RecvOp::new(ms, true);
        let n = self.with_bufs(Op::Recv(&mut op, out)).await?;
        Ok((n != NO_MESSAGE).then_some(n))
    }

    /// Sends a PING now.
    pub async fn ping(&mut self) -> Result<(), Error> {
        let mut op = ControlOp::new(FrameType::Ping, false);
        self.with_bufs(Op::Control(&mut op)).await.map(|_| ())
    }

    /// Sends a PING when [`Config::keepalive_ms`] have passed since the last transmission:
    /// `Ok(true)` when it sent one; see [`crate::Client::keepalive_tick`].
    pub async fn keepalive_tick(&mut self) -> Result<bool, Error> {
        let now = self.clock.now_ms();
        if !self.conn.keepalive_due(now, self.config.keepalive_ms)? {
            return Ok(false);
        }
        self.ping().await.map(|()| true)
    }

    /// Rotates the session keys (wire v2; [`Error::Unsupported`] on v1).
    pub async fn rekey(&mut self) -> Result<(), Error> {
        let mut op = self.rekey_op()?;
        self.with_bufs(Op::Control(&mut op)).await.map(|_| ())
    }

    /// Ends the session: a best-effort BYE, keys zeroized. The transport stays yours.
    pub async fn close(&mut self) {
        if self.conn.is_established() {
            let mut op = ControlOp::new(FrameType::Bye, true);
            let _ = self.with_bufs(Op::Control(&mut op)).await;
        }
        self.conn.end();
    }

    client_accessors!();
}
