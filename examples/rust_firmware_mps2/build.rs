//! Puts memory.x where the linker finds it (cortex-m-rt's link.x includes it), and makes
//! cargo rebuild the firmware when one of its compile-time settings changes (main.rs reads
//! them with `option_env!`), so one target directory serves builds for both wire versions.

use std::env;
use std::fs;
use std::path::PathBuf;

/// The settings main.rs reads at compile time.
const SETTINGS: [&str; 4] = [
    "USMP_FW_PSK",
    "USMP_FW_WIRE",
    "USMP_FW_DEVICE_ID",
    "USMP_FW_KEEPALIVE_MS",
];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    for name in SETTINGS {
        println!("cargo:rerun-if-env-changed={name}");
    }
}
