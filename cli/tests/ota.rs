//! `usmp ota keygen | sign | verify`, run as a user runs them (the built binary).
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

fn usmp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_usmp"))
        .args(args)
        .output()
        .expect("run usmp")
}

fn ok(args: &[&str]) -> String {
    let o = usmp(args);
    assert!(
        o.status.success(),
        "usmp {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs a command that must fail with `code`, mentioning `needle` on stderr.
fn fails(args: &[&str], code: i32, needle: &str) {
    let o = usmp(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "usmp {args:?}: {err}");
    assert!(
        err.contains(needle),
        "usmp {args:?}: {err:?} lacks {needle:?}"
    );
}

/// `usmp ota sign` arguments (the bundle goes to `out`, or next to the image when None).
fn sign_args(
    key: &Path,
    image: &Path,
    version: &str,
    product: &str,
    out: Option<&Path>,
) -> Vec<String> {
    let mut a: Vec<String> = [
        "ota",
        "sign",
        "--key",
        s(key),
        "--image",
        s(image),
        "--version",
        version,
        "--product",
        product,
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    if let Some(o) = out {
        a.extend(["--out".to_string(), s(o).to_string()]);
    }
    a
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("usmp-cli-ota-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A string field of tests/ota/vectors.json (flat "name": "value" lines).
fn vector(name: &str) -> String {
    let text = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/ota/vectors.json"
    ))
    .unwrap();
    let key = format!("\"{name}\": \"");
    let at = text.find(&key).unwrap() + key.len();
    text[at..at + text[at..].find('"').unwrap()].to_string()
}

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn keygen_writes_a_private_key_and_refuses_to_overwrite() {
    let d = tmp("keygen");
    let prefix = d.join("owner");
    let out = ok(&["ota", "keygen", "--out", s(&prefix)]);
    let key = fs::read_to_string(d.join("owner.key")).unwrap();
    let public = fs::read_to_string(d.join("owner.pub")).unwrap();
    assert_eq!(key.trim().len(), 64);
    assert_eq!(public.trim().len(), 64);
    assert!(out.contains(public.trim()) && out.contains("static const uint8_t owner_key[32]"));
    assert!(!out.contains(key.trim()), "the secret key is never printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(d.join("owner.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    fails(&["ota", "keygen", "--out", s(&prefix)], 2, "exists");
    assert_eq!(fs::read_to_string(d.join("owner.key")).unwrap(), key);
    ok(&["ota", "keygen", "--out", s(&prefix), "--force"]);
    assert_ne!(fs::read_to_string(d.join("owner.key")).unwrap(), key);
    let json = ok(&["--json", "ota", "keygen", "--out", s(&d.join("j"))]);
    assert!(json.starts_with("{\"secret_key_file\":") && json.contains("\"key_id\":"));
}

#[test]
fn sign_reproduces_the_shared_vector_bundle() {
    let d = tmp("vector");
    fs::write(d.join("v.key"), vector("seed") + "\n").unwrap();
    fs::write(d.join("fw.bin"), unhex(&vector("image"))).unwrap();
    ok(&strs(&sign_args(
        &d.join("v.key"),
        &d.join("fw.bin"),
        "5",
        "vector-board",
        None,
    )));
    let bundle = fs::read(d.join("fw.bin.uota")).unwrap();
    let digest: [u8; 32] = Sha256::digest(&bundle).into();
    assert_eq!(unhex(&vector("bundle_sha256")), digest.to_vec());
    assert_eq!(&bundle[..80], &unhex(&vector("manifest"))[..]);
    assert_eq!(&bundle[80..144], &unhex(&vector("signature"))[..]);
}

#[test]
fn verify_accepts_the_owners_bundle_and_names_every_refusal() {
    let d = tmp("verify");
    ok(&["ota", "keygen", "--out", s(&d.join("owner"))]);
    ok(&["ota", "keygen", "--out", s(&d.join("other"))]);
    let image: Vec<u8> = (0..5000u32).map(|i| (i * 13) as u8).collect();
    fs::write(d.join("fw.bin"), &image).unwrap();
    let bundle = d.join("fw.uota");
    let out = ok(&strs(&sign_args(
        &d.join("owner.key"),
        &d.join("fw.bin"),
        "7",
        "board-a",
        Some(&bundle),
    )));
    assert!(
        out.contains("version 7") && out.contains("5000 bytes"),
        "{out}"
    );
    let public = fs::read_to_string(d.join("owner.pub")).unwrap();
    let pub_file = d.join("owner.pub");
    ok(&[
        "ota",
        "verify",
        "--bundle",
        s(&bundle),
        "--pub",
        s(&pub_file),
    ]);
    let json = ok(&[
        "--json",
        "ota",
        "verify",
        "--bundle",
        s(&bundle),
        "--pub",
        public.trim(),
        "--product",
        "board-a",
        "--above",
        "6",
    ]);
    assert!(json.contains("\"version\":7") && json.contains("\"product\":\"board-a\""));

    let v = |b: &Path, extra: &[&str]| {
        let mut a = vec!["ota", "verify", "--bundle", s(b), "--pub", s(&pub_file)];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>, needle: &str| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&refs, 1, needle);
    };
    run(
        v(&bundle, &["--product", "board-b"]),
        "USMP_OTA_WRONG_PRODUCT",
    );
    run(v(&bundle, &["--above", "7"]), "USMP_OTA_DOWNGRADE");
    let other_pub = d.join("other.pub");
    fails(
        &[
            "ota",
            "verify",
            "--bundle",
            s(&bundle),
            "--pub",
            s(&other_pub),
        ],
        1,
        "USMP_OTA_WRONG_KEY",
    );
    let good = fs::read(&bundle).unwrap();
    let variant = |name: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        let p = d.join(name);
        fs::write(&p, b).unwrap();
        p
    };
    run(
        v(&variant("img.uota", &|b| b[144 + 2500] ^= 1), &[]),
        "USMP_OTA_DIGEST_MISMATCH",
    );
    run(
        v(&variant("sig.uota", &|b| b[80 + 5] ^= 1), &[]),
        "USMP_OTA_BAD_SIGNATURE",
    );
    run(
        v(&variant("ver.uota", &|b| b[16] ^= 1), &[]),
        "USMP_OTA_BAD_SIGNATURE",
    );
    run(
        v(&variant("short.uota", &|b| b.truncate(b.len() - 1)), &[]),
        "USMP_OTA_TRUNCATED",
    );
    run(
        v(&variant("long.uota", &|b| b.push(0)), &[]),
        "USMP_OTA_TOO_LARGE",
    );
    run(
        v(&variant("tiny.uota", &|b| b.truncate(100)), &[]),
        "USMP_OTA_BAD_MANIFEST",
    );
    let long = sign_args(
        &d.join("owner.key"),
        &d.join("fw.bin"),
        "1",
        "a-product-name-over-16",
        None,
    );
    fails(&strs(&long), 2, "at most 16 bytes");
}
