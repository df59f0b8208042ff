//! The C face of discovery (features `discovery` + `capi`): `usmp_discover_over`, the
//! discovery loop over any datagram `usmp_transport_t`, and the declarations of the C glue
//! in `component/usmp_discovery_socket.c` (`usmp_discover`, the mDNS socket transport).
//! Header: `include/usmp_discovery.h`, generated from this file alone by cbindgen
//! (`cbindgen --config cbindgen-discovery.toml --output include/usmp_discovery.h
//! src/discovery/capi.rs`).
#![allow(non_camel_case_types)]

use core::ffi::{c_char, c_int};

use super::dns::DnsError;
use super::{drive, Found, Io, Options, Resolver, Services, Stats, DATAGRAM_LEN};
use crate::ffi::usmp_transport_t;
use crate::{Error, Version};

/// `usmp_discover_opts_t.services`: gateways announced as `_usmp._tcp`.
pub const USMP_DISCOVER_TCP: u8 = 1;
/// `usmp_discover_opts_t.services`: gateways announced as `_usmp._udp`.
pub const USMP_DISCOVER_UDP: u8 = 2;
/// Size of `usmp_gateway_info_t.instance`: a 63-byte instance name and its NUL.
pub const USMP_DISCOVER_INSTANCE_LEN: usize = 64;
/// Default `timeout_ms` (for 0).
pub const USMP_DISCOVER_TIMEOUT_MS: u32 = 3000;
/// Bytes of stack `usmp_discover_over` uses for datagrams (queries and answers); an
/// answer larger than this is dropped by the transport.
pub const USMP_DISCOVER_DATAGRAM_LEN: usize = 512;

const _: () = assert!(USMP_DISCOVER_DATAGRAM_LEN == DATAGRAM_LEN);

/// What to look for. Zero-initialised = the first gateway, TCP or UDP, within 3 s.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct usmp_discover_opts_t {
    /// Give up after this long (ms); 0 = `USMP_DISCOVER_TIMEOUT_MS`.
    pub timeout_ms: u32,
    /// `USMP_DISCOVER_TCP`, `USMP_DISCOVER_UDP` or both (0 = both).
    pub services: u8,
    /// 0 = any; `USMP_PROTOCOL_V1` / `USMP_PROTOCOL_V2`: skip gateways whose TXT record
    /// announces another wire version. (The session's version is still the one set in
    /// `usmp_t`: an unauthenticated answer never chooses it.)
    pub protocol_version: u8,
    /// Reserved, keep 0.
    pub reserved: [u8; 2],
    /// NUL-terminated instance name to look for (at most 63 bytes, ASCII
    /// case-insensitive), or NULL for the first gateway that answers.
    pub instance: *const c_char,
    /// `usmp_discover` only: IPv4 address literal of the interface to send the queries
    /// on, or NULL to let the routing table choose.
    pub interface_addr: *const c_char,
}

/// A gateway found.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct usmp_gateway_info_t {
    /// Its instance name, NUL-terminated.
    pub instance: [c_char; USMP_DISCOVER_INSTANCE_LEN],
    /// Its IPv4 address as text ("192.168.1.10"), for `usmp_transport_tcp_init` /
    /// `usmp_transport_udp_init`.
    pub host: [c_char; 16],
    /// The same address as 4 bytes.
    pub addr: [u8; 4],
    /// Its port.
    pub port: u16,
    /// `USMP_DISCOVER_TCP` or `USMP_DISCOVER_UDP`: the transport to dial.
    pub service: u8,
    /// The wire version its TXT record announces (1 or 2), 0 when it names none.
    pub protocol_version: u8,
}

/// Why an answer was dropped as malformed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum usmp_dns_error_t {
    /// No malformed answer.
    USMP_DNS_OK = 0,
    /// A header, name, record or rdata runs past the end of the datagram.
    USMP_DNS_TRUNCATED = 1,
    /// A label of a reserved type (0x40, 0x80).
    USMP_DNS_BAD_LABEL = 2,
    /// A name longer than 255 bytes once expanded.
    USMP_DNS_NAME_TOO_LONG = 3,
    /// A compression pointer that loops, points forward or into the header, or one too many.
    USMP_DNS_BAD_POINTER = 4,
    /// Rdata that does not fit its type (an A record not 4 bytes, a short SRV, ...).
    USMP_DNS_BAD_RECORD = 5,
}

impl From<Option<DnsError>> for usmp_dns_error_t {
    fn from(e: Option<DnsError>) -> Self {
        match e {
            None => Self::USMP_DNS_OK,
            Some(DnsError::Truncated) => Self::USMP_DNS_TRUNCATED,
            Some(DnsError::BadLabel) => Self::USMP_DNS_BAD_LABEL,
            Some(DnsError::NameTooLong) => Self::USMP_DNS_NAME_TOO_LONG,
            Some(DnsError::BadPointer) => Self::USMP_DNS_BAD_POINTER,
            Some(DnsError::BadRecord) => Self::USMP_DNS_BAD_RECORD,
        }
    }
}

