//! The C face of discovery, `usmp_discover_over`, driven from Rust over a `usmp_transport_t`
//! whose far end is the crate's responder, on the virtual clock of the test port hooks:
//! every field of `usmp_gateway_info_t` and `usmp_discover_stats_t`, every argument check,
//! the timeout, malformed answers and transport failures by their codes.
#![cfg(all(feature = "discovery", feature = "capi"))]

#[path = "common/port.rs"]
mod port;

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr};
use std::ptr;

use usmp::discovery::announce::Announcement;
use usmp::discovery::capi::*;
use usmp::discovery::Service;
use usmp::ffi::{usmp_transport_t, USMP_TRANSPORT_DATAGRAM};
use usmp::Version;

/// What the far end does with each query.
#[derive(Clone, Copy, PartialEq)]
enum Peer {
    Answer,
    Silent,
    Garbage,
    SendFails,
    RecvFails,
    RecvTooLong,
}

thread_local! {
    static PEER: RefCell<(Peer, Vec<Vec<u8>>)> = const { RefCell::new((Peer::Silent, Vec::new())) };
}

const GW: Announcement<'static> = Announcement {
    instance: b"c-face",
    service: Service::Udp,
    host: b"gw",
    addr: [1, 0, 10, 200],
    port: 40000,
    version: Some(Version::V2),
};

unsafe extern "C" fn t_send(_t: *mut usmp_transport_t, data: *const u8, len: usize) -> c_int {
    // SAFETY: the library passes `len` readable bytes.
    let query = unsafe { std::slice::from_raw_parts(data, len) };
    PEER.with(|p| {
        let (peer, inbox) = &mut *p.borrow_mut();
        match peer {
            Peer::SendFails => return -1,
            Peer::Answer => {
                let mut buf = [0u8; 512];
                if let Some(n) = GW.answer(query, true, &mut buf).unwrap() {
                    inbox.push(buf[..n].to_vec());
                }
            }
            Peer::Garbage => inbox.push(vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xC0, 12]),
            _ => {}
        }
        0
    })
}

unsafe extern "C" fn t_recv_timeout(
    _t: *mut usmp_transport_t,
    buf: *mut u8,
    max: usize,
    ms: u32,
) -> c_int {
    PEER.with(|p| {
        let (peer, inbox) = &mut *p.borrow_mut();
        match peer {
            Peer::RecvFails => return -1,
            Peer::RecvTooLong => return max as c_int + 1,
            _ => {}
        }
        if inbox.is_empty() {
            port::advance(ms);
            return 0;
        }
        let d = inbox.remove(0);
        // SAFETY: the library passes `max` writable bytes; `d` is shorter.
        unsafe { ptr::copy_nonoverlapping(d.as_ptr(), buf, d.len().min(max)) };
        d.len() as c_int
    })
}

fn transport() -> usmp_transport_t {
    usmp_transport_t {
        send: Some(t_send),
        recv: None,
        close: None,
        reconnect: None,
        available: None,
        destroy: None,
        ctx: ptr::null_mut(),
        flags: USMP_TRANSPORT_DATAGRAM,
        recv_timeout: Some(t_recv_timeout),
    }
}

fn opts(timeout_ms: u32, instance: *const c_char) -> usmp_discover_opts_t {
    usmp_discover_opts_t {
        timeout_ms,
        services: 0,
        protocol_version: 0,
        reserved: [0; 2],
        instance,
        interface_addr: ptr::null(),
    }
}

fn run(
    peer: Peer,
    o: Option<&usmp_discover_opts_t>,
) -> (c_int, usmp_gateway_info_t, usmp_discover_stats_t, u32) {
    PEER.with(|p| *p.borrow_mut() = (peer, Vec::new()));
    let mut t = transport();
    // SAFETY: plain data; every bit pattern is valid.
    let mut info: usmp_gateway_info_t = unsafe { std::mem::zeroed() };
    let mut st = usmp_discover_stats_t {
        queries: 9,
        answers: 9,
        malformed: 9,
        last_error: usmp_dns_error_t::USMP_DNS_OK,
    };
    let t0 = port::now();
    // SAFETY: valid pointers.
    let rc = unsafe {
        usmp_discover_over(
            &mut t,
            o.map_or(ptr::null(), |o| o as *const _),
            &mut info,
            &mut st,
        )
    };
    (rc, info, st, port::now().wrapping_sub(t0))
}

