//! Finding the gateway on the local network: DNS-SD (RFC 6763) over multicast DNS
//! (RFC 6762), service types `_usmp._tcp` and `_usmp._udp`. Feature `discovery`.
//!
//! A gateway is announced as a DNS-SD instance: `PTR _usmp._tcp.local → <name>._usmp._tcp.local`,
//! an SRV record with its host name and port, a TXT record (`txtvers=1`, `v=<wire version>`)
//! and an A record for the host. `usmp announce` (the host tool) or any mDNS responder
//! (Avahi, python-zeroconf, ESP-IDF's mdns) can publish it.
//!
//! The device sends one-shot queries from an ephemeral port to 224.0.0.251:5353 — "legacy
//! unicast" in RFC 6762 §6.7 terms — so responders answer it directly by unicast, and the
//! device neither binds port 5353 nor joins the group (it can run next to an mDNS
//! responder of its own). Queries are repeated after 1, 2, 4 ... s until the timeout.
//!
//! [`Resolver`](crate::discovery::Resolver) is the sans-IO machine: it writes queries into a caller buffer
//! ([`Resolver::poll_transmit`](crate::discovery::Resolver::poll_transmit)), reads answers ([`Resolver::handle_datagram`](crate::discovery::Resolver::handle_datagram)) and says
//! when it next needs to run ([`Resolver::poll_timeout`](crate::discovery::Resolver::poll_timeout)). An answer that names an
//! instance without its SRV or address record starts a follow-up question for exactly
//! that. [`discover`](crate::discovery::discover()) is the blocking loop over a [`Transport`] and a [`Clock`]; the C API
//! (`usmp_discover`, header `usmp_discovery.h`) is the same loop over a `usmp_transport_t`.
//!
//! Discovery is not authenticated: anyone on the link can answer. That is harmless to the
//! session — the handshake proves the gateway knows the PSK, so a forged answer costs a
//! failed handshake, never a session — but it means an attacker can hide the gateway
//! (as they could by jamming). The TXT wire version is only a filter
//! ([`Options::version`](crate::discovery::Options::version)): the device never lets an answer choose its wire version.
//!
//! Malformed answers (see [`dns::DnsError`](crate::discovery::dns::DnsError)) are counted and dropped, and the wait goes on;
//! if nothing usable came by the timeout, the result is [`Error::BadFrame`] when a
//! malformed answer was seen, else [`Error::Timeout`]. IPv4 only.

// The links above are crate paths: with the `cbindgen:ignore` doc comment on the module
// in lib.rs, rustdoc resolves this module's docs from the crate root.

pub mod announce;
pub mod dns;

#[cfg(feature = "capi")]
pub mod capi;
#[cfg(feature = "std")]
pub mod host;

use core::ops::ControlFlow;

use dns::{DnsError, Message, Name, NameBuf, RData, Writer, CLASS_IN};

use crate::{Clock, Error, Transport, Version};

/// The mDNS IPv4 group.
pub const MDNS_GROUP: [u8; 4] = [224, 0, 0, 251];
/// The mDNS port.
pub const MDNS_PORT: u16 = 5353;
/// Timeout when none is given (ms).
pub const DEFAULT_TIMEOUT_MS: u32 = 3000;
/// Wait before the first repeated query (ms); each later wait doubles, up to 8 s.
pub const FIRST_INTERVAL_MS: u32 = 1000;
/// Longest instance name (one DNS label).
pub const MAX_INSTANCE: usize = 63;
/// Longest host name (wire form) kept for a follow-up question; a longer one is resolved
/// only when its address comes in the same answer as the SRV record.
pub const MAX_HOST_NAME: usize = 128;
/// A receive buffer of this size holds any answer a responder sends for one instance
/// (the classic DNS limit); larger datagrams are dropped by the transports.
pub const DATAGRAM_LEN: usize = 512;

/// The transport a gateway is announced for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Service {
    /// `_usmp._tcp`: the gateway listens for TCP.
    Tcp = 1,
    /// `_usmp._udp`: the gateway listens for UDP.
    Udp = 2,
}

impl Service {
    /// The DNS-SD service type, `_usmp._tcp.local` or `_usmp._udp.local`.
    pub const fn type_name(self) -> Name<'static> {
        match self {
            Self::Tcp => dns::service_tcp(),
            Self::Udp => dns::service_udp(),
        }
    }
}

/// A set of [`Service`]s (bits: 1 = TCP, 2 = UDP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Services(u8);

