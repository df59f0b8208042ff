//! Gateway discovery (feature `discovery`), sans-IO: the device's resolver against the
//! crate's own responder (`discovery::announce`) in one process with a virtual clock,
//! answers split over several datagrams, the query schedule and the timeout, and hostile
//! datagrams — each malformation a named error, never a panic.
#![cfg(feature = "discovery")]

use proptest::prelude::*;
use usmp::discovery::announce::Announcement;
use usmp::discovery::dns::{
    self, DnsError, Message, NameBuf, RData, Section, WriteData, Writer, CLASS_IN, FLAG_AA, FLAG_QR,
};
use usmp::discovery::{
    self, gateways_in, Found, Options, Resolver, Service, Services, Stats, DATAGRAM_LEN,
};
use usmp::{Clock, Error, Transport, Version};

fn gw<'a>(instance: &'a str, service: Service, addr: [u8; 4], port: u16) -> Announcement<'a> {
    Announcement {
        instance: instance.as_bytes(),
        service,
        host: b"gw-host",
        addr,
        port,
        version: Some(Version::V2),
    }
}

/// The device's first query, answered by `responders` (legacy unicast, as the device
/// sends from an ephemeral port), fed back to a resolver with `opts`.
fn ask(opts: &Options<'_>, responders: &[Announcement<'_>]) -> (Option<Found>, Stats) {
    let mut r = Resolver::new(0, opts).unwrap();
    let mut q = [0u8; DATAGRAM_LEN];
    let n = r
        .poll_transmit(0, &mut q)
        .unwrap()
        .expect("a query at once");
    for a in responders {
        let mut buf = [0u8; DATAGRAM_LEN];
        if let Some(m) = a.answer(&q[..n], true, &mut buf).unwrap() {
            if let Some(f) = r.handle_datagram(5, &buf[..m]).unwrap() {
                return (Some(f), r.stats());
            }
        }
    }
    (None, r.stats())
}

#[test]
fn query_asks_for_both_service_types_by_ptr() {
    let mut r = Resolver::new(0, &Options::default()).unwrap();
    let mut q = [0u8; DATAGRAM_LEN];
    let n = r.poll_transmit(0, &mut q).unwrap().unwrap();
    let msg = Message::parse(&q[..n]).unwrap();
    assert!(msg.is_query());
    let qs: Vec<_> = msg.questions().map(|q| q.unwrap()).collect();
    assert_eq!(qs.len(), 2);
    assert!(qs[0].name.same(&Service::Tcp.type_name()));
    assert!(qs[1].name.same(&Service::Udp.type_name()));
    assert!(qs
        .iter()
        .all(|q| q.qtype == dns::TYPE_PTR && q.qclass == CLASS_IN));
    // exact bytes of the first question: _usmp._tcp.local PTR IN
    assert_eq!(
        &q[12..34],
        b"\x05_usmp\x04_tcp\x05local\x00\x00\x0c\x00\x01"
    );
}

#[test]
fn finds_the_announced_gateway() {
    let (f, stats) = ask(
        &Options::default(),
        &[gw("kitchen", Service::Tcp, [10, 0, 0, 7], 9000)],
    );
    let f = f.expect("found");
    assert_eq!(f.instance(), b"kitchen");
    assert_eq!(
        (f.service, f.addr, f.port),
        (Service::Tcp, [10, 0, 0, 7], 9000)
    );
    assert_eq!(f.version, Some(Version::V2));
    assert_eq!((stats.queries, stats.answers, stats.malformed), (1, 1, 0));
}