fn text(chars: &[c_char]) -> &str {
    // SAFETY: the library NUL-terminates both fields.
    unsafe { CStr::from_ptr(chars.as_ptr()) }.to_str().unwrap()
}

#[test]
fn found_fills_every_field() {
    let (rc, info, st, _) = run(Peer::Answer, None);
    assert_eq!(rc, 0);
    assert_eq!(text(&info.instance), "c-face");
    assert_eq!(text(&info.host), "1.0.10.200");
    assert_eq!((info.addr, info.port), ([1, 0, 10, 200], 40000));
    assert_eq!(
        (info.service, info.protocol_version),
        (USMP_DISCOVER_UDP, 2)
    );
    assert_eq!((st.queries, st.answers, st.malformed), (1, 1, 0));
    assert_eq!(st.last_error, usmp_dns_error_t::USMP_DNS_OK);
    let name = c"C-FACE";
    assert_eq!(run(Peer::Answer, Some(&opts(0, name.as_ptr()))).0, 0);
}

#[test]
fn nobody_answers_timeout_on_time() {
    let (rc, _, st, spent) = run(Peer::Silent, Some(&opts(2500, ptr::null())));
    assert_eq!(rc, -4); // USMP_ERR_TIMEOUT
    assert_eq!((st.queries, st.answers), (2, 0)); // at 0 and 1000 ms
    assert!((2500..2600).contains(&spent), "{spent} ms");
}

#[test]
fn malformed_answers_are_bad_frame_with_their_name() {
    let (rc, _, st, _) = run(Peer::Garbage, Some(&opts(1500, ptr::null())));
    assert_eq!(rc, -10); // USMP_ERR_BAD_FRAME
    assert_eq!(st.malformed, 2);
    assert_eq!(st.last_error, usmp_dns_error_t::USMP_DNS_BAD_POINTER);
}

#[test]
fn transport_failures() {
    for peer in [Peer::SendFails, Peer::RecvFails, Peer::RecvTooLong] {
        assert_eq!(run(peer, None).0, -2); // USMP_ERR_TRANSPORT_FAILED
    }
}

#[test]
fn bad_arguments() {
    let mut t = transport();
    // SAFETY: plain data.
    let mut info: usmp_gateway_info_t = unsafe { std::mem::zeroed() };
    let o = opts(0, ptr::null());
    // SAFETY (all calls): null or valid pointers.
    unsafe {
        assert_eq!(
            usmp_discover_over(ptr::null_mut(), &o, &mut info, ptr::null_mut()),
            -1
        );
        assert_eq!(
            usmp_discover_over(&mut t, &o, ptr::null_mut(), ptr::null_mut()),
            -1
        );
        let mut no_recv = transport();
        no_recv.recv_timeout = None;
        assert_eq!(
            usmp_discover_over(&mut no_recv, &o, &mut info, ptr::null_mut()),
            -1
        );
    }
    let long = [b'x' as c_char; 80]; // no NUL within 64 bytes: refused without reading on
    let mut cases = vec![opts(0, c"".as_ptr()), opts(0, long.as_ptr())];
    let mut bad_services = opts(0, ptr::null());
    bad_services.services = 4;
    let mut bad_version = opts(0, ptr::null());
    bad_version.protocol_version = 3;
    cases.extend([bad_services, bad_version]);
    for o in &cases {
        let (rc, _, st, _) = run(Peer::Answer, Some(o));
        assert_eq!((rc, st.queries), (-1, 0));
    }
}
