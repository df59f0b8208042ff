"""Signed firmware updates end to end, against the REAL gateway from PyPI (usmp 1.2.2):

    owner:    usmp ota keygen / usmp ota sign          (the CLI, cli/)
    gateway:  tests/ota/ota_gateway.py = USMPServer + python/usmp_ota.py push_update
    device:   tests/ota/ota_device (C, usmp.h + usmp_ota.h, the component's POSIX hooks,
              built with ASan/UBSan) writing the image to a file

Checked: a signed image installs over TCP and UDP and the file is byte-identical; every
refusal (one flipped image bit, a flipped signature bit, the wrong key, a downgrade,
another product, a truncated transfer, an oversize image, a non-canonical signature,
chunks out of order or overlapping) carries its named code to the device AND to the
gateway, and nothing is committed (no file, no leftover .part); a transfer whose session
dies (the gateway is SIGKILLed mid-transfer) resumes in the device's next session from
its last written offset. Each test has its own gateway process.

Run: .venv-interop/v2/bin/python -m pytest tests/ota -q -rA   (builds what it needs under
$USMP_BUILD_DIR/ota, default build/ota)
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "python"))
from gateway_harness import Gateway, ensure_venvs, gateways, new_run_dir, node_dir, run_build  # noqa: E402
from ota_harness import OTA_BUILD as BUILD, OTA_GATEWAY, Owner, build_cli, keygen, ota_events as events, sign  # noqa: E402
import usmp_ota as ota  # noqa: E402

PSK = "usmp-ota-test-psk-0123456789abcdef"
PRODUCT = "posix-test-dev"
RUNNING = 3            # the device's firmware version
CAPACITY = 128 * 1024  # its update slot
BUILD_TIMEOUT_S = 900.0
DEVICE_TIMEOUT_S = 60.0


# --------------------------------------------------------------------------- builds

@pytest.fixture(scope="session")
def venvs() -> dict[str, Path]:
    return ensure_venvs()


@pytest.fixture(scope="session")
def workdir() -> Path:
    return new_run_dir(BUILD / "runs")


@pytest.fixture(scope="session")
def cli(workdir: Path) -> Path:
    return build_cli(workdir / "cli-build.log")


@pytest.fixture(scope="session")
def device(workdir: Path) -> Path:
    bdir = BUILD / "device"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    run_build([["cmake", "-S", str(HERE), "-B", str(bdir), *gen, "-DUSMP_SANITIZE=ON"],
               ["cmake", "--build", str(bdir)]], workdir / "device-build.log", BUILD_TIMEOUT_S)
    exe = bdir / "ota_device"
    assert exe.exists(), exe
    return exe


@pytest.fixture(scope="session")
def owners(cli: Path, workdir: Path) -> dict[str, Owner]:
    return {name: keygen(cli, workdir / name) for name in ("owner", "stranger")}


# --------------------------------------------------------------------------- helpers

class Env:
    def __init__(self, cli: Path, device: Path, owners: dict[str, Owner], wd: Path,
                 make: Callable[..., Gateway]) -> None:
        self.cli, self.device_exe, self.owners, self.wd, self.make = cli, device, owners, wd, make

    def image(self, size: int, seed: int = 1) -> Path:
        data = hashlib.shake_256(f"image-{seed}-{size}".encode()).digest(size)
        p = self.wd / f"fw-{seed}-{size}.bin"
        p.write_bytes(data)
        return p

    def sign(self, image: Path, version: int, product: str = PRODUCT, owner: str = "owner",
             name: str = "fw.uota") -> Path:
        return sign(self.cli, self.owners[owner], image, version, product, self.wd / name)

    def gateway(self, bundle: Path, proto: str = "tcp", extra: tuple[str, ...] = (), **kw: object) -> Gateway:
        return self.make("v2", proto=proto, script=OTA_GATEWAY,
                         extra_args=["--bundle", str(bundle), *extra], **kw)

    def device_cmd(self, gw: Gateway, out: Path, proto: str, *extra: str) -> list[str]:
        return [str(self.device_exe), "--port", str(gw.port), "--psk", PSK, "--proto", proto,
                "--key", self.owners["owner"].public_hex, "--product", PRODUCT,
                "--version", str(RUNNING), "--capacity", str(CAPACITY), "--out", str(out), *extra]

    def run_device(self, gw: Gateway, out: Path, proto: str = "tcp", *extra: str) -> tuple[int, list[str]]:
        cmd = self.device_cmd(gw, out, proto, *extra)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=DEVICE_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"device hung: {' '.join(cmd)}\n{e.stdout}\n{gw.tail()}")
        (self.wd / "device.out").write_text(r.stdout + r.stderr)
        return r.returncode, r.stdout.splitlines()


@pytest.fixture
def env(cli: Path, device: Path, owners: dict[str, Owner], venvs: dict[str, Path], workdir: Path,
        request: pytest.FixtureRequest) -> Iterator[Env]:
    wd = node_dir(workdir, request.node.name)
    with gateways(venvs, wd, PSK) as make:
        yield Env(cli, device, owners, wd, make)


def device_events(lines: list[str], kind: str) -> list[str]:
    return [ln for ln in lines if ln.startswith(f"EVENT {kind}")]


def nothing_committed(out: Path) -> None:
    assert not out.exists(), f"{out} was committed"
    assert not Path(str(out) + ".part").exists(), "the partial image was not removed"


# --------------------------------------------------------------------------- installs

@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_a_signed_image_installs_byte_identical(env: Env, proto: str) -> None:
    image = env.image(60_000 if proto == "tcp" else 20_000)
    bundle = env.sign(image, version=RUNNING + 1)
    gw = env.gateway(bundle, proto)
    out = env.wd / "installed.bin"
    rc, lines = env.run_device(gw, out, proto)
    assert rc == 0, "\n".join(lines) + "\n" + gw.tail()
    assert device_events(lines, "installed") == [f"EVENT installed version={RUNNING + 1} size={image.stat().st_size}"]
    assert out.read_bytes() == image.read_bytes()
    assert not Path(str(out) + ".part").exists()
    pushed = events(gw, "pushed", wait_s=5)
    assert len(pushed) == 1 and pushed[0]["resumed_from"] == 0, gw.tail()
    assert pushed[0]["size"] == image.stat().st_size
    sent = [e["sent"] for e in events(gw, "progress")]
    assert sent == sorted(sent) and sent[-1] == image.stat().st_size


# --------------------------------------------------------------------------- refusals

def add_group_order(sig: bytes) -> bytes:
    """The same signature with S + L in place of S (verifies under a lax check)."""
    L = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(sig[32:], "little") + L
    return sig[:32] + s.to_bytes(32, "little")


def rewrite(bundle: Path, dest: Path, *, image_bit: int | None = None, sig_bit: int | None = None,
            sig: Callable[[bytes], bytes] | None = None) -> Path:
    b = ota.Bundle.from_file(bundle)
    image, signature = bytearray(b.image), bytearray(b.signature)
    if image_bit is not None:
        image[image_bit // 8] ^= 1 << (image_bit % 8)
    if sig_bit is not None:
        signature[sig_bit // 8] ^= 1 << (sig_bit % 8)
    if sig is not None:
        signature = bytearray(sig(bytes(signature)))
    dest.write_bytes(ota.Bundle(b.manifest_bytes, bytes(signature), bytes(image)).to_bytes())
    return dest


def masquerade(env: Env, image: Path, dest: Path) -> Path:
    """The owner's key id in the manifest, the stranger's signature under it."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    b = ota.Bundle.from_file(env.sign(image, RUNNING + 1, name="owner.uota"))
    seed = bytes.fromhex(env.owners["stranger"].key.read_text().strip())
    sig = Ed25519PrivateKey.from_private_bytes(seed).sign(b.manifest_bytes)
    dest.write_bytes(ota.Bundle(b.manifest_bytes, sig, b.image).to_bytes())
    return dest


