//! Datagram mode through the C API against an in-process gateway over a simulated network
//! with a virtual clock: loss, duplication, reordering and forgeries in both directions,
//! the v2 cookie round, authenticate-then-acknowledge, and the retransmission counters.

mod common;
#[path = "common/port.rs"]
mod port;

use std::collections::VecDeque;
use std::ffi::{c_int, c_void, CStr};

use usmp::datagram::{self, Window};
use usmp::ffi::*;
use usmp::frame::{self, FrameType, MAX_FRAME};
use usmp::handshake::{Responder, ResponderStep};
use usmp::session::{fragments, Freshness, Rx, Session};
use usmp::Version;

const PSK: &[u8] = b"datagram-test-psk-32-bytes-long!";
const COOKIE: [u8; 16] = [0xC0; 16];

/// What the simulated network does to the k-th datagram of a direction.
#[derive(Clone, Copy, Default)]
struct Faults {
    drop_every: usize,
    dup_every: usize,
    swap_every: usize,
}

impl Faults {
    const NONE: Self = Self {
        drop_every: 0,
        dup_every: 0,
        swap_every: 0,
    };

    fn apply(&self, k: usize, d: Vec<u8>, q: &mut VecDeque<Vec<u8>>) {
        if self.drop_every > 0 && k % self.drop_every == self.drop_every - 1 {
            return;
        }
        if self.dup_every > 0 && k % self.dup_every == self.dup_every - 1 {
            q.push_back(d.clone());
        }
        if self.swap_every > 0 && k % self.swap_every == self.swap_every - 1 && !q.is_empty() {
            let last = q.pop_back().unwrap();
            q.push_back(d);
            q.push_back(last);
            return;
        }
        q.push_back(d);
    }
}

/// A gateway with the datagram behaviour of the real one (v2: cookie, MAC'd UTACKs).
struct Gw {
    version: Version,
    cookie_round: bool,
    hs: Option<Responder<'static>>,
    session: Option<Session>,
    /// Frames waiting to go out, stop-and-wait: the front one is in flight.
    outq: VecDeque<(Vec<u8>, Option<[u8; 32]>)>,
    net: VecDeque<Vec<u8>>,
    up: Faults,
    down: Faults,
    up_count: usize,
    down_count: usize,
    received: Vec<Vec<u8>>,
    msg: Vec<u8>,
    echo: bool,
    utacks_from_device: usize,
    last_hs_type: u8,
    /// Drop this many of the gateway's UTACKs for handshake frames of this type.
    lose_acks: Option<(u8, usize)>,
    /// Send a PING before acknowledging the next DATA from the device (it crosses our send).
    ping_before_ack: bool,
    /// Send a PING before acknowledging the first fragment of the device's next message.
    ping_before_frag_ack: bool,
    /// Control frames from the device that arrived between two fragments of a message (the
    /// real gateway then drops the partial message and delivers the rest as a message).
    split: usize,
    /// The longest wait any receive of the device asked the transport for, ms.
    max_wait: u32,
    pongs: usize,
    /// The gateway has gone: it answers and acknowledges nothing.
    silent: bool,
    /// Every wait with nothing on the wire gets a junk datagram after 100 ms instead.
    junk: bool,
    /// The clock never moves (a broken usmp_port_millis): waits return at once.
    frozen: bool,
    /// Acknowledge session datagrams at once, with the current key, before opening them
    /// (what the real gateway's UDP transport does).
    ack_before_auth: bool,
    /// Drop this many of the device's UTACKs for gateway frames of this type.
    drop_device_acks: Option<(u8, usize)>,
    /// Forged datagrams that arrive just before the gateway's first frame of a type.
    forge_before: Vec<(u8, Vec<u8>)>,
}

impl Gw {
    fn new(version: Version) -> Box<Self> {
        Box::new(Self {
            version,
            cookie_round: version == Version::V2,
            hs: Some(
                Responder::new(version, PSK, &[0x55; 32], &[0x40; 32], b"0123456789abcdef")
                    .unwrap(),
            ),
            session: None,
            outq: VecDeque::new(),
            net: VecDeque::new(),
            up: Faults::default(),
            down: Faults::default(),
            up_count: 0,
            down_count: 0,
            received: vec![],
            msg: vec![0; 4000],
            echo: true,
            utacks_from_device: 0,
            last_hs_type: 0,
            lose_acks: None,
            ping_before_ack: false,
            ping_before_frag_ack: false,
            split: 0,
            max_wait: 0,
            pongs: 0,
            silent: false,
            junk: false,
            frozen: false,
            ack_before_auth: false,
            drop_device_acks: None,
            forge_before: Vec::new(),
        })
    }

