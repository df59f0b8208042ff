//! `usmp ota keygen | sign | verify`: the firmware owner's side of signed updates
//! (docs/OTA.md). The owner keeps the Ed25519 secret key; the public key is compiled into the
//! firmware; `sign` turns a build into a bundle (manifest || signature || image) that a
//! gateway operator pushes (python/usmp_ota.py) and devices verify.
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use usmp::ota::{self, Manifest, Status, MANIFEST_LEN, SIGNATURE_LEN};
use zeroize::Zeroizing;

use crate::out::{hex, json_str, CliError, Out};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Create an owner key pair: <NAME>.key (secret, mode 0600) and <NAME>.pub.
    Keygen(KeygenArgs),
    /// Sign a firmware image into a bundle for `push_update` (python/usmp_ota.py).
    // `--version` is the firmware's here, not the tool's.
    #[command(disable_version_flag = true)]
    Sign(SignArgs),
    /// Check a bundle as a device would: signature (strict), size, digest, product, version.
    Verify(VerifyArgs),
}

#[derive(clap::Args, Debug)]
struct KeygenArgs {
    /// Path prefix of the key files (writes PREFIX.key and PREFIX.pub).
    #[arg(long, default_value = "owner")]
    out: PathBuf,
    /// Overwrite existing key files.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args, Debug)]
struct SignArgs {
    /// The owner's secret key file (from `usmp ota keygen`).
    #[arg(long)]
    key: PathBuf,
    /// The firmware image to sign.
    #[arg(long)]
    image: PathBuf,
    /// Firmware version (devices install only versions above their own).
    #[arg(long)]
    version: u64,
    /// Product id the image is for (up to 16 bytes of text).
    #[arg(long)]
    product: String,
    /// Bundle to write (default: the image path with .uota appended).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct VerifyArgs {
    /// The bundle.
    #[arg(long)]
    bundle: PathBuf,
    /// The owner's public key: a .pub file or 64 hex digits.
    #[arg(long = "pub")]
    public_key: String,
    /// Also require this product id.
    #[arg(long)]
    product: Option<String>,
    /// Also require a version above this one (the device's running version).
    #[arg(long)]
    above: Option<u64>,
}

pub fn run(out: &Out, a: Args) -> Result<(), CliError> {
    match a.command {
        Command::Keygen(k) => keygen(out, k),
        Command::Sign(s) => sign(out, s),
        Command::Verify(v) => verify(out, v),
    }
}

fn path_with(prefix: &Path, ext: &str) -> PathBuf {
    let mut p = prefix.as_os_str().to_owned();
    p.push(ext);
    PathBuf::from(p)
}

fn c_array(name: &str, bytes: &[u8]) -> String {
    let rows: Vec<String> = bytes
        .chunks(8)
        .map(|row| {
            let cells: Vec<String> = row.iter().map(|b| format!("0x{b:02x}")).collect();
            format!("    {},", cells.join(", "))
        })
        .collect();
    format!(
        "static const uint8_t {name}[{}] = {{\n{}\n}};",
        bytes.len(),
        rows.join("\n")
    )
}

fn write_new(path: &Path, data: &[u8], secret: bool, force: bool) -> Result<(), CliError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::Usage(format!(
                "{} exists (use --force to replace it)",
                path.display()
            ))
        } else {
            CliError::Io(format!("{}: {e}", path.display()))
        }
    })?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| CliError::Io(format!("{}: {e}", path.display())))
}

