//! `usmp announce`: publishes a gateway on the local network by DNS-SD over mDNS, so that
//! devices built with discovery (`usmp_discover`) find it with nothing but their PSK.
//! For operators running the Python gateway, next to it:
//!
//! ```text
//! python -m usmp ... --port 9000 &
//! usmp announce --port 9000
//! ```
//!
//! A small mDNS responder on the library's own records (`usmp::discovery::announce`):
//! it listens on 224.0.0.251:5353 (sharing the port with other responders), announces
//! the instance twice at start (RFC 6762 §8.3), answers queries for the service type, the
//! instance and its host name — by unicast to one-shot queriers such as devices, by
//! multicast otherwise — and sends a goodbye when `--duration` ends. It does not probe
//! for name conflicts: pick a `--name` unique on the network.
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use usmp::discovery::announce::Announcement;
use usmp::discovery::dns::{Message, CLASS_TOP_BIT};
use usmp::discovery::{Service, MDNS_GROUP, MDNS_PORT};
use usmp::Version;

use crate::out::{json_str, CliError, Out};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The port the gateway listens on.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// Announce a UDP gateway (`_usmp._udp`) instead of a TCP one (`_usmp._tcp`).
    #[arg(long)]
    udp: bool,
    /// Instance name (at most 63 bytes) [default: "usmp on <hostname>"].
    #[arg(long)]
    name: Option<String>,
    /// The gateway's address to announce [default: the address of this host on the
    /// route towards each querier].
    #[arg(long)]
    address: Option<Ipv4Addr>,
    /// IPv4 address of the interface to listen and announce on [default: the one the
    /// routing table picks for 224.0.0.251].
    #[arg(long)]
    interface: Option<Ipv4Addr>,
    /// Wire version to put in the TXT record (`v=`).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    wire: u8,
    /// Stop after this many seconds (with a goodbye) [default: run until killed].
    #[arg(long)]
    duration: Option<u64>,
    /// Also answer queries from public IPv4 addresses (by default only private, link-local,
    /// shared (100.64/10) and loopback sources get an answer: an mDNS responder should not
    /// reflect traffic off the local network).
    #[arg(long)]
    any_source: bool,
}

/// A source address that may be on the local network (RFC 1918, link-local, CGNAT,
/// loopback; 0.0.0.0 is what a host without a source address on the route sends from).
fn local_source(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_link_local()
        || ip.is_loopback()
        || ip.is_unspecified()
        || (a == 100 && (64..128).contains(&b))
}

/// This host's name, for the default instance name and the host record.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "host".to_owned())
}

/// A host label of letters, digits and hyphens: `<hostname>-usmp`.
fn host_label(hostname: &str) -> String {
    let mut l: String = hostname
        .split('.')
        .next()
        .unwrap_or("host")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(50)
        .collect();
    l.push_str("-usmp");
    l
}

/// The mDNS socket: port 5353 shared (SO_REUSEADDR/SO_REUSEPORT), the group joined.
fn mdns_socket(interface: Option<Ipv4Addr>) -> Result<UdpSocket, CliError> {
    let io = |what: &str, e: std::io::Error| CliError::Io(format!("mDNS socket: {what}: {e}"));
    let s =
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(|e| io("socket", e))?;
    s.set_reuse_address(true)
        .map_err(|e| io("SO_REUSEADDR", e))?;
    #[cfg(unix)]
    s.set_reuse_port(true).map_err(|e| io("SO_REUSEPORT", e))?;
    let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, MDNS_PORT);
    s.bind(&any.into())
        .map_err(|e| io("bind 0.0.0.0:5353", e))?;
    let iface = interface.unwrap_or(Ipv4Addr::UNSPECIFIED);
    s.join_multicast_v4(&Ipv4Addr::from(MDNS_GROUP), &iface)
        .map_err(|e| io("join 224.0.0.251", e))?;
    if let Some(i) = interface {
        s.set_multicast_if_v4(&i)
            .map_err(|e| io("IP_MULTICAST_IF", e))?;
    }
    s.set_multicast_ttl_v4(255).map_err(|e| io("TTL", e))?;
    s.set_multicast_loop_v4(true)
        .map_err(|e| io("loopback", e))?;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| io("timeout", e))?;
    Ok(s.into())
}

/// The address of this host on the route towards `peer` (no packet is sent).
fn local_towards(peer: Ipv4Addr) -> Option<Ipv4Addr> {
    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    s.connect((peer, MDNS_PORT)).ok()?;
    match s.local_addr().ok()? {
        SocketAddr::V4(a) if !a.ip().is_unspecified() => Some(*a.ip()),
        _ => None,
    }
}