    fn new_responder(version: Version) -> Responder<'static> {
        Responder::new(version, PSK, &[0x55; 32], &[0x40; 32], b"0123456789abcdef").unwrap()
    }

    /// A gateway-initiated REKEY (v2), sent reliably under the old key.
    fn start_rekey(&mut self, salt: [u8; 32]) {
        let key = self.tx_key();
        let mut buf = [0u8; MAX_FRAME];
        let n = self
            .session
            .as_mut()
            .unwrap()
            .start_rekey(&salt, &mut buf)
            .unwrap();
        self.queue(buf[..n].to_vec(), key);
    }

    fn emit(&mut self, d: Vec<u8>) {
        if d.len() >= 12 && d[..2] == [0xCD, 0xAB] {
            if let Some(i) = self.forge_before.iter().position(|(t, _)| *t == d[3]) {
                let (_, forged) = self.forge_before.remove(i);
                self.net.push_back(forged);
            }
        }
        self.down_count += 1;
        let k = self.down_count;
        self.down.apply(k, d, &mut self.net);
    }

    /// Queue a frame for reliable delivery; `key` checks the device's UTACK MAC.
    fn queue(&mut self, f: Vec<u8>, key: Option<[u8; 32]>) {
        let idle = self.outq.is_empty();
        self.outq.push_back((f.clone(), key));
        if idle {
            self.emit(f);
        }
    }

    /// The retransmission timer fired: send the in-flight frame again.
    fn retransmit(&mut self) {
        if let Some((f, _)) = self.outq.front().cloned() {
            self.emit(f);
        }
    }

    fn ack(&mut self, ty: u8, seq: u32, key: Option<&[u8; 32]>) {
        if let Some((t, n)) = self.lose_acks.as_mut() {
            if *t == ty && *n > 0 {
                *n -= 1;
                return;
            }
        }
        let mut a = [0u8; 15];
        let n = datagram::utack(ty, seq, key, &mut a);
        self.emit(a[..n].to_vec());
    }

    fn on_device_datagram(&mut self, d: Vec<u8>) {
        self.up_count += 1;
        let k = self.up_count;
        let mut q = VecDeque::new();
        self.up.apply(k, d, &mut q);
        for d in q {
            self.handle(d);
        }
    }

    fn handle(&mut self, d: Vec<u8>) {
        if self.silent {
            return; // the gateway has gone: nothing is answered or acknowledged
        }
        if datagram::is_utack(&d) {
            if let Some((t, n)) = self.drop_device_acks.as_mut() {
                if d.get(2) == Some(t) && *n > 0 {
                    *n -= 1;
                    return;
                }
            }
            self.utacks_from_device += 1;
            if let Some((f, key)) = self.outq.front().cloned() {
                let seq = u32::from_le_bytes(f[4..8].try_into().unwrap());
                if datagram::utack_matches(&d, f[3], seq, key.as_ref()) {
                    self.outq.pop_front();
                    if let Some((next, _)) = self.outq.front().cloned() {
                        self.emit(next);
                    }
                }
            }
            return;
        }
        let Ok((h, ty)) = frame::decode(&d, self.version) else {
            return;
        };
        if !ty.is_encrypted() {
            let p = frame::payload(&d, &h);
            if ty == FrameType::Hello && self.cookie_round && p.len() == 54 && p[38..] != COOKIE {
                return; // a wrong cookie: ignored, not even acknowledged (as the real gateway)
            }
            self.ack(h.ty, h.seq, None);
            if h.ty <= self.last_hs_type {
                return; // duplicate handshake frame
            }
            if ty == FrameType::Hello && self.cookie_round && p.len() == 38 {
                let mut out = [0u8; MAX_FRAME];
                let n = frame::encode(
                    &mut out,
                    self.version,
                    FrameType::HelloRetry as u8,
                    0,
                    &COOKIE,
                )
                .unwrap();
                self.emit(out[..n].to_vec()); // plain sendto, no retransmission
                return;
            }
            self.last_hs_type = h.ty;
            let mut out = [0u8; MAX_FRAME];
            match self.hs.as_mut().map(|hs| hs.receive(&d, &mut out)) {
                Some(Ok(ResponderStep::Send(n))) => self.queue(out[..n].to_vec(), None),
                Some(Ok(ResponderStep::Established(n, mut s))) => {
                    s.set_datagram(true);
                    self.session = Some(s);
                    self.hs = None;
                    self.queue(out[..n].to_vec(), None);
                }
                Some(Err(_)) => {
                    // The real gateway refuses silently and forgets the handshake: only a new
                    // HELLO (and cookie round) starts another.
                    self.hs = Some(Self::new_responder(self.version));
                    self.last_hs_type = 0;
                    self.outq.clear();
                }
                None => {}
            }
            return;
        }
        if self.ack_before_auth {
            let key = (self.version == Version::V2).then(|| {
                *self
                    .session
                    .as_ref()
                    .map(|s| s.rx_key())
                    .unwrap_or(&[0; 32])
            });
            self.ack(h.ty, h.seq, key.as_ref());
        }
        let Some(s) = self.session.as_mut() else {
            return;
        };
        let mut f = d.clone();
        let Ok(o) = s.open(&mut f) else {
            return; // unauthentic: never acknowledged
        };
        let rx_key = (self.version == Version::V2).then(|| *s.rx_key());
        if matches!(ty, FrameType::Ping | FrameType::Pong) && s.reassembling() {
            self.split += 1;
        }
        let first_frag = ty == FrameType::DataFrag && !s.reassembling();
        if (self.ping_before_ack && ty == FrameType::Data)
            || (self.ping_before_frag_ack && first_frag)
        {
            self.ping_before_ack = false;
            self.ping_before_frag_ack = false;
            let key = self.tx_key();
            let mut buf = [0u8; MAX_FRAME];
            let n = self
                .session
                .as_mut()
                .unwrap()
                .seal_control(FrameType::Ping, &mut buf)
                .unwrap();
            // Straight onto the wire, ahead of the UTACK (the in-flight queue is empty here).
            self.outq.push_back((buf[..n].to_vec(), key));
            self.emit(buf[..n].to_vec());
        }
        if !self.ack_before_auth {
            self.ack(h.ty, h.seq, rx_key.as_ref());
        }
        let s = self.session.as_mut().unwrap();
        if o.freshness() != Freshness::Fresh {
            return;
        }
        let mut msg = std::mem::take(&mut self.msg);
        let r = s.process(o, &mut msg);
        match r {
            Ok(Rx::Message(n)) => {
                self.received.push(msg[..n].to_vec());
                if self.echo {
                    let m = msg[..n].to_vec();
                    self.send_message(&m);
                }
            }
            Ok(Rx::Ping) => self.send_control(FrameType::Pong),
            Ok(Rx::Pong) => self.pongs += 1,
            Ok(_) => {}
            Err(usmp::Error::ClosedByPeer) => {}
            Err(e) => panic!("gateway session: {e:?}"),
        }
        self.msg = msg;
    }

    fn tx_key(&self) -> Option<[u8; 32]> {
        (self.version == Version::V2).then(|| *self.session.as_ref().unwrap().tx_key())
    }

    fn send_message(&mut self, m: &[u8]) {
        for (ty, c) in fragments(m).unwrap() {
            let key = self.tx_key();
            let s = self.session.as_mut().unwrap();
            let mut buf = [0u8; MAX_FRAME];
            let n = s.seal_plaintext(ty, c, &mut buf).unwrap();
            self.queue(buf[..n].to_vec(), key);
        }
    }

    fn send_control(&mut self, ty: FrameType) {
        let key = self.tx_key();
        let mut buf = [0u8; MAX_FRAME];
        let n = self
            .session
            .as_mut()
            .unwrap()
            .seal_control(ty, &mut buf)
            .unwrap();
        self.queue(buf[..n].to_vec(), key);
    }
}

