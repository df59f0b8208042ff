//! DNS message codec for multicast DNS (RFC 1035 §4, RFC 6762): a strict reader and a small
//! writer, both over caller buffers, no heap.
//!
//! The reader never trusts a count or a length: every name, record and rdata is bounded
//! by the datagram, and a malformed one is a [`DnsError`] by name. Names are not copied
//! out: a [`Name`] is a checked position in the datagram whose labels are walked on
//! demand, through compression pointers that must point strictly backwards (before the
//! part of the name being read), so a pointer loop cannot exist; at most
//! [`MAX_POINTERS`] pointers are followed per name and the expanded name is at most
//! [`MAX_NAME`] bytes long.
//!
//! The writer emits uncompressed names; it is enough for queries and for the answers of
//! one service instance.

use crate::Error;

/// Length of the DNS header.
pub const HEADER_LEN: usize = 12;
/// Longest name in wire form, length bytes and the root included (RFC 1035 §3.1).
pub const MAX_NAME: usize = 255;
/// Longest label.
pub const MAX_LABEL: usize = 63;
/// Compression pointers followed in one name at most (a real name needs a handful).
pub const MAX_POINTERS: usize = 32;

/// Record type A (an IPv4 address).
pub const TYPE_A: u16 = 1;
/// Record type PTR (DNS-SD: service type → instance).
pub const TYPE_PTR: u16 = 12;
/// Record type TXT (DNS-SD: the instance's key=value strings).
pub const TYPE_TXT: u16 = 16;
/// Record type AAAA (an IPv6 address).
pub const TYPE_AAAA: u16 = 28;
/// Record type SRV (DNS-SD: instance → host and port).
pub const TYPE_SRV: u16 = 33;
/// Query type ANY.
pub const TYPE_ANY: u16 = 255;
/// Class IN.
pub const CLASS_IN: u16 = 1;
/// Top bit of a question's class: unicast response requested ("QU", RFC 6762 §5.4); of a
/// record's class: cache flush (§10.2).
pub const CLASS_TOP_BIT: u16 = 0x8000;
/// Header flag: this message is a response.
pub const FLAG_QR: u16 = 0x8000;
/// Header flag: authoritative answer (mDNS responses set it).
pub const FLAG_AA: u16 = 0x0400;

/// Why a datagram is not a well-formed DNS message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DnsError {
    /// The header, a name, a record or its rdata runs past the end of the datagram (or
    /// the header's counts promise more than it holds).
    Truncated = 1,
    /// A label of the reserved types 0x40 / 0x80.
    BadLabel = 2,
    /// A name longer than 255 bytes once expanded.
    NameTooLong = 3,
    /// A compression pointer that does not point strictly backwards (a loop), points into
    /// the header, or is one too many.
    BadPointer = 4,
    /// Rdata that does not match its type: an A record not 4 bytes long, an SRV shorter
    /// than 7, a name that does not end where the rdata ends, TXT strings that overrun.
    BadRecord = 5,
}

impl DnsError {
    /// The error's name, as C code would spell it (NUL-terminated).
    pub const fn name(self) -> &'static [u8] {
        match self {
            Self::Truncated => b"USMP_DNS_TRUNCATED\0",
            Self::BadLabel => b"USMP_DNS_BAD_LABEL\0",
            Self::NameTooLong => b"USMP_DNS_NAME_TOO_LONG\0",
            Self::BadPointer => b"USMP_DNS_BAD_POINTER\0",
            Self::BadRecord => b"USMP_DNS_BAD_RECORD\0",
        }
    }
}

impl core::fmt::Display for DnsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let n = self.name();
        f.write_str(core::str::from_utf8(n.strip_suffix(&[0]).unwrap_or(n)).unwrap_or("?"))
    }
}

fn byte(buf: &[u8], at: usize) -> Result<u8, DnsError> {
    buf.get(at).copied().ok_or(DnsError::Truncated)
}

fn u16_at(buf: &[u8], at: usize) -> Result<u16, DnsError> {
    Ok(u16::from_be_bytes([byte(buf, at)?, byte(buf, at + 1)?]))
}

fn u32_at(buf: &[u8], at: usize) -> Result<u32, DnsError> {
    Ok(u32::from(u16_at(buf, at)?) << 16 | u32::from(u16_at(buf, at + 2)?))
}

