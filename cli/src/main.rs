//! `usmp`: the host tool of the USMP device library.
//!
//! Every subcommand lives in a module of its own and returns `Result<(), CliError>`;
//! `main` prints the error on stderr and exits with its code (see [`CliError`]).
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod announce;
mod bridge;
mod connect;
mod discover;
mod keygen;
mod ota;
mod out;
mod serial;

use out::Out;

/// The usmp host tool.
#[derive(Parser, Debug)]
#[command(name = "usmp", version, about, propagate_version = true)]
struct Cli {
    /// More detail on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Machine-readable output: one JSON object per line on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a new random 32-byte pre-shared key (hex, C initializer, where it goes).
    Keygen(keygen::Args),
    /// Signed firmware updates: owner keys, signing a build into a bundle, checking one.
    Ota(ota::Args),
    /// Announce a gateway on the local network (DNS-SD over mDNS), for devices that discover it.
    Announce(announce::Args),
    /// List the gateways announced on the local network.
    Discover(discover::Args),
    /// Join a serial port to the gateway: COBS datagrams <-> UDP (or raw frames <-> TCP).
    Bridge(bridge::Args),
    /// A device on this host: stdin lines out as messages, messages in printed; or --echo-test N.
    Connect(connect::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Out::new(cli.json, cli.verbose);
    let r = match cli.command {
        Command::Keygen(a) => keygen::run(&out, a),
        Command::Ota(a) => ota::run(&out, a),
        Command::Announce(a) => announce::run(&out, a),
        Command::Discover(a) => discover::run(&out, a),
        Command::Bridge(a) => bridge::run(&out, a),
        Command::Connect(a) => connect::run(&out, a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("usmp: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