fn gw<'a>(t: *mut usmp_transport_t) -> &'a mut Gw {
    unsafe { &mut *((*t).ctx as *mut Gw) }
}

unsafe extern "C" fn t_send(t: *mut usmp_transport_t, data: *const u8, len: usize) -> c_int {
    let d = unsafe { std::slice::from_raw_parts(data, len) }.to_vec();
    port::advance(1);
    gw(t).on_device_datagram(d);
    0
}

unsafe extern "C" fn t_recv_timeout(
    t: *mut usmp_transport_t,
    buf: *mut u8,
    max: usize,
    ms: u32,
) -> c_int {
    let g = gw(t);
    g.max_wait = g.max_wait.max(ms);
    match g.net.pop_front() {
        // Like the socket transport: a datagram larger than the buffer is read and dropped
        // (a sender waiting for its UTACK offers a small buffer; a DATA frame arriving then
        // goes unacknowledged and is sent again).
        Some(d) if d.len() > max => {
            port::advance(1);
            0
        }
        Some(d) => {
            unsafe { std::ptr::copy_nonoverlapping(d.as_ptr(), buf, d.len()) };
            port::advance(1);
            d.len() as c_int
        }
        None if g.frozen => 0,
        None if g.junk && ms >= 100 => {
            // Someone keeps sending rubbish from the gateway's address: one every 100 ms.
            port::advance(100);
            let junk = [0xCD, 0xAB, 2, 5, 9, 0, 0, 0, 28, 0, 0, 0];
            let mut f = junk.to_vec();
            f.extend_from_slice(&[0x5A; 28]);
            let n = f.len().min(max);
            unsafe { std::ptr::copy_nonoverlapping(f.as_ptr(), buf, n) };
            n as c_int
        }
        None => {
            // Nothing on the wire: time passes, and the gateway's retransmission timer fires.
            port::advance(ms.max(1));
            g.retransmit();
            0
        }
    }
}

unsafe extern "C" fn t_recv(t: *mut usmp_transport_t, buf: *mut u8, max: usize) -> c_int {
    unsafe { t_recv_timeout(t, buf, max, 200) }
}

unsafe extern "C" fn t_available(t: *mut usmp_transport_t) -> c_int {
    (!gw(t).net.is_empty()) as c_int
}

fn transport(g: &mut Gw) -> usmp_transport_t {
    usmp_transport_t {
        send: Some(t_send),
        recv: Some(t_recv),
        close: None,
        reconnect: None,
        available: Some(t_available),
        destroy: None,
        ctx: g as *mut Gw as *mut c_void,
        flags: USMP_TRANSPORT_DATAGRAM,
        recv_timeout: Some(t_recv_timeout),
    }
}