fn slice(buf: &[u8], from: usize, len: usize) -> Result<&[u8], DnsError> {
    buf.get(from..from.checked_add(len).ok_or(DnsError::Truncated)?)
        .ok_or(DnsError::Truncated)
}

// ---------------------------------------------------------------------------------------
// Names

/// A checked domain name inside a buffer (a datagram, or a [`NameBuf`]). Comparisons are
/// case-insensitive for ASCII, as DNS names are.
#[derive(Clone, Copy, Debug)]
pub struct Name<'a> {
    buf: &'a [u8],
    start: usize,
}

/// Reads the name at `pos`; returns it and the offset just after its bytes in place.
fn read_name(buf: &[u8], pos: usize) -> Result<(Name<'_>, usize), DnsError> {
    let mut at = pos;
    let mut segment = pos; // where the run of labels being read started
    let mut end = None;
    let mut wire_len = 1; // the root label
    let mut pointers = 0;
    loop {
        let len = byte(buf, at)?;
        match len & 0xC0 {
            0x00 if len == 0 => {
                let name = Name { buf, start: pos };
                return Ok((name, end.unwrap_or(at + 1)));
            }
            0x00 => {
                let l = usize::from(len);
                wire_len += l + 1;
                if wire_len > MAX_NAME {
                    return Err(DnsError::NameTooLong);
                }
                slice(buf, at + 1, l)?;
                at += 1 + l;
            }
            0xC0 => {
                let target = usize::from(len & 0x3F) << 8 | usize::from(byte(buf, at + 1)?);
                end.get_or_insert(at + 2);
                pointers += 1;
                if target < HEADER_LEN || target >= segment || pointers > MAX_POINTERS {
                    return Err(DnsError::BadPointer);
                }
                segment = target;
                at = target;
            }
            _ => return Err(DnsError::BadLabel),
        }
    }
}

/// The labels of a [`Name`], first to last (the root not included).
#[derive(Clone, Debug)]
pub struct Labels<'a> {
    buf: &'a [u8],
    at: usize,
    hops: usize,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // The name was checked when it was made; the bounds are kept anyway.
        while self.hops <= MAX_POINTERS {
            let len = *self.buf.get(self.at)?;
            if len & 0xC0 == 0xC0 {
                let lo = *self.buf.get(self.at + 1)?;
                self.at = usize::from(len & 0x3F) << 8 | usize::from(lo);
                self.hops += 1;
                continue;
            }
            if len == 0 || len & 0xC0 != 0 {
                return None;
            }
            let label = self.buf.get(self.at + 1..self.at + 1 + usize::from(len))?;
            self.at += 1 + usize::from(len);
            return Some(label);
        }
        None
    }
}

