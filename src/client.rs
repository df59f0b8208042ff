//! The blocking Rust API: [`Client`] over any [`Transport`], with randomness from
//! [`rand_core`] and time from a [`Clock`]. No global hooks, no `unsafe`.
//!
//! A byte stream that implements the `embedded-io` traits (a HAL's UART, a TCP socket)
//! plugs in through [`Stream`]; a datagram socket implements [`Transport`] itself with
//! [`Transport::is_datagram`] true (`embedded-io` has no datagram trait).

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use crate::conn::{Conn, Reply, Stats, Timing, SMALL_FRAME};
use crate::frame::{self, FrameType, MAX_FRAME};
use crate::handshake::DEVICE_ID_LEN;
use crate::ops::{
    self, in_buf, out_bytes, Action, Bufs, ConnectOp, ControlOp, Env, Input, Op, RecvOp, SendOp,
    NO_MESSAGE,
};
use crate::scrub::{scrub_stack, scrub_stack_connect};
use crate::session::REKEY_SALT_LEN;
use crate::{Error, Version};

/// Settings of a connection. [`Config::new`] gives the defaults: wire v2, keepalive off,
/// 5 attempts per datagram frame with the adaptive retransmission timeout.
#[derive(Clone, Copy, Debug)]
pub struct Config<'a> {
    /// The pre-shared key the gateway holds for this device (v2: at least 16 bytes).
    pub psk: &'a [u8],
    /// The 6-byte device id the gateway knows this device by.
    pub device_id: [u8; DEVICE_ID_LEN],
    /// Wire version: [`Version::V2`] (`usmp` 1.x gateways), or [`Version::V1`] for legacy
    /// `usmp` 0.5.1 gateways (v1 reuses AES-GCM nonces across directions).
    pub version: Version,
    /// Send a PING after this many ms without transmitting ([`Client::keepalive_tick`]);
    /// 0 = off.
    pub keepalive_ms: u32,
    /// Attempts per frame on a datagram transport (0 counts as 1).
    pub retransmit_attempts: u8,
    /// First retransmission timeout on a datagram transport, ms, doubled per retry up to 60 s;
    /// 0 = adaptive (RTT-based).
    pub retransmit_timeout_ms: u32,
}

impl<'a> Config<'a> {
    /// The defaults for `psk` and `device_id`.
    pub const fn new(psk: &'a [u8], device_id: [u8; DEVICE_ID_LEN]) -> Self {
        Self {
            psk,
            device_id,
            version: Version::V2,
            keepalive_ms: 0,
            retransmit_attempts: crate::datagram::DEFAULT_ATTEMPTS,
            retransmit_timeout_ms: 0,
        }
    }

    /// The same settings with another wire version.
    #[must_use]
    pub const fn with_version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// The same settings with keepalive every `ms` of silence (0 = off).
    #[must_use]
    pub const fn with_keepalive_ms(mut self, ms: u32) -> Self {
        self.keepalive_ms = ms;
        self
    }
}

/// Milliseconds for the blocking client.
pub trait Clock {
    /// Monotonic milliseconds; wrapping at 2^32 is fine.
    fn now_ms(&mut self) -> u32;
    /// Called in every turn of a wait loop (nothing has arrived yet): sleep a little,
    /// wait for an interrupt, or do nothing (the default) to spin.
    fn idle(&mut self) {}
}

/// A blocking transport, already connected to the gateway.
pub trait Transport {
    /// True for a datagram transport (UDP): one frame per datagram, acknowledged and
    /// retransmitted by the protocol. False (the default) for a byte stream.
    fn is_datagram(&self) -> bool {
        false
    }
    /// Sends all of `bytes` (a datagram transport: as one datagram).
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error>;
    /// Reads what has arrived without waiting: `Ok(None)` when nothing has; a stream may
    /// return fewer bytes than asked, and `Ok(Some(0))` when the peer has closed it; a
    /// datagram transport returns one datagram (cut to `buf`'s length).
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error>;
}

