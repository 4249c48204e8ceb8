"""A first `acom-export` run tells the truth: the bundle is named after the task it exported, missing data is an
error that names the command making it, the verification says what it compared, and third-party logging stays out
of the way unless --verbose asks for it."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from acom.core.checkpoint import PRETRAINED
from acom.corpora.data_cli import _parser as data_parser
from acom.errors import ExportError
from acom.export.cli import PREFIX
from acom.export.pipeline import ExportOptions, default_out, export
from tests.export.helpers import edited_board

EXPORT = Path(sys.executable).with_name("acom-export")
NOT_ACOM_LINES_MAX = 3  # stderr lines of a plain run that acom-export did not write itself


def _run(args: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXPORT), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600)


def _not_acom(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(PREFIX)]


def test_default_out_is_named_after_the_resolved_task(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_out("rpi4", "asr") == Path("export-rpi4-asr")
    # an existing default folder is refused right after loading: the message names the folder export would write
    (tmp_path / "export-rpi4-asr").mkdir()
    with pytest.raises(ExportError, match=r"^export-rpi4-asr exists"):  # no --task: the shipped ASR model
        export(ExportOptions(board="rpi4", log=lambda s: None))
    (tmp_path / "export-rpi4-ac").mkdir()
    with pytest.raises(ExportError, match=r"^export-rpi4-ac exists"):  # no --task: the checkpoint's task
        export(ExportOptions(board="rpi4", checkpoint=PRETRAINED / "ac" / "split.pt", log=lambda s: None))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export-rpi4-ac", "export-rpi4-asr"]


def test_missing_default_data_names_the_command_and_writes_nothing(tmp_path: Path) -> None:
    done = _run(["--board", "rpi4", "--task", "ac"], tmp_path)
    assert done.returncode == 2, done.stderr
    command = "acom data synth-urban --out data/urban --clips-per-class 20 --seed 0"
    assert "data/urban is missing" in done.stderr and f"`{command}`" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no data set generated, no bundle
    ns = data_parser().parse_args(shlex.split(command)[2:])  # the command is one `acom data` accepts
    assert (ns.action, ns.out, ns.clips_per_class, ns.seed) == ("synth-urban", Path("data/urban"), 20, 0)


def test_missing_data_for_asr_and_a_wrong_data_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExportError, match=r"data/speech is missing.*`acom data synth-speech --out data/speech "
                                          r"--minutes 5 --seed 0`"):
        export(ExportOptions(board="rpi4", log=lambda s: None))
    with pytest.raises(ExportError, match=r"--data nowhere: not a folder.*`acom data synth-speech --out nowhere "):
        export(ExportOptions(board="rpi4", data=Path("nowhere"), log=lambda s: None))
    assert list(tmp_path.iterdir()) == []


def test_a_plain_run_is_quiet_and_says_what_it_verified(urban_set: Path, tmp_path: Path) -> None:
    """The classifier for the real rpi4 profile (ExecuTorch and LiteRT), no --out, as a user runs it."""
    done = _run(["--board", "rpi4", "--task", "ac", "--data", urban_set, "--calibration-windows", "8",
                 "--verify-items", "12"], tmp_path)
    assert done.returncode == 0, done.stderr
    noise = _not_acom(done.stderr)
    assert len(noise) <= NOT_ACOM_LINES_MAX, "\n".join(noise)
    assert f"{PREFIX} quantize + lower (litert) ..." in done.stderr  # acom's own progress stays
    assert (tmp_path / "export-rpi4-ac" / "manifest.json").is_file()
    out = done.stdout
    assert "bundle export-rpi4-ac:" in out
    assert "each artifact (the int8 edge program) against the float model" in out
    for artifact in ("edge.pte (executorch-xnnpack)", "edge.tflite (litert)"):
        line = next(x for x in out.splitlines() if x.strip().startswith(artifact))
        assert "points lost against the float model" in line
    assert out.count("codes equal to the float model's: ") == 2
    record = json.loads((PRETRAINED / "ac" / "metrics.json").read_text())
    shipped = next(r for r in record["results"]["split.pt"] if r["n_q"] == 1)["accuracy"]
    assert f"shipped model: accuracy {100 * shipped:.2f} recorded when it was packaged" in out
    assert "demonstrations trained on synthetic speech and sounds" in out
    assert out.rstrip().endswith("verification passed")


def test_verbose_lets_the_libraries_speak(urban_set: Path, tmp_path: Path) -> None:
    """A cheaper export (LiteRT only, 1 s windows, 2 items): --verbose shows the converters' own output."""
    board = edited_board(tmp_path, "rpi4", runtimes='["litert"]', window_s="1.0")
    done = _run(["--board", board, "--task", "ac", "--data", urban_set, "--out", tmp_path / "b",
                 "--calibration-windows", "2", "--verify-items", "2", "--keep-failed", "--verbose"], tmp_path)
    assert done.returncode in (0, 3), done.stderr  # 3: two clips may miss the bar; written all the same
    assert len(_not_acom(done.stderr)) > NOT_ACOM_LINES_MAX, done.stderr
    assert f"{PREFIX} verify ..." in done.stderr


def test_bench_help_lists_its_benchmarks_and_their_options() -> None:
    done = subprocess.run([str(Path(sys.executable).with_name("acom")), "bench", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for text in ("rate-accuracy", "codecs", "the task metric against bit/s", "against codec pipelines",
                 "acom bench rate-accuracy [-h] --task", "acom bench codecs [-h] --task", "--runs", "Examples:",
                 "Exit codes"):
        assert text in done.stdout, text
    done = subprocess.run([str(Path(sys.executable).with_name("acom")), "bench", "no-such"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "invalid choice" in done.stderr and "rate-accuracy" in done.stderr