/// A device connected to a scripted gateway over the datagram link (both on the heap, so
/// the transport's pointer to the gateway stays valid).
fn connected(v: Version) -> (Box<Gw>, Box<usmp_t>) {
    let mut g = Gw::new(v);
    let mut t = transport(&mut g);
    let mut c = ctx(v);
    assert_eq!(unsafe { usmp_connect(&mut *c, &mut t) }, 0);
    (g, c)
}

fn ctx(v: Version) -> Box<usmp_t> {
    let mut c: Box<usmp_t> = Box::new(unsafe { std::mem::zeroed() });
    c.psk = PSK.as_ptr();
    c.psk_len = PSK.len();
    c.protocol_version = v as u8;
    c
}

fn name(rc: c_int) -> String {
    unsafe { CStr::from_ptr(usmp_err_name(rc)) }
        .to_string_lossy()
        .into_owned()
}

fn stats(c: &usmp_t) -> usmp_stats_t {
    let mut s = usmp_stats_t::default();
    assert_eq!(unsafe { usmp_get_stats(c, &mut s) }, 0);
    s
}

fn echo(c: &mut usmp_t, msg: &[u8]) -> Vec<u8> {
    let rc = unsafe { usmp_send(c, msg.as_ptr(), msg.len() as u16) };
    assert_eq!(rc, 0, "send: {}", name(rc));
    let mut buf = vec![0u8; 1808];
    for _ in 0..200 {
        let n = unsafe { usmp_recv(c, buf.as_mut_ptr(), buf.len() as u16) };
        assert!(n >= 0, "recv: {}", name(n));
        if n > 0 {
            return buf[..n as usize].to_vec();
        }
    }
    panic!("no echo for {} bytes", msg.len());
}

fn pattern(n: usize, s: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8) ^ s).collect()
}

#[test]
fn clean_network_both_versions_with_cookie_round() {
    for v in [Version::V1, Version::V2] {
        let mut g = Gw::new(v);
        let mut t = transport(&mut g);
        let mut c = ctx(v);
        let rc = unsafe { usmp_connect(&mut *c, &mut t) };
        assert_eq!(rc, 0, "{v:?}: {}", name(rc));
        for len in [1, 452, 453, 1808] {
            let m = pattern(len, len as u8);
            assert_eq!(echo(&mut c, &m), m);
        }
        let st = stats(&c);
        assert_eq!(
            (st.retransmits, st.duplicates, st.rejected),
            (0, 0, 0),
            "{v:?}"
        );
        unsafe { usmp_close(&mut *c) };
    }
}

/// Loss, duplication and reordering each way: (device -> gateway, gateway -> device).
const LOSSY: [(Faults, Faults); 4] = [
    (
        Faults {
            drop_every: 3,
            ..Faults::NONE
        },
        Faults::NONE,
    ),
    (
        Faults::NONE,
        Faults {
            drop_every: 4,
            ..Faults::NONE
        },
    ),
    (
        Faults {
            dup_every: 2,
            ..Faults::NONE
        },
        Faults {
            dup_every: 3,
            ..Faults::NONE
        },
    ),
    (
        Faults {
            drop_every: 5,
            dup_every: 3,
            ..Faults::NONE
        },
        Faults {
            drop_every: 6,
            dup_every: 4,
            swap_every: 5,
        },
    ),
];

#[test]
fn lossy_duplicating_reordering_network_loses_nothing() {
    for v in [Version::V1, Version::V2] {
        for (up, down) in LOSSY {
            let mut g = Gw::new(v);
            g.up = up;
            g.down = down;
            let mut t = transport(&mut g);
            let mut c = ctx(v);
            let rc = unsafe { usmp_connect(&mut *c, &mut t) };
            assert_eq!(rc, 0, "{v:?}: {}", name(rc));
            let mut sent = vec![];
            for k in 0..12 {
                let m = pattern([0, 1, 452, 453, 1000, 1808][k % 6], k as u8);
                let got = echo_or_empty(&mut c, &m);
                assert_eq!(got, m, "{v:?} message {k}");
                sent.push(m);
            }
            // every message arrived at the gateway exactly once, in order
            assert_eq!(g.received, sent, "{v:?}");
            let st = stats(&c);
            eprintln!(
                "{v:?} retransmits={} duplicates={} rejected={} bad_acks={}",
                st.retransmits, st.duplicates, st.rejected, st.bad_acks
            );
            if up.drop_every > 0 || down.drop_every > 0 {
                assert!(st.retransmits > 0);
            }
            if down.dup_every > 0 {
                assert!(st.duplicates > 0);
            }
        }
    }
}

/// Echo that also handles the empty message (usmp_recv returns 0 for it).
fn echo_or_empty(c: &mut usmp_t, msg: &[u8]) -> Vec<u8> {
    if !msg.is_empty() {
        return echo(c, msg);
    }
    let rc = unsafe { usmp_send(c, msg.as_ptr(), 0) };
    assert_eq!(rc, 0, "send: {}", name(rc));
    let mut buf = [0u8; 16];
    for _ in 0..20 {
        let n = unsafe { usmp_recv(c, buf.as_mut_ptr(), 16) };
        assert!(n >= 0, "recv: {}", name(n));
    }
    vec![]
}

