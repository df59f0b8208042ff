//! `usmp connect`: a device on the host, built on this crate's Rust API (`usmp::Client`
//! with the `usmp::host` adapters). Interactive: each line of stdin goes out as a message,
//! each message that comes in is printed. `--echo-test N`: N messages of varied sizes
//! (0 to 1808 bytes) to an echoing gateway, each echo compared — a health check.
use std::io::BufRead;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use usmp::host::{OsRng, StdClock, TcpTransport, UdpTransport};
use usmp::session::MAX_MESSAGE;
use usmp::uart::CobsUart;
use usmp::{Client, Config, Error, Stream, Transport, Version};

use crate::out::{hex, json_str, CliError, Out};
use crate::serial::{parse_spec, Serial};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The gateway: HOST:PORT (its TCP port; with --udp its UDP port).
    #[arg(value_name = "HOST:PORT", required_unless_present = "serial")]
    gateway: Option<String>,
    /// Go over a serial port instead, COBS-framed (to `usmp bridge` or a gateway on a
    /// serial line): DEV[:BAUD].
    #[arg(long, value_name = "DEV[:BAUD]", conflicts_with_all = ["gateway", "udp"])]
    serial: Option<String>,
    /// The pre-shared key as hex digits (what `usmp keygen` prints).
    #[arg(long, value_name = "HEX", required_unless_present = "psk")]
    psk_hex: Option<String>,
    /// The pre-shared key as text.
    #[arg(long, value_name = "TEXT", conflicts_with = "psk_hex")]
    psk: Option<String>,
    /// UDP: datagram mode (acknowledgements, retransmission, replay window).
    #[arg(long)]
    udp: bool,
    /// With --serial: raw frames back to back instead of COBS (to `usmp bridge --raw`).
    #[arg(long, requires = "serial")]
    raw: bool,
    /// Wire v1, for legacy usmp 0.5.x gateways.
    #[arg(long)]
    v1: bool,
    /// The device id: 12 hex digits.
    #[arg(long, value_name = "HEX", default_value = "0275736d7001")]
    device_id: String,
    /// Send N messages of varied sizes (0..1808 bytes) and check every echo; the exit
    /// status is 0 only when all N came back unchanged.
    #[arg(long, value_name = "N")]
    echo_test: Option<u32>,
    /// Seed of the echo test's sizes and contents.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// How long to wait for each echo, ms.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    timeout_ms: u32,
    /// Send a PING after this long without sending, ms (0: never).
    #[arg(long, value_name = "MS", default_value_t = 15_000)]
    keepalive_ms: u32,
}

fn parse_hex(what: &str, s: &str) -> Result<Vec<u8>, CliError> {
    let s = s.trim();
    if s.len() % 2 != 0 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CliError::Usage(format!(
            "{what}: not an even number of hex digits"
        )));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(s.get(i..i + 2).unwrap_or("zz"), 16)
                .map_err(|_| CliError::Usage(format!("{what}: bad hex")))
        })
        .collect()
}

fn failed(what: &str, e: Error) -> CliError {
    let name = e.name();
    let name = String::from_utf8_lossy(name.strip_suffix(b"\0").unwrap_or(name));
    CliError::Failed(format!("{what}: {name} ({})", e.code()))
}

