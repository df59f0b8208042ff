//! Output and errors shared by the subcommands: results on stdout (text or `--json`),
//! diagnostics on stderr, and the exit codes.
use std::fmt;

/// Where a subcommand's output goes, and how.
#[derive(Clone, Copy, Debug)]
pub struct Out {
    /// `--json`: one JSON object per line on stdout instead of text.
    pub json: bool,
    /// `-v` count.
    pub verbose: u8,
}

impl Out {
    pub fn new(json: bool, verbose: u8) -> Self {
        Self { json, verbose }
    }

    /// A diagnostic line on stderr, shown from verbosity `level` (1 = `-v`).
    pub fn log(&self, level: u8, msg: impl fmt::Display) {
        if self.verbose >= level {
            eprintln!("usmp: {msg}");
        }
    }
}

/// A failed command. The exit codes: 1 the operation failed (a peer refused, a check did not
/// pass), 2 bad usage (clap's own code too), 3 an I/O or system error.
#[derive(Debug)]
#[allow(dead_code)] // each variant is used by some subcommand
pub enum CliError {
    /// The operation ran and failed.
    Failed(String),
    /// The arguments cannot work.
    Usage(String),
    /// The system said no (a file, a port, a socket).
    Io(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Failed(_) => 1,
            Self::Usage(_) => 2,
            Self::Io(_) => 3,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(m) | Self::Usage(m) | Self::Io(m) => f.write_str(m),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

/// A JSON string literal (quotes and escapes), for the few objects the tool prints.
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
