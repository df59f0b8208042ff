//! `usmp bridge`: joins a serial line to the gateway. COBS framing (the default): each
//! datagram from the device goes to the gateway's UDP port as one UDP datagram, and each
//! UDP datagram from the gateway goes down the line COBS-framed. `--raw`: the bytes of
//! the line and of a TCP connection to the gateway, as they are. It moves bytes only and
//! holds no keys; it looks at the clear frame header for its counters and nothing else.
//!
//! It keeps going through whatever the ends do: a device that resets in mid-frame (COBS:
//! the decoder drops the stub at the next delimiter; raw: a frame that stops for
//! `--frame-gap-ms` is abandoned with its TCP connection), a gateway that restarts (UDP:
//! its "port unreachable" errors are counted, and the device's next handshake reaches the
//! new process; raw: the TCP connection is dialled again when the next frame starts), a
//! serial port that goes away (opened again every half second).
use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use usmp::cobs::{self, Decoder, Event};
use usmp::frame::{self, HEADER_LEN};

use crate::out::{json_str, CliError, Out};
use crate::serial::{parse_spec, Serial};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The serial port: DEV[:BAUD], e.g. /dev/ttyUSB0:115200 (115200 when left out).
    #[arg(long, value_name = "DEV[:BAUD]", required_unless_present = "pty")]
    serial: Option<String>,
    /// Make a pseudo-terminal and print its path (stdout) instead of opening a port: a
    /// device program on this host opens it (`usmp connect --serial PATH`, a POSIX build).
    #[arg(long, conflicts_with = "serial")]
    pty: bool,
    /// The gateway: HOST:PORT, its UDP port (with --raw, its TCP port).
    #[arg(long, value_name = "HOST:PORT")]
    gateway: String,
    /// Raw framing: frames back to back on the line, carried over TCP. For clean lines
    /// only (the device built with raw framing); one bad byte ends the session.
    #[arg(long)]
    raw: bool,
    /// Print the counters every SECS seconds (0: only at the end).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    stats_interval: u64,
    /// Raw framing: a frame that stops arriving for this long is abandoned (the device
    /// reset), and the TCP connection with it.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    frame_gap_ms: u64,
    /// TEST AID: damage the serial side on purpose. Each byte, in either direction, is
    /// with this probability changed, dropped, or followed by an extra byte.
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    noise: f64,
    /// Seed of --noise: the same seed damages the same bytes.
    #[arg(long, value_name = "N", default_value_t = 1)]
    noise_seed: u64,
    /// Stop after this many seconds (0: run until SIGINT/SIGTERM).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    duration: u64,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: i32) {
    STOP.store(true, Ordering::SeqCst);
}

fn catch_signals() -> Result<(), CliError> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { sigaction(s, &act) }.map_err(|e| CliError::Io(format!("sigaction: {e}")))?;
    }
    Ok(())
}

/// What went through, both ways. "up" is device to gateway, "down" the other way.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    serial_bytes_in: u64,
    serial_bytes_out: u64,
    frames_up: u64,
    frames_down: u64,
    /// COBS: stretches between delimiters that were no datagram; raw: abandoned frames
    /// and bytes skipped to find a frame start.
    dropped: u64,
    /// Datagrams the gateway did not take (its port unreachable: down or restarting), or
    /// raw frames that found no TCP connection.
    gateway_errors: u64,
    /// UDP sockets opened / TCP connections made to the gateway.
    gateway_connects: u64,
    /// Times the serial port had to be opened again.
    serial_reopens: u64,
    /// --noise: frames on the line (each direction), and how many it damaged.
    line_frames: u64,
    noise_frames: u64,
    noise_bytes: u64,
}

