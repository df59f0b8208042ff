//! usmp_set_defaults: process-wide values for the settings a usmp_t leaves at 0. In a test
//! binary of its own, since the defaults are global and other tests connect in parallel.

use std::ffi::{c_char, c_int, CStr};

use usmp::ffi::*;

#[no_mangle]
extern "C" fn usmp_port_get_device_id(out: *mut u8, len: usize) -> c_int {
    unsafe { std::ptr::write_bytes(out, 2, len.min(6)) };
    0
}
#[no_mangle]
extern "C" fn usmp_port_random(out: *mut u8, len: usize) -> c_int {
    unsafe { std::ptr::write_bytes(out, 7, len) };
    0
}
#[no_mangle]
extern "C" fn usmp_port_delay_ms(_ms: u32) {}
#[no_mangle]
extern "C" fn usmp_port_millis() -> u32 {
    0
}
#[no_mangle]
extern "C" fn usmp_port_log(_l: c_char, _t: *const c_char, _m: *const c_char) {}

// One thread per context here: the lock hooks have nothing to do.
#[no_mangle]
extern "C" fn usmp_port_lock(_ctx: *const core::ffi::c_void) {}

#[no_mangle]
extern "C" fn usmp_port_unlock(_ctx: *const core::ffi::c_void) {}

unsafe extern "C" fn refuse_send(_: *mut usmp_transport_t, _: *const u8, _: usize) -> c_int {
    -1
}
unsafe extern "C" fn idle_recv(_: *mut usmp_transport_t, _: *mut u8, _: usize) -> c_int {
    0
}

fn name(rc: c_int) -> String {
    unsafe { CStr::from_ptr(usmp_err_name(rc)) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn defaults_fill_only_fields_left_at_zero() {
    let psk = b"0123456789abcdef0123456789abcdef";
    let mut t: usmp_transport_t = unsafe { std::mem::zeroed() };
    t.send = Some(refuse_send);
    t.recv = Some(idle_recv);
    let d = usmp_defaults_t {
        protocol_version: USMP_PROTOCOL_V1,
        retransmit_attempts: 7,
        keepalive_ms: 1234,
        retransmit_timeout_ms: 300,
    };
    assert_eq!(unsafe { usmp_set_defaults(&d) }, 0);
    let mut a: usmp_t = unsafe { std::mem::zeroed() };
    a.psk = psk.as_ptr();
    a.psk_len = psk.len();
    // The HELLO cannot be sent: the connect fails after the defaults were taken.
    assert_eq!(
        name(unsafe { usmp_connect(&mut a, &mut t) }),
        "USMP_ERR_TRANSPORT_FAILED"
    );
    assert_eq!(
        (
            a.protocol_version,
            a.retransmit_attempts,
            a.keepalive_ms,
            a.retransmit_timeout_ms
        ),
        (USMP_PROTOCOL_V1, 7, 1234, 300)
    );
    // Fields the application set are kept.
    let mut b: usmp_t = unsafe { std::mem::zeroed() };
    b.psk = psk.as_ptr();
    b.psk_len = psk.len();
    b.protocol_version = USMP_PROTOCOL_V2;
    b.keepalive_ms = 99;
    unsafe { usmp_connect(&mut b, &mut t) };
    assert_eq!(
        (b.protocol_version, b.keepalive_ms, b.retransmit_attempts),
        (USMP_PROTOCOL_V2, 99, 7)
    );
    // NULL restores the library's own; an invalid version is refused.
    assert_eq!(unsafe { usmp_set_defaults(std::ptr::null()) }, 0);
    let mut c: usmp_t = unsafe { std::mem::zeroed() };
    c.psk = psk.as_ptr();
    c.psk_len = psk.len();
    unsafe { usmp_connect(&mut c, &mut t) };
    assert_eq!(
        (c.protocol_version, c.keepalive_ms, c.retransmit_attempts),
        (0, 0, 0)
    );
    let bad = usmp_defaults_t {
        protocol_version: 9,
        ..Default::default()
    };
    assert_eq!(
        name(unsafe { usmp_set_defaults(&bad) }),
        "USMP_ERR_INVALID_ARG"
    );
}