#[test]
fn filters_by_instance_service_and_version() {
    let a = gw("alpha", Service::Tcp, [10, 0, 0, 1], 9001);
    let b = gw("beta", Service::Udp, [10, 0, 0, 2], 9002);
    let mut c = gw("gamma", Service::Tcp, [10, 0, 0, 3], 9003);
    c.version = Some(Version::V1);
    let all = [a, b, c];
    let name = |o: &Options<'_>| ask(o, &all).0.map(|f| f.instance().to_vec());
    let opts = |instance: Option<&'static [u8]>, services, version| Options {
        instance,
        services,
        version,
        ..Options::default()
    };
    assert_eq!(
        name(&opts(None, Services::ALL, None)),
        Some(b"alpha".to_vec())
    );
    assert_eq!(
        name(&opts(Some(b"BETA"), Services::ALL, None)),
        Some(b"beta".to_vec())
    );
    assert_eq!(name(&opts(Some(b"beta"), Services::TCP, None)), None);
    assert_eq!(
        name(&opts(None, Services::UDP, None)),
        Some(b"beta".to_vec())
    );
    assert_eq!(
        name(&opts(Some(b"gamma"), Services::ALL, Some(Version::V2))),
        None
    );
    assert_eq!(
        name(&opts(Some(b"gamma"), Services::ALL, Some(Version::V1))),
        Some(b"gamma".to_vec())
    );
    assert_eq!(name(&opts(Some(b"delta"), Services::ALL, None)), None);
}

#[test]
fn several_instances_in_one_answer() {
    let answer = raw_answer(&[(b"one", 1), (b"two", 2)], [192, 168, 0, 9]);
    let mut seen = vec![];
    gateways_in(&answer, &Options::default(), |f| {
        seen.push((f.instance().to_vec(), f.port))
    })
    .unwrap();
    assert_eq!(seen, vec![(b"one".to_vec(), 1), (b"two".to_vec(), 2)]);
    let two_only = Options {
        instance: Some(b"two"),
        ..Options::default()
    };
    let mut r = Resolver::new(0, &two_only).unwrap();
    assert_eq!(
        r.handle_datagram(0, &answer).unwrap().map(|f| f.port),
        Some(2)
    );
}

/// A responder that answers only the questions asked, with no additional records: the
/// resolver must ask for SRV/TXT, then for the address, in follow-up queries.
#[test]
fn follows_up_on_partial_answers() {
    let a = gw("split", Service::Udp, [172, 16, 0, 5], 7777);
    let mut r = Resolver::new(0, &Options::default()).unwrap();
    let mut q = [0u8; DATAGRAM_LEN];
    let mut now = 0;
    let mut answers = 0;
    let found = loop {
        let n = r
            .poll_transmit(now, &mut q)
            .unwrap()
            .expect("a query is due");
        // Answer each question on its own (no additionals), one datagram per question.
        let msg = Message::parse(&q[..n]).unwrap();
        let mut got = None;
        for question in msg.questions().map(|x| x.unwrap()) {
            let mut one = [0u8; 300];
            let mut w = Writer::new(&mut one, 0, 0).unwrap();
            w.question(&question.name, question.qtype, question.qclass)
                .unwrap();
            let single = w.finish();
            let mut full = [0u8; DATAGRAM_LEN];
            if let Some(m) = a.answer(&one[..single], false, &mut full).unwrap() {
                // strip the additional section: keep the answers only
                let cut = strip_additionals(&full[..m]);
                answers += 1;
                if let Some(f) = r.handle_datagram(now, &cut).unwrap() {
                    got = Some(f);
                }
            }
        }
        if let Some(f) = got {
            break f;
        }
        now += 1;
        assert!(now < 5, "no progress");
    };
    assert_eq!(
        (found.addr, found.port, found.instance()),
        ([172, 16, 0, 5], 7777, &b"split"[..])
    );
    assert!(answers >= 3, "PTR, then SRV/TXT, then A: {answers}");
    assert_eq!(r.stats().queries, 3);
}

