//! Encrypted echo with a USMP gateway through the Rust API, blocking or async, over TCP or
//! UDP, wire v2 (default) or v1.
//!
//! ```text
//! cargo run --features std --example rust_host_echo -- [host] [port] [psk] [v1|v2] [rounds]
//!     [--udp] [--async] [--expect-error NAME]
//! ```
//!
//! Against a gateway that echoes each message (tests/interop/gateway.py around the PyPI
//! package, or `scripts/demo.sh`'s), it connects, echoes messages of 0 to 1808 bytes (one
//! to four frames), checks that 1809 is refused, pings, lets the gateway ping, rotates the
//! keys both ways (v2 over TCP), sends a keepalive and says BYE. Each step prints a line;
//! the exit code is 0 when every echo matched, 1 on a failure (the error's C name is
//! printed), 2 on bad usage. `--expect-error NAME` turns it into a negative test: exit 0
//! only when `connect` fails with that error (e.g. `USMP_ERR_AUTH_FAILED` for a wrong PSK).

mod spin;

use std::process::ExitCode;
use std::time::Duration;

use usmp::host::{OsRng, StdClock, TcpTransport, UdpTransport};
use usmp::{AsyncClient, Client, Config, Error, Version};

const SIZES: [usize; 6] = [0, 1, 452, 453, 1000, 1808];

struct Args {
    host: String,
    port: u16,
    psk: String,
    version: Version,
    rounds: usize,
    udp: bool,
    run_async: bool,
    expect_error: Option<String>,
}

fn parse() -> Option<Args> {
    let mut pos = Vec::new();
    let mut a = Args {
        host: String::new(),
        port: 0,
        psk: String::new(),
        version: Version::V2,
        rounds: 1,
        udp: false,
        run_async: false,
        expect_error: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--udp" => a.udp = true,
            "--async" => a.run_async = true,
            "--expect-error" => a.expect_error = Some(it.next()?),
            _ if x.starts_with("--") => return None,
            _ => pos.push(x),
        }
    }
    a.host = pos.first().cloned().unwrap_or_else(|| "127.0.0.1".into());
    a.port = pos.get(1).map_or(Some(9000), |p| p.parse().ok())?;
    a.psk = pos
        .get(2)
        .cloned()
        .unwrap_or_else(|| "usmp-dev-psk-change-me-before-prod".into());
    a.version = match pos.get(3).map_or("v2", String::as_str) {
        "v1" | "1" => Version::V1,
        "v2" | "2" => Version::V2,
        _ => return None,
    };
    a.rounds = pos.get(4).map_or(Some(1), |n| n.parse().ok())?;
    Some(a)
}

/// Message `i` of `len` bytes: a pattern that differs per message.
fn message(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (k * 31 + i * 7 + 1) as u8).collect()
}

/// A failed step: its name and the library's error.
struct Fail(&'static str, Error);

fn name(e: Error) -> &'static str {
    std::str::from_utf8(e.name())
        .unwrap_or("?")
        .trim_end_matches('\0')
}

/// Receives until a message arrives that `want` accepts (PINGs and the like are handled
/// inside `recv`; other messages are reported and skipped).
macro_rules! recv_until {
    ($c:ident, $buf:ident, $step:literal, |$m:ident| $want:expr $(, $aw:tt)?) => {{
        loop {
            let n = $c.recv(&mut $buf)$(.$aw)?.map_err(|e| Fail($step, e))?;
            let $m = &$buf[..n];
            if $want {
                break n;
            }
            println!("  (skipped a {}-byte message)", n);
        }
    }};
}

