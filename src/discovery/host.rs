//! The mDNS socket for `std` hosts (features `discovery` + `std`): a UDP socket on an
//! ephemeral port that sends to 224.0.0.251:5353 and receives the unicast answers.
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};

use super::{MDNS_GROUP, MDNS_PORT};
use crate::{Error, Transport};

/// A [`Transport`] for [`super::discover`]: queries go to the mDNS group, answers come
/// back from port 5353 (datagrams from other ports are dropped, and so are datagrams that
/// fill the whole receive buffer: they may have been cut).
#[derive(Debug)]
pub struct MdnsSocket(UdpSocket);

impl MdnsSocket {
    /// A new socket on an ephemeral port, multicast TTL 255 (RFC 6762 §11), loopback on
    /// (a responder on this host hears the query), non-blocking. The kernel's route to
    /// 224.0.0.251 picks the interface; for another one, configure a socket yourself and
    /// use [`MdnsSocket::from_socket`].
    pub fn open() -> std::io::Result<Self> {
        Self::from_socket(UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?)
    }

    /// Wraps a bound IPv4 socket (and sets the options of [`MdnsSocket::open`]).
    pub fn from_socket(sock: UdpSocket) -> std::io::Result<Self> {
        sock.set_multicast_ttl_v4(255)?;
        sock.set_multicast_loop_v4(true)?;
        sock.set_nonblocking(true)?;
        Ok(Self(sock))
    }

    /// The socket.
    pub fn socket(&self) -> &UdpSocket {
        &self.0
    }
}

impl Transport for MdnsSocket {
    fn is_datagram(&self) -> bool {
        true
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let group = SocketAddrV4::new(Ipv4Addr::from(MDNS_GROUP), MDNS_PORT);
        match self.0.send_to(bytes, group) {
            Ok(n) if n == bytes.len() => Ok(()),
            _ => Err(Error::TransportFailed),
        }
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        // A bounded number of stray datagrams per call, so that a flood cannot hold the
        // caller here.
        for _ in 0..16 {
            match self.0.recv_from(buf) {
                Ok((n, from)) if from.port() == MDNS_PORT && n < buf.len() => return Ok(Some(n)),
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    return Ok(None)
                }
                // An ICMP error for an earlier query: nobody listens there, nothing lost.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Ok(None),
                Err(_) => return Err(Error::TransportFailed),
            }
        }
        Ok(None)
    }
}