#[test]
fn forged_and_corrupted_datagrams_are_dropped_never_acknowledged() {
    let v = Version::V2;
    let (mut g, mut c) = connected(v);
    // The gateway's next frame, as an attacker would forge it: right header, wrong tag.
    let mut buf = [0u8; MAX_FRAME];
    let mut forger = Session::new(v, &[7; 32], &[7; 32], b"0123456789abcdef");
    let n = forger.seal(FrameType::Data, &mut buf, 5).unwrap();
    let acks_before = g.up_count;
    g.net.push_back(buf[..n].to_vec());
    g.net.push_back(b"garbage".to_vec());
    let mut bad_crc = buf[..n].to_vec();
    bad_crc[20] ^= 1;
    g.net.push_back(bad_crc);
    let mut out = [0u8; 64];
    assert_eq!(unsafe { usmp_recv(&mut *c, out.as_mut_ptr(), 64) }, 0);
    assert_eq!(
        g.up_count, acks_before,
        "device acknowledged an unauthentic frame"
    );
    assert!(stats(&c).rejected >= 3);
    // the session is intact
    assert_eq!(echo(&mut c, b"still here"), b"still here");
    // a forged BYE is ignored, an authentic one closes
    let n = forger.seal_control(FrameType::Bye, &mut buf).unwrap();
    g.net.push_back(buf[..n].to_vec());
    assert_eq!(unsafe { usmp_recv(&mut *c, out.as_mut_ptr(), 64) }, 0);
    assert!(unsafe { usmp_is_connected(&*c) });
    g.send_control(FrameType::Bye);
    assert_eq!(
        name(unsafe { usmp_recv(&mut *c, out.as_mut_ptr(), 64) }),
        "USMP_ERR_CLOSED_BY_PEER"
    );
}

#[test]
fn acknowledgement_with_bad_mac_is_ignored_and_the_frame_retransmitted() {
    let v = Version::V2;
    let (mut g, mut c) = connected(v);
    g.echo = false;
    // Pre-load a forged UTACK for the device's next DATA (seq 0): 7 bytes, no MAC.
    g.net.push_back(vec![0xAC, 0xAC, 5, 0, 0, 0, 0]);
    assert_eq!(unsafe { usmp_send(&mut *c, b"x".as_ptr(), 1) }, 0);
    let st = stats(&c);
    assert!(st.bad_acks >= 1, "forged UTACK not counted");
    assert_eq!(g.received, vec![b"x".to_vec()]);
}

#[test]
fn silent_network_times_out_with_a_named_code() {
    let v = Version::V2;
    let (mut g, mut c) = connected(v);
    g.up = Faults {
        drop_every: 1,
        ..Default::default()
    };
    c.retransmit_attempts = 3;
    c.retransmit_timeout_ms = 500; // fixed: 500, 1000, 2000 ms
    let t0 = port::now();
    assert_eq!(
        name(unsafe { usmp_send(&mut *c, b"lost".as_ptr(), 4) }),
        "USMP_ERR_TIMEOUT"
    );
    let waited = port::now() - t0;
    assert_eq!(stats(&c).retransmits, 2);
    // 500 + 1000 + 2000 ms of backoff, give or take the per-call ticks
    assert!((3500..3600).contains(&waited), "waited {waited} ms");
    assert!(!unsafe { usmp_is_connected(&*c) });
}

#[test]
fn adaptive_timeout_follows_the_measured_round_trip() {
    let v = Version::V1;
    let (mut g, mut c) = connected(v);
    assert_eq!(echo(&mut c, b"warm up"), b"warm up");
    g.up = Faults {
        drop_every: 1,
        ..Default::default()
    };
    c.retransmit_attempts = 3;
    let t0 = port::now();
    assert_eq!(
        name(unsafe { usmp_send(&mut *c, b"lost".as_ptr(), 4) }),
        "USMP_ERR_TIMEOUT"
    );
    let waited = port::now() - t0;
    // The simulated round trip is a few ms: the RTO sits at its floor (100 ms), not 500.
    assert!((700..800).contains(&waited), "waited {waited} ms");
}

#[test]
fn rekey_over_datagrams_both_ways() {
    let v = Version::V2;
    let mut g = Gw::new(v);
    g.down = Faults {
        drop_every: 5,
        ..Default::default()
    };
    let mut t = transport(&mut g);
    let mut c = ctx(v);
    assert_eq!(unsafe { usmp_connect(&mut *c, &mut t) }, 0);
    assert_eq!(echo(&mut c, b"before"), b"before");
    assert_eq!(unsafe { usmp_rekey(&mut *c) }, 0);
    assert_eq!(echo(&mut c, b"after device rekey"), b"after device rekey");
    let key = g.tx_key();
    let mut buf = [0u8; MAX_FRAME];
    let n = g
        .session
        .as_mut()
        .unwrap()
        .start_rekey(&[9; 32], &mut buf)
        .unwrap();
    g.queue(buf[..n].to_vec(), key);
    let mut out = [0u8; 64];
    for _ in 0..5 {
        assert!(unsafe { usmp_recv(&mut *c, out.as_mut_ptr(), 64) } >= 0);
    }
    assert_eq!(echo(&mut c, b"after gateway rekey"), b"after gateway rekey");
}

