#!/usr/bin/env python3
"""The independent mDNS peer of tests/discovery: python-zeroconf (PyPI `zeroconf`, in the
v2 interop venv), on 127.0.0.1 inside the test's network namespace.

  zc_peer.py register NAME:tcp|udp:PORT[:WIRE] ...
      registers each instance (address 127.0.0.1, TXT v=WIRE when given, host
      NAME-zc.local), prints "REGISTERED" and stays until killed.
  zc_peer.py resolve NAME tcp|udp [TIMEOUT_MS]
      resolves the instance and prints one JSON line: {"found": bool, "addresses": [...],
      "port": N, "txt": {...}, "server": "..."}.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import time

from zeroconf import IPVersion, ServiceInfo, Zeroconf


def zc() -> Zeroconf:
    return Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)


def register(specs: list[str]) -> None:
    z = zc()
    for spec in specs:
        parts = spec.split(":")
        name, proto, port = parts[0], parts[1], int(parts[2])
        props = {"v": parts[3]} if len(parts) > 3 else {}
        info = ServiceInfo(f"_usmp._{proto}.local.", f"{name}._usmp._{proto}.local.",
                           addresses=[socket.inet_aton("127.0.0.1")], port=port,
                           properties=props, server=f"{name}-zc.local.")
        z.register_service(info)
    print("REGISTERED", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


def resolve(name: str, proto: str, timeout_ms: int) -> None:
    z = zc()
    info = z.get_service_info(f"_usmp._{proto}.local.", f"{name}._usmp._{proto}.local.", timeout=timeout_ms)
    out: dict = {"found": info is not None}
    if info is not None:
        out.update(addresses=info.parsed_addresses(), port=info.port, server=info.server,
                   txt={k.decode(): (v or b"").decode() for k, v in info.properties.items()})
    print(json.dumps(out), flush=True)
    z.close()


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "register":
        register(sys.argv[2:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "resolve":
        resolve(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 3000)
    else:
        sys.exit(__doc__)