impl Counters {
    fn fields(&self) -> [(&'static str, u64); 11] {
        [
            ("frames_up", self.frames_up),
            ("frames_down", self.frames_down),
            ("dropped", self.dropped),
            ("gateway_errors", self.gateway_errors),
            ("gateway_connects", self.gateway_connects),
            ("serial_bytes_in", self.serial_bytes_in),
            ("serial_bytes_out", self.serial_bytes_out),
            ("serial_reopens", self.serial_reopens),
            ("line_frames", self.line_frames),
            ("noise_frames", self.noise_frames),
            ("noise_bytes", self.noise_bytes),
        ]
    }

    fn report(&self, out: &Out, event: &str, secs: f64) {
        if out.json {
            let body: Vec<String> = self
                .fields()
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            println!(
                "{{\"event\":{},\"seconds\":{secs:.1},{}}}",
                json_str(event),
                body.join(",")
            );
        } else {
            let body: Vec<String> = self
                .fields()
                .iter()
                .filter(|(k, v)| *v > 0 || !k.starts_with("noise") && *k != "line_frames")
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            eprintln!(
                "usmp bridge: {event} after {secs:.1} s: {}",
                body.join(", ")
            );
        }
    }
}

/// A small seeded generator for --noise (xorshift64*): the same seed, the same damage.
struct Noise {
    rate: f64,
    state: u64,
}

/// What --noise did to one byte.
enum Hit {
    None,
    Changed(u8),
    Dropped,
    Extra(u8),
}

impl Noise {
    fn new(rate: f64, seed: u64) -> Self {
        Self {
            rate,
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn hit(&mut self, b: u8) -> Hit {
        if self.rate <= 0.0 {
            return Hit::None;
        }
        let r = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        if r >= self.rate {
            return Hit::None;
        }
        let v = self.next();
        match v % 3 {
            0 => Hit::Changed(b ^ (1u8 << ((v >> 8) % 8))),
            1 => Hit::Dropped,
            _ => Hit::Extra((v >> 16) as u8),
        }
    }

    /// Passes `input` through the noise into `out`; true when it damaged anything.
    fn apply(&mut self, input: &[u8], out: &mut Vec<u8>, c: &mut Counters) -> bool {
        let mut hit = false;
        for &b in input {
            let h = self.hit(b);
            match h {
                Hit::None => out.push(b),
                Hit::Changed(x) => out.push(x),
                Hit::Dropped => {}
                Hit::Extra(x) => out.extend([b, x]),
            }
            if !matches!(h, Hit::None) {
                hit = true;
                c.noise_bytes += 1;
            }
        }
        hit
    }
}

/// The gateway side.
enum Gateway {
    Udp(Option<UdpSocket>),
    Tcp(Option<TcpStream>),
}

/// Raw framing: where the device's byte stream is (for counters, resynchronisation and
/// the frame gap).
#[derive(Default)]
struct RawUp {
    header: Vec<u8>,
    /// Body bytes still to come of the frame being forwarded (None: between frames).
    left: Option<usize>,
    last: Option<Instant>,
}

/// Raw framing, the gateway's stream: only counted.
#[derive(Default)]
struct RawDown {
    have: Vec<u8>,
    need: usize,
}

struct Bridge<'o> {
    out: &'o Out,
    serial: Option<Serial>,
    spec: Option<(String, u32)>,
    gw_spec: String,
    gw: Gateway,
    down_q: VecDeque<u8>,
    dec: Decoder,
    raw_up: RawUp,
    raw_down: RawDown,
    noise: Noise,
    up_hit: bool,
    c: Counters,
    frame_gap: Duration,
    next_dial: Instant,
    next_open: Instant,
}

fn frame_name(d: &[u8]) -> String {
    if usmp::datagram::is_utack(d) {
        return format!("UTACK({})", d.get(2).copied().unwrap_or(0));
    }
    match d.get(3) {
        Some(&t) if d.len() >= HEADER_LEN => frame::FrameType::from_byte(t, usmp::Version::V2)
            .map(|t| format!("{t:?}"))
            .unwrap_or_else(|| format!("type 0x{t:02x}")),
        _ => "?".into(),
    }
}

/// Whether a datagram from the line is whole: a UTACK of a valid length, or a frame whose
/// length and CRC check out. The gateway acknowledges a frame before it checks the CRC
/// and the tag (usmp 1.2.2), so a damaged frame it was given would be acknowledged and
/// then lost; dropped here, it is retransmitted by the device like any lost datagram.
fn intact(d: &[u8]) -> bool {
    if usmp::datagram::is_utack(d) {
        return matches!(
            d.len(),
            usmp::datagram::UTACK_LEN | usmp::datagram::UTACK_MAC_LEN
        );
    }
    let version = match d.get(2) {
        Some(1) => usmp::Version::V1,
        Some(2) => usmp::Version::V2,
        _ => return false,
    };
    frame::wire_len(d) == Ok(d.len()) && frame::decode(d, version).is_ok()
}

fn resolve(spec: &str) -> Result<SocketAddr, CliError> {
    spec.to_socket_addrs()
        .map_err(|e| CliError::Usage(format!("--gateway {spec}: {e}")))?
        .next()
        .ok_or_else(|| CliError::Usage(format!("--gateway {spec}: no address")))
}

impl Bridge<'_> {
    fn open_serial(&mut self) {
        let Some((dev, baud)) = &self.spec else {
            return;
        };
        if self.serial.is_some() || Instant::now() < self.next_open {
            return;
        }
        self.next_open = Instant::now() + Duration::from_millis(500);
        match Serial::open(dev, *baud) {
            Ok(s) => {
                self.out.log(1, format_args!("serial: {} open", s.name));
                self.serial = Some(s);
                self.dec.reset();
                self.raw_up = RawUp::default();
                self.c.serial_reopens += 1;
            }
            Err(e) => self.out.log(2, format_args!("serial: {dev}: {e}")),
        }
    }

