//! UART0 of the MPS2 AN385/AN386 images: an Arm CMSDK APB UART at 0x4000_4000, its receive
//! interrupt on IRQ 0 (transmit on IRQ 1, unused here). QEMU's mps2-an386 connects it to its
//! first `-serial` backend.
//!
//! Registers (CMSDK technical reference manual, "APB UART"): DATA (+0x00), STATE (+0x04:
//! bit 0 TX buffer full, bit 1 RX buffer full, bits 2/3 overruns, write 1 to clear), CTRL
//! (+0x08: bit 0 TX enable, bit 1 RX enable, bit 3 RX interrupt enable), INTSTATUS (+0x0C,
//! write 1 to clear), BAUDDIV (+0x10, at least 16).
//!
//! The UART holds one received byte, so reception is interrupt-driven: the handler moves
//! each byte into a ring buffer at once, and nothing is lost while the main loop is busy
//! with cryptography (on a real board at 115200 baud a byte arrives every 87 µs; QEMU just
//! waits). Transmission polls the TX-full bit. [`Uart0`] implements the blocking
//! `embedded-io` traits `Read`, `Write` and `ReadReady`, which is all `usmp::Stream` needs.

use core::cell::RefCell;
use core::ptr;

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;
use critical_section::Mutex;

use crate::clock;

const BASE: usize = 0x4000_4000;
const DATA: usize = BASE;
const STATE: usize = BASE + 0x04;
const CTRL: usize = BASE + 0x08;
const INTSTATUS: usize = BASE + 0x0C;
const BAUDDIV: usize = BASE + 0x10;

const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const STATE_TX_OVERRUN: u32 = 1 << 2;
const STATE_RX_OVERRUN: u32 = 1 << 3;
const CTRL_TX_EN: u32 = 1 << 0;
const CTRL_RX_EN: u32 = 1 << 1;
const CTRL_RX_INTEN: u32 = 1 << 3;
const INT_RX: u32 = 1 << 1;

/// The APB clock of the AN385/AN386 images (QEMU's SYSCLK_FRQ), Hz.
pub const PCLK_HZ: u32 = 25_000_000;
/// The line speed. QEMU ignores it (it needs BAUDDIV >= 16, which this is); a real board's
/// serial-to-TCP bridge must match it.
pub const BAUD: u32 = 115_200;
/// Receive ring size: more than a 4-frame message (4 x 492 bytes) with the PONG after it.
pub const RING_SIZE: usize = 4096;
/// A byte that cannot be sent for this long means the far end stopped reading: the write
/// fails (`usmp` then reports `USMP_ERR_TRANSPORT_FAILED`) instead of hanging.
const TX_STALL_MS: u32 = 2_000;

/// External interrupts of the AN385/AN386 images that this firmware uses.
#[derive(Clone, Copy, Debug)]
#[repr(u16)]
pub enum Irq {
    /// UART0 receive.
    Uart0Rx = 0,
}

// SAFETY: the number is a valid external interrupt line of the board (AN386: 32 lines).
unsafe impl InterruptNumber for Irq {
    fn number(self) -> u16 {
        self as u16
    }
}

fn read(addr: usize) -> u32 {
    // SAFETY: `addr` is one of the UART's 32-bit registers above (device memory, always
    // mapped on this board); a volatile access is what the hardware expects.
    unsafe { ptr::read_volatile(addr as *const u32) }
}

fn write(addr: usize, value: u32) {
    // SAFETY: as in `read`.
    unsafe { ptr::write_volatile(addr as *mut u32, value) }
}

/// Bytes received by the interrupt handler, not yet read by the application.
struct Ring {
    buf: [u8; RING_SIZE],
    head: usize,
    len: usize,
    peak: usize,
    overruns: u32,
    rx_total: u32,
}

impl Ring {
    const fn new() -> Self {
        Self {
            buf: [0; RING_SIZE],
            head: 0,
            len: 0,
            peak: 0,
            overruns: 0,
            rx_total: 0,
        }
    }

    fn push(&mut self, b: u8) {
        if self.len == RING_SIZE {
            self.overruns += 1;
            return;
        }
        if let Some(slot) = self.buf.get_mut((self.head + self.len) % RING_SIZE) {
            *slot = b;
        }
        self.len += 1;
        self.peak = self.peak.max(self.len);
        self.rx_total = self.rx_total.wrapping_add(1);
    }

    fn pop_into(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        for slot in out.iter_mut() {
            if self.len == 0 {
                break;
            }
            *slot = self.buf.get(self.head).copied().unwrap_or(0);
            self.head = (self.head + 1) % RING_SIZE;
            self.len -= 1;
            n += 1;
        }
        n
    }
}

static RX: Mutex<RefCell<Ring>> = Mutex::new(RefCell::new(Ring::new()));

/// The receive interrupt: every byte the UART holds goes into the ring.
pub fn on_rx_interrupt() {
    // Acknowledge first, then drain: a byte that lands after the last check below raises
    // the interrupt again (acknowledging after draining could lose that one for good, as
    // the UART takes nothing more while it holds a byte).
    write(INTSTATUS, INT_RX);
    critical_section::with(|cs| {
        let mut ring = RX.borrow_ref_mut(cs);
        let state = read(STATE);
        if state & STATE_RX_OVERRUN != 0 {
            // The one-byte buffer was overwritten before we read it (a real board whose
            // interrupts were off for too long): the stream has lost a byte.
            ring.overruns += 1;
            write(STATE, STATE_RX_OVERRUN);
        }
        while read(STATE) & STATE_RX_FULL != 0 {
            let b = read(DATA) as u8;
            ring.push(b);
        }
    });
}

