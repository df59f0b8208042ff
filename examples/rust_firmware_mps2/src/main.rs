//! rust_firmware_mps2: usmp's Rust API (`usmp::Client`) as bare-metal firmware for the Arm
//! MPS2 board with the AN386 image (Cortex-M4F), as QEMU's `mps2-an386` emulates it.
//!
//! ```text
//! firmware (usmp::Client over Stream<Uart0>) -> UART0 -> QEMU -serial tcp:HOST:PORT -> gateway
//! ```
//!
//! The serial line carries the USMP byte stream unchanged, so the far end is the ordinary
//! TCP gateway (tests/interop/gateway.py around the PyPI package). One session: connect;
//! echo 1, 452, 453, 1000 and 1808 bytes (1 to 4 frames); REKEY both ways (v2; on v1 both
//! must be refused); one more echo; PING both ways; idle past the keepalive period; ask the
//! gateway what it counted (`cmd:stats`) and check it; BYE.
//!
//! Every step prints a line over semihosting; the exit status reaches the host through
//! semihosting (SYS_EXIT_EXTENDED, so it becomes QEMU's exit code): 0 all passed, 1 a usmp
//! call failed (its error is printed), 2 a reply was wrong, 3 a fault or panic, 4 the
//! board could not be set up.
//!
//! Board support, all of it here: `uart` (CMSDK APB UART0, interrupt-driven reception,
//! `embedded-io`), `clock` (SysTick, 1 ms), `entropy` (EMULATOR ONLY: the host's
//! /dev/urandom over semihosting), `config` (PSK, wire version, device id, keepalive, from
//! the build environment).
#![no_std]
#![no_main]
#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

mod clock;
mod config;
mod entropy;
mod uart;

use core::fmt::Write as _;
use core::panic::PanicInfo;
use core::ptr;

use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{hio, hprintln};
use usmp::session::{MAX_DATA, MAX_MESSAGE};
use usmp::{Client, Config, Error, Stream};

use crate::clock::{millis, Millis};
use crate::config::{DEVICE_ID, KEEPALIVE_MS, PSK, WIRE};
use crate::entropy::HostEntropy;
use crate::uart::{Irq, Uart0};

/// Exit statuses (QEMU's exit code).
const EXIT_OK: u32 = 0;
const EXIT_USMP: u32 = 1;
const EXIT_WRONG: u32 = 2;
const EXIT_FAULT: u32 = 3;
const EXIT_BOARD: u32 = 4;

/// The echoed message sizes: 1 frame, a full frame, 2, 3 and 4 (the largest message) frames.
const SIZES: [usize; 5] = [1, MAX_DATA, MAX_DATA + 1, 1000, MAX_MESSAGE];
/// The echo after the REKEYs.
const AFTER_REKEY: usize = 700;
/// How long a reply may take, ms.
const REPLY_WAIT_MS: u32 = 5_000;

/// The client as this board builds it.
type Fw = Client<'static, Stream<Uart0>, HostEntropy, Millis>;

