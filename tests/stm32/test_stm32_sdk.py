"""The STM32 firmware of examples/stm32_uart built from the prebuilt SDK, as a C user
without Rust builds it, and run in QEMU (netduinoplus2) against the REAL gateway:

    scripts/dist.sh --target thumbv7em-none-eabihf  ->  usmp-<version>-thumbv7em-none-eabihf.tar.gz
    unpack; cmake -DUSMP_SDK_DIR=<unpacked> (find_package(usmp CONFIG)), with cargo and
    rustc off the PATH and no ~/.cargo  ->  usmp_stm32_uart.elf
    firmware -> USART1 -> QEMU -serial tcp:127.0.0.1:PORT -> gateway.py (usmp 1.2.2, wire v2)

The archive is made by the producer side (dist.sh runs cargo); the firmware build must not
need it: the test checks that no cargo is reachable, that the link took the SDK's
libusmp_core.a, and that the firmware passes its quickstart against the gateway (the
gateway's log: one session, the messages, the device's BYE).

Run:  .venv-interop/v2/bin/python -m pytest tests/stm32/test_stm32_sdk.py -q -rA
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests"))  # gateway_harness.py, qemu_harness.py
from gateway_harness import ensure_venvs, gateways, new_run_dir, run_build  # noqa: E402
from qemu_harness import find_qemu, run_qemu  # noqa: E402

EXAMPLE = REPO / "examples" / "stm32_uart"
TARGET = "thumbv7em-none-eabihf"
BUILD_ROOT = Path(os.environ.get("USMP_STM32_BUILD")
                  or str(Path(os.environ.get("USMP_BUILD_DIR") or REPO / "build") / "stm32")) / "sdk"
PSK = "usmp-stm32-sdk-psk-0123456789ab"
BUILD_TIMEOUT_S = 900.0   # dist.sh compiles the core when target/ has none for the target
QEMU_TIMEOUT_S = 40.0


def no_rust_env(home: Path) -> dict[str, str]:
    """The environment without Rust: PATH without any directory holding cargo or rustc,
    HOME, CARGO_HOME and RUSTUP_HOME pointing at an empty directory."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not (Path(d) / "cargo").exists() and not (Path(d) / "rustc").exists()]
    env = dict(os.environ, PATH=os.pathsep.join(dirs), HOME=str(home), CARGO_HOME=str(home),
               RUSTUP_HOME=str(home))
    for var in ("CARGO", "RUSTC", "RUSTFLAGS", "CARGO_TARGET_DIR"):
        env.pop(var, None)
    return env


@pytest.fixture(scope="session")
def sdk() -> Path:
    """scripts/dist.sh for the firmware's target, unpacked: the SDK's root directory."""
    dist = BUILD_ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    dist.mkdir(parents=True)
    run_build([["bash", "scripts/dist.sh", "--target", TARGET, "--dest", str(dist)]],
              BUILD_ROOT / "dist.log", BUILD_TIMEOUT_S)
    archives = list(dist.glob(f"usmp-*-{TARGET}.tar.gz"))
    assert len(archives) == 1, f"dist.sh made {archives}"
    unpacked = BUILD_ROOT / "unpacked"
    shutil.rmtree(unpacked, ignore_errors=True)
    with tarfile.open(archives[0]) as tf:
        tf.extractall(unpacked, filter="data")
    (root,) = list(unpacked.iterdir())
    return root


@pytest.fixture(scope="session")
def firmware(sdk: Path) -> Path:
    bdir = BUILD_ROOT / "firmware"
    shutil.rmtree(bdir, ignore_errors=True)
    bdir.mkdir(parents=True)
    home = BUILD_ROOT / "no-rust-home"
    home.mkdir(exist_ok=True)
    env = no_rust_env(home)
    assert shutil.which("cargo", path=env["PATH"]) is None and shutil.which("rustc", path=env["PATH"]) is None
    for tool in ("cmake", "arm-none-eabi-gcc"):
        if shutil.which(tool, path=env["PATH"]) is None:
            pytest.fail(f"{tool} not found (scripts/setup.sh installs it)")
    gen = ["-G", "Ninja"] if shutil.which("ninja", path=env["PATH"]) else []
    # run_build runs what it is given; `env -i`-style isolation through env(1).
    envcmd = ["env", "-i"] + [f"{k}={v}" for k, v in env.items()]
    log = bdir / "build-output.log"
    run_build([envcmd + ["cmake", "-S", str(EXAMPLE), "-B", str(bdir), *gen,
                         f"-DCMAKE_TOOLCHAIN_FILE={EXAMPLE / 'cmake' / 'arm-none-eabi.cmake'}",
                         f"-DUSMP_SDK_DIR={sdk}", "-DUSMP_STM32_EMULATOR=ON",
                         "-DUSMP_STM32_WIRE=2", f"-DUSMP_STM32_PSK={PSK}",
                         "-DUSMP_STM32_FRAMING=raw"],
               envcmd + ["cmake", "--build", str(bdir)]], log, BUILD_TIMEOUT_S)
    text = log.read_text()
    assert f"Rust target {TARGET} (prebuilt SDK" in text, text[-3000:]
    elf = bdir / "usmp_stm32_uart.elf"
    assert elf.exists(), text[-3000:]
    # The core in the link is the SDK's archive (the map names each input file).
    core = sdk / "lib" / "libusmp_core.a"
    assert f"{core}(" in (bdir / "usmp_stm32_uart.map").read_text(), f"{core} not linked"
    return elf


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    yield new_run_dir(BUILD_ROOT / "runs")


def test_firmware_from_sdk_against_gateway(firmware: Path, workdir: Path) -> None:
    qemu = find_qemu("netduinoplus2")
    with gateways(ensure_venvs(), workdir, PSK, numbered=False) as make:
        gw = make("v2")
        run = run_qemu(qemu, "netduinoplus2", firmware, gw.port, workdir, "sdk-quickstart",
                       QEMU_TIMEOUT_S)
        deadline = time.monotonic() + 5
        while not [e for e in gw.events() if e["ev"] == "closed"] and time.monotonic() < deadline:
            time.sleep(0.05)
        evs = gw.events()
        ctx = f"\n--- firmware (exit {run.rc}):\n{run.out}\n--- gateway log:\n{gw.tail(30)}"
    assert run.rc == 0 and "RESULT PASS" in run.out, "firmware failed" + ctx
    opened = [e for e in evs if e["ev"] == "session_open"]
    assert len(opened) == 1, ctx
    sid = opened[0]["sid"]
    lens = [e["len"] for e in evs if e["ev"] == "message" and e["sid"] == sid]
    assert lens and 1808 in lens, f"gateway received {lens}" + ctx
    closed = [e for e in evs if e["ev"] == "closed" and e.get("sid") == sid]
    assert closed and closed[0]["reason"] == "Remote sent BYE", f"session end: {closed}" + ctx
    print(f"\nSDK firmware vs usmp 1.2.2: exit {run.rc}, {run.seconds:.2f} s, messages {lens}, "
          f"closed '{closed[0]['reason']}'; built without cargo from {firmware.parent}")