    fn serial_lost(&mut self, e: &io::Error) {
        if self.spec.is_none() {
            return; // our own pty: the device side stays open, nothing is lost
        }
        self.out
            .log(1, format_args!("serial: {e}; opening it again"));
        self.serial = None;
        self.down_q.clear();
    }

    /// Opens the gateway side (a UDP socket, or a TCP connection). After a failure it
    /// waits half a second before the next attempt.
    fn dial(&mut self) -> io::Result<()> {
        if Instant::now() < self.next_dial {
            return Err(io::Error::new(
                ErrorKind::WouldBlock,
                "waiting to dial again",
            ));
        }
        let r = self.try_dial();
        match &r {
            Ok(addr) => {
                self.c.gateway_connects += 1;
                self.out
                    .log(1, format_args!("gateway: connected to {addr}"));
            }
            Err(e) => {
                self.next_dial = Instant::now() + Duration::from_millis(500);
                self.out
                    .log(1, format_args!("gateway: {}: {e}", self.gw_spec));
            }
        }
        r.map(|_| ())
    }

    fn try_dial(&mut self) -> io::Result<SocketAddr> {
        let addr = resolve(&self.gw_spec)
            .map_err(|e| io::Error::new(ErrorKind::NotFound, e.to_string()))?;
        match &mut self.gw {
            Gateway::Udp(slot) => {
                // The library's adapter: an ephemeral port of the address's family, connected,
                // non-blocking.
                *slot = Some(usmp::host::UdpTransport::connect(addr)?.0);
            }
            Gateway::Tcp(slot) => {
                let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
                s.set_nodelay(true)?;
                s.set_nonblocking(true)?;
                *slot = Some(s);
            }
        }
        Ok(addr)
    }

    /// Bytes from the serial line (after --noise), COBS framing.
    fn up_cobs(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (used, ev) = self.dec.feed(rest);
            rest = rest.get(used..).unwrap_or(&[]);
            let Some(ev) = ev else { continue };
            self.c.line_frames += 1;
            if std::mem::take(&mut self.up_hit) {
                self.c.noise_frames += 1;
            }
            match ev {
                Event::Datagram(0) => {}
                Event::Datagram(n) => {
                    let d = self.dec.datagram(n).to_vec();
                    if intact(&d) {
                        self.send_udp(&d);
                    } else {
                        self.c.dropped += 1;
                        self.out.log(
                            2,
                            format_args!("up: dropped a damaged {} B datagram", d.len()),
                        );
                    }
                }
                Event::Dropped(why) => {
                    self.c.dropped += 1;
                    self.out.log(2, format_args!("up: dropped ({why:?})"));
                }
            }
        }
    }