/// Why the session stopped.
enum Fail {
    /// A usmp call failed: the step and the error.
    Usmp(&'static str, Error),
    /// A reply was not what the step expected (already printed).
    Wrong(&'static str),
}

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` (no heap, and not on the stack).
    static mut TX: [u8; MAX_MESSAGE] = [0; MAX_MESSAGE];
    static mut RX: [u8; MAX_MESSAGE] = [0; MAX_MESSAGE];

    let code = run(TX, RX);
    let (used, size) = stack_high_water();
    hprintln!("stack: {used} of {size} bytes used (high-water mark)");
    hprintln!(
        "RESULT {} (exit {code}, {} ms)",
        if code == EXIT_OK { "PASS" } else { "FAIL" },
        millis()
    );
    exit(code)
}

fn run(tx: &mut [u8], rx: &mut [u8]) -> u32 {
    let Some(mut cp) = cortex_m::Peripherals::take() else {
        hprintln!("STEP board FAILED: core peripherals already taken");
        return EXIT_BOARD;
    };
    clock::start(cp.SYST);
    hprintln!(
        "usmp-rust-firmware-mps2 {}: usmp Rust API on mps2-an386 (Cortex-M4F, {} MHz), wire v{}, \
         UART0 at {} baud, keepalive {} ms",
        env!("CARGO_PKG_VERSION"),
        clock::CORE_HZ / 1_000_000,
        WIRE.byte(),
        uart::BAUD,
        KEEPALIVE_MS
    );
    let [a, b, c, d, e, f] = DEVICE_ID;
    hprintln!("device id {a:02x}{b:02x}{c:02x}{d:02x}{e:02x}{f:02x}");

    let Some(mut rng) = HostEntropy::open() else {
        hprintln!("STEP entropy FAILED: cannot open /dev/urandom over semihosting");
        return EXIT_BOARD;
    };
    if !entropy_looks_alive(&mut rng) {
        hprintln!("STEP entropy FAILED: no bytes, or the same bytes twice");
        return EXIT_BOARD;
    }
    hprintln!("STEP entropy ok (host /dev/urandom over semihosting: EMULATOR ONLY)");
    let Some(uart) = Uart0::take(&mut cp.NVIC) else {
        hprintln!("STEP uart FAILED: UART0 already taken");
        return EXIT_BOARD;
    };

    let cfg = Config::new(PSK, DEVICE_ID)
        .with_version(WIRE)
        .with_keepalive_ms(KEEPALIVE_MS);
    let mut client: Fw = Client::new(Stream(uart), rng, Millis, cfg);
    let code = match session(&mut client, tx, rx) {
        Ok(()) => EXIT_OK,
        Err(Fail::Usmp(step, e)) => {
            // Error's Display is its C name, e.g. USMP_ERR_TIMEOUT.
            hprintln!("STEP {step} FAILED: {} ({e}) at {} ms", e.code(), millis());
            EXIT_USMP
        }
        Err(Fail::Wrong(step)) => {
            hprintln!("STEP {step} FAILED: wrong reply");
            EXIT_WRONG
        }
    };
    let (Stream(uart), _rng, _clock) = client.into_parts();
    let u = uart.stats();
    hprintln!(
        "uart: tx {} bytes, rx {} bytes, ring peak {} of {}, overruns {}",
        u.tx_bytes,
        u.rx_bytes,
        u.ring_peak,
        uart::RING_SIZE,
        u.overruns
    );
    code
}

/// The session against the echo gateway (see the module documentation).
fn session(c: &mut Fw, tx: &mut [u8], rx: &mut [u8]) -> Result<(), Fail> {
    let t0 = millis();
    c.connect().map_err(|e| Fail::Usmp("connect", e))?;
    hprintln!(
        "STEP connect ok (wire v{}, {} ms)",
        WIRE.byte(),
        millis().wrapping_sub(t0)
    );

    for (tag, len) in (0u32..).zip(SIZES) {
        echo(c, tx, rx, len, tag, "")?;
    }

    if WIRE.has_rekey() {
        c.rekey().map_err(|e| Fail::Usmp("rekey", e))?;
        command(c, rx, "rekey", b"cmd:rekey", b"rekey-done")?;
        hprintln!("STEP rekey ok (device REKEY sent; gateway REKEY applied: rekey-done)");
    } else {
        match c.rekey() {
            Err(Error::Unsupported) => {}
            Err(e) => return Err(Fail::Usmp("rekey", e)),
            Ok(()) => {
                hprintln!("STEP rekey FAILED: v1 has no REKEY, but rekey() succeeded");
                return Err(Fail::Wrong("rekey"));
            }
        }
        command(c, rx, "rekey", b"cmd:rekey", b"rekey-unsupported")?;
        hprintln!("STEP rekey ok (v1 has none: USMP_ERR_UNSUPPORTED; gateway: rekey-unsupported)");
    }
    echo(c, tx, rx, AFTER_REKEY, 100, "after the rekey, ")?;

    c.ping().map_err(|e| Fail::Usmp("ping", e))?;
    command(c, rx, "ping", b"cmd:ping", b"ping-sent")?;
    hprintln!("STEP ping ok (device PING sent; the gateway's PING answered with a PONG)");

    keepalive(c, rx)?;
    stats(c, rx)?;

    c.close();
    if c.is_connected() {
        hprintln!("STEP bye FAILED: still connected after close()");
        return Err(Fail::Wrong("bye"));
    }
    hprintln!("STEP bye ok (BYE sent, connected=false)");
    Ok(())
}

/// Sends `len` bytes of a pattern and expects the same bytes back.
fn echo(
    c: &mut Fw,
    tx: &mut [u8],
    rx: &mut [u8],
    len: usize,
    tag: u32,
    label: &str,
) -> Result<(), Fail> {
    let msg = tx.get_mut(..len).ok_or(Fail::Wrong("echo"))?;
    fill_pattern(msg, tag);
    let t0 = millis();
    c.send(msg).map_err(|e| Fail::Usmp("send", e))?;
    let got = reply(c, rx, "echo")?;
    if got != &msg[..] {
        hprintln!(
            "STEP echo {len} FAILED: {} bytes came back, {}",
            got.len(),
            if got.len() == len {
                "with other content"
            } else {
                "not the length sent"
            }
        );
        return Err(Fail::Wrong("echo"));
    }
    let frames = len.div_ceil(MAX_DATA).max(1);
    hprintln!(
        "STEP echo {len} ok ({label}{frames} frame{}, {} ms)",
        if frames > 1 { "s" } else { "" },
        millis().wrapping_sub(t0)
    );
    Ok(())
}

/// Sends a gateway command and expects `want` as the reply.
fn command(
    c: &mut Fw,
    rx: &mut [u8],
    step: &'static str,
    cmd: &[u8],
    want: &[u8],
) -> Result<(), Fail> {
    c.send(cmd).map_err(|e| Fail::Usmp(step, e))?;
    let got = reply(c, rx, step)?;
    if got != want {
        hprintln!(
            "STEP {step} FAILED: expected {:?}, got {:?}",
            text(want),
            text(got)
        );
        return Err(Fail::Wrong(step));
    }
    Ok(())
}

/// The next message, within [`REPLY_WAIT_MS`] (PINGs are answered and REKEYs applied on
/// the way, inside `recv_timeout`).
fn reply<'b>(c: &mut Fw, rx: &'b mut [u8], step: &'static str) -> Result<&'b [u8], Fail> {
    let n = match c.recv_timeout(rx, REPLY_WAIT_MS) {
        Ok(Some(n)) => n,
        Ok(None) => return Err(Fail::Usmp(step, Error::Timeout)),
        Err(e) => return Err(Fail::Usmp(step, e)),
    };
    let rx: &'b [u8] = rx;
    rx.get(..n).ok_or(Fail::Wrong(step))
}

/// Stays quiet for 1.5 keepalive periods, polling for input: `keepalive_tick` sends
/// exactly one PING in that time (it says when; the gateway's count in `cmd:stats`
/// confirms it).
fn keepalive(c: &mut Fw, rx: &mut [u8]) -> Result<(), Fail> {
    let idle = KEEPALIVE_MS + KEEPALIVE_MS / 2;
    let t0 = millis();
    let mut polls = 0u32;
    let mut sent = 0u32;
    while millis().wrapping_sub(t0) < idle {
        match c.recv_timeout(rx, 10) {
            Ok(None) => {}
            Ok(Some(n)) => {
                hprintln!("STEP keepalive FAILED: an unexpected {n}-byte message");
                return Err(Fail::Wrong("keepalive"));
            }
            Err(e) => return Err(Fail::Usmp("keepalive", e)),
        }
        if c.keepalive_tick().map_err(|e| Fail::Usmp("keepalive", e))? {
            sent += 1;
        }
        polls += 1;
    }
    if sent != 1 {
        hprintln!("STEP keepalive FAILED: {sent} PINGs in 1.5 keepalive periods, expected 1");
        return Err(Fail::Wrong("keepalive"));
    }
    hprintln!(
        "STEP keepalive ok (idle {} ms > keepalive_ms={KEEPALIVE_MS}, {polls} polls, 1 PING)",
        millis().wrapping_sub(t0)
    );
    Ok(())
}

/// Asks the gateway what it received (`cmd:stats`) and checks it: the message lengths in
/// order, 2 PINGs (ping() and the keepalive), 1 PONG (to the gateway's PING), and on v2
/// the device's REKEY.
fn stats(c: &mut Fw, rx: &mut [u8]) -> Result<(), Fail> {
    c.send(b"cmd:stats").map_err(|e| Fail::Usmp("stats", e))?;
    let got = text(reply(c, rx, "stats")?);
    hprintln!("gateway: {got}");
    let lens_ok = field(got, "lens=").is_some_and(|v| {
        let want = SIZES.iter().chain([AFTER_REKEY].iter());
        v.split(',')
            .map(|n| n.parse::<usize>().ok())
            .eq(want.map(|&n| Some(n)))
    });
    let rekeys = if WIRE.has_rekey() { "1" } else { "0" };
    let ok = lens_ok
        && field(got, "pings=") == Some("2")
        && field(got, "pongs=") == Some("1")
        && field(got, "rekeys=") == Some(rekeys);
    if !ok {
        hprintln!(
            "STEP stats FAILED: expected lens={SIZES:?}+{AFTER_REKEY} pings=2 pongs=1 rekeys={rekeys}"
        );
        return Err(Fail::Wrong("stats"));
    }
    hprintln!("STEP stats ok (the gateway counted every message, PING, PONG and REKEY)");
    Ok(())
}

/// The value of `key` (e.g. "pings=") in a "k=v k=v" line.
fn field<'t>(line: &'t str, key: &str) -> Option<&'t str> {
    line.split(' ').find_map(|kv| kv.strip_prefix(key))
}

/// Bytes as text for printing ("<binary>" when they are not UTF-8).
fn text(b: &[u8]) -> &str {
    core::str::from_utf8(b).unwrap_or("<binary>")
}

/// Test content that differs per message (xorshift32); the first byte is >= 0x80, so no
/// message starts with "cmd:".
fn fill_pattern(buf: &mut [u8], tag: u32) {
    let mut x = 0x9E37_79B9 ^ tag.wrapping_mul(0x85EB_CA6B) ^ (buf.len() as u32);
    for b in buf.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = (x >> 24) as u8;
    }
    if let Some(first) = buf.first_mut() {
        *first |= 0x80;
    }
}

/// Two draws of 32 bytes must differ and not be all zero: catches a dead entropy source.
fn entropy_looks_alive(rng: &mut HostEntropy) -> bool {
    use rand_core::RngCore;
    let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
    let ok = rng.try_fill_bytes(&mut a).is_ok()
        && rng.try_fill_bytes(&mut b).is_ok()
        && a != b
        && a != [0; 32];
    a.fill(0);
    b.fill(0);
    ok
}

/// Bytes of stack used so far, and the stack's size: cortex-m-rt's `paint-stack` filled
/// everything between the end of .bss (`_stack_end`) and the top of RAM (`_stack_start`)
/// with a pattern at reset; the lowest word that no longer holds it is the high-water mark.
fn stack_high_water() -> (usize, usize) {
    extern "C" {
        static _stack_start: u32;
        static _stack_end: u32;
    }
    let top = &raw const _stack_start as usize;
    let bottom = &raw const _stack_end as usize;
    let mut p = bottom;
    // SAFETY: every word in bottom..top is RAM of this program (the stack region).
    while p < top
        && unsafe { ptr::read_volatile(p as *const u32) } == cortex_m_rt::STACK_PAINT_VALUE
    {
        p += 4;
    }
    (top - p, top - bottom)
}

/// Ends the run: QEMU exits with `code` (semihosting SYS_EXIT_EXTENDED with
/// ADP_Stopped_ApplicationExit, which carries an exit code on 32-bit Arm too).
fn exit(code: u32) -> ! {
    const SYS_EXIT_EXTENDED: usize = 0x20;
    const ADP_STOPPED_APPLICATION_EXIT: usize = 0x2_0026;
    let block = [ADP_STOPPED_APPLICATION_EXIT, code as usize];
    // SAFETY: the host reads the two-word block; with a debugger that does not know the
    // call we fall through to the loop below.
    unsafe { cortex_m_semihosting::syscall(SYS_EXIT_EXTENDED, &block) };
    loop {
        cortex_m::asm::wfi();
    }
}

/// Stops with a fault exit (a failure nothing can report otherwise).
pub fn fatal(what: &str) -> ! {
    hprintln!("FATAL: {what}");
    hprintln!("RESULT FAIL (exit {EXIT_FAULT})");
    exit(EXIT_FAULT)
}

#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    hprintln!(
        "FAULT: HardFault at pc {:#010x} (lr {:#010x}, xpsr {:#010x})",
        ef.pc(),
        ef.lr(),
        ef.xpsr()
    );
    hprintln!("RESULT FAIL (exit {EXIT_FAULT})");
    exit(EXIT_FAULT)
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn == Irq::Uart0Rx as i16 {
        uart::on_rx_interrupt();
    } else {
        hprintln!("FAULT: unexpected exception or interrupt {irqn}");
        hprintln!("RESULT FAIL (exit {EXIT_FAULT})");
        exit(EXIT_FAULT);
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    // Straight to a fresh host stream: the panic may have come from inside hprintln.
    if let Ok(mut out) = hio::hstderr() {
        let _ = writeln!(out, "PANIC: {info}");
        let _ = writeln!(out, "RESULT FAIL (exit {EXIT_FAULT})");
    }
    exit(EXIT_FAULT)
}
