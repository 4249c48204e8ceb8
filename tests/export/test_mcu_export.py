"""acom-export for a Cortex-M55 + Ethos-U55 board: TFLM-checked int8 .tflite, vela build, C sources, fit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from acom.errors import ExportError
from acom.export.pipeline import ExportOptions, export, tflm_arena_or_explain
from tests.export.helpers import edited_board


@pytest.fixture(scope="module")
def m55_bundle(m55_ac: Path) -> tuple[Path, dict]:
    """The shared Cortex-M55 classifier bundle (tests/conftest.py) and its manifest as JSON."""
    return m55_ac, json.loads((m55_ac / "manifest.json").read_text())


def test_m55_bundle_fits_and_is_verified_in_tflm(m55_bundle) -> None:
    out, m = m55_bundle
    assert m["frontend"]["runs_in"] == "firmware" and m["graph"]["input_shape"][:2] == [1, 40]
    assert len(m["frontend"]["feature_mean"]) == 40
    runtimes = {a["runtime"]: a for a in m["artifacts"]}
    assert set(runtimes) == {"tflite-micro", "ethos-u-vela"}
    assert 4096 < runtimes["tflite-micro"]["arena_bytes"] < 256 * 1024
    vela = runtimes["ethos-u-vela"]["vela"]
    assert vela["npu_ops"] and vela["cycles"] > 0 and vela["sram_bytes"] > 0
    assert m["peak_memory_bytes"] <= 256 * 1024 and m["model_flash_bytes"] <= 512 * 1024
    assert m["verification"]["passed"]  # the shared export keeps a failed bundle: the verdict is checked here
    (check,) = m["verification"]["checks"]
    assert check["runtime"] == "tflite-micro" and min(check["agreement_vs_quantized_reference"]) >= 0.99
    assert {"edge_int8.tflite", "edge_int8_vela.tflite", "c/acom_model.h", "c/acom_model.c"} <= set(m["files"])


def test_m55_c_sources_compile_and_carry_the_codebook_hash(m55_bundle, tmp_path: Path) -> None:
    out, m = m55_bundle
    header = (out / "c" / "acom_model.h").read_text()
    assert m["codebook_hash"] in header
    for c in sorted((out / "c").glob("*.c")):
        subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-fsyntax-only", "-I", str(out / "c"), str(c)],
                       check=True)


def test_m55_c_sources_cross_compile_for_cortex_m55(m55_bundle, tmp_path: Path) -> None:
    out, m = m55_bundle
    objs = []
    for c in sorted((out / "c").glob("*.c")):
        obj = tmp_path / (c.stem + ".o")
        subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m55", "-mthumb", "-O2", "-std=c11", "-Wall", "-Werror",
                        "-I", str(out / "c"), "-c", str(c), "-o", str(obj)], check=True)
        objs.append(str(obj))
    sizes = subprocess.run(["arm-none-eabi-size", "-t", *objs], check=True, capture_output=True, text=True).stdout
    text, data = (int(x) for x in sizes.strip().splitlines()[-1].split()[:2])
    # the flatbuffer array (read-only, so in .text) is all there, and nothing is in RAM-initialized .data
    assert text >= m["files"]["edge_int8.tflite"]["bytes"] and data == 0


def test_m55_bundle_c_builds_with_its_cmakelists(m55_bundle, tmp_path: Path) -> None:
    """c/CMakeLists.txt builds the bundle's C (graph, front end, kernels, wire code, TFLM model array) into
    the static library acom_bundle that a firmware adds with add_subdirectory(), here for the M55."""
    out, m = m55_bundle
    from acom.export import c_constants
    from acom.firmware_host import cbuild
    assert {"c/CMakeLists.txt", f"c/{c_constants.HEADER_NAME}"} <= set(m["files"])
    assert (out / "c" / c_constants.HEADER_NAME).read_text() == c_constants.render()
    build = tmp_path / "build"
    toolchain = cbuild.CMAKE_DIR / "arm-none-eabi.cmake"
    for cmd in ([cbuild.cmake(), "-S", str(out / "c"), "-B", str(build), f"-DCMAKE_TOOLCHAIN_FILE={toolchain}",
                 "-DACOM_CPU=cortex-m55", "-DACOM_FPU=auto"], [cbuild.cmake(), "--build", str(build), "-j", "2"]):
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    archive = build / "libacom_bundle.a"
    members = subprocess.run(["arm-none-eabi-ar", "t", str(archive)], check=True, capture_output=True,
                             text=True).stdout.split()
    stems = {name.split(".")[0] for name in members}
    assert {"acom_graph", "acom_frontend", "acom_frontend_tables", "acom_kernels", "acom_wire", "acom_sha256",
            "acom_range", "acom_model"} <= stems
    assert stems == {c.stem for c in (out / "c").glob("*.c")}


def test_model_over_the_ram_budget_says_by_how_much(urban_set: Path, tmp_path: Path) -> None:
    board = edited_board(tmp_path, "cortex-m55-u55", model_ram_budget_kib="4")
    with pytest.raises(ExportError, match=r"RAM \d+ KiB > 4 KiB \(by \d+ KiB\)"):
        export(ExportOptions(board=str(board), task="ac", out=tmp_path / "b", data=urban_set,
                             calibration_windows=2, verify_items=2, log=lambda s: None))
    assert not (tmp_path / "b").exists()


def test_an_operator_tflm_lacks_is_named() -> None:
    import litert_torch

    class GeluHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.gelu(self.fc(x))

    model = bytes(litert_torch.convert(GeluHead().eval(), (torch.zeros(1, 8),)).model_content())
    with pytest.raises(ExportError, match=r"cannot run operator GELU \(operator 2 of 2 .*after FULLY_CONNECTED"):
        tflm_arena_or_explain(model, torch.zeros(1, 8).numpy(), "cortex-m4")


def test_cli_json_is_the_manifest(urban_set: Path, tmp_path: Path, capsys) -> None:
    from acom.export.cli import main

    rc = main(["--board", "cortex-m4", "--task", "ac", "--out", str(tmp_path / "b"), "--data", str(urban_set),
               "--calibration-windows", "2", "--verify-items", "3", "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    on_disk = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert printed["codebook_hash"] == on_disk["codebook_hash"] and printed["board"] == "cortex-m4"
