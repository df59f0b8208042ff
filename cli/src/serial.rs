//! Serial ports for the host tool: a tty (a USB-UART adapter, a pty) opened raw with
//! termios, or a pseudo-terminal pair the tool makes itself (`--pty`). Non-blocking, with
//! poll(2) for waits; `embedded-io` traits so that `usmp::uart::CobsUart` runs over it.
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, BaudRate, SetArg};

/// Baud rate when `DEV` has no `:BAUD`.
pub const DEFAULT_BAUD: u32 = 115_200;

/// Splits `DEV[:BAUD]`.
pub fn parse_spec(spec: &str) -> Result<(String, u32), String> {
    match spec.rsplit_once(':') {
        Some((dev, b)) if !dev.is_empty() && b.chars().all(|c| c.is_ascii_digit()) => {
            let baud = b
                .parse::<u32>()
                .map_err(|_| format!("bad baud rate in '{spec}'"))?;
            baud_rate(baud)?;
            Ok((dev.to_string(), baud))
        }
        _ if spec.is_empty() => Err("empty serial device".into()),
        _ => Ok((spec.to_string(), DEFAULT_BAUD)),
    }
}

fn baud_rate(baud: u32) -> Result<BaudRate, String> {
    Ok(match baud {
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115_200 => BaudRate::B115200,
        230_400 => BaudRate::B230400,
        460_800 => BaudRate::B460800,
        921_600 => BaudRate::B921600,
        1_000_000 => BaudRate::B1000000,
        2_000_000 => BaudRate::B2000000,
        3_000_000 => BaudRate::B3000000,
        4_000_000 => BaudRate::B4000000,
        _ => {
            return Err(format!(
                "unsupported baud rate {baud} (9600, 19200, 38400, 57600, 115200, 230400, \
                 460800, 921600, 1000000, 2000000, 3000000, 4000000)"
            ))
        }
    })
}

/// Raw mode (no echo, no line editing, no CR/LF mapping, 8 bits), and the speed if given.
fn make_raw(fd: &impl AsFd, baud: Option<u32>) -> io::Result<()> {
    let mut t = termios::tcgetattr(fd)?;
    termios::cfmakeraw(&mut t);
    t.control_flags |= termios::ControlFlags::CLOCAL | termios::ControlFlags::CREAD;
    t.control_flags &= !(termios::ControlFlags::CSTOPB | termios::ControlFlags::CRTSCTS);
    t.input_flags &=
        !(termios::InputFlags::IXON | termios::InputFlags::IXOFF | termios::InputFlags::IXANY);
    if let Some(b) = baud {
        let rate = baud_rate(b).map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
        termios::cfsetspeed(&mut t, rate)?;
    }
    termios::tcsetattr(fd, SetArg::TCSANOW, &t)?;
    Ok(())
}

fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    let fl = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Waits up to `ms` for `fd` to become ready for `flags`; true when it is (or reports an
/// error or hang-up, which the next read or write then returns).
pub fn wait(fd: &impl AsFd, flags: PollFlags, ms: u64) -> io::Result<bool> {
    let ms = u16::try_from(ms).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(fd.as_fd(), flags)];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// An open serial port (or the master side of a pty).
#[derive(Debug)]
pub struct Serial {
    file: File,
    /// What it is, for messages.
    pub name: String,
    /// Of a pty the tool made: the device side, kept open so that the master never sees a
    /// hang-up while no device program has it open.
    _slave: Option<OwnedFd>,
}

impl Serial {
    /// Opens a tty raw, 8N1, no flow control, at `baud`.
    pub fn open(path: &str, baud: u32) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc_flags())
            .open(path)?;
        make_raw(&file, Some(baud))?;
        // Whatever sat in the buffers is from before us.
        let _ = termios::tcflush(&file, termios::FlushArg::TCIOFLUSH);
        Ok(Self {
            file,
            name: format!("{path} at {baud} baud"),
            _slave: None,
        })
    }

    /// Makes a pseudo-terminal pair: returns the master side and the path of the device
    /// side, which a device program opens as its serial port.
    pub fn pty() -> io::Result<(Self, String)> {
        let pair = nix::pty::openpty(None, None)?;
        make_raw(&pair.slave, None)?;
        let path = nix::unistd::ttyname(&pair.slave)?;
        let path = path.to_string_lossy().into_owned();
        let master = File::from(pair.master);
        set_nonblocking(&master)?;
        Ok((
            Self {
                file: master,
                name: format!("pty {path}"),
                _slave: Some(pair.slave),
            },
            path,
        ))
    }

    /// Reads what is there: Ok(0) when nothing is (or a pty has no other side yet);
    /// Err when the port is gone.
    pub fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.file.read(buf) {
            Ok(0) => Err(io::Error::new(ErrorKind::UnexpectedEof, "the port closed")),
            Ok(n) => Ok(n),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Writes what fits now: the count (0 when the port's buffer is full).
    pub fn write_some(&mut self, data: &[u8]) -> io::Result<usize> {
        match self.file.write(data) {
            Ok(n) => Ok(n),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// The descriptor, for poll.
    pub fn fd(&self) -> &File {
        &self.file
    }
}

fn libc_flags() -> i32 {
    (OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits()
}

impl embedded_io::ErrorType for Serial {
    type Error = io::Error;
}

impl embedded_io::Read for Serial {
    /// Blocks until at least one byte is there.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.read_some(buf)?;
            if n > 0 {
                return Ok(n);
            }
            wait(&self.file, PollFlags::POLLIN, 1000)?;
        }
    }
}

impl embedded_io::ReadReady for Serial {
    fn read_ready(&mut self) -> io::Result<bool> {
        wait(&self.file, PollFlags::POLLIN, 0)
    }
}

impl embedded_io::Write for Serial {
    /// Writes at least one byte, waiting up to 2 s for room.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let n = self.write_some(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    ErrorKind::TimedOut,
                    "the serial port does not drain",
                ));
            }
            wait(&self.file, PollFlags::POLLOUT, 100)?;
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            parse_spec("/dev/ttyUSB0").unwrap(),
            ("/dev/ttyUSB0".into(), 115_200)
        );
        assert_eq!(
            parse_spec("/dev/ttyUSB0:921600").unwrap(),
            ("/dev/ttyUSB0".into(), 921_600)
        );
        assert!(parse_spec("/dev/ttyUSB0:12345").is_err());
        assert!(parse_spec("").is_err());
    }

    #[test]
    fn a_pty_carries_bytes_both_ways() {
        let (mut master, path) = Serial::pty().unwrap();
        let mut dev = Serial::open(&path, 115_200).unwrap();
        embedded_io::Write::write_all(&mut dev, b"up").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(embedded_io::Read::read(&mut master, &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"up");
        embedded_io::Write::write_all(&mut master, &[0, 0xFF, 0x0A, 0x0D]).unwrap();
        let mut got = Vec::new();
        while got.len() < 4 {
            let n = embedded_io::Read::read(&mut dev, &mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(
            got,
            [0, 0xFF, 0x0A, 0x0D],
            "raw: no CR/LF mapping, all 8 bits"
        );
    }
}