pub fn run(out: &Out, a: Args) -> Result<(), CliError> {
    let host = hostname();
    let instance = a.name.clone().unwrap_or_else(|| format!("usmp on {host}"));
    if instance.is_empty() || instance.len() > 63 {
        return Err(CliError::Usage(format!(
            "--name must be 1 to 63 bytes, not {}",
            instance.len()
        )));
    }
    let label = host_label(&host);
    let service = if a.udp { Service::Udp } else { Service::Tcp };
    let version = Version::from_config(a.wire);
    let group = SocketAddrV4::new(Ipv4Addr::from(MDNS_GROUP), MDNS_PORT);
    // Unsolicited announcements carry the address this host uses on the mDNS route (none
    // without one: then only queries are answered, each with the address towards its
    // sender).
    let default_addr = a
        .address
        .or(a.interface)
        .or_else(|| local_towards(*group.ip()));
    if default_addr.is_none() {
        out.log(
            1,
            "no source address on the route to 224.0.0.251: answering queries only",
        );
    }
    let announcement = |addr: Ipv4Addr| Announcement {
        instance: instance.as_bytes(),
        service,
        host: label.as_bytes(),
        addr: addr.octets(),
        port: a.port,
        version,
    };
    let sock = mdns_socket(a.interface)?;
    let kind = if a.udp { "udp" } else { "tcp" };
    if out.json {
        println!(
            "{{\"event\":\"announcing\",\"instance\":{},\"service\":\"_usmp._{kind}\",\"port\":{},\"address\":{},\"wire\":{}}}",
            json_str(&instance),
            a.port,
            json_str(&a.address.map_or("per querier".into(), |x| x.to_string())),
            a.wire
        );
    } else {
        println!(
            "announcing \"{instance}\" as _usmp._{kind}.local, port {}, address {}, wire v{} (host {label}.local)",
            a.port,
            a.address.map_or("per querier".into(), |x| x.to_string()),
            a.wire
        );
    }

    let mut buf = [0u8; 9000];
    let mut reply = [0u8; 1500];
    let started = Instant::now();
    let stop = a.duration.map(Duration::from_secs);
    let mut announced = 0u32;
    loop {
        let elapsed = started.elapsed();
        if stop.is_some_and(|d| elapsed >= d) {
            if let Some(addr) = default_addr {
                let n = announcement(addr)
                    .announce(&mut reply, true)
                    .map_err(|e| CliError::Failed(format!("goodbye: {e}")))?;
                let _ = sock.send_to(&reply[..n], group);
                out.log(1, "goodbye sent");
            }
            return Ok(());
        }
        // Two announcements, one second apart (RFC 6762 §8.3).
        if let Some(addr) = default_addr
            .filter(|_| announced < 2 && elapsed >= Duration::from_secs(u64::from(announced)))
        {
            let n = announcement(addr)
                .announce(&mut reply, false)
                .map_err(|e| CliError::Failed(format!("announcement: {e}")))?;
            if let Err(e) = sock.send_to(&reply[..n], group) {
                out.log(1, format_args!("announcement not sent: {e}"));
            }
            announced += 1;
        }
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CliError::Io(format!("mDNS socket: {e}"))),
        };
        let SocketAddr::V4(from) = from else { continue };
        if !a.any_source && !local_source(*from.ip()) {
            out.log(
                2,
                format_args!("not answering {from}: not a local address (--any-source)"),
            );
            continue;
        }
        let query = &buf[..n];
        let legacy = from.port() != MDNS_PORT;
        let Some(addr) = a
            .address
            .or_else(|| local_towards(*from.ip()))
            .or(default_addr)
        else {
            continue;
        };
        let answer = match announcement(addr).answer(query, legacy, &mut reply) {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(e) => {
                out.log(2, format_args!("ignored a datagram from {from}: {e}"));
                continue;
            }
        };
        // QU questions (top bit of the class) ask for a unicast answer as well.
        let unicast = legacy
            || Message::parse(query)
                .map(|m| {
                    m.questions()
                        .flatten()
                        .any(|q| q.qclass & CLASS_TOP_BIT != 0)
                })
                .unwrap_or(false);
        let to = if unicast { from } else { group };
        match sock.send_to(&reply[..answer], to) {
            Ok(_) => out.log(
                1,
                format_args!("answered {from} ({} bytes, to {to})", answer),
            ),
            Err(e) => out.log(1, format_args!("answer to {to} not sent: {e}")),
        }
    }
}