impl Services {
    /// TCP gateways.
    pub const TCP: Self = Self(1);
    /// UDP gateways.
    pub const UDP: Self = Self(2);
    /// Both.
    pub const ALL: Self = Self(3);

    /// From the bits; `None` for 0 or unknown bits.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            1..=3 => Some(Self(bits)),
            _ => None,
        }
    }

    /// Whether `s` is in the set.
    pub const fn contains(self, s: Service) -> bool {
        self.0 & s as u8 != 0
    }
}

/// What to look for.
#[derive(Clone, Copy, Debug)]
pub struct Options<'f> {
    /// Give up after this long (ms; 0 = [`DEFAULT_TIMEOUT_MS`]).
    pub timeout_ms: u32,
    /// Only the instance of this name (ASCII case-insensitive; at most 63 bytes); `None`
    /// takes the first gateway that answers.
    pub instance: Option<&'f [u8]>,
    /// The transports wanted.
    pub services: Services,
    /// Skip gateways whose TXT record announces another wire version (`v=`); `None` takes
    /// any. Gateways without `v=` always pass.
    pub version: Option<Version>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self {
            timeout_ms: DEFAULT_TIMEOUT_MS,
            instance: None,
            services: Services::ALL,
            version: None,
        }
    }
}

/// A gateway found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// TCP or UDP.
    pub service: Service,
    /// Its IPv4 address.
    pub addr: [u8; 4],
    /// Its port.
    pub port: u16,
    /// The wire version its TXT record announces (`v=1` / `v=2`), if any.
    pub version: Option<Version>,
    instance: [u8; MAX_INSTANCE],
    instance_len: u8,
}

impl Found {
    /// A placeholder to be filled by [`Resolver::handle_into`].
    pub const EMPTY: Self = Self {
        service: Service::Tcp,
        addr: [0; 4],
        port: 0,
        version: None,
        instance: [0; MAX_INSTANCE],
        instance_len: 0,
    };

    /// The instance name (UTF-8 by convention, not checked; never contains a NUL).
    pub fn instance(&self) -> &[u8] {
        self.instance
            .get(..usize::from(self.instance_len))
            .unwrap_or(&[])
    }
}

/// What a discovery run saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Queries sent.
    pub queries: u32,
    /// Well-formed answers received (matching or not).
    pub answers: u32,
    /// Malformed datagrams received and dropped.
    pub malformed: u32,
    /// The error of the last malformed one.
    pub last_error: Option<DnsError>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Missing {
    /// The SRV record of the instance (and its address).
    Srv,
    /// The address of the SRV target.
    Addr,
}

/// An instance seen in an answer that lacked its SRV or address record (none while
/// `missing` is `None`), updated in place.
#[derive(Clone, Debug)]
struct Pending {
    missing: Option<Missing>,
    service: Service,
    label: [u8; MAX_INSTANCE],
    label_len: u8,
    port: u16,
    version: Option<Version>,
    host: NameBuf<MAX_HOST_NAME>,
}

impl Pending {
    fn label(&self) -> &[u8] {
        self.label.get(..usize::from(self.label_len)).unwrap_or(&[])
    }

    /// Keeps the SRV target of a partial answer: true when there is one to ask for.
    fn need_addr(&mut self, version: Option<Version>, port: u16, host: &Name<'_>) -> bool {
        let ok = self.host.set(host).is_ok();
        self.missing = ok.then_some(Missing::Addr);
        self.version = version;
        self.port = port;
        ok
    }

    /// Keeps a partly resolved instance: true when there is something to ask for.
    fn start(&mut self, inst: Instance<'_>, outcome: &Outcome<'_>) -> bool {
        let Some(dst) = self.label.get_mut(..inst.label.len()) else {
            return false;
        };
        dst.copy_from_slice(inst.label);
        self.label_len = inst.label.len() as u8; // <= 63: checked by the get_mut above
        self.service = inst.service;
        match *outcome {
            Outcome::NeedSrv(version) => {
                self.missing = Some(Missing::Srv);
                self.version = version;
                true
            }
            Outcome::NeedAddr(version, port, ref host) => self.need_addr(version, port, host),
            _ => false,
        }
    }
}

/// An instance: `<label>.<the service type>`.
#[derive(Clone, Copy, Debug)]
struct Instance<'l> {
    service: Service,
    label: &'l [u8],
}

impl Instance<'_> {
    fn named(&self, name: &Name<'_>) -> bool {
        name.child_of(&self.service.type_name())
            .is_some_and(|l| l.eq_ignore_ascii_case(self.label))
    }
}

