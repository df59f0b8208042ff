//! The responder side: the records that announce one gateway, and the answer to an mDNS
//! query for them. Used by `usmp announce` (the host tool) and by tests; firmware that
//! only discovers never links it.

use super::dns::{
    Message, Name, NameBuf, Section, WriteData, Writer, CLASS_IN, CLASS_TOP_BIT, FLAG_AA, FLAG_QR,
    TYPE_A, TYPE_ANY, TYPE_PTR, TYPE_SRV, TYPE_TXT,
};
use super::{Service, MAX_INSTANCE};
use crate::{Error, Version};

/// TTL of the PTR records (RFC 6762 §10: 75 minutes for records not tied to a host).
pub const TTL_SHARED: u32 = 4500;
/// TTL of the SRV, TXT and A records (§10: 120 s for host-related records).
pub const TTL_UNIQUE: u32 = 120;
/// Longest TTL in answers to legacy unicast queries (§6.7).
pub const TTL_LEGACY: u32 = 10;

/// `_services._dns-sd._udp.local`, the service type enumeration name (RFC 6763 §9).
const SERVICES_ENUM: &[&[u8]] = &[b"_services", b"_dns-sd", b"_udp", b"local"];

const INSTANCE_NAME_LEN: usize = 1 + MAX_INSTANCE + 18;

/// One gateway as DNS-SD announces it.
#[derive(Clone, Copy, Debug)]
pub struct Announcement<'a> {
    /// Instance name (one label, 1..=63 bytes).
    pub instance: &'a [u8],
    /// TCP or UDP.
    pub service: Service,
    /// Host label: the host is announced as `<host>.local`.
    pub host: &'a [u8],
    /// The gateway's IPv4 address.
    pub addr: [u8; 4],
    /// Its port.
    pub port: u16,
    /// The wire version put into the TXT record (`v=1` / `v=2`), if any.
    pub version: Option<Version>,
}

/// Which records an answer carries.
#[derive(Clone, Copy, Debug, Default)]
struct Wanted {
    enumeration: bool,
    ptr: bool,
    srv: bool,
    txt: bool,
    a: bool,
}

impl Wanted {
    fn any(&self) -> bool {
        self.enumeration || self.ptr || self.srv || self.txt || self.a
    }
}