/// The answers of a DNS message without its additional section.
fn strip_additionals(m: &[u8]) -> Vec<u8> {
    let msg = Message::parse(m).unwrap();
    let an = u16::from_be_bytes([m[6], m[7]]) as usize;
    let mut out = [0u8; DATAGRAM_LEN];
    let mut w = Writer::new(&mut out, msg.id, msg.flags).unwrap();
    for rec in msg.records().take(an).map(|r| r.unwrap()) {
        let data = match rec.data {
            RData::A(a) => WriteData::A(a),
            RData::Ptr(n) => WriteData::Ptr(n),
            RData::Srv { port, target, .. } => WriteData::Srv { port, target },
            RData::Txt(_) => WriteData::Txt(&[b"v=2"]),
            _ => unreachable!(),
        };
        w.record(Section::Answer, &rec.name, rec.class, rec.ttl, &data)
            .unwrap();
    }
    let n = w.finish();
    out[..n].to_vec()
}

#[test]
fn queries_repeat_at_growing_intervals_until_the_timeout() {
    let opts = Options {
        timeout_ms: 10_000,
        ..Options::default()
    };
    let start = u32::MAX - 3000; // the clock wraps during the run
    let mut r = Resolver::new(start, &opts).unwrap();
    let mut q = [0u8; DATAGRAM_LEN];
    let mut sent = vec![];
    let mut now = start;
    while !r.expired(now) {
        if r.poll_transmit(now, &mut q).unwrap().is_some() {
            sent.push(now.wrapping_sub(start));
        }
        let next = r.poll_timeout();
        assert!(next.wrapping_sub(now) as i32 >= 0, "deadline in the past");
        now = now.wrapping_add(100);
    }
    assert_eq!(sent, vec![0, 1000, 3000, 7000]);
    assert_eq!(r.failure(), Error::Timeout);
    assert_eq!(r.poll_transmit(now, &mut q).unwrap(), None);
}

#[test]
fn bad_options_are_refused() {
    let long = [b'a'; 64];
    for instance in [&b""[..], &long[..]] {
        let o = Options {
            instance: Some(instance),
            ..Options::default()
        };
        assert_eq!(Resolver::new(0, &o).err(), Some(Error::InvalidArg));
    }
    assert_eq!(Services::from_bits(0), None);
    assert_eq!(Services::from_bits(4), None);
    let mut r = Resolver::new(0, &Options::default()).unwrap();
    assert_eq!(
        r.poll_transmit(0, &mut [0u8; 20]),
        Err(Error::BufferOverflow)
    );
}

// --------------------------------------------------------------------------- hostile input

/// A response header with `an` answers, then `body`.
fn answer(an: u16, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0, 0, 0x84, 0, 0, 0];
    m.extend_from_slice(&an.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(body);
    m
}

/// A record header after a name: type, class IN, TTL 120, rdlength.
fn rr(rtype: u16, rdlen: u16) -> Vec<u8> {
    let mut v = rtype.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 1, 0, 0, 0, 120]);
    v.extend_from_slice(&rdlen.to_be_bytes());
    v
}

const SVC: &[u8] = b"\x05_usmp\x04_tcp\x05local\x00";