/// What one answer tells about one instance.
enum Outcome<'m> {
    /// Complete: written into the caller's `Found`.
    Found,
    NeedSrv(Option<Version>),
    NeedAddr(Option<Version>, u16, Name<'m>),
    /// Not usable (another wire version, port 0).
    Skip,
}

/// An address a device can connect to: not in 0.0.0.0/8 ("this network"), multicast or
/// reserved (224.0.0.0 and above, broadcast included).
fn usable(a: [u8; 4]) -> bool {
    a[0] != 0 && a[0] < 224
}

fn version_of(txt: &dns::Txt<'_>) -> Option<Version> {
    match txt.get(b"v")? {
        b"1" => Some(Version::V1),
        b"2" => Some(Version::V2),
        _ => None,
    }
}

/// Looks in `msg` for the rest of the instance: TXT, SRV (unless `srv` is already known)
/// and the address of the SRV target; a complete gateway goes into `out`.
fn resolve<'m>(
    msg: &Message<'m>,
    opts: &Options<'_>,
    inst: Instance<'_>,
    srv: Option<(u16, Name<'m>)>,
    version: Option<Version>,
    out: &mut Found,
) -> Outcome<'m> {
    let mut version = version;
    let mut srv = srv;
    for rec in msg.records().flatten() {
        match rec.data {
            RData::Txt(t) if inst.named(&rec.name) => version = version_of(&t).or(version),
            RData::Srv { port, target, .. } if srv.is_none() && inst.named(&rec.name) => {
                srv = Some((port, target))
            }
            _ => {}
        }
    }
    if let (Some(want), Some(got)) = (opts.version, version) {
        if want != got {
            return Outcome::Skip;
        }
    }
    let Some((port, host)) = srv else {
        return Outcome::NeedSrv(version);
    };
    if port == 0 {
        return Outcome::Skip;
    }
    let addr = msg.records().flatten().find_map(|rec| match rec.data {
        RData::A(a) if usable(a) && rec.name.same(&host) => Some(a),
        _ => None,
    });
    match (addr, out.instance.get_mut(..inst.label.len())) {
        (Some(addr), Some(dst)) => {
            dst.copy_from_slice(inst.label);
            out.instance_len = inst.label.len() as u8; // <= 63: it fitted
            out.service = inst.service;
            out.addr = addr;
            out.port = port;
            out.version = version;
            Outcome::Found
        }
        _ => Outcome::NeedAddr(version, port, host),
    }
}

/// The instances announced by PTR records in `msg` that `opts` asks for, each with what
/// the message says about it (the message must have passed [`Message::check`]).
fn each_instance<'m>(
    msg: &Message<'m>,
    opts: &Options<'_>,
    out: &mut Found,
    mut f: impl FnMut(Instance<'m>, Outcome<'m>, &Found) -> ControlFlow<()>,
) -> bool {
    for rec in msg.records().flatten() {
        let RData::Ptr(target) = rec.data else {
            continue;
        };
        for service in [Service::Tcp, Service::Udp] {
            let type_name = service.type_name();
            if !opts.services.contains(service) || !rec.name.same(&type_name) {
                continue;
            }
            let Some(label) = target.child_of(&type_name) else {
                continue;
            };
            // A NUL would cut the C string; the filter compares like DNS names do.
            if label.contains(&0)
                || opts
                    .instance
                    .is_some_and(|want| !want.eq_ignore_ascii_case(label))
            {
                continue;
            }
            let inst = Instance { service, label };
            let outcome = resolve(msg, opts, inst, None, None, out);
            if f(inst, outcome, out).is_break() {
                return true;
            }
        }
    }
    false
}

/// Every gateway `packet` announces completely (PTR, SRV and address in the one
/// datagram), filtered by `opts` (its timeout unused): for tools that list what answers.
/// Malformed datagrams are an error, answers of other kinds give nothing.
pub fn gateways_in(
    packet: &[u8],
    opts: &Options<'_>,
    mut f: impl FnMut(Found),
) -> Result<(), DnsError> {
    let msg = Message::parse(packet)?;
    msg.check()?;
    if msg.is_answer() {
        let mut scratch = Found::EMPTY;
        each_instance(&msg, opts, &mut scratch, |_, o, found| {
            if let Outcome::Found = o {
                f(*found);
            }
            ControlFlow::Continue(())
        });
    }
    Ok(())
}

/// The discovery machine (sans-IO). Times are milliseconds of any monotonic clock that
/// wraps at 2^32.
#[derive(Debug)]
pub struct Resolver<'f> {
    opts: Options<'f>,
    start: u32,
    timeout: u32,
    next_query: u32,
    interval: u32,
    id: u16,
    pending: Pending,
    stats: Stats,
}