impl<'a> Name<'a> {
    /// The labels.
    pub fn labels(&self) -> Labels<'a> {
        Labels {
            buf: self.buf,
            at: self.start,
            hops: 0,
        }
    }

    /// Same name (ASCII case-insensitive).
    pub fn same(&self, other: &Name<'_>) -> bool {
        let (mut a, mut b) = (self.labels(), other.labels());
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => {}
                _ => return false,
            }
        }
    }

    /// If this name is `<one label>.<parent>`, that first label.
    pub fn child_of(&self, parent: &Name<'_>) -> Option<&'a [u8]> {
        let mut labels = self.labels();
        let first = labels.next()?;
        let mut rest = parent.labels();
        loop {
            match (labels.next(), rest.next()) {
                (None, None) => return Some(first),
                (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => {}
                _ => return None,
            }
        }
    }

    /// Length in wire form, uncompressed (root byte included).
    pub fn wire_len(&self) -> usize {
        self.labels().map(|l| l.len() + 1).sum::<usize>() + 1
    }
}

/// A name in uncompressed wire form in a fixed buffer of `N` bytes: names the caller
/// builds (a query's, an announcement's) or keeps (a host name to ask for later).
#[derive(Clone, Copy, Debug)]
pub struct NameBuf<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> NameBuf<N> {
    /// The name `labels[0].labels[1]...` ; `InvalidArg` for an empty or over-long label,
    /// `BufferOverflow` when it does not fit in `N` (or 255) bytes.
    pub fn from_labels(labels: &[&[u8]]) -> Result<Self, Error> {
        let mut b = Self {
            bytes: [0; N],
            len: 0,
        };
        for l in labels {
            b.push(l)?;
        }
        b.finish()
    }

    /// The name `first.<rest>`.
    pub fn prefixed(first: &[u8], rest: &Name<'_>) -> Result<Self, Error> {
        let mut b = Self {
            bytes: [0; N],
            len: 0,
        };
        b.push(first)?;
        for l in rest.labels() {
            b.push(l)?;
        }
        b.finish()
    }

    /// A copy of `name`.
    pub fn copy_of(name: &Name<'_>) -> Result<Self, Error> {
        let mut b = Self::root();
        b.set(name)?;
        Ok(b)
    }

    /// The root name (no labels).
    pub const fn root() -> Self {
        Self {
            bytes: [0; N],
            len: 1,
        }
    }

    /// Makes this a copy of `name`, in place; on an error it is the root name.
    pub fn set(&mut self, name: &Name<'_>) -> Result<(), Error> {
        self.len = 0;
        let r = name.labels().try_for_each(|l| self.push(l));
        if r.is_err() {
            self.len = 0;
        }
        self.terminate()?;
        r
    }

    fn push(&mut self, label: &[u8]) -> Result<(), Error> {
        if label.is_empty() || label.len() > MAX_LABEL {
            return Err(Error::InvalidArg);
        }
        let end = self.len + 1 + label.len();
        // + 1 for the root byte that finish() adds
        if end + 1 > N || end + 1 > MAX_NAME {
            return Err(Error::BufferOverflow);
        }
        let dst = self
            .bytes
            .get_mut(self.len..end)
            .ok_or(Error::BufferOverflow)?;
        if let Some((len_byte, rest)) = dst.split_first_mut() {
            *len_byte = label.len() as u8;
            rest.copy_from_slice(label);
        }
        self.len = end;
        Ok(())
    }

    /// Adds the root byte (push leaves room for it).
    fn terminate(&mut self) -> Result<(), Error> {
        *self.bytes.get_mut(self.len).ok_or(Error::BufferOverflow)? = 0;
        self.len += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<Self, Error> {
        self.terminate()?;
        Ok(self)
    }

    /// The name.
    pub fn name(&self) -> Name<'_> {
        Name {
            buf: self.bytes.get(..self.len).unwrap_or(&[0]),
            start: 0,
        }
    }
}

/// `_usmp._tcp.local` in wire form.
const SERVICE_TCP: &[u8] = b"\x05_usmp\x04_tcp\x05local\x00";
/// `_usmp._udp.local` in wire form.
const SERVICE_UDP: &[u8] = b"\x05_usmp\x04_udp\x05local\x00";

/// The DNS-SD service type of gateways over TCP, `_usmp._tcp.local`.
pub const fn service_tcp() -> Name<'static> {
    Name {
        buf: SERVICE_TCP,
        start: 0,
    }
}

/// The DNS-SD service type of gateways over UDP, `_usmp._udp.local`.
pub const fn service_udp() -> Name<'static> {
    Name {
        buf: SERVICE_UDP,
        start: 0,
    }
}

// ---------------------------------------------------------------------------------------
// Messages

/// A DNS message: its header checked, the rest read on demand by [`Message::questions`]
/// and [`Message::records`] (or all at once by [`Message::check`]).
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    buf: &'a [u8],
    /// Transaction id (0 in multicast messages; echoed in answers to legacy unicast queries).
    pub id: u16,
    /// Flags: [`FLAG_QR`], opcode, [`FLAG_AA`], TC, RD, RA, rcode.
    pub flags: u16,
    qd: u16,
    records: u32,
}

/// One question.
#[derive(Clone, Copy, Debug)]
pub struct Question<'a> {
    /// The name asked for.
    pub name: Name<'a>,
    /// The type asked for.
    pub qtype: u16,
    /// The class, top bit = unicast response requested.
    pub qclass: u16,
}

/// One resource record (answer, authority or additional: the sections are not told apart).
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// The owner name.
    pub name: Name<'a>,
    /// The record type.
    pub rtype: u16,
    /// The class, top bit = cache flush.
    pub class: u16,
    /// Seconds the record may be cached.
    pub ttl: u32,
    /// The data, parsed for the types discovery uses.
    pub data: RData<'a>,
}