fn hostile() -> Vec<(&'static str, Vec<u8>, DnsError)> {
    let mut cases = vec![];
    cases.push(("short header", vec![0, 0, 0x84, 0, 0], DnsError::Truncated));
    cases.push(("count beyond the end", answer(3, &[]), DnsError::Truncated));
    // a pointer to itself at offset 12
    cases.push((
        "self pointer",
        answer(1, &[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0]),
        DnsError::BadPointer,
    ));
    // two names pointing at each other: 12 -> 14 (forward), 14 -> 12
    let mut body = vec![0xC0, 14, 0xC0, 12];
    body.extend(rr(1, 4));
    body.extend([1, 2, 3, 4]);
    cases.push(("pointer loop", answer(1, &body), DnsError::BadPointer));
    // label, then a pointer back into the same label run: 12 "a" then ptr -> 12
    let mut body = vec![1, b'a', 0xC0, 12];
    body.extend(rr(1, 4));
    body.extend([1, 2, 3, 4]);
    cases.push((
        "loop through a label",
        answer(1, &body),
        DnsError::BadPointer,
    ));
    cases.push((
        "pointer into the header",
        answer(1, &[0xC0, 2, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0]),
        DnsError::BadPointer,
    ));
    // a chain of 33 pointers inside opaque rdata, each to the one before, and a name
    // pointing at its end: 34 pointers to follow
    cases.push((
        "34 chained pointers",
        pointer_chain(33),
        DnsError::BadPointer,
    ));
    // 5 labels of 63 bytes: 320 bytes expanded
    let mut body = vec![];
    for _ in 0..5 {
        body.push(63);
        body.extend([b'x'; 63]);
    }
    body.push(0);
    body.extend(rr(1, 4));
    body.extend([1, 2, 3, 4]);
    cases.push(("name of 321 bytes", answer(1, &body), DnsError::NameTooLong));
    // a long name reached through compression: 4 x 63 at 12, then "x63" + ptr -> 12
    let mut body = vec![];
    for _ in 0..4 {
        body.push(63);
        body.extend([b'y'; 63]);
    }
    body.push(0);
    body.extend(rr(1, 4));
    body.extend([1, 2, 3, 4]);
    body.push(10);
    body.extend([b'z'; 10]);
    body.extend([0xC0, 12]);
    body.extend(rr(1, 4));
    body.extend([1, 2, 3, 4]);
    cases.push((
        "long through a pointer",
        answer(2, &body),
        DnsError::NameTooLong,
    ));
    cases.push((
        "label type 0x40",
        answer(1, &[0x41, b'a', 0]),
        DnsError::BadLabel,
    ));
    cases.push((
        "label type 0x80",
        answer(1, &[0x81, b'a', 0]),
        DnsError::BadLabel,
    ));
    cases.push((
        "label past the end",
        answer(1, &[9, b'a', b'b']),
        DnsError::Truncated,
    ));
    let mut body = SVC.to_vec();
    body.extend(rr(1, 3));
    body.extend([1, 2, 3]);
    cases.push(("A record of 3 bytes", answer(1, &body), DnsError::BadRecord));
    let mut body = SVC.to_vec();
    body.extend(rr(33, 6));
    body.extend([0, 0, 0, 0, 0x23, 0x28]);
    cases.push((
        "SRV without a target",
        answer(1, &body),
        DnsError::BadRecord,
    ));
    let mut body = SVC.to_vec();
    body.extend(rr(12, 4));
    body.extend([1, b'a', 0, 0xFF]);
    cases.push((
        "PTR name shorter than its rdata",
        answer(1, &body),
        DnsError::BadRecord,
    ));
    let mut body = SVC.to_vec();
    body.extend(rr(12, 2));
    body.extend([1, b'a', 0]);
    cases.push((
        "PTR name longer than its rdata",
        answer(1, &body),
        DnsError::BadRecord,
    ));
    let mut body = SVC.to_vec();
    body.extend(rr(16, 3));
    body.extend([5, b'v', b'=']);
    cases.push(("TXT string overrun", answer(1, &body), DnsError::BadRecord));
    let mut body = SVC.to_vec();
    body.extend(rr(1, 40));
    body.extend([1, 2, 3, 4]);
    cases.push(("rdata past the end", answer(1, &body), DnsError::Truncated));
    cases
}

/// A root name at 12 with a record of type 99 whose rdata is `n` pointers, the first to
/// 12 and each later one to the one before; then an A record whose name points at the
/// last: `n + 1` pointers to follow.
fn pointer_chain(n: usize) -> Vec<u8> {
    let mut body = vec![0u8];
    body.extend(rr(99, 2 * n as u16));
    let mut prev = 12u16;
    for _ in 0..n {
        let here = 12 + body.len() as u16;
        body.extend([0xC0 | (prev >> 8) as u8, prev as u8]);
        prev = here;
    }
    body.extend([0xC0 | (prev >> 8) as u8, prev as u8]);
    body.extend(rr(1, 4));
    body.extend([1, 2, 3, 4]);
    answer(2, &body)
}

#[test]
fn pointer_chains_up_to_the_limit_are_read() {
    let m = pointer_chain(dns::MAX_POINTERS - 1);
    assert_eq!(Message::parse(&m).unwrap().check(), Ok(()));
    let m = pointer_chain(dns::MAX_POINTERS);
    assert_eq!(
        Message::parse(&m).unwrap().check(),
        Err(DnsError::BadPointer)
    );
}