#[test]
fn window_edges_through_the_session() {
    let (mut dev, mut gwy) = common::pair(Version::V2);
    dev.set_datagram(true);
    let mut frames = vec![];
    for _ in 0..80 {
        let mut buf = [0u8; MAX_FRAME];
        let n = gwy.seal(FrameType::Data, &mut buf, 1).unwrap();
        frames.push(buf[..n].to_vec());
    }
    let mut out = [0u8; 8];
    let mut deliver = |seq: usize| -> Option<Freshness> {
        let mut f = frames[seq].clone();
        let o = dev.open(&mut f).ok()?;
        let fr = o.freshness();
        if fr == Freshness::Fresh {
            assert_eq!(dev.process(o, &mut out), Ok(Rx::Message(1)));
        }
        Some(fr)
    };
    assert_eq!(deliver(0), Some(Freshness::Fresh));
    assert_eq!(deliver(0), Some(Freshness::Duplicate));
    assert_eq!(deliver(70), Some(Freshness::Fresh));
    assert_eq!(deliver(6), Some(Freshness::Duplicate)); // 70 - 64: too old
    assert_eq!(deliver(7), Some(Freshness::Fresh)); // oldest still inside
    assert_eq!(deliver(7), Some(Freshness::Duplicate));
    assert_eq!(deliver(69), Some(Freshness::Fresh));
    assert_eq!(
        dev.window(),
        Window {
            high: 70,
            bitmap: 0x8000_0000_0000_0003
        }
    );
}

#[test]
fn lost_acknowledgements_of_hello_ack_are_covered_by_session_ok() {
    for v in [Version::V1, Version::V2] {
        let mut g = Gw::new(v);
        g.lose_acks = Some((3, 5)); // every UTACK for HELLO_ACK is lost
        let mut t = transport(&mut g);
        let mut c = ctx(v);
        let rc = unsafe { usmp_connect(&mut *c, &mut t) };
        assert_eq!(rc, 0, "{v:?}: {}", name(rc));
        assert_eq!(echo(&mut c, b"up"), b"up");
    }
}

#[test]
fn handshake_never_outlasts_its_deadline() {
    let mut g = Gw::new(Version::V2);
    g.up = Faults {
        drop_every: 1,
        ..Default::default()
    };
    let mut t = transport(&mut g);
    let mut c = ctx(Version::V2);
    let t0 = port::now();
    assert_eq!(
        name(unsafe { usmp_connect(&mut *c, &mut t) }),
        "USMP_ERR_TIMEOUT"
    );
    let took = port::now() - t0;
    assert!(
        took <= USMP_HANDSHAKE_TIMEOUT_MS + 50,
        "connect took {took} ms"
    );
}

#[test]
fn wrong_psk_over_datagrams_is_an_auth_failure() {
    let mut g = Gw::new(Version::V2);
    let other: &'static [u8] = b"the-gateway-has-a-different-psk!";
    g.hs = Some(
        Responder::new(
            Version::V2,
            other,
            &[0x55; 32],
            &[0x40; 32],
            b"0123456789abcdef",
        )
        .unwrap(),
    );
    let mut t = transport(&mut g);
    let mut c = ctx(Version::V2);
    assert_eq!(
        name(unsafe { usmp_connect(&mut *c, &mut t) }),
        "USMP_ERR_AUTH_FAILED"
    );
}

#[test]
fn a_ping_crossing_our_send_is_answered_without_a_retransmission() {
    let mut g = Gw::new(Version::V2);
    let mut t = transport(&mut g);
    let mut c = ctx(Version::V2);
    assert_eq!(unsafe { usmp_connect(&mut *c, &mut t) }, 0);
    g.echo = false;
    g.ping_before_ack = true;
    assert_eq!(unsafe { usmp_send(&mut *c, b"crossing".as_ptr(), 8) }, 0);
    assert_eq!(g.pongs, 1, "PONG not sent");
    assert!(
        g.outq.is_empty(),
        "the gateway's PING is still unacknowledged"
    );
    assert_eq!(stats(&c).retransmits, 0);
}

// ------------------------------------------------------------------ issue H: bounds, REKEY,
// forgeries

/// A forged copy of a gateway handshake frame of type `ty` with payload `p` (valid CRC).
fn forged(v: Version, ty: FrameType, p: &[u8]) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME];
    let n = frame::encode(&mut out, v, ty as u8, 0, p).unwrap();
    out[..n].to_vec()
}