/// The whole session, written once for both clients: `$aw` is `await` for the async one.
macro_rules! session {
    ($c:ident, $args:ident $(, $aw:tt)?) => {{
        let mut buf = [0u8; 2048];
        $c.connect()$(.$aw)?.map_err(|e| Fail("connect", e))?;
        println!("connected");
        let mut i = 0;
        for round in 0..$args.rounds {
            for len in SIZES {
                let msg = message(i, len);
                i += 1;
                $c.send(&msg)$(.$aw)?.map_err(|e| Fail("send", e))?;
                recv_until!($c, buf, "recv", |m| m == &msg[..] $(, $aw)?);
                println!("echo {len} B ok (round {})", round + 1);
            }
        }
        match $c.send(&[0u8; 1809])$(.$aw)? {
            Err(Error::BufferOverflow) => println!("1809 B refused: USMP_ERR_BUFFER_OVERFLOW"),
            other => {
                println!("1809 B: expected USMP_ERR_BUFFER_OVERFLOW, got {other:?}");
                return Err(Fail("oversize", Error::InvalidArg));
            }
        }
        $c.ping()$(.$aw)?.map_err(|e| Fail("ping", e))?;
        $c.send(b"cmd:ping")$(.$aw)?.map_err(|e| Fail("cmd:ping", e))?;
        recv_until!($c, buf, "gateway ping", |m| m == b"ping-sent" $(, $aw)?);
        println!("ping both ways ok");
        // Not over UDP: the 1.2.2 gateway keeps its UDP duplicate filter across a REKEY.
        let rekey_works = $args.version == Version::V2 && !$args.udp;
        if $args.version == Version::V1 {
            match $c.rekey()$(.$aw)? {
                Err(Error::Unsupported) => println!("REKEY on v1: USMP_ERR_UNSUPPORTED (as it should)"),
                other => {
                    println!("REKEY on v1: expected USMP_ERR_UNSUPPORTED, got {other:?}");
                    return Err(Fail("rekey", Error::InvalidArg));
                }
            }
        } else if rekey_works {
            $c.rekey()$(.$aw)?.map_err(|e| Fail("rekey", e))?;
            println!("device REKEY sent");
        }
        if rekey_works {
            $c.send(b"cmd:rekey")$(.$aw)?.map_err(|e| Fail("cmd:rekey", e))?;
            recv_until!($c, buf, "gateway rekey", |m| m == b"rekey-done" $(, $aw)?);
            let msg = message(i, 700);
            $c.send(&msg)$(.$aw)?.map_err(|e| Fail("send after rekey", e))?;
            recv_until!($c, buf, "recv after rekey", |m| m == &msg[..] $(, $aw)?);
            println!("REKEY both ways ok, echo after it ok");
        }
        std::thread::sleep(Duration::from_millis(60));
        if !$c.keepalive_tick()$(.$aw)?.map_err(|e| Fail("keepalive", e))? {
            println!("keepalive: no PING after 60 ms of silence with a 50 ms period");
            return Err(Fail("keepalive", Error::Timeout));
        }
        println!("keepalive PING sent");
        $c.send(b"cmd:stats")$(.$aw)?.map_err(|e| Fail("cmd:stats", e))?;
        let n = recv_until!($c, buf, "stats", |m| m.starts_with(b"msgs=") $(, $aw)?);
        println!("gateway: {}", String::from_utf8_lossy(&buf[..n]));
        let s = $c.stats();
        println!(
            "link: retransmits={} duplicates={} rejected={} bad_acks={}",
            s.retransmits, s.duplicates, s.rejected, s.bad_acks
        );
        $c.close()$(.$aw)?;
        println!("closed (BYE sent)");
        Ok::<(), Fail>(())
    }};
}

fn run(a: &Args) -> Result<(), Fail> {
    let addr = (a.host.as_str(), a.port);
    let cfg = Config::new(a.psk.as_bytes(), [0x02, 0x52, 0x55, 0x53, 0x54, 0x01])
        .with_version(a.version)
        .with_keepalive_ms(50);
    let dial = |e: std::io::Error| {
        eprintln!("cannot reach {}:{}: {e}", a.host, a.port);
        Fail("dial", Error::TransportFailed)
    };
    match (a.udp, a.run_async) {
        (false, false) => {
            let mut c = Client::new(
                TcpTransport::connect(addr).map_err(dial)?,
                OsRng,
                StdClock::new(),
                cfg,
            );
            session!(c, a)
        }
        (true, false) => {
            let mut c = Client::new(
                UdpTransport::connect(addr).map_err(dial)?,
                OsRng,
                StdClock::new(),
                cfg,
            );
            session!(c, a)
        }
        (false, true) => {
            let t = spin::AsyncTcp::connect(addr).map_err(dial)?;
            let mut c = AsyncClient::new(t, OsRng, spin::SpinClock::new(), cfg);
            spin::block_on(async { session!(c, a, await) })
        }
        (true, true) => {
            let t = spin::AsyncUdp::connect(addr).map_err(dial)?;
            let mut c = AsyncClient::new(t, OsRng, spin::SpinClock::new(), cfg);
            spin::block_on(async { session!(c, a, await) })
        }
    }
}

fn main() -> ExitCode {
    let Some(args) = parse() else {
        eprintln!(
            "usage: rust_host_echo [host] [port] [psk] [v1|v2] [rounds] [--udp] [--async] \
             [--expect-error USMP_ERR_...]"
        );
        return ExitCode::from(2);
    };
    println!(
        "usmp {} Rust API: {} {} {} -> {}:{}",
        env!("CARGO_PKG_VERSION"),
        if args.run_async { "async" } else { "blocking" },
        if args.udp { "udp" } else { "tcp" },
        if args.version == Version::V1 {
            "v1"
        } else {
            "v2"
        },
        args.host,
        args.port
    );
    match (run(&args), &args.expect_error) {
        (Ok(()), None) => {
            println!("OK");
            ExitCode::SUCCESS
        }
        (Err(Fail("connect", e)), Some(want)) if name(e) == want => {
            println!("OK: connect failed with {want}, as expected");
            ExitCode::SUCCESS
        }
        (Err(Fail(step, e)), _) => {
            println!("FAIL {step}: {} ({})", name(e), e.code());
            ExitCode::from(1)
        }
        (Ok(()), Some(want)) => {
            println!("FAIL: expected {want}, but the session worked");
            ExitCode::from(1)
        }
    }
}
