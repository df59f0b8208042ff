"""Signed updates on the STM32: the stm32_ota firmware (examples/stm32_uart with
-DUSMP_STM32_OTA=ON: the library's OTA receiver, a RAM update slot) on QEMU's
netduinoplus2, its USART1 bridged to the REAL gateway (usmp 1.2.2, tests/ota/ota_gateway.py)
that pushes a bundle signed with the real CLI (`usmp ota keygen` / `usmp ota sign`; the
public key goes into the firmware at build time).

Checked: the image installs and the committed RAM image is byte-identical (the firmware
prints an FNV-1a of it, compared with the image's here); an image with one flipped bit is
refused as USMP_OTA_DIGEST_MISMATCH on both sides with nothing committed. The firmware
also prints the painted stack depth of usmp_ota_handle per message type (BENCHMARKS.md).

Run:  .venv-interop/v2/bin/python -m pytest tests/stm32/test_stm32_ota.py -q -rA
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "python"))
from gateway_harness import ensure_venvs, gateways, new_run_dir, node_dir, run_build  # noqa: E402
from ota_harness import OTA_GATEWAY, Owner, build_cli, keygen, ota_events, sign  # noqa: E402
from qemu_harness import find_qemu, run_qemu  # noqa: E402
import usmp_ota as ota  # noqa: E402

EXAMPLE = REPO / "examples" / "stm32_uart"
BUILD_ROOT = Path(os.environ.get("USMP_STM32_BUILD")
                  or str(Path(os.environ.get("USMP_BUILD_DIR") or REPO / "build") / "stm32"))
PSK = "usmp-stm32-psk-0123456789abcdef"
PRODUCT = "stm32f405-demo"
RUNNING = 1
BUILD_TIMEOUT_S = 900.0
QEMU_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def workdir() -> Path:
    return new_run_dir(BUILD_ROOT / "ota-runs")


@pytest.fixture(scope="module")
def owner(workdir: Path) -> tuple[Path, Owner]:
    cli = build_cli(workdir / "cli-build.log")
    return cli, keygen(cli, workdir / "owner")


@pytest.fixture(scope="module")
def firmware(owner: tuple[Path, Owner], workdir: Path) -> Path:
    for tool in ("cmake", "arm-none-eabi-gcc"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found (scripts/setup.sh installs it)")
    bdir = BUILD_ROOT / "ota"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    run_build([["cmake", "-S", str(EXAMPLE), "-B", str(bdir), *gen,
                f"-DCMAKE_TOOLCHAIN_FILE={EXAMPLE / 'cmake' / 'arm-none-eabi.cmake'}",
                "-DUSMP_STM32_EMULATOR=ON", "-DUSMP_STM32_WIRE=2", f"-DUSMP_STM32_PSK={PSK}",
                "-DUSMP_STM32_FRAMING=raw",
                "-DUSMP_STM32_OTA=ON", f"-DUSMP_STM32_OTA_PUBKEY_HEX={owner[1].public_hex}",
                f"-DUSMP_STM32_OTA_PRODUCT={PRODUCT}", f"-DUSMP_STM32_OTA_VERSION={RUNNING}"],
               ["cmake", "--build", str(bdir), "--target", "usmp_stm32_ota"]],
              workdir / "firmware-build.log", BUILD_TIMEOUT_S)
    elf = bdir / "usmp_stm32_ota.elf"
    assert elf.exists(), elf
    return elf


@pytest.fixture(scope="module")
def venvs() -> dict[str, Path]:
    return ensure_venvs()


@pytest.fixture(scope="module")
def qemu() -> Path:
    return find_qemu("netduinoplus2")


@pytest.fixture
def wd(workdir: Path, request: pytest.FixtureRequest) -> Path:
    return node_dir(workdir, request.node.name)


@pytest.fixture
def gateway(venvs: dict[str, Path], wd: Path) -> Iterator:
    with gateways(venvs, wd, PSK, numbered=False) as make:
        yield make


def fnv1a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def signed(owner: tuple[Path, Owner], wd: Path, size: int, version: int) -> tuple[bytes, Path]:
    image = hashlib.shake_256(f"stm32-image-{size}".encode()).digest(size)
    (wd / "fw.bin").write_bytes(image)
    return image, sign(owner[0], owner[1], wd / "fw.bin", version, PRODUCT, wd / "fw.uota")


def test_the_firmware_installs_a_signed_image(firmware: Path, qemu: Path, owner: tuple[Path, Owner],
                                              gateway, wd: Path) -> None:
    image, bundle = signed(owner, wd, 32_768, RUNNING + 1)
    gw = gateway("v2", script=OTA_GATEWAY, extra_args=["--bundle", str(bundle)])
    run = run_qemu(qemu, "netduinoplus2", firmware, gw.port, wd, "ota-install", QEMU_TIMEOUT_S)
    assert run.rc == 0, run.out + "\n" + gw.tail()
    line = run.step("ota installed")
    assert line == f"STEP ota installed version={RUNNING + 1} size={len(image)} fnv1a={fnv1a(image):08x}", run.out
    pushed = ota_events(gw, "pushed", wait_s=5)
    assert len(pushed) == 1 and pushed[0]["size"] == len(image), gw.tail()
    assert "slot hooks: begin 1, write 19, finish 1, abort 0" in run.out, run.out
    stack = run.line("STACK usmp_ota_handle")
    m = re.search(r"offer=(\d+) chunk=(\d+) done=(\d+)", stack)
    assert m and all(0 < int(x) < 16384 for x in m.groups()), stack
    print(f"\n{stack}\n{run.line('RESULT')}")


def test_the_firmware_refuses_a_flipped_bit(firmware: Path, qemu: Path, owner: tuple[Path, Owner],
                                            gateway, wd: Path) -> None:
    image, bundle = signed(owner, wd, 8_192, RUNNING + 1)
    b = ota.Bundle.from_file(bundle)
    bad = bytearray(b.image)
    bad[4000] ^= 0x10
    (wd / "bad.uota").write_bytes(ota.Bundle(b.manifest_bytes, b.signature, bytes(bad)).to_bytes())
    gw = gateway("v2", script=OTA_GATEWAY, extra_args=["--bundle", str(wd / "bad.uota"), "--no-check"])
    run = run_qemu(qemu, "netduinoplus2", firmware, gw.port, wd, "ota-refuse", QEMU_TIMEOUT_S)
    assert run.rc == 5, run.out + "\n" + gw.tail()
    assert run.step("ota refused") == "STEP ota refused status=USMP_OTA_DIGEST_MISMATCH", run.out
    assert [e["name"] for e in ota_events(gw, "refused", wait_s=5)] == ["USMP_OTA_DIGEST_MISMATCH"], gw.tail()
    assert "finish 0, abort 1" in run.out, run.out