#[test]
fn recv_returns_by_its_deadline_while_junk_keeps_arriving() {
    // Before: every dropped datagram restarted the wait, and a junk datagram each 100 ms
    // held usmp_recv forever. Now the call ends at recv_timeout_ms (default 1000) anyway.
    for v in [Version::V1, Version::V2] {
        let (mut g, mut c) = connected(v);
        g.junk = true;
        let before = stats(&c).rejected;
        let t0 = port::now();
        let mut buf = [0u8; 64];
        let n = unsafe { usmp_recv(&mut *c, buf.as_mut_ptr(), buf.len() as u16) };
        let took = port::now().wrapping_sub(t0);
        assert_eq!(n, 0, "{v:?}: {}", name(n));
        assert!(took <= 1000 + 200, "{v:?}: usmp_recv took {took} ms");
        assert!(
            stats(&c).rejected - before >= 8,
            "{v:?}: the junk was read and counted"
        );
        assert!(unsafe { usmp_is_connected(&*c) });
        // A shorter budget is honoured too.
        c.recv_timeout_ms = 300;
        let t0 = port::now();
        assert_eq!(unsafe { usmp_recv(&mut *c, buf.as_mut_ptr(), 64) }, 0);
        assert!(port::now().wrapping_sub(t0) <= 300 + 200);
    }
}

#[test]
fn a_frozen_clock_cannot_make_a_wait_endless() {
    // usmp_port_millis stops (a broken timer): a send without acknowledgements still ends
    // after its attempts, a receive after its budget, measured by the waits themselves.
    for v in [Version::V1, Version::V2] {
        let (mut g, mut c) = connected(v);
        g.frozen = true;
        g.silent = true;
        let mut buf = [0u8; 16];
        assert_eq!(
            unsafe { usmp_recv(&mut *c, buf.as_mut_ptr(), 16) },
            0,
            "{v:?}"
        );
        let rc = unsafe { usmp_send(&mut *c, b"x".as_ptr(), 1) };
        assert_eq!(name(rc), "USMP_ERR_TIMEOUT", "{v:?}");
        assert!(!unsafe { usmp_is_connected(&*c) });
    }
}

#[test]
fn device_rekey_survives_a_lost_acknowledgement() {
    // The gateway switches keys when it takes our REKEY; its UTACK is lost; it acknowledges
    // the retransmission (at once, before authentication, as the real one does) under the
    // NEW key. Before: the device checked the old key only and ended with TIMEOUT.
    let (mut g, mut c) = connected(Version::V2);
    g.ack_before_auth = true;
    g.lose_acks = Some((FrameType::Rekey as u8, 1));
    let rc = unsafe { usmp_rekey(&mut *c) };
    assert_eq!(rc, 0, "{}", name(rc));
    assert_eq!(echo(&mut c, b"after the rekey"), b"after the rekey");
    assert!(stats(&c).retransmits >= 1);
}

#[test]
fn gateway_rekey_survives_a_lost_acknowledgement() {
    // The device takes the gateway's REKEY and acknowledges it under the old key; that
    // UTACK is lost; the gateway sends the REKEY again, under the old key. Before: the device
    // (already on the new keys) dropped it as forged and never acknowledged it again, and
    // the gateway's ARQ stalled. Now it is re-acknowledged under the previous key.
    let (mut g, mut c) = connected(Version::V2);
    g.drop_device_acks = Some((FrameType::Rekey as u8, 1));
    g.start_rekey([7; 32]);
    let mut buf = [0u8; 64];
    for _ in 0..10 {
        assert!(unsafe { usmp_recv(&mut *c, buf.as_mut_ptr(), 64) } >= 0);
    }
    assert!(
        g.outq.is_empty(),
        "the gateway's REKEY was never acknowledged"
    );
    assert_eq!(echo(&mut c, b"new keys both ways"), b"new keys both ways");
    assert!(stats(&c).duplicates >= 1);
}

#[test]
fn forged_session_ok_over_udp_is_dropped_not_an_auth_failure() {
    // One spoofed SESSION_OK (valid CRC, wrong MAC) before the gateway's own. Before: the
    // handshake ended with AUTH_FAILED, sending operators to check their PSK.
    for v in [Version::V1, Version::V2] {
        let mut g = Gw::new(v);
        g.forge_before.push((
            FrameType::SessionOk as u8,
            forged(v, FrameType::SessionOk, &[0x33; 48]),
        ));
        let mut t = transport(&mut g);
        let mut c = ctx(v);
        let rc = unsafe { usmp_connect(&mut *c, &mut t) };
        assert_eq!(rc, 0, "{v:?}: {}", name(rc));
        assert!(stats(&c).rejected >= 1);
        assert_eq!(echo(&mut c, b"ok"), b"ok");
    }
}