/// A byte stream that implements the blocking `embedded-io` traits (`Read`, `Write` and
/// `ReadReady`, so that waits can time out), as a [`Transport`] — and, through the async
/// `embedded-io-async` traits, as an [`crate::AsyncTransport`].
#[derive(Debug)]
pub struct Stream<T>(pub T);

impl<T> Transport for Stream<T>
where
    T: embedded_io::Read + embedded_io::Write + embedded_io::ReadReady,
{
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.0
            .write_all(bytes)
            .and_then(|()| self.0.flush())
            .map_err(|_| Error::TransportFailed)
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        if buf.is_empty() || !self.0.read_ready().map_err(|_| Error::TransportFailed)? {
            return Ok(None);
        }
        self.0
            .read(buf)
            .map(Some)
            .map_err(|_| Error::TransportFailed)
    }
}

/// The accessors [`Client`] and [`crate::AsyncClient`] share (their fields are the same).
macro_rules! client_accessors {
    () => {
        /// True while a session is established.
        pub fn is_connected(&self) -> bool {
            self.conn.is_established()
        }

        /// Counters of the datagram link (retransmissions, duplicates, rejected datagrams).
        pub fn stats(&self) -> Stats {
            self.conn.stats()
        }

        /// The settings.
        pub fn config(&self) -> &Config<'a> {
            &self.config
        }

        /// The transport, e.g. to redial it before `connect` again.
        pub fn transport_mut(&mut self) -> &mut T {
            &mut self.transport
        }

        /// Swaps in a new transport (a fresh socket after a failure) and returns the old one.
        /// The session, bound to the old one, ends (keys zeroized); call `connect`.
        pub fn replace_transport(&mut self, transport: T) -> T {
            self.conn.end();
            core::mem::replace(&mut self.transport, transport)
        }

        /// Ends the session without BYE and gives back the parts.
        pub fn into_parts(mut self) -> (T, R, C) {
            self.conn.end();
            let Self {
                transport,
                rng,
                clock,
                ..
            } = self;
            (transport, rng, clock)
        }

        /// The retransmission settings.
        fn timing(&self) -> Timing {
            Timing {
                attempts: self.config.retransmit_attempts.max(1),
                fixed_rto_ms: self.config.retransmit_timeout_ms,
            }
        }

        /// A handshake ready to run: a fresh X25519 secret from the RNG.
        fn start_handshake(&mut self, now: u32) -> Result<ConnectOp, Error> {
            ops::reenter(&mut self.conn);
            self.conn.reset();
            let mut secret = [0u8; 32];
            let r = self
                .rng
                .try_fill_bytes(&mut secret)
                .map_err(|_| Error::PortFailed)
                .and_then(|()| {
                    let (cfg, dgram) = (&self.config, self.transport.is_datagram());
                    let mut op = ConnectOp::EMPTY;
                    op.start(cfg.version, cfg.psk, &cfg.device_id, &secret, dgram, now)
                        .map(|()| op)
                });
            secret.zeroize();
            r
        }

        /// A REKEY operation with a fresh salt from the RNG.
        fn rekey_op(&mut self) -> Result<ControlOp, Error> {
            let mut salt = [0u8; REKEY_SALT_LEN];
            let r = self
                .rng
                .try_fill_bytes(&mut salt)
                .map_err(|_| Error::PortFailed)
                .map(|()| ControlOp::rekey(&salt));
            salt.zeroize();
            r
        }
    };
}
pub(crate) use client_accessors;

/// True when `wait` ms have passed since `start`.
fn expired(now: u32, start: u32, wait: Option<u32>) -> bool {
    wait.is_some_and(|ms| now.wrapping_sub(start) >= ms)
}

/// The fields of [`Client`] and [`crate::AsyncClient`].
macro_rules! client_struct {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        pub struct $name<'a, T, R, C> {
            transport: T,
            rng: R,
            clock: C,
            config: Config<'a>,
            conn: Conn,
        }
    };
}
pub(crate) use client_struct;

