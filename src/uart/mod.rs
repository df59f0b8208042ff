//! Serial links (feature `uart`): [`CobsUart`], a datagram transport over any UART, for
//! the Rust API; and (with the C API) the C UART transport, `usmp_transport_uart_init`.
//!
//! A UART has no packet boundaries and no checksums of its own: one lost or flipped byte
//! puts a plain byte stream out of step for good. [`CobsUart`] frames every datagram with
//! COBS ([`crate::cobs`]), so the receiver finds the next datagram after any fault, and
//! declares itself a datagram transport ([`crate::Transport::is_datagram`]), so the client
//! acknowledges, retransmits and filters replays (UTACK, [`crate::datagram`]) exactly as
//! over UDP. A damaged datagram is dropped by CRC, AEAD or COBS, and sent again; the
//! session lives on. Across the serial line `usmp bridge` (the host tool) forwards each
//! datagram to the gateway's UDP port.
//!
//! ```
//! use usmp::uart::CobsUart;
//! use usmp::{Client, Clock, Config, Error};
//!
//! fn run<U, R, C>(uart: U, trng: R, clock: C) -> Result<(), Error>
//! where
//!     U: embedded_io::Read + embedded_io::Write + embedded_io::ReadReady,
//!     R: rand_core::RngCore + rand_core::CryptoRng,
//!     C: Clock,
//! {
//!     let config = Config::new(b"device-psk-from-secure-storage", [1, 2, 3, 4, 5, 6]);
//!     let mut client = Client::new(CobsUart::new(uart), trng, clock, config);
//!     client.connect()?;
//!     client.send(b"hello")?;
//!     let mut buf = [0u8; 1808];
//!     let _n = client.recv(&mut buf)?;
//!     let _counters = client.transport_mut().stats(); // datagrams, bytes, drops
//!     Ok(())
//! }
//! ```
//!
//! On a clean line the plain byte stream works as well and costs no acknowledgements:
//! `Client::new(Stream(uart), ..)`.

#[cfg(feature = "capi")]
pub mod capi;

use crate::cobs::{Decoder, Encoder, Event, MAX_DATAGRAM};
use crate::{AsyncTransport, Error, Transport};

/// Counters of a serial link. All wrap at 2^32.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UartStats {
    /// Frames (datagrams) sent.
    pub frames_tx: u32,
    /// Frames (datagrams) received and handed to the library.
    pub frames_rx: u32,
    /// Bytes written to the line (COBS: with framing).
    pub bytes_tx: u32,
    /// Bytes read from the line.
    pub bytes_rx: u32,
    /// COBS: stretches of bytes between delimiters that were not a datagram (a fault on
    /// the line, a reset in mid-datagram, garbage), dropped.
    pub dropped: u32,
    /// Receive waits that ended with nothing (C transport).
    pub idle_timeouts: u32,
    /// Raw framing, or a write: no byte moved for `stall_ms` (C transport).
    pub stalls: u32,
    /// Times the transport gave up: a port hook failed or, in raw framing, the stream fell
    /// out of step (C transport).
    pub failures: u32,
}

/// Bytes read from the line per read call (and kept until they are decoded): the size of
/// `RxState::chunk` (a literal there, for the C header).
const RX_CHUNK: usize = 32;
const _: () = assert!(RX_CHUNK == 32 && RX_CHUNK <= u16::MAX as usize);
/// Encoded bytes written per write call.
const TX_CHUNK: usize = 32;
/// Most bytes one non-blocking receive call decodes before it gives the caller back
/// control (two largest datagrams): a line that never pauses cannot hold it forever.
pub(crate) const RX_BUDGET: usize = 2 * crate::cobs::encoded_len_max(MAX_DATAGRAM);

/// The receive side shared by the blocking and async faces of [`CobsUart`] and by the C
/// transport: the decoder and the bytes read but not yet decoded.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct RxState {
    at: u16,
    len: u16,
    chunk: [u8; 32],
    dec: Decoder,
}

impl Default for RxState {
    fn default() -> Self {
        Self::new()
    }
}

