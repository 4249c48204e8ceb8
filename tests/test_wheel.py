"""The built wheel works with no checkout: installed into a new virtual environment and run from an empty
folder outside the repository, it exports the shipped model for a Raspberry Pi 4, evaluates the shipped
models, checks the device's C wire code against the shipped vectors, and builds Cortex-M firmware through the
CMake project it carries.

The new environment gets its third-party packages (torch, executorch, ...) from this checkout's .venv through
a path file, not acom: acom comes only from the wheel (the test asserts where it is imported from)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.xdist_group("wheel")
# what a checkout holds beside the source (environments, data, outputs): not copied to build the wheel
NOT_SOURCE = (".venv", ".git", "data", "build", "export-*", "*.egg-info", "__pycache__", ".pytest_cache",
              ".hypothesis", "runs", "reports", "serve-demo.jsonl")  # one worker builds and installs the wheel once
# what the commands read at run time: each must be inside the wheel
PACKAGE_DATA = ["acom/core/pretrained/asr/split.pt", "acom/core/pretrained/ac/split.pt",
                "acom/core/pretrained/ac/full.pt", "acom/runtime/wire_vectors/wire_v2.json",
                "acom/boards/rpi4.toml", "acom/CMakeLists.txt", "acom/firmware_host/c/acom_wire.c",
                "acom/firmware_host/c/linux/acom_edge.cpp", "acom/firmware_host/c/linux/edge_bundle.hpp"]


def _run(cmd: list, cwd: Path, env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict, Path]:
    """(the new environment's bin folder, the environment variables to run it with, an empty work folder)."""
    tmp = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools writes build/ into the source folder, which must stay as it is
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                  tmp / "dist", source], tmp, dict(os.environ))
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp / "dist").glob("acom-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [n for n in PACKAGE_DATA if n not in names]
    assert not missing, f"the wheel lacks run-time files: {missing}"
    assert not [n for n in names if n.startswith(("acom/tests/", "acom/bench/", "acom/reports/", "acom/data/"))]
    env_dir = tmp / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env_dir], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)}))
    # third-party packages from this .venv; its editable acom is not activated (its .pth is not processed)
    (site / "thirdparty.pth").write_text(sysconfig.get_path("purelib") + "\n")
    done = _run([sys.executable, "-m", "pip", "--python", env_dir / "bin" / "python", "install", "--no-deps",
                 "-q", wheel], tmp, dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    work = tmp / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # the new environment first; this .venv's bin last, for tools a user has on PATH (cmake)
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}{os.pathsep}{Path(sys.executable).parent}"
    where = _run([env_dir / "bin" / "python", "-c", "import acom; print(acom.__file__)"], work, env)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(site), f"acom imported from {where.stdout}, not the wheel"
    return env_dir / "bin", env, work


def test_export_rpi4_with_the_shipped_model(installed, speech_set):
    bin_dir, env, work = installed
    run = _run([bin_dir / "acom-export", "--board", "rpi4", "--data", speech_set, "--calibration-windows", "4",
                "--verify-items", "4", "--out", "bundle", "--keep-failed", "--json"], work, env)
    assert run.returncode in (0, 3), run.stderr[-3000:]  # 3: written, verification on 4 items failed
    manifest = json.loads((work / "bundle" / "manifest.json").read_text())
    assert manifest["board"] == "rpi4" and manifest["task"] == "asr"
    for name in ("edge.pte", "edge.tflite"):
        assert (work / "bundle" / name).stat().st_size > 10_000
    assert {a["file"] for a in manifest["artifacts"]} >= {"edge.pte", "edge.tflite"}


def test_eval_the_shipped_models(installed, speech_set, urban_set):
    bin_dir, env, work = installed
    for task, data in (("asr", speech_set), ("ac", urban_set)):
        run = _run([bin_dir / "acom", "eval", "--task", task, "--data", data, "--features", work / f"feat-{task}",
                    "--json"], work, env)
        assert run.returncode == 0, run.stderr[-3000:]
        result = json.loads(run.stdout)
        assert result["checkpoint"].endswith(f"core/pretrained/{task}/split.pt") and result["items"] > 0
        metric = "wer" if task == "asr" else "accuracy"
        assert all(metric in row for row in result["results"])


def test_c_wire_code_and_a_firmware_build(installed):
    bin_dir, env, work = installed
    run = _run([bin_dir / "python", "-m", "acom.firmware_host.wire_c", "--board", "host", "--board", "cortex-m4",
                "--json"], work, env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["board"] for r in rows] == ["host", "cortex-m4"]
    assert all(r["lines"] > 0 and not r["differences"] for r in rows)


def test_a_missing_data_file_is_named(installed, urban_set):
    bin_dir, env, work = installed
    where = _run([bin_dir / "python", "-c", "from acom.core.checkpoint import PRETRAINED; print(PRETRAINED)"],
                 work, env)
    shipped = Path(where.stdout.strip()) / "ac" / "split.pt"
    moved = shipped.with_name("split.pt.away")
    shipped.rename(moved)
    try:
        run = _run([bin_dir / "acom", "eval", "--task", "ac", "--data", urban_set], work, env)
    finally:
        moved.rename(shipped)
    assert run.returncode == 2
    assert str(shipped) in run.stderr and "Traceback" not in run.stderr


def test_acom_edge_builds_from_the_wheel(installed):
    """The Pis' device program from the installed package's sources and CMake project (for the host here)."""
    bin_dir, env, work = installed
    built = _run([bin_dir / "python", "-m", "acom.firmware_host.edge_runner", "--build", "host"], work, env)
    assert built.returncode == 0, built.stderr[-2000:]
    exe = Path(built.stdout.strip())
    assert exe.is_file() and "site-packages" not in str(exe)  # built in the cache, not into the install
    helped = _run([exe, "--help"], work, env)
    assert helped.returncode == 0 and "--bundle DIR" in helped.stdout