/// True when received bytes are waiting in the ring.
pub fn rx_pending() -> bool {
    critical_section::with(|cs| RX.borrow_ref(cs).len > 0)
}

/// Sleeps (WFI) unless received bytes are waiting; wakes on the next interrupt: a byte, or
/// the SysTick. The check and the WFI run with interrupts masked, so a byte that lands in
/// between is not slept through: a pending interrupt ends WFI even while masked, and its
/// handler runs as soon as the mask is lifted.
pub fn sleep_until_rx() {
    cortex_m::interrupt::free(|_| {
        if !rx_pending() {
            cortex_m::asm::wfi();
        }
    });
}

/// What can go wrong on the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartError {
    /// The transmit buffer did not drain within `TX_STALL_MS`.
    TxStall,
    /// Received bytes were lost (the ring or the UART's buffer overflowed).
    RxOverrun,
}

impl core::fmt::Display for UartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::TxStall => "UART transmit stalled",
            Self::RxOverrun => "UART receive overrun",
        })
    }
}

impl core::error::Error for UartError {}

impl embedded_io::Error for UartError {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            Self::TxStall => embedded_io::ErrorKind::TimedOut,
            Self::RxOverrun => embedded_io::ErrorKind::Other,
        }
    }
}

/// Counters for the report at the end of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct UartStats {
    pub tx_bytes: u32,
    pub rx_bytes: u32,
    pub ring_peak: usize,
    pub overruns: u32,
}

/// UART0, set up for 8N1 with interrupt-driven reception. Only one exists
/// ([`Uart0::take`]).
#[derive(Debug)]
pub struct Uart0 {
    tx_bytes: u32,
}

impl Uart0 {
    /// Sets the UART up and enables its receive interrupt; `None` when it was taken before.
    /// The NVIC borrow shows that the caller owns the core peripherals.
    pub fn take(_nvic: &mut NVIC) -> Option<Self> {
        static TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
        if TAKEN.swap(true, core::sync::atomic::Ordering::AcqRel) {
            return None;
        }
        write(CTRL, 0);
        write(BAUDDIV, PCLK_HZ / BAUD);
        write(STATE, STATE_TX_OVERRUN | STATE_RX_OVERRUN);
        write(INTSTATUS, 0xF);
        while read(STATE) & STATE_RX_FULL != 0 {
            let _ = read(DATA); // whatever came before we were ready
        }
        write(CTRL, CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_INTEN);
        NVIC::unpend(Irq::Uart0Rx);
        // SAFETY: the handler (`on_rx_interrupt`, from main.rs's DefaultHandler) shares
        // state with the main loop only through a critical-section mutex.
        unsafe { NVIC::unmask(Irq::Uart0Rx) };
        Some(Self { tx_bytes: 0 })
    }

    /// Bytes moved and the receive ring's high-water mark.
    pub fn stats(&self) -> UartStats {
        critical_section::with(|cs| {
            let ring = RX.borrow_ref(cs);
            UartStats {
                tx_bytes: self.tx_bytes,
                rx_bytes: ring.rx_total,
                ring_peak: ring.peak,
                overruns: ring.overruns,
            }
        })
    }

    fn put(&mut self, b: u8) -> Result<(), UartError> {
        let start = clock::millis();
        while read(STATE) & STATE_TX_FULL != 0 {
            if clock::millis().wrapping_sub(start) >= TX_STALL_MS {
                return Err(UartError::TxStall);
            }
        }
        write(DATA, u32::from(b));
        self.tx_bytes = self.tx_bytes.wrapping_add(1);
        Ok(())
    }
}

impl embedded_io::ErrorType for Uart0 {
    type Error = UartError;
}

impl embedded_io::Read for Uart0 {
    /// Waits for at least one byte (sleeping between interrupts), then returns what the
    /// ring holds, up to `buf.len()`.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let got = critical_section::with(|cs| {
                let mut ring = RX.borrow_ref_mut(cs);
                if ring.overruns > 0 {
                    return Err(UartError::RxOverrun);
                }
                Ok(ring.pop_into(buf))
            })?;
            if got > 0 {
                return Ok(got);
            }
            sleep_until_rx();
        }
    }
}

impl embedded_io::ReadReady for Uart0 {
    fn read_ready(&mut self) -> Result<bool, UartError> {
        critical_section::with(|cs| {
            let ring = RX.borrow_ref(cs);
            if ring.overruns > 0 {
                Err(UartError::RxOverrun)
            } else {
                Ok(ring.len > 0)
            }
        })
    }
}

impl embedded_io::Write for Uart0 {
    fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        for &b in buf {
            self.put(b)?;
        }
        Ok(buf.len())
    }

    /// Waits until the last byte has left the transmit buffer.
    fn flush(&mut self) -> Result<(), UartError> {
        let start = clock::millis();
        while read(STATE) & STATE_TX_FULL != 0 {
            if clock::millis().wrapping_sub(start) >= TX_STALL_MS {
                return Err(UartError::TxStall);
            }
        }
        Ok(())
    }
}