#[test]
fn hostile_answers_are_named_errors_and_the_wait_goes_on() {
    let mut r = Resolver::new(0, &Options::default()).unwrap();
    let cases = hostile();
    for (what, packet, want) in &cases {
        assert_eq!(r.handle_datagram(1, packet), Err(*want), "{what}");
        assert_eq!(
            Message::parse(packet).and_then(|m| m.check()),
            Err(*want),
            "{what}"
        );
        assert_eq!(
            gateways_in(packet, &Options::default(), |_| panic!()),
            Err(*want),
            "{what}"
        );
    }
    let s = r.stats();
    assert_eq!((s.malformed as usize, s.answers), (cases.len(), 0));
    assert_eq!(s.last_error, Some(cases.last().unwrap().2));
    assert_eq!(r.failure(), Error::BadFrame);
    // ... and a real answer afterwards is still taken.
    let mut q = [0u8; DATAGRAM_LEN];
    let n = r.poll_transmit(0, &mut q).unwrap().unwrap();
    let mut buf = [0u8; DATAGRAM_LEN];
    let a = gw("late", Service::Tcp, [10, 1, 1, 1], 1234);
    let m = a.answer(&q[..n], true, &mut buf).unwrap().unwrap();
    assert_eq!(
        r.handle_datagram(2, &buf[..m]).unwrap().map(|f| f.port),
        Some(1234)
    );
}

#[test]
fn compressed_names_pointing_backwards_are_read() {
    // PTR _usmp._tcp.local -> "gw" + ptr(12); SRV gw -> ptr to the "gw" name; A for
    // "h" + ptr to "local" inside the first name.
    let mut body = SVC.to_vec(); // at 12; "local" label at 12 + 6 + 5 = 23
    body.extend(rr(12, 5));
    let gw_at = 12 + body.len() as u8;
    body.extend([2, b'g', b'w', 0xC0, 12]);
    body.extend([0xC0, gw_at]); // SRV owner: pointer to the instance name
    body.extend(rr(33, 6 + 4));
    let host_at = 12 + body.len() as u8 + 6;
    body.extend([0, 0, 0, 0, 0x1F, 0x90, 1, b'h', 0xC0, 23]);
    body.extend([0xC0, host_at]);
    body.extend(rr(1, 4));
    body.extend([127, 0, 0, 1]);
    let m = answer(3, &body);
    let mut r = Resolver::new(0, &Options::default()).unwrap();
    let f = r.handle_datagram(0, &m).unwrap().expect("found");
    assert_eq!(
        (f.instance(), f.addr, f.port),
        (&b"gw"[..], [127, 0, 0, 1], 8080)
    );
}

/// A complete answer for `_usmp._tcp` instances (name, port) on one host, written field
/// by field: the PTRs as answers, the SRVs and the host's address as additionals.
fn raw_answer(instances: &[(&[u8], u16)], addr: [u8; 4]) -> Vec<u8> {
    let mut buf = [0u8; DATAGRAM_LEN];
    let mut w = Writer::new(&mut buf, 0, FLAG_QR | FLAG_AA).unwrap();
    let t = Service::Tcp.type_name();
    let names: Vec<_> = instances
        .iter()
        .map(|(i, _)| NameBuf::<128>::prefixed(i, &t).unwrap())
        .collect();
    let host = NameBuf::<128>::from_labels(&[b"h", b"local"]).unwrap();
    for n in &names {
        let ptr = WriteData::Ptr(n.name());
        w.record(Section::Answer, &t, CLASS_IN, 120, &ptr).unwrap();
    }
    for (n, (_, port)) in names.iter().zip(instances) {
        let srv = WriteData::Srv {
            port: *port,
            target: host.name(),
        };
        w.record(Section::Additional, &n.name(), CLASS_IN, 120, &srv)
            .unwrap();
    }
    let a = WriteData::A(addr);
    w.record(Section::Additional, &host.name(), CLASS_IN, 120, &a)
        .unwrap();
    let n = w.finish();
    buf[..n].to_vec()
}