/// What a discovery run saw (filled on success and failure alike).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct usmp_discover_stats_t {
    /// Queries sent.
    pub queries: u32,
    /// Well-formed answers received (matching or not).
    pub answers: u32,
    /// Malformed datagrams received and dropped.
    pub malformed: u32,
    /// Why the last malformed one was dropped.
    pub last_error: usmp_dns_error_t,
}

/// The opaque context of the socket transports (`usmp_transport.h`).
#[repr(C)]
pub struct usmp_socket_ctx_t {
    _opaque: [u8; 0],
}

extern "C" {
    /// Finds a gateway on the local network by DNS-SD over mDNS: opens the mDNS socket
    /// transport (`usmp_transport_mdns_init_static`, on `opts->interface_addr`), runs
    /// `usmp_discover_over` and closes the socket. Blocks at most `opts->timeout_ms`.
    /// `opts` and `stats` may be NULL. Returns what `usmp_discover_over` returns,
    /// `USMP_ERR_INVALID_ARG` when `interface_addr` is not an IPv4 literal, or
    /// `USMP_ERR_TRANSPORT_FAILED` when the socket cannot be opened.
    pub fn usmp_discover(
        opts: *const usmp_discover_opts_t,
        out: *mut usmp_gateway_info_t,
        stats: *mut usmp_discover_stats_t,
    ) -> c_int;

    /// The mDNS socket transport (no heap: `*ctx` must outlive it): an IPv4 UDP socket on
    /// an ephemeral port; `send` sends one datagram to 224.0.0.251:5353 (multicast TTL
    /// 255, loopback on, on the interface `interface_addr` when not NULL); `recv_timeout`
    /// returns one datagram from port 5353 (others, and datagrams cut by a short buffer,
    /// are dropped) or 0 after the wait. No group membership: answers to these one-shot
    /// queries come back by unicast (RFC 6762 §6.7). `flags` = `USMP_TRANSPORT_DATAGRAM`;
    /// `destroy` closes the socket. Returns 0, or -1 with *t zeroed.
    pub fn usmp_transport_mdns_init_static(
        t: *mut usmp_transport_t,
        ctx: *mut usmp_socket_ctx_t,
        interface_addr: *const c_char,
    ) -> c_int;
}

/// Reads a NUL-terminated string of at most `max` bytes: `None` when longer (or empty).
///
/// # Safety
/// `p` non-null and NUL-terminated (or at least `max + 1` readable bytes).
unsafe fn c_str<'a>(p: *const c_char, max: usize) -> Option<&'a [u8]> {
    let mut n = 0;
    // SAFETY: reads stop at the NUL, which the contract puts within max + 1 bytes.
    while unsafe { *p.add(n) } != 0 {
        n += 1;
        if n > max {
            return None;
        }
    }
    // SAFETY: n bytes before the NUL were just read.
    (n > 0).then(|| unsafe { core::slice::from_raw_parts(p.cast::<u8>(), n) })
}

/// Writes `a` as dotted-decimal text with a NUL.
fn dotted(a: [u8; 4], out: &mut [c_char; 16]) {
    let mut at = 0;
    let mut put = |c: u8| {
        if let Some(slot) = out.get_mut(at) {
            *slot = c as c_char;
            at += 1;
        }
    };
    for (i, b) in a.into_iter().enumerate() {
        if i > 0 {
            put(b'.');
        }
        if b >= 100 {
            put(b'0' + b / 100);
        }
        if b >= 10 {
            put(b'0' + b / 10 % 10);
        }
        put(b'0' + b % 10);
    }
    put(0);
}

/// Fills `info` from `f`, field by field (no copy of the whole on the stack).
fn fill_info(info: &mut usmp_gateway_info_t, f: &Found) {
    info.instance = [0; USMP_DISCOVER_INSTANCE_LEN];
    for (dst, &src) in info.instance.iter_mut().zip(f.instance()) {
        *dst = src as c_char;
    }
    dotted(f.addr, &mut info.host);
    info.addr = f.addr;
    info.port = f.port;
    info.service = f.service as u8;
    info.protocol_version = f.version.map_or(0, Version::byte);
}

/// The C transport and the port clock as the discovery loop's I/O.
struct CIo(*mut usmp_transport_t);

extern "C" {
    fn usmp_port_millis() -> u32;
}

impl Io for CIo {
    fn now(&mut self) -> u32 {
        // SAFETY: port hook with no arguments.
        unsafe { usmp_port_millis() }
    }

    fn send(&mut self, datagram: &[u8]) -> Result<(), Error> {
        // SAFETY: the transport was checked non-null with a `send` by usmp_discover_over.
        let rc = unsafe {
            match (*self.0).send {
                Some(send) => send(self.0, datagram.as_ptr(), datagram.len()),
                None => -1,
            }
        };
        if rc < 0 {
            Err(Error::TransportFailed)
        } else {
            Ok(())
        }
    }