impl RxState {
    /// Empty.
    pub const fn new() -> Self {
        Self {
            at: 0,
            len: 0,
            chunk: [0; 32],
            dec: Decoder::new(),
        }
    }

    /// Makes the state at `p` empty, writing only what is read before it is written (the
    /// byte buffers of caller storage stay as they are).
    ///
    /// # Safety
    /// `p` valid for writes and aligned.
    #[cfg(feature = "capi")]
    pub(crate) unsafe fn init_at(p: *mut Self) {
        // SAFETY: caller contract; plain integer fields, and the decoder's own init.
        unsafe {
            core::ptr::addr_of_mut!((*p).at).write(0);
            core::ptr::addr_of_mut!((*p).len).write(0);
            Decoder::init_at(core::ptr::addr_of_mut!((*p).dec));
        }
    }

    /// Forgets buffered bytes and any partial datagram.
    pub fn reset(&mut self) {
        self.at = 0;
        self.len = 0;
        self.dec.reset();
    }

    /// True while read bytes wait to be decoded.
    pub fn pending(&self) -> bool {
        self.at < self.len
    }

    /// Where the next read goes.
    pub(crate) fn chunk_mut(&mut self) -> &mut [u8] {
        &mut self.chunk
    }

    /// Records that a read put `n` bytes into [`RxState::chunk_mut`] (Err: more than fit).
    pub(crate) fn filled(&mut self, n: usize, stats: &mut UartStats) -> Result<(), Error> {
        if n > RX_CHUNK {
            return Err(Error::TransportFailed);
        }
        self.at = 0;
        self.len = n as u16;
        stats.bytes_rx = stats.bytes_rx.wrapping_add(n as u32);
        Ok(())
    }

    /// Decodes buffered bytes until a datagram is complete: copies it into `buf` (cut to
    /// its length) and returns the length; None when the buffered bytes ran out first.
    /// `budget` is lowered by the bytes used. Empty datagrams are skipped.
    pub(crate) fn take(
        &mut self,
        buf: &mut [u8],
        stats: &mut UartStats,
        budget: &mut usize,
    ) -> Option<usize> {
        while self.pending() {
            let input = self
                .chunk
                .get(usize::from(self.at)..usize::from(self.len))
                .unwrap_or(&[]);
            let (used, ev) = self.dec.feed(input);
            self.at += used as u16;
            *budget = budget.saturating_sub(used);
            match ev {
                Some(Event::Datagram(0)) | None => {}
                Some(Event::Datagram(n)) => {
                    let d = self.dec.datagram(n);
                    let k = d.len().min(buf.len());
                    if let (Some(dst), Some(src)) = (buf.get_mut(..k), d.get(..k)) {
                        dst.copy_from_slice(src);
                    }
                    stats.frames_rx = stats.frames_rx.wrapping_add(1);
                    return Some(k);
                }
                Some(Event::Dropped(_)) => stats.dropped = stats.dropped.wrapping_add(1),
            }
        }
        None
    }
}

/// Encodes `datagram` and hands the wire bytes to `write` in pieces; counts them.
pub(crate) fn send_with<E>(
    datagram: &[u8],
    stats: &mut UartStats,
    mut write: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut enc = Encoder::new(datagram);
    let mut piece = [0u8; TX_CHUNK];
    loop {
        let n = enc.fill(&mut piece);
        if n == 0 {
            break;
        }
        write(piece.get(..n).unwrap_or(&[]))?;
        stats.bytes_tx = stats.bytes_tx.wrapping_add(n as u32);
    }
    stats.frames_tx = stats.frames_tx.wrapping_add(1);
    Ok(())
}

/// A UART (any `embedded-io` byte stream) as a datagram [`Transport`] with COBS framing —
/// and, over `embedded-io-async` streams, as an [`AsyncTransport`]. No heap: about 560
/// bytes of state (one datagram's worth of decoder buffer).
#[derive(Debug)]
pub struct CobsUart<T> {
    io: T,
    rx: RxState,
    stats: UartStats,
}