impl<'f> Resolver<'f> {
    /// Starts a discovery at `now`. `InvalidArg` for an empty or over-long instance name.
    pub fn new(now: u32, opts: &Options<'f>) -> Result<Self, Error> {
        if opts
            .instance
            .is_some_and(|i| i.is_empty() || i.len() > MAX_INSTANCE)
        {
            return Err(Error::InvalidArg);
        }
        let timeout = match opts.timeout_ms {
            0 => DEFAULT_TIMEOUT_MS,
            t => t.min(i32::MAX as u32),
        };
        Ok(Self {
            opts: *opts,
            start: now,
            timeout,
            next_query: now,
            interval: FIRST_INTERVAL_MS,
            // Any id will do (answers are not matched by id); a time-derived one keeps two
            // devices that start together from sending identical queries.
            id: (now as u16) ^ 0x5e0d,
            pending: Pending {
                missing: None,
                service: Service::Tcp,
                label: [0; MAX_INSTANCE],
                label_len: 0,
                port: 0,
                version: None,
                host: NameBuf::root(),
            },
            stats: Stats::default(),
        })
    }

    /// What this run has seen so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether the timeout has passed.
    pub fn expired(&self, now: u32) -> bool {
        now.wrapping_sub(self.start) >= self.timeout
    }

    /// The error to report when the timeout passed without a gateway: `BadFrame` when a
    /// malformed answer arrived, else `Timeout`.
    pub fn failure(&self) -> Error {
        if self.stats.malformed > 0 {
            Error::BadFrame
        } else {
            Error::Timeout
        }
    }

    /// When the machine next needs [`Resolver::poll_transmit`] or the final
    /// [`Resolver::expired`] check: the next query or the timeout, whichever is first.
    pub fn poll_timeout(&self) -> u32 {
        let deadline = self.start.wrapping_add(self.timeout);
        if (self.next_query.wrapping_sub(deadline) as i32) < 0 {
            self.next_query
        } else {
            deadline
        }
    }

    /// Writes the next query into `buf` when one is due at `now` (its length), else
    /// `None`. `BufferOverflow` when `buf` is too small ([`DATAGRAM_LEN`] is enough).
    #[inline(never)]
    pub fn poll_transmit(&mut self, now: u32, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        if self.expired(now) || (now.wrapping_sub(self.next_query) as i32) < 0 {
            return Ok(None);
        }
        let mut w = Writer::new(buf, self.id, 0)?;
        for service in [Service::Tcp, Service::Udp] {
            if self.opts.services.contains(service) {
                w.question(&service.type_name(), dns::TYPE_PTR, CLASS_IN)?;
            }
        }
        let p = &self.pending;
        match p.missing {
            Some(Missing::Addr) => w.question(&p.host.name(), dns::TYPE_A, CLASS_IN)?,
            Some(Missing::Srv) => {
                for qtype in [dns::TYPE_SRV, dns::TYPE_TXT] {
                    w.question_under(p.label(), &p.service.type_name(), qtype, CLASS_IN)?;
                }
            }
            None => {}
        }
        let n = w.finish();
        self.id = self.id.wrapping_add(1);
        self.stats.queries = self.stats.queries.saturating_add(1);
        self.next_query = now.wrapping_add(self.interval);
        self.interval = (self.interval * 2).min(8 * FIRST_INTERVAL_MS);
        Ok(Some(n))
    }

    fn malformed(&mut self, e: DnsError) -> DnsError {
        self.stats.malformed = self.stats.malformed.saturating_add(1);
        self.stats.last_error = Some(e);
        e
    }

    /// Reads one datagram received at `now`. `Ok(Some)` is the gateway; `Ok(None)`: not
    /// (yet) one that matches — keep waiting; `Err`: malformed, counted and dropped — keep
    /// waiting too.
    pub fn handle_datagram(&mut self, now: u32, packet: &[u8]) -> Result<Option<Found>, DnsError> {
        let mut found = Found::EMPTY;
        Ok(self.handle_into(now, packet, &mut found)?.then_some(found))
    }