/// Record data.
#[derive(Clone, Copy, Debug)]
pub enum RData<'a> {
    /// An IPv4 address.
    A([u8; 4]),
    /// An IPv6 address.
    Aaaa([u8; 16]),
    /// A pointer to another name.
    Ptr(Name<'a>),
    /// Where a service instance is.
    Srv {
        /// Lower is preferred.
        priority: u16,
        /// Share among equal priorities.
        weight: u16,
        /// The port.
        port: u16,
        /// The host name.
        target: Name<'a>,
    },
    /// Character strings (DNS-SD: `key=value`).
    Txt(Txt<'a>),
    /// Another type: the raw rdata.
    Other(&'a [u8]),
}

/// TXT rdata: length-prefixed strings, checked not to overrun.
#[derive(Clone, Copy, Debug)]
pub struct Txt<'a>(&'a [u8]);

impl<'a> Txt<'a> {
    /// The strings.
    pub fn strings(&self) -> impl Iterator<Item = &'a [u8]> {
        let mut rest = self.0;
        core::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            let s = tail.get(..usize::from(len))?;
            rest = tail.get(usize::from(len)..)?;
            Some(s)
        })
    }

    /// The value of `key` (`key=value`; `key` alone gives an empty value), the key
    /// compared ASCII case-insensitively (RFC 6763 §6.4); the first occurrence counts.
    pub fn get(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.strings().find_map(|s| {
            let (k, v) = match s.iter().position(|&c| c == b'=') {
                Some(i) => (s.get(..i)?, s.get(i + 1..)?),
                None => (s, &[][..]),
            };
            k.eq_ignore_ascii_case(key).then_some(v)
        })
    }
}

fn read_question(buf: &[u8], pos: usize) -> Result<(Question<'_>, usize), DnsError> {
    let (name, at) = read_name(buf, pos)?;
    let q = Question {
        name,
        qtype: u16_at(buf, at)?,
        qclass: u16_at(buf, at + 2)?,
    };
    Ok((q, at + 4))
}

fn read_record(buf: &[u8], pos: usize) -> Result<(Record<'_>, usize), DnsError> {
    let (name, at) = read_name(buf, pos)?;
    let rtype = u16_at(buf, at)?;
    let class = u16_at(buf, at + 2)?;
    let ttl = u32_at(buf, at + 4)?;
    let rdlen = usize::from(u16_at(buf, at + 8)?);
    let start = at + 10;
    let rdata = slice(buf, start, rdlen)?;
    let end = start + rdlen;
    // A name in rdata must end exactly where the rdata ends.
    let name_at = |off: usize| -> Result<Name<'_>, DnsError> {
        let (n, e) = read_name(buf, start + off)?;
        if e == end {
            Ok(n)
        } else {
            Err(DnsError::BadRecord)
        }
    };
    let data = match rtype {
        TYPE_A => RData::A(rdata.try_into().map_err(|_| DnsError::BadRecord)?),
        TYPE_AAAA => RData::Aaaa(rdata.try_into().map_err(|_| DnsError::BadRecord)?),
        TYPE_PTR => RData::Ptr(name_at(0)?),
        TYPE_SRV => {
            if rdlen < 7 {
                return Err(DnsError::BadRecord);
            }
            RData::Srv {
                priority: u16_at(buf, start)?,
                weight: u16_at(buf, start + 2)?,
                port: u16_at(buf, start + 4)?,
                target: name_at(6)?,
            }
        }
        TYPE_TXT => {
            let mut rest = rdata;
            while let Some((&len, tail)) = rest.split_first() {
                rest = tail.get(usize::from(len)..).ok_or(DnsError::BadRecord)?;
            }
            RData::Txt(Txt(rdata))
        }
        _ => RData::Other(rdata),
    };
    Ok((
        Record {
            name,
            rtype,
            class,
            ttl,
            data,
        },
        end,
    ))
}

impl<'a> Message<'a> {
    /// Reads the header. Nothing else is looked at yet.
    pub fn parse(buf: &'a [u8]) -> Result<Self, DnsError> {
        let counts = [
            u16_at(buf, 4)?,
            u16_at(buf, 6)?,
            u16_at(buf, 8)?,
            u16_at(buf, 10)?,
        ];
        Ok(Self {
            buf,
            id: u16_at(buf, 0)?,
            flags: u16_at(buf, 2)?,
            qd: counts[0],
            records: counts[1..].iter().map(|&c| u32::from(c)).sum(),
        })
    }

