//! Port hooks for the tests that drive the C API in-process (capi.rs, datagram.rs), as an
//! application defines them: a deterministic "random" (the tests need no real entropy), a
//! fixed device id, and a virtual clock per test thread. The clock moves when a test says
//! so ([`advance`]) and, if a test asks for it ([`auto_tick`]), by a fixed step on every read,
//! so timeouts inside blocking calls are reached quickly.
#![allow(dead_code)]

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void};

thread_local! {
    static CLOCK: Cell<u32> = const { Cell::new(1000) };
    static TICK: Cell<u32> = const { Cell::new(0) };
    static RNG: Cell<u8> = const { Cell::new(1) };
}

/// Moves this thread's clock forward.
pub fn advance(ms: u32) {
    CLOCK.with(|c| c.set(c.get().wrapping_add(ms)));
}

/// Every clock read on this thread advances it by `ms` first (0 = only [`advance`]).
pub fn auto_tick(ms: u32) {
    TICK.with(|t| t.set(ms));
}

/// This thread's clock.
pub fn now() -> u32 {
    usmp_port_millis()
}

#[no_mangle]
extern "C" fn usmp_port_get_device_id(out: *mut u8, len: usize) -> c_int {
    if out.is_null() || len < 6 {
        return -1;
    }
    // SAFETY: `out` has at least 6 writable bytes per the hook's contract.
    unsafe { std::ptr::copy_nonoverlapping([0x02, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e].as_ptr(), out, 6) };
    0
}

/// Restarts this thread's "random" sequence.
pub fn reset_rng() {
    RNG.with(|r| r.set(1));
}

/// The next bytes of this thread's "random" sequence (what `usmp_port_random` returns).
pub fn fill_random(out: &mut [u8]) {
    RNG.with(|r| {
        for b in out.iter_mut() {
            let v = r.get().wrapping_mul(37).wrapping_add(11);
            r.set(v);
            *b = v;
        }
    });
}

#[no_mangle]
extern "C" fn usmp_port_random(out: *mut u8, len: usize) -> c_int {
    if len > 0 {
        // SAFETY: `out` has `len` writable bytes per the hook's contract.
        fill_random(unsafe { std::slice::from_raw_parts_mut(out, len) });
    }
    0
}

#[no_mangle]
extern "C" fn usmp_port_delay_ms(ms: u32) {
    advance(ms);
}

#[no_mangle]
extern "C" fn usmp_port_millis() -> u32 {
    advance(TICK.with(Cell::get));
    CLOCK.with(Cell::get)
}

#[no_mangle]
extern "C" fn usmp_port_log(_l: c_char, _t: *const c_char, _m: *const c_char) {}

/// The contexts whose lock is taken, and a condition to wait for one to be released.
static LOCKS: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
static RELEASED: std::sync::Condvar = std::sync::Condvar::new();

#[no_mangle]
extern "C" fn usmp_port_lock(ctx: *const c_void) {
    let key = ctx as usize;
    let mut held = LOCKS.lock().unwrap();
    while held.contains(&key) {
        held = RELEASED.wait(held).unwrap();
    }
    held.push(key);
}

#[no_mangle]
extern "C" fn usmp_port_unlock(ctx: *const c_void) {
    let key = ctx as usize;
    let mut held = LOCKS.lock().unwrap();
    let i = held
        .iter()
        .position(|k| *k == key)
        .expect("usmp_port_unlock without usmp_port_lock");
    held.swap_remove(i);
    RELEASED.notify_all();
}