    /// [`Resolver::handle_datagram`] writing the gateway into `out` (true when it did).
    #[inline(never)]
    pub fn handle_into(
        &mut self,
        now: u32,
        packet: &[u8],
        out: &mut Found,
    ) -> Result<bool, DnsError> {
        let msg = Message::parse(packet).map_err(|e| self.malformed(e))?;
        msg.check().map_err(|e| self.malformed(e))?;
        if !msg.is_answer() {
            return Ok(false);
        }
        self.stats.answers = self.stats.answers.saturating_add(1);

        // An instance seen before: this answer may bring what it lacked.
        let p = &self.pending;
        let inst = Instance {
            service: p.service,
            label: p.label(),
        };
        match p.missing {
            Some(Missing::Srv) => match resolve(&msg, &self.opts, inst, None, p.version, out) {
                Outcome::Found => return Ok(true),
                Outcome::NeedAddr(version, port, host) => {
                    if self.pending.need_addr(version, port, &host) {
                        self.next_query = now; // progress: ask for the address at once
                    }
                }
                Outcome::Skip => self.pending.missing = None,
                Outcome::NeedSrv(_) => {}
            },
            Some(Missing::Addr) => {
                let srv = Some((p.port, p.host.name()));
                if let Outcome::Found = resolve(&msg, &self.opts, inst, srv, p.version, out) {
                    return Ok(true);
                }
            }
            None => {}
        }

        // Instances this answer announces; the first partial one is followed up when no
        // other is.
        let pending = &mut self.pending;
        let mut ask = false;
        let found = each_instance(&msg, &self.opts, out, |inst, outcome, _| match outcome {
            Outcome::Found => ControlFlow::Break(()),
            partial => {
                if pending.missing.is_none() {
                    ask = pending.start(inst, &partial);
                }
                ControlFlow::Continue(())
            }
        });
        if ask {
            self.next_query = now;
        }
        Ok(found)
    }

    /// Runs the machine over a blocking [`Transport`] (a datagram socket that sends to
    /// the mDNS group, e.g. [`host::MdnsSocket`]) and a [`Clock`] until a gateway answers
    /// or the timeout passes. `buf` receives datagrams and holds queries
    /// ([`DATAGRAM_LEN`] bytes are enough).
    pub fn run<T: Transport, C: Clock>(
        &mut self,
        transport: &mut T,
        clock: &mut C,
        buf: &mut [u8],
    ) -> Result<Found, Error> {
        let mut found = Found::EMPTY;
        drive(&mut Polled(transport, clock), self, buf, &mut found)?;
        Ok(found)
    }
}

/// Finds a gateway: [`Resolver::run`] with a new resolver.
pub fn discover<T: Transport, C: Clock>(
    transport: &mut T,
    clock: &mut C,
    opts: &Options<'_>,
    buf: &mut [u8],
) -> Result<Found, Error> {
    let mut r = Resolver::new(clock.now_ms(), opts)?;
    r.run(transport, clock, buf)
}

/// The I/O one discovery loop needs; the Rust face and the C face each implement it.
pub(crate) trait Io {
    fn now(&mut self) -> u32;
    fn send(&mut self, datagram: &[u8]) -> Result<(), Error>;
    /// One datagram into `buf` (its length), or 0 when none came within `wait_ms`.
    fn recv(&mut self, buf: &mut [u8], wait_ms: u32) -> Result<usize, Error>;
}

/// The one loop: query when due, wait for answers until the next event, stop at a
/// gateway (written into `out`) or at the timeout.
pub(crate) fn drive<I: Io>(
    io: &mut I,
    r: &mut Resolver<'_>,
    buf: &mut [u8],
    out: &mut Found,
) -> Result<(), Error> {
    loop {
        let now = io.now();
        if let Some(n) = r.poll_transmit(now, buf)? {
            io.send(buf.get(..n).ok_or(Error::BufferOverflow)?)?;
        }
        if r.expired(now) {
            return Err(r.failure());
        }
        let wait = r.poll_timeout().wrapping_sub(now).max(1);
        let n = io.recv(buf, wait)?;
        if let Some(packet) = buf.get(..n).filter(|p| !p.is_empty()) {
            if let Ok(true) = r.handle_into(io.now(), packet, out) {
                return Ok(());
            }
        }
    }
}

/// A [`Transport`] polled in turns of the [`Clock`]'s `idle`.
struct Polled<'a, T, C>(&'a mut T, &'a mut C);

impl<T: Transport, C: Clock> Io for Polled<'_, T, C> {
    fn now(&mut self) -> u32 {
        self.1.now_ms()
    }
    fn send(&mut self, datagram: &[u8]) -> Result<(), Error> {
        self.0.send(datagram)
    }
    fn recv(&mut self, buf: &mut [u8], _wait_ms: u32) -> Result<usize, Error> {
        match self.0.try_recv(buf)? {
            Some(n) => Ok(n),
            None => {
                self.1.idle();
                Ok(0)
            }
        }
    }
}