    fn send_udp(&mut self, d: &[u8]) {
        if !matches!(&self.gw, Gateway::Udp(Some(_))) && self.dial().is_err() {
            self.c.gateway_errors += 1;
            return;
        }
        let Gateway::Udp(Some(s)) = &self.gw else {
            return;
        };
        match s.send(d) {
            Ok(_) => {
                self.c.frames_up += 1;
                self.out
                    .log(2, format_args!("up: {} B {}", d.len(), frame_name(d)));
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                // The gateway is down or restarting: this datagram is lost, and the
                // device's retransmission (or its next handshake) tries again.
                self.c.gateway_errors += 1;
            }
            Err(e) => {
                self.c.gateway_errors += 1;
                self.out
                    .log(1, format_args!("gateway: {e}; opening a new socket"));
                self.gw = Gateway::Udp(None);
            }
        }
    }

    /// Bytes from the serial line, raw framing: find frame starts, forward whole frames.
    fn up_raw(&mut self, bytes: &[u8]) {
        let now = Instant::now();
        for &b in bytes {
            self.raw_up.last = Some(now);
            match self.raw_up.left {
                Some(left) => {
                    self.forward_tcp(&[b]);
                    let left = left - 1;
                    self.raw_up.left = (left > 0).then_some(left);
                    if left == 0 {
                        self.frame_done();
                    }
                }
                None => {
                    self.raw_up.header.push(b);
                    self.raw_header();
                }
            }
        }
    }

    /// Checks the header bytes collected so far; skips bytes that cannot start a frame.
    fn raw_header(&mut self) {
        loop {
            let h = &self.raw_up.header;
            let magic = frame::MAGIC.to_le_bytes();
            let bad = (h.first().is_some_and(|&x| x != magic[0]))
                || (h.get(1).is_some_and(|&x| x != magic[1]))
                || (h.len() == HEADER_LEN && frame::wire_len(h).is_err());
            if !bad {
                break;
            }
            self.raw_up.header.remove(0);
            self.c.dropped += 1;
        }
        if self.raw_up.header.len() < HEADER_LEN {
            return;
        }
        let total = frame::wire_len(&self.raw_up.header).unwrap_or(HEADER_LEN);
        let header = std::mem::take(&mut self.raw_up.header);
        if matches!(self.gw, Gateway::Tcp(None)) && self.dial().is_err() {
            // No gateway to take it: the frame goes nowhere (the device retries).
            self.c.gateway_errors += 1;
        }
        self.forward_tcp(&header);
        self.raw_up.left = (total > HEADER_LEN).then_some(total - HEADER_LEN);
        if total == HEADER_LEN {
            self.frame_done();
        }
    }

    fn frame_done(&mut self) {
        self.c.frames_up += 1;
        self.c.line_frames += 1;
        if std::mem::take(&mut self.up_hit) {
            self.c.noise_frames += 1;
        }
    }

    fn forward_tcp(&mut self, d: &[u8]) {
        let Gateway::Tcp(Some(s)) = &mut self.gw else {
            return;
        };
        // Loopback or LAN, a few hundred bytes at a time: a short blocking write is fine.
        let _ = s.set_nonblocking(false);
        let r = s.write_all(d);
        let _ = s.set_nonblocking(true);
        if let Err(e) = r {
            self.out
                .log(1, format_args!("gateway: {e}; will dial again"));
            self.gw = Gateway::Tcp(None);
        }
    }

    /// A raw frame that stopped arriving: the device reset; the gateway holds a partial
    /// frame, so its connection goes too.
    fn check_gap(&mut self) {
        let mid = self.raw_up.left.is_some() || !self.raw_up.header.is_empty();
        let stale = self
            .raw_up
            .last
            .is_some_and(|t| t.elapsed() >= self.frame_gap);
        if mid && stale {
            self.out.log(
                1,
                "up: a frame stopped in the middle; dropping it and the connection",
            );
            self.raw_up = RawUp::default();
            self.c.dropped += 1;
            self.gw = Gateway::Tcp(None);
        }
    }