#[test]
fn a_query_is_not_an_answer_and_unusable_records_are_skipped() {
    let mut r = Resolver::new(0, &Options::default()).unwrap();
    let mut q = [0u8; DATAGRAM_LEN];
    let n = r.poll_transmit(0, &mut q).unwrap().unwrap();
    assert_eq!(r.handle_datagram(0, &q[..n]), Ok(None));
    assert!(r
        .handle_datagram(0, &raw_answer(&[(b"ok", 1)], [10, 0, 0, 1]))
        .unwrap()
        .is_some());
    let unusable = [
        (&b"ok"[..], [10, 0, 0, 1], 0),
        (b"ok", [224, 0, 0, 1], 9000),
        (b"ok", [0, 0, 0, 0], 9000),
        (b"ok", [0, 1, 2, 3], 9000), // 0.0.0.0/8 (found by the fuzzer)
        (b"ok", [255, 255, 255, 255], 9000),
        (b"n\0ul", [10, 0, 0, 1], 9000), // a NUL in the name would cut the C string
    ];
    for (instance, addr, port) in unusable {
        let mut r = Resolver::new(0, &Options::default()).unwrap();
        assert_eq!(
            r.handle_datagram(0, &raw_answer(&[(instance, port)], addr)),
            Ok(None),
            "{addr:?}:{port}"
        );
    }
}

// --------------------------------------------------------------------------- the Rust face

/// A transport whose far end is the crate's responder, on a virtual clock.
struct Link<'a> {
    responders: Vec<Announcement<'a>>,
    inbox: Vec<Vec<u8>>,
    garbage_first: bool,
}

impl Transport for Link<'_> {
    fn is_datagram(&self) -> bool {
        true
    }
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.garbage_first {
            self.inbox.push(answer(1, &[0xC0, 12]));
        }
        for a in &self.responders {
            let mut buf = [0u8; DATAGRAM_LEN];
            if let Some(n) = a.answer(bytes, true, &mut buf)? {
                self.inbox.push(buf[..n].to_vec());
            }
        }
        Ok(())
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        if self.inbox.is_empty() {
            return Ok(None);
        }
        let d = self.inbox.remove(0);
        buf[..d.len()].copy_from_slice(&d);
        Ok(Some(d.len()))
    }
}

struct Virtual(u32);
impl Clock for Virtual {
    fn now_ms(&mut self) -> u32 {
        self.0
    }
    fn idle(&mut self) {
        self.0 = self.0.wrapping_add(10);
    }
}

#[test]
fn discover_over_a_transport() {
    let mut link = Link {
        responders: vec![gw("a", Service::Tcp, [10, 9, 8, 7], 4242)],
        inbox: vec![],
        garbage_first: true,
    };
    let mut clock = Virtual(77);
    let mut buf = [0u8; DATAGRAM_LEN];
    let f = discovery::discover(&mut link, &mut clock, &Options::default(), &mut buf).unwrap();
    assert_eq!((f.addr, f.port), ([10, 9, 8, 7], 4242));

    // nobody answers: Timeout after the timeout, on the virtual clock
    let mut link = Link {
        responders: vec![],
        inbox: vec![],
        garbage_first: false,
    };
    let mut clock = Virtual(0);
    let opts = Options {
        timeout_ms: 2500,
        ..Options::default()
    };
    assert_eq!(
        discovery::discover(&mut link, &mut clock, &opts, &mut buf),
        Err(Error::Timeout)
    );
    assert!((2500..2520).contains(&clock.0), "{}", clock.0);

    // only garbage answers: BadFrame
    let mut link = Link {
        responders: vec![],
        inbox: vec![],
        garbage_first: true,
    };
    assert_eq!(
        discovery::discover(&mut link, &mut Virtual(0), &opts, &mut buf),
        Err(Error::BadFrame)
    );
}

