//! The blocking Rust API: [`Client`] over any [`Transport`], with randomness from
//! [`rand_core`] and time from a [`Clock`]. No global hooks, no `unsafe`.
//!
//! A byte stream that implements the `embedded-io` traits (a HAL's UART, a TCP socket)
//! plugs in through [`Stream`]; a datagram socket implements [`Transport`] itself with
//! [`Transport::is_datagram`] true (`embedded-io` has no datagram trait).

use rand_core::{CryptoRng, RngCore};

use crate::driver::{self, block_on, Bufs, Conn, RecvFail, Stats};
use crate::frame::{self, FrameType, MAX_FRAME};
use crate::handshake::DEVICE_ID_LEN;
use crate::session::Session;
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
    /// First retransmission timeout on a datagram transport, ms; 0 = adaptive (RTT-based).
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

/// The [`driver::Link`] methods both Rust faces implement alike: randomness from the RNG,
/// the device id and retransmission settings from the [`Config`], and the connection state
/// and session in the client (a `Session` zeroizes itself when dropped).
macro_rules! face_state {
    () => {
        fn random(&mut self, out: &mut [u8]) -> Result<(), Error> {
            self.rng.try_fill_bytes(out).map_err(|_| Error::PortFailed)
        }
        fn device_id(&mut self) -> Result<[u8; DEVICE_ID_LEN], Error> {
            Ok(self.cfg.device_id)
        }
        fn available(&mut self) -> Option<bool> {
            None
        }
        fn attempts(&self) -> u8 {
            self.cfg.retransmit_attempts.max(1)
        }
        fn fixed_rto_ms(&self) -> u32 {
            self.cfg.retransmit_timeout_ms
        }
        fn conn(&mut self) -> &mut Conn {
            self.conn
        }
        fn session(&mut self) -> Option<&mut Session> {
            self.session.as_mut()
        }
        fn store_session(&mut self, s: Session) {
            driver::Link::drop_session(self);
            *self.session = Some(s);
        }
        fn drop_session(&mut self) {
            // Dropping a Session zeroizes it.
            *self.session = None;
        }
    };
}
pub(crate) use face_state;

/// A face over a client's parts (the `Face` struct in scope: blocking or async).
macro_rules! face {
    ($self:ident) => {
        Face {
            t: &mut $self.transport,
            rng: &mut $self.rng,
            clock: &mut $self.clock,
            cfg: &$self.config,
            conn: &mut $self.conn,
            session: &mut $self.session,
        }
    };
}
pub(crate) use face;

/// The accessors [`Client`] and [`crate::AsyncClient`] share (their fields are the same).
macro_rules! client_accessors {
    () => {
        /// True while a session is established.
        pub fn is_connected(&self) -> bool {
            self.session.is_some()
        }

        /// Counters of the datagram link (retransmissions, duplicates, rejected datagrams).
        pub fn stats(&self) -> Stats {
            self.conn.stats
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
            self.session = None;
            core::mem::replace(&mut self.transport, transport)
        }

        /// Ends the session without BYE and gives back the parts.
        pub fn into_parts(mut self) -> (T, R, C) {
            self.session = None;
            let Self {
                transport,
                rng,
                clock,
                ..
            } = self;
            (transport, rng, clock)
        }
    };
}
pub(crate) use client_accessors;

/// True when `wait` ms have passed since `start`.
fn expired(now: u32, start: u32, wait: Option<u32>) -> bool {
    wait.is_some_and(|ms| now.wrapping_sub(start) >= ms)
}

/// The driver's view of a [`Client`] during one call.
struct Face<'c, 'a, T, R, C> {
    t: &'c mut T,
    rng: &'c mut R,
    clock: &'c mut C,
    cfg: &'c Config<'a>,
    conn: &'c mut Conn,
    session: &'c mut Option<Session>,
}

impl<T: Transport, R: RngCore + CryptoRng, C: Clock> Face<'_, '_, T, R, C> {
    fn recv_datagram(&mut self, buf: &mut [u8], wait: Option<u32>) -> Result<usize, RecvFail> {
        let start = self.clock.now_ms();
        loop {
            match self.t.try_recv(buf) {
                Ok(Some(n)) if n <= buf.len() => return Ok(n),
                Ok(Some(_)) => return Err(RecvFail::Broken),
                Ok(None) => {}
                Err(_) => return Err(RecvFail::HangUp),
            }
            if expired(self.clock.now_ms(), start, wait) {
                return Ok(0);
            }
            self.clock.idle();
        }
    }

    /// One whole frame from a byte stream: the header, then the length it announces.
    /// Nothing within `wait` gives 0; a frame that starts must complete within
    /// [`crate::REASSEMBLY_TIMEOUT_MS`] (else the stream is out of step: broken).
    fn recv_stream(
        &mut self,
        buf: &mut [u8; MAX_FRAME],
        wait: Option<u32>,
    ) -> Result<usize, RecvFail> {
        let start = self.clock.now_ms();
        let mut started: Option<u32> = None;
        let mut have = 0usize;
        loop {
            let need = frame::stream_target(buf.get(..have).unwrap_or(&[]));
            if have >= need {
                return Ok(have);
            }
            let part = buf.get_mut(have..need).ok_or(RecvFail::Broken)?;
            match self.t.try_recv(part) {
                Ok(Some(0)) | Err(_) => return Err(RecvFail::HangUp),
                Ok(Some(n)) if n <= part.len() => {
                    have += n;
                    started.get_or_insert(self.clock.now_ms());
                    continue;
                }
                Ok(Some(_)) => return Err(RecvFail::Broken),
                Ok(None) => {}
            }
            let now = self.clock.now_ms();
            match started {
                None if expired(now, start, wait) => return Ok(0),
                Some(t0) if expired(now, t0, Some(crate::REASSEMBLY_TIMEOUT_MS)) => {
                    return Err(RecvFail::Broken)
                }
                _ => self.clock.idle(),
            }
        }
    }
}