    /// Bytes for the serial line (before --noise).
    fn down(&mut self, bytes: &[u8]) {
        let mut noisy = Vec::with_capacity(bytes.len() + 8);
        if self.noise.apply(bytes, &mut noisy, &mut self.c) {
            self.c.noise_frames += 1;
        }
        self.down_q.extend(noisy);
    }

    fn down_datagram(&mut self, d: &[u8]) {
        let mut wire = vec![0u8; cobs::encoded_len_max(d.len())];
        if let Some(n) = cobs::encode(d, &mut wire) {
            self.c.frames_down += 1;
            self.c.line_frames += 1;
            self.out
                .log(2, format_args!("down: {} B {}", d.len(), frame_name(d)));
            self.down(wire.get(..n).unwrap_or(&[]));
        }
    }

    fn down_raw(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let r = &mut self.raw_down;
            r.have.push(b);
            r.need = frame::stream_target(&r.have);
            if r.have.len() >= r.need {
                r.have.clear();
                self.c.frames_down += 1;
                self.c.line_frames += 1;
            }
        }
        let mut noisy = Vec::with_capacity(bytes.len() + 8);
        if self.noise.apply(bytes, &mut noisy, &mut self.c) {
            self.c.noise_frames += 1;
        }
        self.down_q.extend(noisy);
    }

    /// One turn: wait for either side (at most 50 ms), move what is there.
    fn turn(&mut self) -> Result<(), CliError> {
        self.open_serial();
        if self.raw_up.left.is_some() || !self.raw_up.header.is_empty() {
            self.check_gap();
        }
        let mut ev = [PollFlags::empty(); 2];
        {
            let mut fds = Vec::with_capacity(2);
            if let Some(s) = &self.serial {
                let mut f = PollFlags::POLLIN;
                if !self.down_q.is_empty() {
                    f |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(std::os::fd::AsFd::as_fd(s.fd()), f));
            }
            let gw_fd = match &self.gw {
                Gateway::Udp(Some(s)) => Some(std::os::fd::AsFd::as_fd(s)),
                Gateway::Tcp(Some(s)) => Some(std::os::fd::AsFd::as_fd(s)),
                _ => None,
            };
            if let Some(fd) = gw_fd {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            if fds.is_empty() {
                std::thread::sleep(Duration::from_millis(50));
                return Ok(());
            }
            match poll(&mut fds, PollTimeout::from(50u8)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(CliError::Io(format!("poll: {e}"))),
            }
            let mut i = 0;
            if self.serial.is_some() {
                ev[0] = fds
                    .first()
                    .and_then(|f| f.revents())
                    .unwrap_or(PollFlags::empty());
                i = 1;
            }
            ev[1] = fds
                .get(i)
                .and_then(|f| f.revents())
                .unwrap_or(PollFlags::empty());
        }

        // The line, up.
        if !ev[0].is_empty() {
            let mut buf = [0u8; 4096];
            let r = match self.serial.as_mut() {
                Some(s) => s.read_some(&mut buf),
                None => Ok(0),
            };
            match r {
                Ok(0) => {}
                Ok(n) => {
                    self.c.serial_bytes_in += n as u64;
                    let mut noisy = Vec::with_capacity(n + 8);
                    let input = buf.get(..n).unwrap_or(&[]);
                    if self.noise.apply(input, &mut noisy, &mut self.c) {
                        self.up_hit = true;
                    }
                    if matches!(self.gw, Gateway::Tcp(_)) {
                        self.up_raw(&noisy);
                    } else {
                        self.up_cobs(&noisy);
                    }
                }
                Err(e) => self.serial_lost(&e),
            }
        }

        // The gateway, down.
        if !ev[1].is_empty() {
            let mut buf = [0u8; 2048];
            match &mut self.gw {
                Gateway::Udp(Some(s)) => {
                    let mut got = Vec::new();
                    let mut broken = None;
                    // What has arrived, up to a bound per turn (the line is slower anyway).
                    while got.len() < 64 {
                        match s.recv(&mut buf) {
                            Ok(n) => got.push(buf.get(..n).unwrap_or(&[]).to_vec()),
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                                // An earlier datagram found no gateway (ICMP).
                                self.c.gateway_errors += 1;
                                break;
                            }
                            Err(e) => {
                                broken = Some(e);
                                break;
                            }
                        }
                    }
                    if let Some(e) = broken {
                        self.out
                            .log(1, format_args!("gateway: {e}; opening a new socket"));
                        self.gw = Gateway::Udp(None);
                    }
                    for d in got {
                        self.down_datagram(&d);
                    }
                }
                Gateway::Tcp(Some(s)) => match s.read(&mut buf) {
                    Ok(0) => {
                        self.out
                            .log(1, "gateway: closed the connection; will dial again");
                        self.gw = Gateway::Tcp(None);
                    }
                    Ok(n) => {
                        let d = buf.get(..n).unwrap_or(&[]).to_vec();
                        self.down_raw(&d);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => {
                        self.out
                            .log(1, format_args!("gateway: {e}; will dial again"));
                        self.gw = Gateway::Tcp(None);
                    }
                },
                _ => {}
            }
        }

        // The line, down.
        if !self.down_q.is_empty() {
            if let Some(s) = self.serial.as_mut() {
                let (a, _) = self.down_q.as_slices();
                match s.write_some(a) {
                    Ok(n) => {
                        self.down_q.drain(..n);
                        self.c.serial_bytes_out += n as u64;
                    }
                    Err(e) => self.serial_lost(&e),
                }
            }
        }
        Ok(())
    }
}