pub fn run(out: &Out, a: Args) -> Result<(), CliError> {
    let psk = match (&a.psk_hex, &a.psk) {
        (Some(h), _) => parse_hex("--psk-hex", h)?,
        (None, Some(t)) => t.as_bytes().to_vec(),
        (None, None) => return Err(CliError::Usage("a PSK is needed: --psk-hex".into())),
    };
    let id: [u8; 6] = parse_hex("--device-id", &a.device_id)?
        .try_into()
        .map_err(|_| CliError::Usage("--device-id: 12 hex digits".into()))?;
    let version = if a.v1 { Version::V1 } else { Version::V2 };
    if psk.len() < version.min_psk_len() {
        return Err(CliError::Usage(format!(
            "the PSK has {} bytes; wire v2 needs at least 16",
            psk.len()
        )));
    }
    let config = Config::new(&psk, id)
        .with_version(version)
        .with_keepalive_ms(a.keepalive_ms);
    if let Some(spec) = &a.serial {
        let (dev, baud) = parse_spec(spec).map_err(CliError::Usage)?;
        let port = Serial::open(&dev, baud).map_err(|e| CliError::Io(format!("{dev}: {e}")))?;
        return if a.raw {
            session(
                out,
                &a,
                config,
                Stream(port),
                &format!("serial {dev} (raw)"),
            )
        } else {
            session(
                out,
                &a,
                config,
                CobsUart::new(port),
                &format!("serial {dev} (COBS)"),
            )
        };
    }
    let gw = a.gateway.as_deref().unwrap_or_default();
    if a.udp {
        let t = UdpTransport::connect(gw).map_err(|e| CliError::Io(format!("{gw}: {e}")))?;
        session(out, &a, config, t, &format!("udp {gw}"))
    } else {
        let t = TcpTransport::connect(gw).map_err(|e| CliError::Io(format!("{gw}: {e}")))?;
        session(out, &a, config, t, &format!("tcp {gw}"))
    }
}

fn session<T: Transport>(
    out: &Out,
    a: &Args,
    config: Config<'_>,
    t: T,
    what: &str,
) -> Result<(), CliError> {
    let mut client = Client::new(t, OsRng, StdClock::new(), config);
    let t0 = Instant::now();
    client.connect().map_err(|e| failed("connect", e))?;
    out.log(
        1,
        format_args!(
            "connected over {what}, wire v{} ({} ms)",
            config.version.byte(),
            t0.elapsed().as_millis()
        ),
    );
    let r = match a.echo_test {
        Some(n) => echo_test(out, a, &mut client, n),
        None => interactive(out, &mut client),
    };
    let st = client.stats();
    out.log(
        1,
        format_args!(
            "link: retransmits {}, duplicates {}, rejected {}, bad acks {}",
            st.retransmits, st.duplicates, st.rejected, st.bad_acks
        ),
    );
    client.close();
    r
}

/// The echo test's message sizes: the edges first, then a seeded spread over 0..=1808.
fn sizes(n: u32, seed: u64) -> impl Iterator<Item = usize> {
    const EDGES: [usize; 7] = [0, 1, 452, 453, 904, 905, MAX_MESSAGE];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n as usize).map(move |i| match EDGES.get(i) {
        Some(&s) => s,
        None => {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % (MAX_MESSAGE as u64 + 1)) as usize
        }
    })
}

fn fill(buf: &mut [u8], tag: u64) {
    let mut x = tag.wrapping_mul(0xD6E8_FEB8_6659_FD93) | 1;
    for b in buf {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 32) as u8;
    }
}

