//! COBS framing (Consistent Overhead Byte Stuffing) for serial links, sans-IO: an
//! [`Encoder`] that writes one framed datagram into caller buffers piece by piece, and a
//! [`Decoder`] that takes received bytes one at a time and hands out whole datagrams. No
//! heap; the decoder's buffer is part of the value.
//!
//! On the wire a datagram becomes `00 || COBS(datagram) || 00`. COBS removes every zero
//! byte from the datagram (each run of up to 254 non-zero bytes gets a length byte in
//! front), so the zero byte can only mean "a datagram ends here". Whatever happens on the
//! line — a flipped, lost or extra byte, a device that resets in the middle of a datagram,
//! garbage from a boot loader — the receiver is back in step at the next zero byte, and at
//! most the datagram the fault fell into is lost. The zero in front of each datagram closes
//! whatever a fault left open, so even the datagram right after it survives.
//!
//! COBS only finds the boundaries; it does not check content. A damaged datagram that
//! still decodes is caught by the frame CRC and the AEAD tag, and the datagram mode of the
//! library ([`crate::datagram`]: UTACK, retransmission, replay window) sends it again.
//!
//! ```
//! use usmp::cobs::{encoded_len, Decoder, Encoder, Event};
//!
//! let datagram = [0xCD, 0xAB, 0x02, 0x00, 0x00, 0x11];
//! let mut wire = [0u8; 16];
//! let mut enc = Encoder::new(&datagram);
//! let n = enc.fill(&mut wire);
//! assert_eq!(n, encoded_len(datagram.len()));
//! assert_eq!(&wire[..n], &[0, 4, 0xCD, 0xAB, 0x02, 1, 2, 0x11, 0]);
//!
//! let mut dec = Decoder::new();
//! let mut got = None;
//! for &b in &wire[..n] {
//!     if let Some(Event::Datagram(len)) = dec.push(b) {
//!         got = Some(dec.datagram(len).to_vec());
//!     }
//! }
//! assert_eq!(got.as_deref(), Some(&datagram[..]));
//! ```

use crate::frame::MAX_FRAME;

/// The byte that ends (and starts) every datagram on the wire.
pub const DELIMITER: u8 = 0x00;

/// Longest datagram the [`Decoder`] keeps (a USMP frame: 492 bytes); longer ones are
/// dropped as [`DropReason::TooLong`].
pub const MAX_DATAGRAM: usize = MAX_FRAME;

/// Longest run of data bytes behind one length byte.
const MAX_RUN: usize = 254;

/// Bytes on the wire for a datagram of `len` bytes: the two delimiters, one length byte
/// per started run of 254 bytes (at least one), and the data. A 492-byte frame takes at
/// most 496.
pub const fn encoded_len_max(len: usize) -> usize {
    len + len / MAX_RUN + 3
}

/// Bytes on the wire for a datagram of `len` bytes none of which is zero (with zeros it
/// can differ by a byte per 254; [`encoded_len_max`] bounds every case).
pub const fn encoded_len(len: usize) -> usize {
    // One length byte per run; a run ends at a zero, at 254 bytes, or at the end.
    len + len / MAX_RUN + 1 + 2 - if len > 0 && len % MAX_RUN == 0 { 1 } else { 0 }
}

/// Where an [`Encoder`] is in its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// The leading delimiter is next.
    Lead,
    /// The length byte of the run that starts at `at` is next.
    Code { at: usize },
    /// Data bytes `at..end` are next; then the run that starts at `next` (None: the end).
    Data {
        at: usize,
        end: usize,
        next: Option<usize>,
    },
    /// The closing delimiter is next.
    Trail,
    /// Everything has been written.
    Done,
}

/// Writes one datagram as `00 || COBS(datagram) || 00` into caller buffers of any size
/// (a few bytes of stack, or a UART's FIFO), so nothing needs room for the whole frame.
#[derive(Clone, Debug)]
pub struct Encoder<'a> {
    src: &'a [u8],
    step: Step,
}

impl<'a> Encoder<'a> {
    /// An encoder for `datagram` (any length; an empty one is the single length byte 01).
    pub const fn new(datagram: &'a [u8]) -> Self {
        Self {
            src: datagram,
            step: Step::Lead,
        }
    }

    /// True once every byte has been handed out.
    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    /// Writes the next encoded bytes into `out` and returns how many; 0 means done (or an
    /// empty `out`). Call it until it returns 0.
    pub fn fill(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        while n < out.len() {
            match self.step {
                Step::Done => break,
                Step::Lead | Step::Trail => {
                    put(out, n, DELIMITER);
                    n += 1;
                    self.step = if self.step == Step::Lead {
                        Step::Code { at: 0 }
                    } else {
                        Step::Done
                    };
                }
                Step::Code { at } => {
                    let rest = self.src.get(at..).unwrap_or(&[]);
                    let window = rest.get(..MAX_RUN).unwrap_or(rest);
                    let (run, next) = match window.iter().position(|&b| b == DELIMITER) {
                        // A run that a zero ends: the zero is implied by the length byte.
                        Some(i) => (i, Some(at + i + 1)),
                        // A full run: no implied zero; the data goes on, if there is more.
                        None if window.len() == MAX_RUN => {
                            (MAX_RUN, (rest.len() > MAX_RUN).then_some(at + MAX_RUN))
                        }
                        // The last run.
                        None => (window.len(), None),
                    };
                    // run <= 254, so the length byte is 1..=255 and never zero.
                    put(out, n, (run + 1) as u8);
                    n += 1;
                    self.step = Step::Data {
                        at,
                        end: at + run,
                        next,
                    };
                }
                Step::Data { at, end, next } => {
                    let data = self.src.get(at..end).unwrap_or(&[]);
                    let slot = out.get_mut(n..).unwrap_or(&mut []);
                    let take = data.len().min(slot.len());
                    if let (Some(d), Some(s)) = (slot.get_mut(..take), data.get(..take)) {
                        d.copy_from_slice(s);
                    }
                    n += take;
                    self.step = if at + take < end {
                        Step::Data {
                            at: at + take,
                            end,
                            next,
                        }
                    } else {
                        match next {
                            Some(at) => Step::Code { at },
                            None => Step::Trail,
                        }
                    };
                }
            }
        }
        n
    }
}