client_struct!(
    /// A USMP connection over a blocking [`Transport`].
    ///
    /// Every call blocks until it is done: [`Client::connect`] at most
    /// [`crate::HANDSHAKE_TIMEOUT_MS`]; a send on a datagram transport until the gateway
    /// acknowledged each frame (or the attempts ran out). Keys are zeroized when the session
    /// ends and when the client is dropped.
    Client
);

/// Runs an operation (a closure) in a frame of its own, then wipes the stack it used:
/// key schedules and key copies of the crypto code stay in dead frames otherwise.
#[inline(never)]
fn scrubbed<X>(wipe: fn(), f: impl FnOnce() -> X) -> X {
    let r = f();
    wipe();
    r
}

impl<'a, T: Transport, R: RngCore + CryptoRng, C: Clock> Client<'a, T, R, C> {
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

    /// Runs one operation: step, do what it asks, feed the result back.
    fn run(&mut self, b: &mut Bufs<'_>, op: &mut Op<'_, '_>) -> Result<usize, Error> {
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
                    Input::Sent(self.transport.send(out_bytes(out, b, &reply)).is_ok())
                }
                Action::Receive { small, wait } => self.receive(in_buf(small, b), wait),
                Action::Available => Input::Available(None),
                Action::Sleep(_) => {
                    self.clock.idle();
                    Input::None
                }
                Action::Done(r) => return r,
            };
        }
    }

    fn receive(&mut self, buf: &mut [u8], wait: Option<u32>) -> Input {
        if self.transport.is_datagram() {
            self.recv_datagram(buf, wait)
        } else {
            self.recv_stream(buf, wait)
        }
    }

    fn recv_datagram(&mut self, buf: &mut [u8], wait: Option<u32>) -> Input {
        let start = self.clock.now_ms();
        loop {
            match self.transport.try_recv(buf) {
                Ok(Some(n)) if n <= buf.len() => return Input::Received(n),
                Ok(Some(_)) => return Input::Broken,
                Ok(None) => {}
                Err(_) => return Input::Closed,
            }
            if expired(self.clock.now_ms(), start, wait) {
                return Input::Nothing;
            }
            self.clock.idle();
        }
    }

    /// One whole frame from a byte stream: the header, then the length it announces.
    /// Nothing within `wait` gives [`Input::Nothing`]; a frame that starts must be complete
    /// [`crate::REASSEMBLY_TIMEOUT_MS`] after its first byte (else the stream is out of
    /// step: broken).
    fn recv_stream(&mut self, buf: &mut [u8], wait: Option<u32>) -> Input {
        let start = self.clock.now_ms();
        let mut started: Option<u32> = None;
        let mut have = 0usize;
        loop {
            let need = frame::stream_target(buf.get(..have).unwrap_or(&[]));
            if have >= need {
                return Input::Received(have);
            }
            let Some(part) = buf.get_mut(have..need) else {
                return Input::Broken;
            };
            match self.transport.try_recv(part) {
                Ok(Some(0)) | Err(_) => return Input::Closed,
                Ok(Some(n)) if n <= part.len() => {
                    have += n;
                    started.get_or_insert(self.clock.now_ms());
                    continue;
                }
                Ok(Some(_)) => return Input::Broken,
                Ok(None) => {}
            }
            let now = self.clock.now_ms();
            match started {
                None if expired(now, start, wait) => return Input::Nothing,
                Some(t0) if expired(now, t0, Some(crate::REASSEMBLY_TIMEOUT_MS)) => {
                    return Input::Broken
                }
                _ => self.clock.idle(),
            }
        }
    }

    /// Runs the handshake (at most [`crate::HANDSHAKE_TIMEOUT_MS`]). A session that was up is
    /// ended first (without BYE). Errors: [`Error::AuthFailed`] (PSK refused),
    /// [`Error::Rejected`] (device id, wire version or connection limit refused),
    /// [`Error::Timeout`], [`Error::PskTooShort`], ...
    pub fn connect(&mut self) -> Result<(), Error> {
        scrubbed(scrub_stack_connect, || {
            let now = self.clock.now_ms();
            let mut op = self.start_handshake(now)?;
            let psk = self.config.psk;
            let mut small = [0u8; SMALL_FRAME];
            let mut b = Bufs {
                frame: &mut [],
                small: &mut small,
            };
            self.run(&mut b, &mut Op::Connect(&mut op, psk)).map(|_| ())
        })
    }

    /// Runs an operation with a frame buffer and a small one (wiped afterwards).
    fn with_bufs(&mut self, mut op: Op<'_, '_>) -> Result<usize, Error> {
        scrubbed(scrub_stack, || {
            ops::reenter(&mut self.conn);
            let mut frame = [0u8; MAX_FRAME];
            let mut small = [0u8; SMALL_FRAME];
            let r = self.run(
                &mut Bufs {
                    frame: &mut frame,
                    small: &mut small,
                },
                &mut op,
            );
            frame.zeroize();
            r
        })
    }

    /// Sends one message of 0..=1808 bytes (up to 4 frames). [`Error::BufferOverflow`]
    /// when longer (nothing is sent). A transport failure, or on a datagram transport no
    /// acknowledgement after every attempt ([`Error::Timeout`]), ends the session.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        let mut op = SendOp::default();
        self.with_bufs(Op::Send(&mut op, msg)).map(|_| ())
    }

    /// Waits for the next message and returns its length (it is in `out[..len]`). PINGs
    /// are answered and REKEYs applied on the way. [`Error::BufferOverflow`]: the message
    /// was larger than `out` (it is dropped, the session stays up); [`Error::ClosedByPeer`]:
    /// the gateway said BYE. Other errors end the session.
    pub fn recv(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        loop {
            if let Some(n) = self.recv_timeout(out, 60_000)? {
                return Ok(n);
            }
        }
    }

    /// As [`Client::recv`], waiting at most `ms` milliseconds: `Ok(None)` when no message
    /// came in that time, whatever else arrived (a message that has started to arrive may
    /// take [`crate::REASSEMBLY_TIMEOUT_MS`] more).
    pub fn recv_timeout(&mut self, out: &mut [u8], ms: u32) -> Result<Option<usize>, Error> {
        let mut op = RecvOp::new(ms, true);
        let n = self.with_bufs(Op::Recv(&mut op, out))?;
        Ok((n != NO_MESSAGE).then_some(n))
    }

    /// Sends a PING now (the PONG is consumed by a later receive).
    pub fn ping(&mut self) -> Result<(), Error> {
        let mut op = ControlOp::new(FrameType::Ping, false);
        self.with_bufs(Op::Control(&mut op)).map(|_| ())
    }

    /// Sends a PING when [`Config::keepalive_ms`] have passed since the last transmission;
    /// call it from the main loop. `Ok(true)` when it sent one, `Ok(false)` when none was
    /// due (then it costs a clock read); [`Error::NotConnected`] when the session is gone.
    pub fn keepalive_tick(&mut self) -> Result<bool, Error> {
        let now = self.clock.now_ms();
        if !self.conn.keepalive_due(now, self.config.keepalive_ms)? {
            return Ok(false);
        }
        self.ping().map(|()| true)
    }

    /// Rotates the session keys (wire v2; [`Error::Unsupported`] on v1).
    pub fn rekey(&mut self) -> Result<(), Error> {
        let mut op = self.rekey_op()?;
        self.with_bufs(Op::Control(&mut op)).map(|_| ())
    }

    /// Ends the session: a best-effort BYE, keys zeroized. The transport stays open and
    /// yours ([`Client::transport_mut`], [`Client::into_parts`]).
    pub fn close(&mut self) {
        if self.conn.is_established() {
            let mut op = ControlOp::new(FrameType::Bye, true);
            let _ = self.with_bufs(Op::Control(&mut op));
        }
        self.conn.end();
    }

    client_accessors!();
}
