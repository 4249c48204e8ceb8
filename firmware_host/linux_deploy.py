"""A folder to copy onto a Raspberry Pi: acom-edge for its board, the ExecuTorch libraries it loads, the bundle's
device files, a run script that captures the microphone with arecord, and a systemd unit that keeps it running.

    OUT/bin/acom-edge           aarch64, finds lib/ by its RUNPATH ($ORIGIN/../lib)
    OUT/lib/libexecutorch*.so   the runtime of the pinned executorch wheel for aarch64
    OUT/bundle/                 manifest.json, edge.pte, edge_priors.bin (what the device reads)
    OUT/acom-edge.env           where to send and which microphone (edited on the board)
    OUT/run.sh                  arecord | acom-edge, as the unit runs it
    OUT/acom-edge.service       systemd unit (restarts it after a failure, 5 s apart)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from acom.errors import AcomError
from acom.firmware_host.edge_runner import LIBRARIES, build_edge, runtime_root
from acom.runtime.manifest import Manifest

INSTALL_DIR = "/opt/acom-edge"
DEVICE_FILES = ("manifest.json", "edge.pte", "edge_priors.bin")

RUN_SH = """#!/bin/sh
# acom-edge on this board: the microphone (arecord, 16-bit mono at the bundle's rate) -> codes -> {link}.
# Settings in acom-edge.env beside this file (systemd reads it too).
here=$(dirname "$(readlink -f "$0")")
[ -f "$here/acom-edge.env" ] && . "$here/acom-edge.env"
set -- --bundle "$here/bundle" --{link} "${{ACOM_SERVER:?set ACOM_SERVER in acom-edge.env}}" \\
  --device-id "${{ACOM_DEVICE_ID:-1}}" $ACOM_OPTIONS
[ -n "$ACOM_KEYS" ] && set -- "$@" --keys "$ACOM_KEYS"
exec "$here/bin/acom-edge" "$@" "|arecord -q -D ${{ACOM_MIC:-default}} -f S16_LE -r {rate} -c 1 -t raw"
"""

ENV = """# acom-edge settings (read by run.sh and the systemd unit)
# where acom serve listens: HOST:PORT for UDP, or a serial port path
ACOM_SERVER={server}
ACOM_DEVICE_ID=1
# ALSA capture device (arecord -L lists them)
ACOM_MIC=default
# a keys file (acom serve --keys format) to sign packets; empty: CRCs only
ACOM_KEYS=
# more acom-edge options, e.g. --entropy --packet-s 1
ACOM_OPTIONS={options}
"""

UNIT = """[Unit]
Description=acom-edge: audio codes for machines ({board}, bundle task {task})
After=network-online.target sound.target
Wants=network-online.target

[Service]
EnvironmentFile={dir}/acom-edge.env
ExecStart={dir}/run.sh
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
"""


def write_deploy(bundle: Path, manifest: Manifest, out: Path, server: str, link: str = "udp") -> list[str]:
    """Write the folder for `manifest.board` into `out` (a new folder; written beside it, then renamed, so a
    failure leaves nothing); the two commands that install it on the board."""
    if out.exists():
        raise AcomError(f"{out}: exists; give another --out or remove it")
    exe = build_edge(manifest.board)
    lib = runtime_root(manifest.board) / "lib"
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        for sub in ("bin", "lib", "bundle"):
            (tmp / sub).mkdir(parents=True)
        shutil.copy2(exe, tmp / "bin" / "acom-edge")
        for name in LIBRARIES:
            shutil.copy2(lib / name, tmp / "lib" / name)
        for name in DEVICE_FILES:
            if (bundle / name).exists():
                shutil.copy2(bundle / name, tmp / "bundle" / name)
        (tmp / "run.sh").write_text(RUN_SH.format(link=link, rate=manifest.sample_rate))
        (tmp / "run.sh").chmod(0o755)
        (tmp / "acom-edge.env").write_text(ENV.format(
            server=server, options="--entropy" if (bundle / "edge_priors.bin").exists() else ""))
        (tmp / "acom-edge.service").write_text(UNIT.format(board=manifest.board, task=manifest.task, dir=INSTALL_DIR))
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [f"scp -r {out} pi@raspberrypi.local:/tmp/acom-edge",
            f"ssh pi@raspberrypi.local 'sudo rm -rf {INSTALL_DIR} && sudo mv /tmp/acom-edge {INSTALL_DIR} && "
            f"sudo systemctl enable --now {INSTALL_DIR}/acom-edge.service'"]
