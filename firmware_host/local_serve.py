"""`acom serve` on this machine for a device under test: started on a loopback UDP port or a tty, its results
read back as they are written, stopped (SIGTERM, then killed) on any exit.

    with local_server(bundle, out, udp=True) as srv:
        ...send to srv.udp (host, port)...
        finals = srv.wait_finals(n, timeout=60)
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from acom.errors import AcomError


@dataclass
class LocalServer:
    proc: subprocess.Popen
    out: Path
    udp: tuple[str, int] | None  # where to send datagrams; None when it reads a tty

    def lines(self) -> list[dict]:
        """The JSON lines written so far (whole lines only)."""
        text = self.out.read_text() if self.out.exists() else ""
        return [json.loads(x) for x in text.split("\n")[:-1]]

    def finals(self) -> list[dict]:
        return sorted((r for r in self.lines() if r["type"] == "final"), key=lambda r: (r["device"], r["stream"]))

    def wait_finals(self, n: int, timeout: float) -> list[dict]:
        """The final results once there are n (AcomError after `timeout` seconds or if the server stops)."""
        deadline = time.monotonic() + timeout
        while len(found := self.finals()) < n:
            if self.proc.poll() is not None:
                raise AcomError(f"acom serve stopped (exit {self.proc.returncode}) with {len(found)} of {n} results")
            if time.monotonic() > deadline:
                raise AcomError(f"acom serve: {len(found)} of {n} streams ended within {timeout:.0f} s")
            time.sleep(0.05)
        return found


@contextlib.contextmanager
def local_server(bundle: Path, out: Path, *, udp: bool = False, tty: Path | None = None,
                 extra: tuple[str, ...] = ()) -> Iterator[LocalServer]:
    """`acom serve --bundle bundle --out out` on 127.0.0.1 (a free UDP port) or reading `tty`; `extra` more
    options (e.g. --keys FILE). Yields once it is ready to receive."""
    link = ["--udp", "127.0.0.1:0"] if udp else ["--serial", str(tty)]
    out.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "acom.cli", "serve", "--bundle", str(bundle), *link, "--out",
                             str(out), *extra], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        if not line.startswith("{"):
            raise AcomError(f"acom serve did not start: {line.strip()} {proc.stderr.read()[-500:]}")
        ready = json.loads(line)
        if not udp:
            time.sleep(1.5)  # it opens the tty after saying ready: pyserial's open discards bytes that came before
        yield LocalServer(proc, out, tuple(ready["udp"]) if udp else None)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