#[test]
fn announcement_answers_queries_of_other_resolvers() {
    // A multicast query (from port 5353) for the service type, as python-zeroconf and
    // Avahi send them: the answer has id 0, no questions, cache-flush on unique records.
    let mut q = [0u8; 64];
    let mut w = Writer::new(&mut q, 0x1234, 0).unwrap();
    w.question(&Service::Udp.type_name(), dns::TYPE_PTR, CLASS_IN)
        .unwrap();
    let n = w.finish();
    let a = gw("x", Service::Udp, [1, 2, 3, 4], 5);
    let mut buf = [0u8; DATAGRAM_LEN];
    let m = a.answer(&q[..n], false, &mut buf).unwrap().unwrap();
    let msg = Message::parse(&buf[..m]).unwrap();
    assert_eq!((msg.id, msg.questions().count()), (0, 0));
    let recs: Vec<_> = msg.records().map(|r| r.unwrap()).collect();
    assert_eq!(
        recs.iter().map(|r| r.rtype).collect::<Vec<_>>(),
        vec![12, 33, 16, 1]
    );
    assert_eq!(
        recs.iter()
            .map(|r| r.class & 0x8000 != 0)
            .collect::<Vec<_>>(),
        vec![false, true, true, true]
    );
    // legacy: id and question echoed, TTL <= 10
    let m = a.answer(&q[..n], true, &mut buf).unwrap().unwrap();
    let msg = Message::parse(&buf[..m]).unwrap();
    assert_eq!((msg.id, msg.questions().count()), (0x1234, 1));
    assert!(msg.records().all(|r| r.unwrap().ttl <= 10));
    // a query for another service: no answer
    let mut w = Writer::new(&mut q, 0, 0).unwrap();
    w.question(&Service::Tcp.type_name(), dns::TYPE_PTR, CLASS_IN)
        .unwrap();
    let n = w.finish();
    assert_eq!(a.answer(&q[..n], false, &mut buf).unwrap(), None);
    // the goodbye: every record with TTL 0
    let m = a.announce(&mut buf, true).unwrap();
    let msg = Message::parse(&buf[..m]).unwrap();
    assert_eq!(msg.records().count(), 4);
    assert!(msg.records().all(|r| r.unwrap().ttl == 0));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any bytes: an answer, nothing, or a named error — never a panic; and every
    /// message that checks can be walked to the end.
    #[test]
    fn any_datagram_is_handled(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut r = Resolver::new(0, &Options::default()).unwrap();
        let _ = r.handle_datagram(0, &data);
        if let Ok(m) = Message::parse(&data) {
            if m.check().is_ok() {
                for rec in m.records() {
                    let rec = rec.unwrap();
                    prop_assert!(rec.name.wire_len() <= dns::MAX_NAME);
                }
            }
        }
        let a = gw("p", Service::Tcp, [1, 1, 1, 1], 1);
        let _ = a.answer(&data, true, &mut [0u8; DATAGRAM_LEN]);
    }

    /// Mutations of a valid answer (one byte changed, or cut short) are handled the same way.
    #[test]
    fn mutated_answers_are_handled(pos in 0usize..200, val in any::<u8>(), cut in 0usize..200) {
        let a = gw("mutant", Service::Tcp, [10, 0, 0, 1], 9000);
        let mut q = [0u8; DATAGRAM_LEN];
        let n = Resolver::new(0, &Options::default()).unwrap().poll_transmit(0, &mut q).unwrap().unwrap();
        let mut buf = [0u8; DATAGRAM_LEN];
        let m = a.answer(&q[..n], true, &mut buf).unwrap().unwrap();
        let mut d = buf[..m].to_vec();
        if pos < d.len() { d[pos] = val; }
        d.truncate(m.saturating_sub(cut % 8));
        let mut r = Resolver::new(0, &Options::default()).unwrap();
        if let Ok(Some(f)) = r.handle_datagram(0, &d) {
            prop_assert!(f.port != 0 && !f.instance().contains(&0));
        }
    }
}
