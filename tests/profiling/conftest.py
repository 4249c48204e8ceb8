"""Fixtures of the plan tests: a real microcontroller export to hold the plan's estimates against."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ac_m7_manifest(urban_set: Path, tmp_path_factory) -> dict:
    """The shipped classifier exported for cortex-m7 (TFLite Micro) with n_q 2: its manifest as JSON."""
    from acom.export.pipeline import ExportOptions, export

    out = tmp_path_factory.mktemp("m7") / "ac"
    manifest = export(ExportOptions(board="cortex-m7", task="ac", out=out, n_q=2, data=urban_set,
                                    calibration_windows=8, verify_items=12, keep_failed=True, log=lambda s: None))
    return manifest.to_dict()