fn put(out: &mut [u8], i: usize, b: u8) {
    if let Some(slot) = out.get_mut(i) {
        *slot = b;
    }
}

/// Encodes `datagram` into `out` (delimiters included) and returns the length, or `None`
/// when `out` is shorter than [`encoded_len_max`]`(datagram.len())` would need.
pub fn encode(datagram: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut enc = Encoder::new(datagram);
    let n = enc.fill(out);
    enc.is_done().then_some(n)
}

/// Why a [`Decoder`] dropped what it had collected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// A delimiter came inside a run: bytes were lost, or the run's length byte was hit.
    Truncated,
    /// More than [`MAX_DATAGRAM`] bytes before the delimiter: not a USMP datagram (or two
    /// datagrams whose delimiter was lost).
    TooLong,
}

/// What a byte completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole datagram of this many bytes: [`Decoder::datagram`] has it until the next
    /// byte is pushed.
    Datagram(usize),
    /// The bytes since the last delimiter were not a valid COBS datagram and are gone.
    Dropped(DropReason),
}

/// The receive side: push bytes, get datagrams. Any byte sequence is valid input; a fault
/// costs at most the datagram it hit, and the decoder is in step again after the next
/// delimiter. `#[repr(C)]` so that the C UART transport can keep one in caller storage.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct Decoder {
    /// The datagram being collected (the last complete one after an [`Event::Datagram`]).
    buf: [u8; 492],
    /// Bytes in `buf`.
    len: u16,
    /// Data bytes still to come in the current run (0: the next byte is a length byte).
    left: u8,
    /// Bit 0: a zero byte is owed before the next run (the last run was shorter than 254).
    /// Bit 1: the current datagram is being thrown away (until the next delimiter).
    /// Bit 2: the current datagram is too long (reported as [`DropReason::TooLong`]).
    flags: u8,
}

const _: () = assert!(MAX_DATAGRAM == 492, "Decoder::buf must hold a whole frame");

const OWE_ZERO: u8 = 1;
const DISCARD: u8 = 2;
const TOO_LONG: u8 = 4;

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// An empty decoder, waiting for the first datagram.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_DATAGRAM],
            len: 0,
            left: 0,
            flags: 0,
        }
    }

    /// Makes the decoder at `p` empty without touching its buffer (caller storage that may
    /// be uninitialised: the buffer is never read before it is written).
    ///
    /// # Safety
    /// `p` valid for writes and aligned.
    #[cfg(feature = "capi")]
    pub(crate) unsafe fn init_at(p: *mut Self) {
        // SAFETY: caller contract; only plain integer fields are written.
        unsafe {
            core::ptr::addr_of_mut!((*p).len).write(0);
            core::ptr::addr_of_mut!((*p).left).write(0);
            core::ptr::addr_of_mut!((*p).flags).write(0);
        }
    }

    /// Forgets any partial datagram (the next byte starts afresh, as after a delimiter).
    pub fn reset(&mut self) {
        self.len = 0;
        self.left = 0;
        self.flags = 0;
    }

    /// True while bytes of an unfinished datagram are held (or being thrown away).
    pub fn in_datagram(&self) -> bool {
        self.len > 0 || self.left > 0 || self.flags != 0
    }

    /// The datagram an [`Event::Datagram`]`(len)` announced.
    pub fn datagram(&self, len: usize) -> &[u8] {
        self.buf.get(..len).unwrap_or(&[])
    }

    fn store(&mut self, b: u8) {
        match self.buf.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = b;
                self.len += 1;
            }
            None => self.flags |= DISCARD | TOO_LONG,
        }
    }

    /// Takes one byte from the line. Returns an event when the byte was a delimiter that
    /// ended something: a datagram, or bytes that were not one. Delimiters with nothing
    /// between them (the `00 00` between two datagrams) are no event.
    pub fn push(&mut self, b: u8) -> Option<Event> {
        if b == DELIMITER {
            let ev = if self.flags & TOO_LONG != 0 {
                Some(Event::Dropped(DropReason::TooLong))
            } else if self.left > 0 {
                Some(Event::Dropped(DropReason::Truncated))
            } else if self.len == 0 && self.flags & OWE_ZERO == 0 {
                None // nothing since the last delimiter
            } else {
                // The zero owed after the last run is the end of the datagram itself.
                Some(Event::Datagram(usize::from(self.len)))
            };
            self.reset();
            return ev;
        }
        if self.flags & DISCARD != 0 {
            return None;
        }
        if self.left > 0 {
            self.left -= 1;
            self.store(b);
        } else {
            if self.flags & OWE_ZERO != 0 {
                self.store(0);
            }
            self.left = b - 1;
            if b == 0xFF {
                self.flags &= !OWE_ZERO;
            } else {
                self.flags |= OWE_ZERO;
            }
        }
        None
    }

    /// Pushes bytes from `input` until one makes an event. Returns how many bytes were
    /// taken and the event, if any: call again with the rest.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        for (i, &b) in input.iter().enumerate() {
            if let Some(ev) = self.push(b) {
                return (i + 1, Some(ev));
            }
        }
        (input.len(), None)
    }
}