impl<T: Transport, R: RngCore + CryptoRng, C: Clock> driver::Link for Face<'_, '_, T, R, C> {
    fn datagram(&self) -> bool {
        self.t.is_datagram()
    }
    fn now(&mut self) -> u32 {
        self.clock.now_ms()
    }
    async fn send(&mut self, d: &[u8]) -> Result<(), Error> {
        self.t.send(d).map_err(|_| Error::TransportFailed)
    }
    async fn recv(
        &mut self,
        buf: &mut [u8; MAX_FRAME],
        wait: Option<u32>,
    ) -> Result<usize, RecvFail> {
        if self.t.is_datagram() {
            self.recv_datagram(&mut buf[..], wait)
        } else {
            self.recv_stream(buf, wait)
        }
    }
    face_state!();
}

/// A USMP connection over a blocking [`Transport`].
///
/// Every call blocks until it is done: [`Client::connect`] at most
/// [`crate::HANDSHAKE_TIMEOUT_MS`]; a send on a datagram transport until the gateway
/// acknowledged each frame (or the attempts ran out). Keys are zeroized when the session
/// ends and when the client is dropped.
pub struct Client<'a, T, R, C> {
    transport: T,
    rng: R,
    clock: C,
    config: Config<'a>,
    conn: Conn,
    session: Option<Session>,
}

/// Runs one driver operation on a [`Client`]'s parts, pinned where it stands.
macro_rules! op {
    ($self:ident, |$l:ident, $b:ident| $call:expr) => {{
        let mut $b = Bufs::new();
        let mut face = face!($self);
        let $l = &mut face;
        let $b = &mut $b;
        let r = block_on(core::pin::pin!($call));
        r
    }};
}

/// Runs an operation (the macro above) in a frame of its own, then wipes the stack it used:
/// key schedules and key copies of the crypto code stay in dead frames otherwise.
macro_rules! scrubbed {
    ($self:ident, $scrub:path, |$l:ident, $b:ident| $call:expr) => {{
        #[inline(never)]
        fn no_inline<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        let r = no_inline(|| op!($self, |$l, $b| $call));
        $scrub();
        r
    }};
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
            session: None,
        }
    }

    /// Runs the handshake. A session that was up is ended first (without BYE). Errors:
    /// [`Error::AuthFailed`] (PSK refused), [`Error::Rejected`] (device id, wire version or
    /// connection limit refused), [`Error::Timeout`], [`Error::PskTooShort`], ...
    pub fn connect(&mut self) -> Result<(), Error> {
        self.conn.reset(self.config.retransmit_timeout_ms);
        let (psk, version) = (self.config.psk, self.config.version);
        scrubbed!(self, driver::scrub_stack_connect, |l, b| driver::handshake(
            l, psk, version, b
        ))
    }

    /// Sends one message of 0..=1808 bytes (up to 4 frames). [`Error::BufferOverflow`]
    /// when longer (nothing is sent). A transport failure, or on a datagram transport no
    /// acknowledgement after every attempt ([`Error::Timeout`]), ends the session.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        scrubbed!(self, driver::scrub_stack, |l, b| driver::send_message(
            l, msg, b
        ))
    }

    /// Waits for the next message and returns its length (it is in `out[..len]`). PINGs
    /// are answered and REKEYs applied on the way. [`Error::BufferOverflow`]: the message
    /// was larger than `out` (it is dropped, the session stays up); [`Error::ClosedByPeer`]:
    /// the gateway said BYE. Other errors end the session.
    pub fn recv(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        loop {
            if let Some(n) = scrubbed!(self, driver::scrub_stack, |l, b| driver::recv_message(
                l, out, None, b
            ))? {
                return Ok(n);
            }
        }
    }

    /// As [`Client::recv`], waiting at most `ms` milliseconds: `Ok(None)` when no message
    /// came in that time.
    pub fn recv_timeout(&mut self, out: &mut [u8], ms: u32) -> Result<Option<usize>, Error> {
        scrubbed!(self, driver::scrub_stack, |l, b| driver::recv_message(
            l,
            out,
            Some(ms),
            b
        ))
    }

    /// Sends a PING now (the PONG is consumed by a later receive).
    pub fn ping(&mut self) -> Result<(), Error> {
        scrubbed!(self, driver::scrub_stack, |l, b| driver::send_control(
            l,
            FrameType::Ping,
            b
        ))
    }

    /// Sends a PING when [`Config::keepalive_ms`] have passed since the last transmission;
    /// call it from the main loop. `Ok(true)` when it sent one, `Ok(false)` when none was
    /// due (then it costs a clock read); [`Error::NotConnected`] when the session is gone.
    pub fn keepalive_tick(&mut self) -> Result<bool, Error> {
        let period = self.config.keepalive_ms;
        let mut face = face!(self);
        if !driver::keepalive_due(&mut face, period)? {
            return Ok(false);
        }
        scrubbed!(self, driver::scrub_stack, |l, b| driver::keepalive(
            l, period, b
        ))
    }

    /// Rotates the session keys (wire v2; [`Error::Unsupported`] on v1).
    pub fn rekey(&mut self) -> Result<(), Error> {
        scrubbed!(self, driver::scrub_stack, |l, b| driver::rekey(l, b))
    }

    /// Ends the session: a best-effort BYE, keys zeroized. The transport stays open and
    /// yours ([`Client::transport_mut`], [`Client::into_parts`]).
    pub fn close(&mut self) {
        scrubbed!(self, driver::scrub_stack, |l, b| driver::bye(l, b));
    }

    client_accessors!();
}