# (test id, expected refusal, how the bundle is made, gateway options, transport)
REFUSALS = [
    ("image-bit", "DIGEST_MISMATCH",
     lambda e, img: rewrite(e.sign(img, RUNNING + 1), e.wd / "x.uota", image_bit=12_345 * 8 + 3),
     ("--no-check",), "tcp"),
    ("image-bit-udp", "DIGEST_MISMATCH",
     lambda e, img: rewrite(e.sign(img, RUNNING + 1), e.wd / "x.uota", image_bit=7),
     ("--no-check",), "udp"),
    ("signature-bit", "BAD_SIGNATURE",
     lambda e, img: rewrite(e.sign(img, RUNNING + 1), e.wd / "x.uota", sig_bit=77), (), "tcp"),
    ("signature-bit-udp", "BAD_SIGNATURE",
     lambda e, img: rewrite(e.sign(img, RUNNING + 1), e.wd / "x.uota", sig_bit=300), (), "udp"),
    ("wrong-key", "WRONG_KEY", lambda e, img: e.sign(img, RUNNING + 1, owner="stranger"), (), "tcp"),
    ("wrong-key-posing-as-owner", "BAD_SIGNATURE", lambda e, img: masquerade(e, img, e.wd / "x.uota"),
     (), "tcp"),
    ("downgrade", "DOWNGRADE", lambda e, img: e.sign(img, RUNNING - 1), (), "tcp"),
    ("same-version", "DOWNGRADE", lambda e, img: e.sign(img, RUNNING), (), "tcp"),
    ("other-product", "WRONG_PRODUCT", lambda e, img: e.sign(img, RUNNING + 1, product="other-board"),
     (), "tcp"),
    ("truncated-transfer", "TRUNCATED", lambda e, img: e.sign(img, RUNNING + 1),
     ("--behave", "truncate"), "tcp"),
    ("truncated-transfer-udp", "TRUNCATED", lambda e, img: e.sign(img, RUNNING + 1),
     ("--behave", "truncate"), "udp"),
    ("oversize-image", "TOO_LARGE", lambda e, img: e.sign(e.image(CAPACITY + 1, seed=9), RUNNING + 1),
     (), "tcp"),
    ("bytes-past-the-manifest", "TOO_LARGE", lambda e, img: e.sign(img, RUNNING + 1),
     ("--behave", "extra-bytes"), "tcp"),
    ("noncanonical-signature", "NONCANONICAL_SIGNATURE",
     lambda e, img: rewrite(e.sign(img, RUNNING + 1), e.wd / "x.uota", sig=add_group_order), (), "tcp"),
    ("chunks-out-of-order", "BAD_OFFSET", lambda e, img: e.sign(img, RUNNING + 1),
     ("--behave", "out-of-order"), "tcp"),
    ("chunks-overlapping", "BAD_OFFSET", lambda e, img: e.sign(img, RUNNING + 1),
     ("--behave", "overlap"), "tcp"),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_refusals_are_named_and_commit_nothing(env: Env, case: tuple) -> None:
    _, want, make_bundle, gw_opts, proto = case
    bundle = make_bundle(env, env.image(24_000))
    gw = env.gateway(bundle, proto, gw_opts)
    out = env.wd / "installed.bin"
    rc, lines = env.run_device(gw, out, proto)
    name = "USMP_OTA_" + want
    assert rc == 3, "\n".join(lines) + "\n" + gw.tail()
    assert device_events(lines, "refused") == [f"EVENT refused status={name} code={int(ota.Status[want])}"], lines
    refused = events(gw, "refused", wait_s=5)
    assert [e["name"] for e in refused] == [name], gw.tail()
    nothing_committed(out)


# --------------------------------------------------------------------------- resume

@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_a_dead_session_resumes_from_the_last_written_offset(env: Env, proto: str) -> None:
    image = env.image(60_000, seed=5)
    bundle = env.sign(image, version=RUNNING + 2)
    pause = 20_000
    gw = env.gateway(bundle, proto, ("--pause-at", str(pause)))
    out = env.wd / "installed.bin"
    cmd = env.device_cmd(gw, out, proto, "--idle-ms", "1500", "--sessions", "3")
    log = open(env.wd / "device.out", "w")
    dev = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        deadline = time.monotonic() + 30
        while not events(gw, "paused"):
            assert dev.poll() is None and time.monotonic() < deadline, gw.tail()
            time.sleep(0.05)
        paused_at = events(gw, "paused")[0]["sent"]
        gw.kill()  # the session dies with the gateway, mid-transfer
        assert Path(str(out) + ".part").exists() and not out.exists()
        gw.extra_args = ["--bundle", str(bundle)]
        gw.start(port=gw.port)  # back on the same port, pushing the same bundle
        stdout, _ = dev.communicate(timeout=DEVICE_TIMEOUT_S)
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()
        log.close()
    lines = stdout.splitlines()
    assert dev.returncode == 0, "\n".join(lines) + "\n" + gw.tail()
    accepted = device_events(lines, "accepted")
    assert len(accepted) == 2, lines
    assert accepted[0].endswith("offset=0")
    resumed = int(accepted[1].rsplit("offset=", 1)[1])
    assert resumed >= paused_at and resumed < image.stat().st_size, (paused_at, accepted)
    assert "EVENT session 2" in lines
    pushed = events(gw, "pushed", wait_s=5)
    assert len(pushed) == 1 and pushed[0]["resumed_from"] == resumed, gw.tail()
    # Only the rest went over the second session (the gateway sends chunks of 1800 bytes).
    size = image.stat().st_size
    assert pushed[0]["chunks"] == -(-(size - resumed) // ota.MAX_CHUNK), pushed
    assert out.read_bytes() == image.read_bytes()
    assert not Path(str(out) + ".part").exists()
