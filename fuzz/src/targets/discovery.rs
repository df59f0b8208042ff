//! Gateway discovery: one datagram, as the device's resolver gets it from any host on the
//! link, and as `usmp announce` gets a query. Invariants: the resolver's error is the DNS
//! reader's error; a message that reads clean can be walked to the end, every name within
//! 255 bytes and labels of 1..=63 bytes, and copied; a gateway the resolver takes has a
//! port, a usable address and a NUL-free instance name, and is one `gateways_in` lists;
//! an answer the responder writes to any query reads clean and names only its instance.
use usmp::discovery::announce::Announcement;
use usmp::discovery::dns::{Message, NameBuf, RData, MAX_LABEL, MAX_NAME};
use usmp::discovery::{gateways_in, Options, Resolver, Service, DATAGRAM_LEN};
use usmp::Version;

/// One execution of the target.
pub fn run(data: &[u8]) {
    let opts = Options::default();
    let mut r = Resolver::new(0, &opts).expect("resolver");
    let got = r.handle_datagram(0, data);
    let read = Message::parse(data).and_then(|m| m.check().map(|()| m));
    match (&got, &read) {
        (Err(e), Err(f)) => assert_eq!(e, f),
        (Err(e), Ok(_)) => panic!("resolver refused {e:?} what the reader accepts"),
        (Ok(_), Err(e)) => panic!("resolver took what the reader refuses ({e:?})"),
        (Ok(_), Ok(_)) => {}
    }
    if let Ok(m) = read {
        let mut records = 0;
        for rec in m.records() {
            let rec = rec.expect("a checked message walks clean");
            records += 1;
            let mut names = vec![rec.name];
            match rec.data {
                RData::Ptr(n) => names.push(n),
                RData::Srv { target, .. } => names.push(target),
                RData::Txt(t) => {
                    assert!(t.strings().map(|s| s.len() + 1).sum::<usize>() <= data.len())
                }
                _ => {}
            }
            for n in names {
                assert!(n.wire_len() <= MAX_NAME);
                assert!(n.labels().all(|l| (1..=MAX_LABEL).contains(&l.len())));
                let copy = NameBuf::<{ MAX_NAME }>::copy_of(&n).expect("a checked name fits");
                assert!(copy.name().same(&n) && n.same(&copy.name()));
            }
        }
        assert!(
            records * 11 <= data.len(),
            "{records} records in {} bytes",
            data.len()
        );
    }
    if let Ok(Some(found)) = got {
        assert!(found.port != 0 && found.addr[0] != 0 && found.addr[0] < 224);
        assert!(!found.instance().is_empty() && !found.instance().contains(&0));
        let mut listed = vec![];
        gateways_in(data, &opts, |f| listed.push(f)).expect("listed");
        assert!(listed.contains(&found), "{found:?} not in {listed:?}");
    }

    let a = Announcement {
        instance: b"fuzz gateway",
        service: Service::Tcp,
        host: b"fuzz-host",
        addr: [10, 0, 0, 1],
        port: 9000,
        version: Some(Version::V2),
    };
    for legacy in [false, true] {
        let mut out = [0u8; DATAGRAM_LEN];
        if let Ok(Some(n)) = a.answer(data, legacy, &mut out) {
            let m = Message::parse(&out[..n]).expect("own answer");
            m.check().expect("own answer reads clean");
            assert!(m.is_answer());
            let mut found = vec![];
            gateways_in(&out[..n], &opts, |f| found.push(f)).expect("own answer");
            assert!(found
                .iter()
                .all(|f| f.instance() == b"fuzz gateway" && f.port == 9000));
        }
    }
}