    /// A response (QR set) with opcode 0 and rcode 0 — the only responses mDNS heeds
    /// (RFC 6762 §18.3, §18.11).
    pub fn is_answer(&self) -> bool {
        self.flags & FLAG_QR != 0 && self.flags & 0x780F == 0
    }

    /// A query (QR clear, opcode 0).
    pub fn is_query(&self) -> bool {
        self.flags & FLAG_QR == 0 && self.flags & 0x7800 == 0
    }

    /// The questions.
    pub fn questions(&self) -> Questions<'a> {
        Questions {
            buf: self.buf,
            at: HEADER_LEN,
            left: self.qd,
        }
    }

    /// The records of all three sections, after the questions.
    pub fn records(&self) -> Records<'a> {
        Records {
            buf: self.buf,
            at: HEADER_LEN,
            questions: self.qd,
            left: self.records,
        }
    }

    /// Reads every question and record once: `Ok` means every later walk succeeds.
    /// Bytes after the last record are ignored.
    pub fn check(&self) -> Result<(), DnsError> {
        self.records().try_for_each(|r| r.map(|_| ()))
    }
}

/// Iterator over the questions; stops after the first error.
#[derive(Clone, Debug)]
pub struct Questions<'a> {
    buf: &'a [u8],
    at: usize,
    left: u16,
}

impl<'a> Iterator for Questions<'a> {
    type Item = Result<Question<'a>, DnsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match read_question(self.buf, self.at) {
            Ok((q, next)) => {
                self.at = next;
                Some(Ok(q))
            }
            Err(e) => {
                self.left = 0;
                Some(Err(e))
            }
        }
    }
}

/// Iterator over the records (the questions skipped first); stops after the first error.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    buf: &'a [u8],
    at: usize,
    questions: u16,
    left: u32,
}

impl<'a> Records<'a> {
    fn fail(&mut self, e: DnsError) -> Option<Result<Record<'a>, DnsError>> {
        self.left = 0;
        self.questions = 0;
        Some(Err(e))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, DnsError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.questions > 0 {
            match read_question(self.buf, self.at) {
                Ok((_, next)) => {
                    self.at = next;
                    self.questions -= 1;
                }
                Err(e) => return self.fail(e),
            }
        }
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match read_record(self.buf, self.at) {
            Ok((r, next)) => {
                self.at = next;
                Some(Ok(r))
            }
            Err(e) => self.fail(e),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Writing

/// The section a written record goes into; sections are written in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// Answers.
    Answer = 1,
    /// Authority (unused by discovery).
    Authority = 2,
    /// Additional records.
    Additional = 3,
}

/// Record data to write.
#[derive(Clone, Copy, Debug)]
pub enum WriteData<'x> {
    /// An IPv4 address.
    A([u8; 4]),
    /// A pointer to a name.
    Ptr(Name<'x>),
    /// Host and port of an instance (priority and weight 0).
    Srv {
        /// The port.
        port: u16,
        /// The host name.
        target: Name<'x>,
    },
    /// Character strings (each at most 255 bytes).
    Txt(&'x [&'x [u8]]),
}

/// Writes a DNS message into a caller buffer: the header, then questions, then records
/// section by section. A question or record that does not fit is left out whole
/// (`BufferOverflow`), and the message up to it stays valid.
#[derive(Debug)]
pub struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
    section: u8,
}

