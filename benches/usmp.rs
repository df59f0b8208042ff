//! Host benchmarks (criterion) of the operations the MCU budgets cover, on the build
//! machine: the device side of a handshake, sealing and opening a 452-byte frame, sending a
//! 1808-byte message (4 frames). Twice: through the sans-IO core (`core/...`) and through
//! the C API the firmware calls (`capi/...`, an in-memory transport, port hooks below).
//! Figures are printed only; the budgets are checked on the Cortex-M4 in QEMU
//! (scripts/check-budgets.sh). Run: scripts/bench.sh, or `cargo bench --features std`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{c_char, c_int};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::Value;
use usmp::ffi::*;
use usmp::frame::MAX_FRAME;
use usmp::handshake::{DeviceHandshake, DeviceStep, Responder, ResponderStep};
use usmp::session::{fragments, Session};
use usmp::Version;

/// The golden handshake inputs of tests/vectors/v2/handshake.json.
struct Inputs {
    client_secret: [u8; 32],
    server_secret: [u8; 32],
    nonce: [u8; 32],
    session_id: [u8; 16],
    psk: Vec<u8>,
    device_id: [u8; 6],
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

fn inputs() -> Inputs {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/v2/handshake.json"
    );
    let text = std::fs::read_to_string(path).expect("tests/vectors/v2/handshake.json");
    let json: Value = serde_json::from_str(&text).expect("JSON");
    let i = &json["inputs"];
    Inputs {
        client_secret: bytes(&i["client_x25519_private"]).try_into().expect("32"),
        server_secret: bytes(&i["server_x25519_private"]).try_into().expect("32"),
        nonce: bytes(&i["nonce"]).try_into().expect("32"),
        session_id: bytes(&i["session_id"]).try_into().expect("16"),
        psk: bytes(&i["psk"]),
        device_id: bytes(&i["device_id"]).try_into().expect("6"),
    }
}

/// Runs the responder once against the device: the gateway's CHALLENGE and SESSION_OK for
/// the fixed inputs, and both established sessions (device, gateway).
fn gateway_script(i: &Inputs) -> (Vec<u8>, Vec<u8>, Session, Session) {
    let mut dev =
        DeviceHandshake::new(Version::V2, &i.psk, &i.device_id, &i.client_secret).expect("device");
    let mut gw = Responder::new(
        Version::V2,
        &i.psk,
        &i.server_secret,
        &i.nonce,
        &i.session_id,
    )
    .expect("responder");
    let (mut a, mut b) = ([0u8; MAX_FRAME], [0u8; MAX_FRAME]);
    let n = dev.hello(None, &mut a);
    let Ok(ResponderStep::Send(m)) = gw.receive(&a[..n], &mut b) else {
        panic!("no CHALLENGE")
    };
    let challenge = b[..m].to_vec();
    let Ok(DeviceStep::Send(n)) = dev.receive(&challenge, &mut a) else {
        panic!("no HELLO_ACK")
    };
    let Ok(ResponderStep::Established(m, gs)) = gw.receive(&a[..n], &mut b) else {
        panic!("no SESSION_OK")
    };
    let session_ok = b[..m].to_vec();
    let Ok(DeviceStep::Established(ds)) = dev.receive(&session_ok, &mut a) else {
        panic!("device not established")
    };
    (challenge, session_ok, ds, gs)
}

