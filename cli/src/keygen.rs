//! `usmp keygen`: a random 32-byte pre-shared key from the operating system's RNG, printed
//! as hex, as a C initializer and as the lines that use it (the STM32 example's CMake
//! option, `usmp connect`, the gateway).
use rand_core::{OsRng, RngCore};

use crate::out::{hex, json_str, CliError, Out};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Key length in bytes (the v2 gateway needs at least 16; 32 is recommended).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(16..=64))]
    bytes: u16,
}

pub fn run(out: &Out, a: Args) -> Result<(), CliError> {
    let mut key = vec![0u8; usize::from(a.bytes)];
    OsRng
        .try_fill_bytes(&mut key)
        .map_err(|e| CliError::Io(format!("the OS random source failed: {e}")))?;
    let h = hex(&key);
    let c_init = key
        .chunks(8)
        .map(|row| {
            let cells: Vec<String> = row.iter().map(|b| format!("0x{b:02x}")).collect();
            format!("    {},", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n");
    if out.json {
        println!("{{\"psk_hex\":{}}}", json_str(&h));
    } else {
        println!("hex:       {h}");
        println!(
            "C:         static const uint8_t psk[{}] = {{\n{c_init}\n}};",
            key.len()
        );
        // Where the key goes: the STM32 example's build option, the host device and the
        // gateway. (The ESP-IDF component has no PSK setting: the ESP32 example's
        // CONFIG_EXAMPLE_PSK is text, and a product provisions its key at run time.)
        println!("cmake:     -DUSMP_STM32_PSK_HEX={h}");
        println!("connect:   usmp connect HOST:PORT --psk-hex {h}");
        println!("gateway:   USMPServer(..., psk=bytes.fromhex(\"{h}\"))");
    }
    out.log(
        1,
        format_args!("{} random bytes from the OS RNG", key.len()),
    );
    Ok(())
}