#[test]
fn forged_hello_retry_first_costs_one_cookie_round() {
    // A forged HELLO_RETRY (a bogus cookie) beats the gateway's own: the device's cookie
    // HELLO is ignored by the gateway, so the device asks again with a plain HELLO and
    // completes with the real cookie. Before: the real HELLO_RETRY was taken for a
    // duplicate and the handshake never completed.
    let v = Version::V2;
    let mut g = Gw::new(v);
    g.forge_before.push((
        FrameType::HelloRetry as u8,
        forged(v, FrameType::HelloRetry, &[0xEE; 16]),
    ));
    let mut t = transport(&mut g);
    let mut c = ctx(v);
    let rc = unsafe { usmp_connect(&mut *c, &mut t) };
    assert_eq!(rc, 0, "{}", name(rc));
    assert_eq!(echo(&mut c, b"ok"), b"ok");
}

#[test]
fn forged_challenge_first_still_connects() {
    // A forged CHALLENGE arrives before the gateway's: the device answers both; the gateway
    // refuses our HELLO_ACK for the forged one and forgets its handshake, so the device
    // starts again from HELLO and completes within the deadline. Before: the real CHALLENGE
    // was taken for a duplicate and the handshake failed.
    for v in [Version::V1, Version::V2] {
        let mut g = Gw::new(v);
        let mut p = [0x21u8; 64];
        p[32..].copy_from_slice(&usmp::crypto::x25519_public(&[0x77; 32]));
        g.forge_before.push((
            FrameType::Challenge as u8,
            forged(v, FrameType::Challenge, &p),
        ));
        let mut t = transport(&mut g);
        let mut c = ctx(v);
        let t0 = port::now();
        let rc = unsafe { usmp_connect(&mut *c, &mut t) };
        assert_eq!(rc, 0, "{v:?}: {}", name(rc));
        assert!(port::now().wrapping_sub(t0) < usmp::HANDSHAKE_TIMEOUT_MS);
        assert_eq!(echo(&mut c, b"ok"), b"ok");
    }
}

// ------------------------------------------------------------------ the non-blocking API

#[path = "common/nb.rs"]
#[allow(unused)]
mod nb_api;
#[path = "common/scripted.rs"]
#[allow(unused)]
mod scripted;

/// A device connected through the non-blocking API (receive buffer of 1808 bytes).
fn nb_connected(g: &mut Gw) -> (Box<usmp_t>, Box<usmp_nb_t>, Vec<u8>) {
    let mut t = transport(g);
    let mut c = ctx(g.version);
    let mut nb = nb_api::new_nb();
    let mut rx = vec![0u8; 1808];
    let rc = unsafe { usmp_nb_connect(&mut *c, &mut *nb, &mut t, rx.as_mut_ptr(), 1808) };
    assert_eq!(rc, 0, "{}", name(rc));
    let evs = nb_api::poll_until(
        &mut c,
        &mut nb,
        usmp_event_kind_t::USMP_EVENT_CONNECTED,
        5000,
    );
    assert_eq!(evs.len(), 1, "{evs:?}");
    (c, nb, rx)
}

#[test]
fn nb_lossy_network_delivers_every_message_once_in_order_and_no_call_waits() {
    for v in [Version::V1, Version::V2] {
        for (up, down) in [(Faults::NONE, Faults::NONE), LOSSY[3]] {
            let mut g = Gw::new(v);
            g.up = up;
            g.down = down;
            let (mut c, mut nb, rx) = nb_connected(&mut g);
            let mut sent = vec![];
            for k in 0..12 {
                let m = pattern([0, 1, 452, 453, 1000, 1808][k % 6], k as u8);
                let got = nb_api::nb_echo(&mut c, &mut nb, &rx, &m, 20_000);
                assert_eq!(got, m, "{v:?} message {k}");
                sent.push(m);
            }
            assert_eq!(g.received, sent, "{v:?}: each message once, in order");
            assert_eq!(g.max_wait, 0, "{v:?}: a receive waited");
            let st = stats(&c);
            if up.drop_every > 0 {
                assert!(st.retransmits > 0 && st.duplicates > 0, "{v:?}");
            }
            assert_eq!(unsafe { usmp_nb_close(&mut *c, &mut *nb) }, 0);
        }
    }
}

#[test]
fn a_gateway_ping_during_a_fragmented_send_waits_for_the_last_fragment() {
    // Non-blocking and blocking alike: the PONG goes after the message's last fragment.
    for v in [Version::V1, Version::V2] {
        let mut g = Gw::new(v);
        let (mut c, mut nb, rx) = nb_connected(&mut g);
        g.ping_before_frag_ack = true;
        let m = pattern(1808, 3);
        assert_eq!(nb_api::nb_echo(&mut c, &mut nb, &rx, &m, 20_000), m);
        assert_eq!((g.pongs, g.split), (1, 0), "{v:?}: non-blocking");

        let (mut g, mut c) = connected(v);
        g.ping_before_frag_ack = true;
        g.echo = false;
        assert_eq!(unsafe { usmp_send(&mut *c, m.as_ptr(), 1808) }, 0);
        let mut buf = [0u8; 64];
        for _ in 0..5 {
            assert!(unsafe { usmp_recv(&mut *c, buf.as_mut_ptr(), 64) } >= 0);
        }
        assert_eq!(g.received, vec![m.clone()], "{v:?}");
        assert_eq!((g.pongs, g.split), (1, 0), "{v:?}: blocking");
    }
}