impl<T> CobsUart<T> {
    /// Wraps an open UART (or any byte stream).
    pub const fn new(io: T) -> Self {
        Self {
            io,
            rx: RxState::new(),
            stats: UartStats {
                frames_tx: 0,
                frames_rx: 0,
                bytes_tx: 0,
                bytes_rx: 0,
                dropped: 0,
                idle_timeouts: 0,
                stalls: 0,
                failures: 0,
            },
        }
    }

    /// The counters.
    pub fn stats(&self) -> UartStats {
        self.stats
    }

    /// The UART.
    pub fn inner(&self) -> &T {
        &self.io
    }

    /// The UART, e.g. to change its baud rate.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// Gives the UART back.
    pub fn into_inner(self) -> T {
        self.io
    }

    /// Forgets what was received but not yet decoded (e.g. after the peer reset).
    pub fn discard_input(&mut self) {
        self.rx.reset();
    }
}

impl<T> Transport for CobsUart<T>
where
    T: embedded_io::Read + embedded_io::Write + embedded_io::ReadReady,
{
    fn is_datagram(&self) -> bool {
        true
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let io = &mut self.io;
        send_with(bytes, &mut self.stats, |p| io.write_all(p))
            .and_then(|()| self.io.flush())
            .map_err(|_| Error::TransportFailed)
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        let mut budget = RX_BUDGET;
        loop {
            if let Some(n) = self.rx.take(buf, &mut self.stats, &mut budget) {
                return Ok(Some(n));
            }
            if budget == 0 || !self.io.read_ready().map_err(|_| Error::TransportFailed)? {
                return Ok(None);
            }
            let n = self
                .io
                .read(self.rx.chunk_mut())
                .map_err(|_| Error::TransportFailed)?;
            if n == 0 {
                // A UART that says it is ready yet gives nothing: try again later.
                return Ok(None);
            }
            self.rx.filled(n, &mut self.stats)?;
        }
    }
}