pub fn run(out: &Out, a: Args) -> Result<(), CliError> {
    if !(0.0..=0.5).contains(&a.noise) {
        return Err(CliError::Usage("--noise must be between 0 and 0.5".into()));
    }
    let gw_addr = resolve(&a.gateway)?;
    catch_signals()?;
    let (serial, spec) = if a.pty {
        let (s, path) = Serial::pty()?;
        if out.json {
            println!("{{\"event\":\"pty\",\"path\":{}}}", json_str(&path));
        } else {
            println!("pty {path}");
        }
        (Some(s), None)
    } else {
        let spec = parse_spec(a.serial.as_deref().unwrap_or_default()).map_err(CliError::Usage)?;
        let s =
            Serial::open(&spec.0, spec.1).map_err(|e| CliError::Io(format!("{}: {e}", spec.0)))?;
        (Some(s), Some(spec))
    };
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let mode = if a.raw {
        "raw frames <-> TCP"
    } else {
        "COBS datagrams <-> UDP"
    };
    let name = serial.as_ref().map(|s| s.name.clone()).unwrap_or_default();
    out.log(0, format_args!("bridge: {name} <-> {gw_addr} ({mode})"));
    if a.noise > 0.0 {
        out.log(
            0,
            format_args!(
                "bridge: TEST AID --noise {} (seed {}) damages the serial side",
                a.noise, a.noise_seed
            ),
        );
    }
    let mut b = Bridge {
        out,
        serial,
        spec,
        gw_spec: a.gateway.clone(),
        gw: if a.raw {
            Gateway::Tcp(None)
        } else {
            Gateway::Udp(None)
        },
        down_q: VecDeque::new(),
        dec: Decoder::new(),
        raw_up: RawUp::default(),
        raw_down: RawDown::default(),
        noise: Noise::new(a.noise, a.noise_seed),
        up_hit: false,
        c: Counters::default(),
        frame_gap: Duration::from_millis(a.frame_gap_ms.max(1)),
        next_dial: Instant::now(),
        next_open: Instant::now(),
    };
    if !a.raw {
        // UDP: the socket exists from the start, so the gateway's answers have a home.
        b.dial()
            .map_err(|e| CliError::Io(format!("gateway {}: {e}", a.gateway)))?;
    }
    let t0 = Instant::now();
    let mut last_report = Instant::now();
    while !STOP.load(Ordering::SeqCst) {
        b.turn()?;
        if a.stats_interval > 0 && last_report.elapsed().as_secs() >= a.stats_interval {
            last_report = Instant::now();
            b.c.report(out, "stats", t0.elapsed().as_secs_f64());
        }
        if a.duration > 0 && t0.elapsed().as_secs() >= a.duration {
            break;
        }
    }
    b.c.report(out, "exit", t0.elapsed().as_secs_f64());
    Ok(())
}