fn echo_test<T: Transport>(
    out: &Out,
    a: &Args,
    client: &mut Client<'_, T, OsRng, StdClock>,
    n: u32,
) -> Result<(), CliError> {
    let t0 = Instant::now();
    let mut last_progress = Instant::now();
    let mut msg = vec![0u8; MAX_MESSAGE];
    let mut back = vec![0u8; MAX_MESSAGE];
    let (mut matched, mut bytes) = (0u32, 0u64);
    let mut first_bad: Option<String> = None;
    for (i, len) in sizes(n, a.seed).enumerate() {
        let m = msg.get_mut(..len).unwrap_or_default();
        fill(m, a.seed ^ (i as u64) << 20);
        client
            .send(m)
            .map_err(|e| failed(&format!("message {i} ({len} B): send"), e))?;
        let sent = Instant::now();
        let got = loop {
            let left = u128::from(a.timeout_ms).saturating_sub(sent.elapsed().as_millis());
            if left == 0 {
                return Err(CliError::Failed(format!(
                    "message {i} ({len} B): no echo within {} ms ({matched} of {n} matched)",
                    a.timeout_ms
                )));
            }
            let wait = u32::try_from(left).unwrap_or(u32::MAX).min(500);
            match client.recv_timeout(&mut back, wait) {
                Ok(Some(k)) => break k,
                Ok(None) => {
                    let _ = client.keepalive_tick();
                }
                Err(e) => return Err(failed(&format!("message {i} ({len} B): recv"), e)),
            }
        };
        if back.get(..got) == msg.get(..len) {
            matched += 1;
            bytes += len as u64;
        } else if first_bad.is_none() {
            first_bad = Some(format!(
                "message {i}: sent {len} B, got {got} B back, different"
            ));
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            if out.json {
                println!(
                    "{{\"event\":\"progress\",\"done\":{},\"of\":{n},\"matched\":{matched}}}",
                    i + 1
                );
            } else {
                eprintln!(
                    "usmp: echo {}/{n}, {matched} matched, {:.1} s",
                    i + 1,
                    t0.elapsed().as_secs_f64()
                );
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let st = client.stats();
    if out.json {
        println!(
            "{{\"event\":\"echo_test\",\"sent\":{n},\"matched\":{matched},\"bytes\":{bytes},\
             \"seconds\":{secs:.3},\"retransmits\":{},\"duplicates\":{},\"rejected\":{}}}",
            st.retransmits, st.duplicates, st.rejected
        );
    } else {
        println!(
            "echo test: {matched}/{n} matched, {bytes} bytes each way, {secs:.2} s \
             (retransmits {}, duplicates {}, rejected {})",
            st.retransmits, st.duplicates, st.rejected
        );
    }
    match first_bad {
        None => Ok(()),
        Some(why) => Err(CliError::Failed(format!(
            "{} of {n} echoes differ; first: {why}",
            n - matched
        ))),
    }
}

/// Lines from stdin (without the newline) on a channel; it closes at end of input.
fn stdin_lines() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        let mut line = Vec::new();
        loop {
            line.clear();
            match lock.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while matches!(line.last(), Some(b'\n' | b'\r')) {
                        line.pop();
                    }
                    if tx.send(line.clone()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

fn print_message(out: &Out, m: &[u8]) {
    let text = std::str::from_utf8(m)
        .ok()
        .filter(|s| !s.chars().any(|c| c.is_control() && c != '\t'));
    match (out.json, text) {
        (true, Some(t)) => println!(
            "{{\"event\":\"message\",\"len\":{},\"text\":{}}}",
            m.len(),
            json_str(t)
        ),
        (true, None) => println!(
            "{{\"event\":\"message\",\"len\":{},\"hex\":\"{}\"}}",
            m.len(),
            hex(m)
        ),
        (false, Some(t)) => println!("{t}"),
        (false, None) => println!("[{} bytes] {}", m.len(), hex(m)),
    }
}

/// After the end of stdin, how long to wait for replies still on their way.
const LINGER: Duration = Duration::from_millis(1500);

fn interactive<T: Transport>(
    out: &Out,
    client: &mut Client<'_, T, OsRng, StdClock>,
) -> Result<(), CliError> {
    let lines = stdin_lines();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut eof: Option<Instant> = None;
    loop {
        match client.recv_timeout(&mut buf, 50) {
            Ok(Some(n)) => print_message(out, buf.get(..n).unwrap_or_default()),
            Ok(None) => {}
            Err(Error::ClosedByPeer) => {
                out.log(0, "the gateway closed the session");
                return Ok(());
            }
            Err(e) => return Err(failed("recv", e)),
        }
        client
            .keepalive_tick()
            .map_err(|e| failed("keepalive", e))?;
        if eof.is_some_and(|t| t.elapsed() >= LINGER) {
            return Ok(());
        }
        loop {
            match lines.try_recv() {
                Ok(line) => {
                    if line.len() > MAX_MESSAGE {
                        out.log(
                            0,
                            format_args!(
                                "line of {} bytes not sent (at most {MAX_MESSAGE})",
                                line.len()
                            ),
                        );
                        continue;
                    }
                    client.send(&line).map_err(|e| failed("send", e))?;
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    eof.get_or_insert_with(Instant::now);
                    break;
                }
            }
        }
    }
}