impl<T> AsyncTransport for CobsUart<T>
where
    T: embedded_io_async::Read + embedded_io_async::Write,
{
    fn is_datagram(&self) -> bool {
        true
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let mut enc = Encoder::new(bytes);
        let mut piece = [0u8; TX_CHUNK];
        loop {
            let n = enc.fill(&mut piece);
            if n == 0 {
                break;
            }
            self.io
                .write_all(piece.get(..n).unwrap_or(&[]))
                .await
                .map_err(|_| Error::TransportFailed)?;
            self.stats.bytes_tx = self.stats.bytes_tx.wrapping_add(n as u32);
        }
        self.io.flush().await.map_err(|_| Error::TransportFailed)?;
        self.stats.frames_tx = self.stats.frames_tx.wrapping_add(1);
        Ok(())
    }

    /// Cancel-safe as long as the UART's `read` is: what was read is kept in `self`.
    async fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        loop {
            let mut budget = usize::MAX;
            if let Some(n) = self.rx.take(buf, &mut self.stats, &mut budget) {
                return Ok(n);
            }
            let n = self
                .io
                .read(self.rx.chunk_mut())
                .await
                .map_err(|_| Error::TransportFailed)?;
            if n == 0 {
                return Err(Error::TransportFailed); // end of stream
            }
            self.rx.filled(n, &mut self.stats)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// An in-memory UART: what is written goes to `tx`, reads come from `rx`, at most
    /// `max_read` bytes per read.
    #[derive(Default)]
    struct Pipe {
        rx: VecDeque<u8>,
        tx: Vec<u8>,
        max_read: usize,
    }

    impl embedded_io::ErrorType for Pipe {
        type Error = core::convert::Infallible;
    }
    impl embedded_io::Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(self.rx.len()).min(self.max_read.max(1));
            for b in buf.iter_mut().take(n) {
                *b = self.rx.pop_front().unwrap();
            }
            Ok(n)
        }
    }
    impl embedded_io::ReadReady for Pipe {
        fn read_ready(&mut self) -> Result<bool, Self::Error> {
            Ok(!self.rx.is_empty())
        }
    }
    impl embedded_io::Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            self.tx.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    impl embedded_io_async::Read for Pipe {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            embedded_io::Read::read(self, buf)
        }
    }
    impl embedded_io_async::Write for Pipe {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            embedded_io::Write::write(self, buf)
        }
        async fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    #[test]
    fn async_face_sends_and_receives_the_same_framing() {
        use core::future::Future;
        use core::task::{Context, Poll, Waker};
        // The pipe never waits: polling in a loop is enough.
        fn block_on<F: Future>(f: F) -> F::Output {
            let mut f = core::pin::pin!(f);
            let mut cx = Context::from_waker(Waker::noop());
            loop {
                if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                    return v;
                }
            }
        }
        let mut line = wire(b"first");
        line.extend([0x42, 0x42]); // a stub
        line.extend(wire(&[0u8, 1, 0]));
        let mut u = CobsUart::new(Pipe {
            rx: line.into(),
            max_read: 3,
            ..Pipe::default()
        });
        let mut buf = [0u8; 492];
        let n = block_on(AsyncTransport::recv(&mut u, &mut buf)).unwrap();
        assert_eq!(&buf[..n], b"first");
        let n = block_on(AsyncTransport::recv(&mut u, &mut buf)).unwrap();
        assert_eq!(&buf[..n], &[0, 1, 0]);
        assert_eq!((u.stats().frames_rx, u.stats().dropped), (2, 1));
        // The line is empty now: the stream's end is an error, not a datagram.
        let r = block_on(AsyncTransport::recv(&mut u, &mut buf));
        assert_eq!(r, Err(Error::TransportFailed));
        block_on(AsyncTransport::send(&mut u, &[1, 0, 2])).unwrap();
        assert_eq!(
            u.inner().tx,
            [0, 2, 1, 2, 2, 0],
            "the same bytes as the blocking face"
        );
        assert!(AsyncTransport::is_datagram(&u));
    }

    fn wire(d: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; crate::cobs::encoded_len_max(d.len())];
        let n = crate::cobs::encode(d, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn sends_framed_datagrams_and_counts() {
        let mut u = CobsUart::new(Pipe::default());
        Transport::send(&mut u, &[1, 0, 2]).unwrap();
        assert_eq!(u.inner().tx, [0, 2, 1, 2, 2, 0]);
        let s = u.stats();
        assert_eq!((s.frames_tx, s.bytes_tx), (1, 6));
    }

    #[test]
    fn receives_across_reads_and_skips_damage() {
        for max_read in [1, 3, 32] {
            let mut line = wire(b"first");
            line.extend([0x17, 0x42, 0x99]); // garbage
            line.extend(wire(&[0u8; 492]));
            line.extend(wire(b"third"));
            let mut u = CobsUart::new(Pipe {
                rx: line.into(),
                max_read,
                ..Pipe::default()
            });
            let mut buf = [0u8; 492];
            let mut got = Vec::new();
            let mut polls = 0;
            while got.len() < 3 && polls < 10_000 {
                polls += 1;
                if let Some(n) = u.try_recv(&mut buf).unwrap() {
                    got.push(buf[..n].to_vec());
                }
            }
            assert_eq!(got, [b"first".to_vec(), vec![0u8; 492], b"third".to_vec()]);
            assert_eq!(u.try_recv(&mut buf).unwrap(), None);
            let s = u.stats();
            assert_eq!((s.frames_rx, s.dropped), (3, 1), "max_read {max_read}");
        }
    }

    #[test]
    fn a_flood_without_delimiters_returns_control() {
        let mut u = CobsUart::new(Pipe {
            rx: vec![0x55u8; 5_000].into(),
            max_read: 32,
            ..Pipe::default()
        });
        let mut buf = [0u8; 492];
        assert_eq!(u.try_recv(&mut buf).unwrap(), None);
        assert!(u.inner().rx.len() >= 5_000 - RX_BUDGET - RX_CHUNK);
    }

    #[test]
    fn cuts_a_datagram_to_the_buffer() {
        let mut u = CobsUart::new(Pipe {
            rx: wire(&[9u8; 100]).into(),
            max_read: 32,
            ..Pipe::default()
        });
        let mut small = [0u8; 10];
        let mut n = None;
        for _ in 0..10 {
            n = n.or(u.try_recv(&mut small).unwrap());
        }
        assert_eq!(n, Some(10));
    }
}
