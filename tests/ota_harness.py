"""What the suites that run signed updates share (tests/ota: the POSIX C device;
tests/stm32/test_stm32_ota.py: the STM32 firmware in QEMU): the owner's side done with the
real CLI (`usmp ota keygen`, `usmp ota sign`, built once into $USMP_BUILD_DIR/ota/cli),
the OTA gateway script, and reading its events.

Each suite imports it after putting tests/ on sys.path.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway_harness import REPO, Gateway

OTA_BUILD = Path(os.environ.get("USMP_BUILD_DIR") or REPO / "build") / "ota"
OTA_GATEWAY = REPO / "tests" / "ota" / "ota_gateway.py"


def build_cli(log: Path) -> Path:
    """The owner's tool `usmp` (cli/, debug build; one build for every test that runs it,
    its output in the build directory's cli/build-output.log, not `log`)."""
    from serial_harness import usmp_cli
    return usmp_cli()


@dataclass
class Owner:
    """An owner key pair made with `usmp ota keygen`."""
    key: Path
    public_hex: str


def keygen(cli: Path, prefix: Path) -> Owner:
    r = subprocess.run([str(cli), "--json", "ota", "keygen", "--out", str(prefix)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    return Owner(Path(info["secret_key_file"]), info["public_key_hex"])


def sign(cli: Path, owner: Owner, image: Path, version: int, product: str, out: Path) -> Path:
    r = subprocess.run([str(cli), "ota", "sign", "--key", str(owner.key), "--image", str(image),
                        "--version", str(version), "--product", product, "--out", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return out


def ota_events(gw: Gateway, name: str, wait_s: float = 0.0) -> list[dict[str, Any]]:
    """The OTA gateway's events of one kind (pushed, refused, progress, paused, ...). With
    `wait_s`, waits that long at most for the first one: the device may exit on the
    gateway's reply before the gateway has logged what it did."""
    deadline = time.monotonic() + wait_s
    while True:
        found = [e for e in gw.events() if e.get("ev") == name]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.02)
