"""What the C tests share: the stdin test driver built once per module."""

from __future__ import annotations

import subprocess

import pytest

from acom.firmware_host import cbuild


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """c/test/encode_stdin.c built for this machine: records in -> the lines it prints."""
    work = tmp_path_factory.mktemp("encoder")
    exe = cbuild.build("host", [cbuild.TEST_DIR / "encode_stdin.c"], work / "encode_stdin", work)

    def run(records: bytes) -> list[str]:
        done = subprocess.run([str(exe)], input=records, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.decode().splitlines()
    return run

