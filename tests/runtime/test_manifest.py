"""The bundle manifest as types: what export writes is what the runtime reads, and a broken one names its field."""

from __future__ import annotations

import json

import pytest

from acom.errors import ExportError
from acom.runtime.bundle import open_bundle
from acom.runtime.manifest import Manifest, read_manifest


def test_the_written_json_reads_back_into_the_same_manifest(asr_case) -> None:
    path, bundle, _ = asr_case
    raw = json.loads((path / "manifest.json").read_text())
    m = read_manifest(path)
    assert m.to_dict() == raw and Manifest.from_dict(m.to_dict()) == m
    assert (m.task, m.board, m.n_q, m.frontend.runs_in, m.graph, m.verification) == ("asr", None, 3, None, None, None)
    assert m.model.codebook_sizes == bundle.codebook_sizes and m.files[m.tail].bytes > 0
    assert open_bundle(path).manifest == m


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.pop("codebook_hash"), "field 'codebook_hash' is missing"),
    (lambda d: d.update(n_q="3"), "field 'n_q' is str, expected int"),
    (lambda d: d["model"].pop("split_layer"), "model: field 'split_layer' is missing"),
    (lambda d: d.update(schema_version=9), "schema_version 9 is not supported"),
    (lambda d: d["files"]["tail.safetensors"].pop("sha256"), "files tail.safetensors: field 'sha256' is missing"),
])
def test_a_broken_manifest_names_the_field(asr_case, tmp_path, edit, message) -> None:
    path, _, _ = asr_case
    raw = json.loads((path / "manifest.json").read_text())
    edit(raw)
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ExportError, match=message) as e:
        read_manifest(tmp_path)
    assert str(tmp_path / "manifest.json") in str(e.value)
