//! EMULATOR ONLY: random bytes from the host's /dev/urandom, read through semihosting
//! (SYS_OPEN, SYS_READ). The MPS2 AN386 image has no random number generator, and QEMU
//! answers semihosting calls from the host (`-semihosting-config enable=on,target=native`).
//!
//! On a real board this is unusable twice over: without a debugger attached the semihosting
//! breakpoint (BKPT 0xAB) faults, and with one the "entropy" crosses the debug link in
//! clear. A real device must use its hardware TRNG (wrapped as a rand_core `RngCore +
//! CryptoRng`, the same way) or a DRBG seeded from it. Never a counter or a fixed seed:
//! the X25519 keys and the REKEY salts come from here.

use core::num::NonZeroU32;

use cortex_m_semihosting::{nr, syscall};
use rand_core::{CryptoRng, RngCore};

/// The error code for "the host did not deliver" (rand_core's custom range).
const HOST_READ_FAILED: NonZeroU32 = NonZeroU32::MIN.saturating_add(rand_core::Error::CUSTOM_START);

/// An open handle on the host's /dev/urandom.
#[derive(Debug)]
pub struct HostEntropy {
    handle: usize,
}

impl HostEntropy {
    /// Opens /dev/urandom on the host; `None` when semihosting is off or the open failed.
    pub fn open() -> Option<Self> {
        const PATH: &[u8] = b"/dev/urandom\0";
        // SAFETY: SYS_OPEN reads the NUL-terminated name at PATH (length without the NUL)
        // and writes nothing to our memory.
        let handle = unsafe { syscall!(OPEN, PATH.as_ptr(), nr::open::R_BINARY, PATH.len() - 1) };
        // The host returns -1 on failure.
        (handle != usize::MAX).then_some(Self { handle })
    }
}

impl Drop for HostEntropy {
    fn drop(&mut self) {
        // SAFETY: SYS_CLOSE takes our own handle and touches no memory.
        let _ = unsafe { syscall!(CLOSE, self.handle) };
    }
}

impl RngCore for HostEntropy {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    /// The infallible form, for callers that use it (usmp calls `try_fill_bytes`): a
    /// failure here cannot be reported, so the firmware stops with an error exit.
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if self.try_fill_bytes(dest).is_err() {
            crate::fatal("host entropy read failed");
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        let mut rest = dest;
        while !rest.is_empty() {
            // SAFETY: SYS_READ writes at most rest.len() bytes at rest's address, and
            // returns how many of them it did NOT write.
            let missing = unsafe { syscall!(READ, self.handle, rest.as_mut_ptr(), rest.len()) };
            if missing >= rest.len() {
                return Err(HOST_READ_FAILED.into()); // nothing came: error or end of file
            }
            let got = rest.len() - missing;
            rest = match rest.get_mut(got..) {
                Some(r) => r,
                None => return Err(HOST_READ_FAILED.into()),
            };
        }
        Ok(())
    }
}

// It is the operating system's CSPRNG, read through the debugger channel: cryptographically
// secure as long as that channel is the emulator's.
impl CryptoRng for HostEntropy {}