fn message(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

/// Seals one message as `usmp_send` does: DATA_FRAG frames, the last one DATA.
fn seal_message(s: &mut Session, msg: &[u8], buf: &mut [u8; MAX_FRAME]) -> usize {
    let mut total = 0;
    for (ty, chunk) in fragments(msg).expect("at most 1808 bytes") {
        total += s.seal_plaintext(ty, chunk, buf).expect("seal");
    }
    total
}

fn core_benches(c: &mut Criterion) {
    let i = inputs();
    let (challenge, session_ok, dev, gw) = gateway_script(&i);
    let (tx, rx) = (*dev.tx_key(), *dev.rx_key());
    let mut g = c.benchmark_group("core");

    g.bench_function("handshake_device", |b| {
        b.iter(|| {
            let mut out = [0u8; MAX_FRAME];
            let mut hs = DeviceHandshake::new(Version::V2, &i.psk, &i.device_id, &i.client_secret)
                .expect("device");
            black_box(hs.hello(None, &mut out));
            let step = hs
                .receive(black_box(&challenge), &mut out)
                .expect("CHALLENGE");
            assert!(matches!(step, DeviceStep::Send(_)));
            match hs.receive(black_box(&session_ok), &mut out) {
                Ok(DeviceStep::Established(s)) => s,
                _ => panic!("SESSION_OK"),
            }
        })
    });

    let msg = message(1808);
    let mut s = Session::new(Version::V2, &tx, &rx, &i.session_id);
    let mut buf = [0u8; MAX_FRAME];
    g.throughput(Throughput::Bytes(452));
    g.bench_function("seal452", |b| {
        b.iter(|| seal_message(&mut s, black_box(&msg[..452]), &mut buf))
    });

    // One gateway frame at seq 0, opened by a fresh device session each time.
    let mut gs = gw;
    let mut frame = [0u8; MAX_FRAME];
    let n = seal_message(&mut gs, &message(452), &mut frame);
    let frame = frame[..n].to_vec();
    g.bench_function("open452", |b| {
        b.iter_batched(
            || {
                (
                    Session::new(Version::V2, &tx, &rx, &i.session_id),
                    frame.clone(),
                )
            },
            |(mut s, mut f)| s.open(&mut f).expect("open").plaintext().len(),
            BatchSize::SmallInput,
        )
    });

    g.throughput(Throughput::Bytes(1808));
    g.bench_function("send1808", |b| {
        b.iter(|| seal_message(&mut s, black_box(&msg), &mut buf))
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------
// The C API: port hooks as an application defines them, an in-memory transport.

thread_local! {
    static SECRET: RefCell<Option<[u8; 32]>> = const { RefCell::new(None) };
    static CLOCK: RefCell<u32> = const { RefCell::new(0) };
}

#[no_mangle]
extern "C" fn usmp_port_get_device_id(out: *mut u8, len: usize) -> c_int {
    if len < 6 {
        return -1;
    }
    let id = [0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e];
    // SAFETY: the library passes a writable buffer of `len` >= 6 bytes.
    unsafe { std::ptr::copy_nonoverlapping(id.as_ptr(), out, 6) };
    0
}

#[no_mangle]
extern "C" fn usmp_port_random(out: *mut u8, len: usize) -> c_int {
    let secret = SECRET.with(|s| *s.borrow());
    // SAFETY: the library passes a writable buffer of `len` bytes.
    let out = unsafe { std::slice::from_raw_parts_mut(out, len) };
    match secret {
        Some(k) if len == 32 => out.copy_from_slice(&k),
        _ => out.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8),
    }
    0
}

#[no_mangle]
extern "C" fn usmp_port_delay_ms(_ms: u32) {}

#[no_mangle]
extern "C" fn usmp_port_millis() -> u32 {
    CLOCK.with(|c| {
        let mut c = c.borrow_mut();
        *c = c.wrapping_add(1);
        *c
    })
}

#[no_mangle]
extern "C" fn usmp_port_log(_l: c_char, _t: *const c_char, _m: *const c_char) {}

// One thread per context here: the lock hooks have nothing to do.
#[no_mangle]
extern "C" fn usmp_port_lock(_ctx: *const core::ffi::c_void) {}

#[no_mangle]
extern "C" fn usmp_port_unlock(_ctx: *const core::ffi::c_void) {}

/// Frames the gateway has queued for the device.
struct Wire {
    to_device: VecDeque<Vec<u8>>,
}

fn wire<'a>(t: *mut usmp_transport_t) -> &'a mut Wire {
    // SAFETY: `ctx` is the Box<Wire> installed by `transport` and outlives the link.
    unsafe { &mut *(*t).ctx.cast::<Wire>() }
}

unsafe extern "C" fn t_send(_t: *mut usmp_transport_t, _d: *const u8, _n: usize) -> c_int {
    0
}

unsafe extern "C" fn t_recv(t: *mut usmp_transport_t, buf: *mut u8, max: usize) -> c_int {
    match wire(t).to_device.pop_front() {
        Some(f) if f.len() <= max => {
            // SAFETY: `buf` has `max` writable bytes.
            unsafe { std::ptr::copy_nonoverlapping(f.as_ptr(), buf, f.len()) };
            f.len() as c_int
        }
        Some(_) => -1,
        None => 0,
    }
}

unsafe extern "C" fn t_available(t: *mut usmp_transport_t) -> c_int {
    c_int::from(!wire(t).to_device.is_empty())
}

fn transport(w: &mut Wire) -> usmp_transport_t {
    usmp_transport_t {
        send: Some(t_send),
        recv: Some(t_recv),
        close: None,
        reconnect: None,
        available: Some(t_available),
        destroy: None,
        ctx: (w as *mut Wire).cast(),
        flags: 0,
        recv_timeout: None,
    }
}

fn capi_benches(c: &mut Criterion) {
    let i = inputs();
    let (challenge, session_ok, _dev, mut gs) = gateway_script(&i);
    SECRET.with(|s| *s.borrow_mut() = Some(i.client_secret));
    let mut w = Box::new(Wire {
        to_device: VecDeque::new(),
    });
    let mut tr = transport(&mut w);
    // SAFETY: usmp_t is plain data; all-zero is its documented initial state.
    let mut ctx_box: Box<usmp_t> = Box::new(unsafe { std::mem::zeroed() });
    ctx_box.psk = i.psk.as_ptr();
    ctx_box.psk_len = i.psk.len();
    let ctx: *mut usmp_t = &mut *ctx_box;
    let mut g = c.benchmark_group("capi");

    g.bench_function("connect", |b| {
        b.iter(|| {
            w.to_device.push_back(challenge.clone());
            w.to_device.push_back(session_ok.clone());
            // SAFETY: valid context and transport.
            let rc = unsafe { usmp_connect(ctx, &mut tr) };
            assert_eq!(rc, 0, "usmp_connect");
        })
    });

    // From here on one session; the gateway session `gs` matches it (same inputs).
    let msg = message(1808);
    g.throughput(Throughput::Bytes(452));
    g.bench_function("send452", |b| {
        // SAFETY: valid context, `msg` readable.
        b.iter(|| assert_eq!(unsafe { usmp_send(ctx, msg.as_ptr(), 452) }, 0))
    });
    g.bench_function("recv452", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut frame = [0u8; MAX_FRAME];
            let mut out = vec![0u8; 1808];
            for _ in 0..iters {
                let n = seal_message(&mut gs, &msg[..452], &mut frame);
                w.to_device.push_back(frame[..n].to_vec());
                let t0 = Instant::now();
                // SAFETY: valid context, `out` writable.
                let rc = unsafe { usmp_recv(ctx, out.as_mut_ptr(), 1808) };
                spent += t0.elapsed();
                assert_eq!(rc, 452, "usmp_recv");
            }
            spent
        })
    });
    g.throughput(Throughput::Bytes(1808));
    g.bench_function("send1808", |b| {
        // SAFETY: valid context, `msg` readable.
        b.iter(|| assert_eq!(unsafe { usmp_send(ctx, msg.as_ptr(), 1808) }, 0))
    });
    g.finish();
    // SAFETY: valid context.
    unsafe { usmp_close(ctx) };
}

criterion_group!(benches, core_benches, capi_benches);
criterion_main!(benches);