impl Announcement<'_> {
    fn names(&self) -> Result<(NameBuf<INSTANCE_NAME_LEN>, NameBuf<66>), Error> {
        if self.instance.len() > MAX_INSTANCE || self.port == 0 {
            return Err(Error::InvalidArg);
        }
        let instance = NameBuf::prefixed(self.instance, &self.service.type_name())?;
        let host = NameBuf::from_labels(&[self.host, b"local"])?;
        Ok((instance, host))
    }

    /// An unsolicited announcement of every record (RFC 6762 §8.3), into `buf`; with
    /// `goodbye`, the same records with TTL 0, which withdraw it (§10.1).
    pub fn announce(&self, buf: &mut [u8], goodbye: bool) -> Result<usize, Error> {
        let all = Wanted {
            enumeration: false,
            ptr: true,
            srv: true,
            txt: true,
            a: true,
        };
        let mut w = Writer::new(buf, 0, FLAG_QR | FLAG_AA)?;
        self.write(&mut w, all, Wanted::default(), false, goodbye)?;
        Ok(w.finish())
    }

    /// The answer to the query `query`, into `buf`: `Ok(None)` when it asks for nothing
    /// announced here (or is not a query). `legacy` (the query came from a port other
    /// than 5353): a unicast answer that echoes the id and the questions, TTLs at most
    /// 10 s, no cache-flush bits (RFC 6762 §6.7). Else a multicast answer.
    pub fn answer(
        &self,
        query: &[u8],
        legacy: bool,
        buf: &mut [u8],
    ) -> Result<Option<usize>, Error> {
        let msg = Message::parse(query).map_err(|_| Error::BadFrame)?;
        msg.check().map_err(|_| Error::BadFrame)?;
        if !msg.is_query() {
            return Ok(None);
        }
        let (instance, host) = self.names()?;
        let type_name = self.service.type_name();
        let enum_name = NameBuf::<40>::from_labels(SERVICES_ENUM)?;
        let mut asked = Wanted::default();
        for q in msg.questions().flatten() {
            let t = q.qtype;
            let is = |want: u16| t == want || t == TYPE_ANY;
            if q.qclass & !CLASS_TOP_BIT != CLASS_IN && q.qclass & !CLASS_TOP_BIT != 255 {
                continue;
            }
            if q.name.same(&enum_name.name()) && is(TYPE_PTR) {
                asked.enumeration = true;
            } else if q.name.same(&type_name) && is(TYPE_PTR) {
                asked.ptr = true;
            } else if q.name.same(&instance.name()) {
                asked.srv |= is(TYPE_SRV);
                asked.txt |= is(TYPE_TXT);
            } else if q.name.same(&host.name()) && is(TYPE_A) {
                asked.a = true;
            }
        }
        if !asked.any() {
            return Ok(None);
        }
        // The additional records that complete what was asked (RFC 6763 §12).
        let extra = Wanted {
            enumeration: false,
            ptr: false,
            srv: asked.ptr && !asked.srv,
            txt: asked.ptr && !asked.txt,
            a: (asked.ptr || asked.srv) && !asked.a,
        };
        let (id, flags) = if legacy {
            (msg.id, FLAG_QR | FLAG_AA)
        } else {
            (0, FLAG_QR | FLAG_AA)
        };
        let mut w = Writer::new(buf, id, flags)?;
        if legacy {
            for q in msg.questions().flatten() {
                w.question(&q.name, q.qtype, q.qclass & !CLASS_TOP_BIT)?;
            }
        }
        self.write(&mut w, asked, extra, legacy, false)?;
        Ok(Some(w.finish()))
    }

    fn write(
        &self,
        w: &mut Writer<'_>,
        answers: Wanted,
        additional: Wanted,
        legacy: bool,
        goodbye: bool,
    ) -> Result<(), Error> {
        let (instance, host) = self.names()?;
        let type_name = self.service.type_name();
        let enum_name = NameBuf::<40>::from_labels(SERVICES_ENUM)?;
        let v: &[u8] = match self.version {
            Some(Version::V1) => b"v=1",
            Some(Version::V2) => b"v=2",
            None => b"",
        };
        let txt_all: [&[u8]; 2] = [b"txtvers=1", v];
        let txt = if v.is_empty() {
            &txt_all[..1]
        } else {
            &txt_all[..]
        };
        let ttl = |t: u32| match (goodbye, legacy) {
            (true, _) => 0,
            (false, true) => t.min(TTL_LEGACY),
            (false, false) => t,
        };
        // Unique records carry the cache-flush bit, except in legacy answers.
        let unique = if legacy {
            CLASS_IN
        } else {
            CLASS_IN | CLASS_TOP_BIT
        };
        let instance_name = instance.name();
        let host_name = host.name();
        let records: [(bool, bool, &Name<'_>, u16, u32, WriteData<'_>); 5] = [
            (
                answers.enumeration,
                additional.enumeration,
                &enum_name.name(),
                CLASS_IN,
                TTL_SHARED,
                WriteData::Ptr(type_name),
            ),
            (
                answers.ptr,
                additional.ptr,
                &type_name,
                CLASS_IN,
                TTL_SHARED,
                WriteData::Ptr(instance_name),
            ),
            (
                answers.srv,
                additional.srv,
                &instance_name,
                unique,
                TTL_UNIQUE,
                WriteData::Srv {
                    port: self.port,
                    target: host_name,
                },
            ),
            (
                answers.txt,
                additional.txt,
                &instance_name,
                unique,
                TTL_UNIQUE,
                WriteData::Txt(txt),
            ),
            (
                answers.a,
                additional.a,
                &host_name,
                unique,
                TTL_UNIQUE,
                WriteData::A(self.addr),
            ),
        ];
        for (section, pick) in [(Section::Answer, 0), (Section::Additional, 1)] {
            for (in_answer, in_additional, name, class, t, data) in &records {
                if [*in_answer, *in_additional]
                    .get(pick)
                    .copied()
                    .unwrap_or(false)
                {
                    w.record(section, name, *class, ttl(*t), data)?;
                }
            }
        }
        Ok(())
    }
}
