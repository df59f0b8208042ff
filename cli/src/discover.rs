//! `usmp discover`: lists the gateways announced on the local network (`_usmp._tcp`,
//! `_usmp._udp`), asking the way a device does — one-shot mDNS queries from an ephemeral
//! port, the library's own resolver and parser — so what it lists is what a device finds.
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, UdpSocket};
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};
use usmp::discovery::host::MdnsSocket;
use usmp::discovery::{gateways_in, Options, Resolver, Service, Services};
use usmp::{Transport, Version};

use crate::out::{json_str, CliError, Out};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How long to listen (ms).
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(100..=600_000))]
    timeout: u32,
    /// Only the instance of this name.
    #[arg(long)]
    name: Option<String>,
    /// Only TCP gateways.
    #[arg(long, conflicts_with = "udp")]
    tcp: bool,
    /// Only UDP gateways.
    #[arg(long)]
    udp: bool,
    /// IPv4 address of the interface to ask on [default: the routing table's choice].
    #[arg(long)]
    interface: Option<Ipv4Addr>,
}

fn socket(interface: Option<Ipv4Addr>) -> std::io::Result<MdnsSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.bind(&std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0).into())?;
    if let Some(i) = interface {
        s.set_multicast_if_v4(&i)?;
    }
    MdnsSocket::from_socket(UdpSocket::from(s))
}

pub fn run(out: &Out, a: Args) -> Result<(), CliError> {
    if a.name
        .as_ref()
        .is_some_and(|n| n.is_empty() || n.len() > 63)
    {
        return Err(CliError::Usage("--name must be 1 to 63 bytes".into()));
    }
    let services = match (a.tcp, a.udp) {
        (true, _) => Services::TCP,
        (_, true) => Services::UDP,
        _ => Services::ALL,
    };
    let opts = Options {
        timeout_ms: a.timeout,
        instance: a.name.as_deref().map(str::as_bytes),
        services,
        version: None,
    };
    let mut sock = socket(a.interface).map_err(|e| CliError::Io(format!("mDNS socket: {e}")))?;
    let t0 = Instant::now();
    let now = || t0.elapsed().as_millis() as u32;
    // The resolver schedules the queries; every complete answer is listed.
    let mut resolver = Resolver::new(now(), &opts).map_err(|e| CliError::Usage(e.to_string()))?;
    let mut buf = vec![0u8; 9000];
    let mut seen = BTreeSet::new();
    let mut malformed = 0u32;
    while !resolver.expired(now()) {
        if let Some(n) = resolver
            .poll_transmit(now(), &mut buf)
            .map_err(|e| CliError::Failed(e.to_string()))?
        {
            sock.send(&buf[..n])
                .map_err(|e| CliError::Io(format!("query not sent: {e}")))?;
        }
        let Some(n) = sock
            .try_recv(&mut buf)
            .map_err(|e| CliError::Io(e.to_string()))?
        else {
            std::thread::sleep(std::time::Duration::from_millis(5));
            continue;
        };
        let found = gateways_in(&buf[..n], &opts, |f| {
            let key = (f.instance().to_vec(), f.service as u8, f.addr, f.port);
            if seen.insert(key) {
                print_found(out, &f);
            }
        });
        if let Err(e) = found {
            malformed += 1;
            out.log(1, format_args!("dropped a malformed answer: {e}"));
        }
    }
    out.log(
        1,
        format_args!(
            "{} queries, {malformed} malformed answers",
            resolver.stats().queries
        ),
    );
    if seen.is_empty() {
        return Err(CliError::Failed(format!(
            "no usmp gateway answered within {} ms",
            a.timeout
        )));
    }
    Ok(())
}

fn print_found(out: &Out, f: &usmp::discovery::Found) {
    let name = String::from_utf8_lossy(f.instance());
    let kind = match f.service {
        Service::Tcp => "tcp",
        Service::Udp => "udp",
    };
    let addr = Ipv4Addr::from(f.addr);
    let wire = f.version.map_or(0, Version::byte);
    if out.json {
        println!(
            "{{\"instance\":{},\"service\":\"{kind}\",\"address\":\"{addr}\",\"port\":{},\"wire\":{wire}}}",
            json_str(&name),
            f.port
        );
    } else {
        let w = if wire == 0 {
            "?".to_string()
        } else {
            wire.to_string()
        };
        println!("{name}\t{kind}\t{addr}:{}\twire v{w}", f.port);
    }
}
