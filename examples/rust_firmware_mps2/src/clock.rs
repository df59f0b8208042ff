//! Milliseconds from SysTick: a 1 kHz interrupt counts them. On the AN385/AN386 images the
//! core runs at 25 MHz (QEMU's SYSCLK_FRQ), so the reload value is 25 000 - 1. Under QEMU
//! (without -icount) the emulated clock follows the host's, so these are real milliseconds.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;

/// The core clock, Hz.
pub const CORE_HZ: u32 = 25_000_000;

static MILLIS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}

/// Starts the 1 kHz tick.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_HZ / 1_000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Milliseconds since [`start`], wrapping at 2^32.
pub fn millis() -> u32 {
    MILLIS.load(Ordering::Relaxed)
}

/// The [`usmp::Clock`] of this board.
#[derive(Clone, Copy, Debug, Default)]
pub struct Millis;

impl usmp::Clock for Millis {
    fn now_ms(&mut self) -> u32 {
        millis()
    }

    /// Sleeps until the next interrupt, a received byte (the UART's receive interrupt) or
    /// the next tick, unless a byte is already waiting.
    fn idle(&mut self) {
        crate::uart::sleep_until_rx();
    }
}