fn keygen(out: &Out, a: KeygenArgs) -> Result<(), CliError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    OsRng
        .try_fill_bytes(seed.as_mut())
        .map_err(|e| CliError::Io(format!("the OS random source failed: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let public = key.verifying_key().to_bytes();
    let key_path = path_with(&a.out, ".key");
    let pub_path = path_with(&a.out, ".pub");
    let seed_hex = Zeroizing::new(hex(seed.as_ref()) + "\n");
    write_new(&key_path, seed_hex.as_bytes(), true, a.force)?;
    write_new(&pub_path, (hex(&public) + "\n").as_bytes(), false, a.force)?;
    let id = hex(&ota::key_id(&public));
    if out.json {
        println!(
            "{{\"secret_key_file\":{},\"public_key_file\":{},\"public_key_hex\":{},\"key_id\":{}}}",
            json_str(&key_path.display().to_string()),
            json_str(&pub_path.display().to_string()),
            json_str(&hex(&public)),
            json_str(&id)
        );
    } else {
        println!(
            "secret key: {} (keep it off the gateway and out of the firmware)",
            key_path.display()
        );
        println!("public key: {} = {}", pub_path.display(), hex(&public));
        println!("key id:     {id}");
        println!(
            "C (usmp_ota_config_t.public_key):\n{}",
            c_array("owner_key", &public)
        );
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    fs::read(path).map_err(|e| CliError::Io(format!("{}: {e}", path.display())))
}

fn parse_hex32(text: &str, what: &str) -> Result<[u8; 32], CliError> {
    let t = text.trim();
    let bad = || CliError::Usage(format!("{what}: expected 64 hex digits"));
    if t.len() != 64 || !t.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn product_id(name: &str) -> Result<[u8; ota::PRODUCT_ID_LEN], CliError> {
    ota::product_id(name.as_bytes())
        .ok_or_else(|| CliError::Usage(format!("--product {name:?}: at most 16 bytes")))
}

fn product_text(id: &[u8]) -> String {
    let end = id.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    String::from_utf8_lossy(&id[..end]).into_owned()
}

fn sign(out: &Out, a: SignArgs) -> Result<(), CliError> {
    let seed_text = Zeroizing::new(
        String::from_utf8(read(&a.key)?)
            .map_err(|_| CliError::Usage(format!("{}: not a key file", a.key.display())))?,
    );
    let seed = Zeroizing::new(parse_hex32(&seed_text, &a.key.display().to_string())?);
    let key = SigningKey::from_bytes(&seed);
    let image = read(&a.image)?;
    let size = u32::try_from(image.len())
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| CliError::Usage("the image must be 1 byte to 4 GiB".into()))?;
    let public = key.verifying_key().to_bytes();
    let m = Manifest {
        image_size: size,
        version: a.version,
        product_id: product_id(&a.product)?,
        digest: Sha256::digest(&image).into(),
        key_id: ota::key_id(&public),
    };
    let manifest = m.encode();
    let signature = key.sign(&manifest).to_bytes();
    // The device's own check, before anything leaves this machine.
    ota::verify(&public, &manifest, &signature)
        .map_err(|s| CliError::Failed(format!("the new signature does not verify: {s}")))?;
    let dest = a.out.unwrap_or_else(|| path_with(&a.image, ".uota"));
    let mut bundle = Vec::with_capacity(MANIFEST_LEN + SIGNATURE_LEN + image.len());
    bundle.extend_from_slice(&manifest);
    bundle.extend_from_slice(&signature);
    bundle.extend_from_slice(&image);
    write_new(&dest, &bundle, false, true)?;
    report(out, "signed", &dest, &m);
    Ok(())
}

fn report(out: &Out, what: &str, path: &Path, m: &Manifest) {
    if out.json {
        println!(
            "{{\"{what}\":{},\"version\":{},\"product\":{},\"image_size\":{},\"image_sha256\":{},\"key_id\":{}}}",
            json_str(&path.display().to_string()),
            m.version,
            json_str(&product_text(&m.product_id)),
            m.image_size,
            json_str(&hex(&m.digest)),
            json_str(&hex(&m.key_id))
        );
    } else {
        println!("{what}: {}", path.display());
        println!(
            "  version {}, product {:?}, {} bytes",
            m.version,
            product_text(&m.product_id),
            m.image_size
        );
        println!("  image sha256 {}", hex(&m.digest));
        println!("  key id {}", hex(&m.key_id));
    }
}

fn verify(out: &Out, a: VerifyArgs) -> Result<(), CliError> {
    let key_text = if a.public_key.trim().len() == 64 && !Path::new(&a.public_key).exists() {
        a.public_key.clone()
    } else {
        String::from_utf8(read(Path::new(&a.public_key))?)
            .map_err(|_| CliError::Usage(format!("{}: not a key file", a.public_key)))?
    };
    let public = parse_hex32(&key_text, "--pub")?;
    let data = read(&a.bundle)?;
    let fail = |s: Status, detail: &str| CliError::Failed(format!("{s}: {detail}"));
    if data.len() < MANIFEST_LEN + SIGNATURE_LEN {
        return Err(fail(
            Status::BadManifest,
            "shorter than manifest and signature",
        ));
    }
    let (raw, rest) = data.split_at(MANIFEST_LEN);
    let (sig, image) = rest.split_at(SIGNATURE_LEN);
    let raw: &[u8; MANIFEST_LEN] = raw.try_into().map_err(|_| fail(Status::BadManifest, ""))?;
    let sig: &[u8; SIGNATURE_LEN] = sig.try_into().map_err(|_| fail(Status::BadManifest, ""))?;
    let m = Manifest::decode(raw).map_err(|s| fail(s, "not a format-1 manifest"))?;
    if m.key_id != ota::key_id(&public) {
        return Err(fail(Status::WrongKey, "signed under another key id"));
    }
    ota::verify(&public, raw, sig).map_err(|s| fail(s, "signature"))?;
    if let Some(p) = &a.product {
        if m.product_id != product_id(p)? {
            return Err(fail(Status::WrongProduct, &product_text(&m.product_id)));
        }
    }
    if let Some(v) = a.above {
        if m.version <= v {
            return Err(fail(Status::Downgrade, &format!("version {}", m.version)));
        }
    }
    if image.len() as u64 != u64::from(m.image_size) {
        let s = if image.len() as u64 > u64::from(m.image_size) {
            Status::TooLarge
        } else {
            Status::Truncated
        };
        return Err(fail(s, &format!("{} image bytes", image.len())));
    }
    if <[u8; 32]>::from(Sha256::digest(image)) != m.digest {
        return Err(fail(Status::DigestMismatch, "image"));
    }
    report(out, "verified", &a.bundle, &m);
    Ok(())
}