impl<'b> Writer<'b> {
    /// Starts a message with this id and flags (0 for a query; [`FLAG_QR`] | [`FLAG_AA`]
    /// for an mDNS response).
    pub fn new(buf: &'b mut [u8], id: u16, flags: u16) -> Result<Self, Error> {
        let header = buf.get_mut(..HEADER_LEN).ok_or(Error::BufferOverflow)?;
        header.fill(0);
        let mut w = Self {
            buf,
            len: 0,
            section: 0,
        };
        w.put(&id.to_be_bytes())?;
        w.put(&flags.to_be_bytes())?;
        w.len = HEADER_LEN;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let end = self.len + bytes.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(Error::BufferOverflow)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    fn put_name(&mut self, name: &Name<'_>) -> Result<(), Error> {
        for label in name.labels() {
            self.put(&[label.len() as u8])?;
            self.put(label)?;
        }
        self.put(&[0])
    }

    /// Adds 1 to the count of entries at `index` (0 questions .. 3 additional).
    fn count(&mut self, index: usize) -> Result<(), Error> {
        let at = 4 + 2 * index;
        let n = u16_at(self.buf, at)
            .ok()
            .and_then(|c| c.checked_add(1))
            .ok_or(Error::BufferOverflow)?;
        self.buf
            .get_mut(at..at + 2)
            .ok_or(Error::BufferOverflow)?
            .copy_from_slice(&n.to_be_bytes());
        Ok(())
    }

    /// Runs `f`; if it fails, the message is put back as it was.
    fn whole(&mut self, f: impl FnOnce(&mut Self) -> Result<(), Error>) -> Result<(), Error> {
        let mark = self.len;
        let r = f(self);
        if r.is_err() {
            self.len = mark;
        }
        r
    }

    /// Adds a question (before any record).
    pub fn question(&mut self, name: &Name<'_>, qtype: u16, qclass: u16) -> Result<(), Error> {
        if self.section != 0 {
            return Err(Error::InvalidArg);
        }
        self.whole(|w| {
            w.put_name(name)?;
            w.put(&qtype.to_be_bytes())?;
            w.put(&qclass.to_be_bytes())?;
            w.count(0)
        })
    }

    /// Adds a question for `<label>.<parent>`.
    pub fn question_under(
        &mut self,
        label: &[u8],
        parent: &Name<'_>,
        qtype: u16,
        qclass: u16,
    ) -> Result<(), Error> {
        if self.section != 0 || label.is_empty() || label.len() > MAX_LABEL {
            return Err(Error::InvalidArg);
        }
        if 1 + label.len() + parent.wire_len() > MAX_NAME {
            return Err(Error::BufferOverflow);
        }
        self.whole(|w| {
            w.put(&[label.len() as u8])?;
            w.put(label)?;
            w.put_name(parent)?;
            w.put(&qtype.to_be_bytes())?;
            w.put(&qclass.to_be_bytes())?;
            w.count(0)
        })
    }

    /// Adds a record to `section` (not before a section already written).
    pub fn record(
        &mut self,
        section: Section,
        name: &Name<'_>,
        class: u16,
        ttl: u32,
        data: &WriteData<'_>,
    ) -> Result<(), Error> {
        if (section as u8) < self.section {
            return Err(Error::InvalidArg);
        }
        self.whole(|w| {
            w.put_name(name)?;
            let rtype = match data {
                WriteData::A(_) => TYPE_A,
                WriteData::Ptr(_) => TYPE_PTR,
                WriteData::Srv { .. } => TYPE_SRV,
                WriteData::Txt(_) => TYPE_TXT,
            };
            w.put(&rtype.to_be_bytes())?;
            w.put(&class.to_be_bytes())?;
            w.put(&ttl.to_be_bytes())?;
            let len_at = w.len;
            w.put(&[0, 0])?;
            match data {
                WriteData::A(a) => w.put(a)?,
                WriteData::Ptr(n) => w.put_name(n)?,
                WriteData::Srv { port, target } => {
                    w.put(&[0, 0, 0, 0])?;
                    w.put(&port.to_be_bytes())?;
                    w.put_name(target)?;
                }
                WriteData::Txt(strings) => {
                    for s in strings.iter() {
                        let l = u8::try_from(s.len()).map_err(|_| Error::InvalidArg)?;
                        w.put(&[l])?;
                        w.put(s)?;
                    }
                    if strings.is_empty() {
                        w.put(&[0])?; // RFC 6763 §6.1: never empty rdata
                    }
                }
            }
            let rdlen = u16::try_from(w.len - len_at - 2).map_err(|_| Error::BufferOverflow)?;
            w.buf
                .get_mut(len_at..len_at + 2)
                .ok_or(Error::BufferOverflow)?
                .copy_from_slice(&rdlen.to_be_bytes());
            w.count(section as usize)
        })?;
        self.section = section as u8;
        Ok(())
    }

    /// The message length.
    pub fn finish(self) -> usize {
        self.len
    }
}