    fn recv(&mut self, buf: &mut [u8], wait_ms: u32) -> Result<usize, Error> {
        // SAFETY: as in send; `buf` is writable for its length.
        let n = unsafe {
            match (*self.0).recv_timeout {
                Some(recv) => recv(self.0, buf.as_mut_ptr(), buf.len(), wait_ms),
                None => -1,
            }
        };
        match usize::try_from(n) {
            Ok(n) if n <= buf.len() => Ok(n),
            _ => Err(Error::TransportFailed),
        }
    }
}

/// Finds a gateway by DNS-SD over mDNS, through `t`: any datagram transport whose `send`
/// reaches the mDNS group and whose `recv_timeout` returns the answers (e.g.
/// `usmp_transport_mdns_init_static`). Queries for `_usmp._tcp.local` / `_usmp._udp.local`
/// are sent at once and again after 1, 2, 4 s ...; an answer naming an instance without
/// its SRV or address record gets a follow-up question. Blocks at most
/// `opts->timeout_ms` (plus one transport call), using `usmp_port_millis`; the stack
/// holds one `USMP_DISCOVER_DATAGRAM_LEN` buffer.
///
/// Returns `USMP_OK` with `*out` filled; `USMP_ERR_TIMEOUT` when no matching gateway
/// answered in time; `USMP_ERR_BAD_FRAME` when none did but malformed answers came (they
/// are dropped, the wait goes on; `stats->last_error` says why);
/// `USMP_ERR_TRANSPORT_FAILED` when the transport failed; `USMP_ERR_INVALID_ARG` for a
/// NULL `t`/`out`, a transport without `send`/`recv_timeout`, unknown `services` bits,
/// a `protocol_version` other than 0/1/2, or an empty or over-long `instance`. `opts` and
/// `stats` may be NULL.
///
/// # Safety
/// `t` null or a valid transport; `opts`, `out`, `stats` null or valid; the strings in
/// `opts` null or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn usmp_discover_over(
    t: *mut usmp_transport_t,
    opts: *const usmp_discover_opts_t,
    out: *mut usmp_gateway_info_t,
    stats: *mut usmp_discover_stats_t,
) -> c_int {
    let mut seen = Stats::default();
    // SAFETY: the pointers are null or valid per the contract.
    let r = unsafe { discover_c(t, opts, out, &mut seen) };
    if !stats.is_null() {
        let s = usmp_discover_stats_t {
            queries: seen.queries,
            answers: seen.answers,
            malformed: seen.malformed,
            last_error: seen.last_error.into(),
        };
        // SAFETY: non-null and writable per the contract.
        unsafe { stats.write(s) };
    }
    match r {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

/// # Safety
/// As `usmp_discover_over`.
unsafe fn discover_c(
    t: *mut usmp_transport_t,
    opts: *const usmp_discover_opts_t,
    out: *mut usmp_gateway_info_t,
    seen: &mut Stats,
) -> Result<(), Error> {
    // SAFETY: null or valid per the contract.
    let (Some(tr), false) = (unsafe { t.as_ref() }, out.is_null()) else {
        return Err(Error::InvalidArg);
    };
    if tr.send.is_none() || tr.recv_timeout.is_none() {
        return Err(Error::InvalidArg);
    }
    let zero = usmp_discover_opts_t {
        timeout_ms: 0,
        services: 0,
        protocol_version: 0,
        reserved: [0; 2],
        instance: core::ptr::null(),
        interface_addr: core::ptr::null(),
    };
    // SAFETY: null or valid per the contract.
    let o = unsafe { opts.as_ref() }.unwrap_or(&zero);
    let services = match o.services {
        0 => Services::ALL,
        bits => Services::from_bits(bits).ok_or(Error::InvalidArg)?,
    };
    let version = match o.protocol_version {
        0 => None,
        v => Some(Version::from_config(v).ok_or(Error::InvalidArg)?),
    };
    let instance = if o.instance.is_null() {
        None
    } else {
        // SAFETY: NUL-terminated per the contract.
        Some(unsafe { c_str(o.instance, super::MAX_INSTANCE) }.ok_or(Error::InvalidArg)?)
    };
    let options = Options {
        timeout_ms: o.timeout_ms,
        instance,
        services,
        version,
    };
    let mut io = CIo(t);
    let mut resolver = Resolver::new(io.now(), &options)?;
    let mut buf = [0u8; DATAGRAM_LEN];
    let mut found = Found::EMPTY;
    let r = drive(&mut io, &mut resolver, &mut buf, &mut found);
    *seen = resolver.stats();
    r?;
    // SAFETY: non-null (checked), writable and aligned per the contract; every field of
    // the C struct is plain data, so a reference to it is sound.
    fill_info(unsafe { &mut *out }, &found);
    Ok(())
}
