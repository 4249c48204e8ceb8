"""The ONNX tail against the PyTorch ServerDecoder, the Triton repository it goes into, and `acom triton`.

Exports are slow (~25 s for the ASR tail on a CPU), so there are two, each feeding the checks of one test (so
xdist never repeats one): ASR n_q=2 by `export_tail_onnx`, AC n_q=1 through `acom triton`.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from acom.core.checkpoint import PRETRAINED
from acom.errors import ExportError
from acom.export.bundle import write_server_bundle
from acom.runtime import onnx_tail
from acom.runtime.bundle import open_bundle
from acom.runtime.onnx_tail import (
    TOLERANCE,
    TritonSettings,
    check_failures,
    check_tail_onnx,
    export_tail_onnx,
    pad_batch,
    triton_config,
    write_triton_repository,
)
from acom.runtime.triton_cli import main

# (batch, seconds): one frame alone, a long item alone, padded batches of mixed lengths
CASES = ((1, 0.04), (1, 4.0), (4, 2.0), (5, 6.0))


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bundles")
    for task in ("asr", "ac"):
        write_server_bundle(PRETRAINED / task / "split.pt", root / task)
    return {task: open_bundle(root / task) for task in ("asr", "ac")}


def _assert_matches_server_decoder(bundle, onnx_path: Path) -> None:
    check = check_tail_onnx(bundle, onnx_path, 2, cases=CASES)
    assert [c["batch"] for c in check["cases"]] == [1, 1, 4, 5]
    assert check["cases"][0]["frames"] == 1 and check["cases"][1]["frames"] == 100
    padded = [c for c in check["cases"] if c["batch"] > 1]
    assert all(len(set(c["lengths"])) > 1 and max(c["lengths"]) == c["frames"] for c in padded)
    assert check["max_abs_diff"] < TOLERANCE / 10, check  # measured ~1e-5
    assert check["argmax_agreement"] == 1.0 and check["out_lengths_equal"]
    assert check_failures(check) == []


def _assert_dynamic_dims_and_metadata(bundle, onnx_path: Path) -> None:
    model = onnx.load(str(onnx_path))
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.input) + list(model.graph.output)}
    assert shapes["codes"][1] == 2 and isinstance(shapes["codes"][0], str) and isinstance(shapes["codes"][2], str)
    assert shapes["log_probs"][2] == 29 and shapes["out_lengths"] == shapes["lengths"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["codebook_hash"] == bundle.manifest.codebook_hash and meta["n_q"] == "2"


def test_asr_tail_onnx(bundles, tmp_path) -> None:
    """One export (the slow part) feeds every ASR check, so xdist never runs it twice."""
    bundle = bundles["asr"]
    onnx_path = export_tail_onnx(bundle, tmp_path / "asr_nq2.onnx", 2)
    _assert_matches_server_decoder(bundle, onnx_path)
    _assert_dynamic_dims_and_metadata(bundle, onnx_path)
    text = triton_config(bundle, 2)
    assert "reshape: { shape: [ ] }" in text
    _assert_config_fits_onnx(text, onnx_path, bundle)
    with pytest.raises(ExportError, match="codes"):
        check_tail_onnx(bundle, onnx_path, 3, cases=((1, 0.4),))
    with pytest.raises(ExportError, match="1..3"):
        check_tail_onnx(bundle, onnx_path, 4)


def test_pad_batch() -> None:
    codes, lengths = pad_batch([np.ones((2, 3), int), np.full((2, 7), 5)], bucket=5)
    assert codes.shape == (2, 2, 10) and codes.dtype == np.int64 and lengths.tolist() == [3, 7]
    assert codes[0, :, 3:].sum() == 0 and (codes[1, :, :7] == 5).all()
    with pytest.raises(ExportError):
        pad_batch([np.ones((2, 3)), np.ones((1, 3))])
    with pytest.raises(ExportError):
        pad_batch([])


# --- config.pbtxt, parsed with the ModelConfig fields this repository uses (field numbers from Triton's
# common/protobuf/model_config.proto): an unknown field, enum or a wrong type fails the parse.

_T = descriptor_pb2.FieldDescriptorProto
_MESSAGES = {  # message -> [(field, number, type or message/enum name, repeated)]
    "ModelTensorReshape": [("shape", 1, _T.TYPE_INT64, True)],
    "ModelInput": [("name", 1, _T.TYPE_STRING, False), ("data_type", 2, "DataType", False),
                   ("dims", 4, _T.TYPE_INT64, True), ("reshape", 5, "ModelTensorReshape", False)],
    "ModelOutput": [("name", 1, _T.TYPE_STRING, False), ("data_type", 2, "DataType", False),
                    ("dims", 3, _T.TYPE_INT64, True), ("reshape", 5, "ModelTensorReshape", False)],
    "ModelDynamicBatching": [("max_queue_delay_microseconds", 2, _T.TYPE_UINT64, False)],
    "ModelInstanceGroup": [("count", 2, _T.TYPE_INT32, False), ("kind", 4, "Kind", False)],
    "ModelParameter": [("string_value", 1, _T.TYPE_STRING, False)],
    "ModelConfig": [("name", 1, _T.TYPE_STRING, False), ("platform", 2, _T.TYPE_STRING, False),
                    ("max_batch_size", 4, _T.TYPE_INT32, False), ("input", 5, "ModelInput", True),
                    ("output", 6, "ModelOutput", True), ("instance_group", 7, "ModelInstanceGroup", True),
                    ("dynamic_batching", 11, "ModelDynamicBatching", False),
                    ("parameters", 14, "ModelConfig.ParametersEntry", True)],
}
_ENUMS = {"DataType": {"TYPE_INVALID": 0, "TYPE_BOOL": 1, "TYPE_INT32": 8, "TYPE_INT64": 9, "TYPE_FP32": 11},
          "Kind": {"KIND_AUTO": 0, "KIND_GPU": 1, "KIND_CPU": 2}}


def _add_fields(msg, fields) -> None:
    for name, number, kind, repeated in fields:
        f = msg.field.add(name=name, number=number, label=_T.LABEL_REPEATED if repeated else _T.LABEL_OPTIONAL)
        if isinstance(kind, str):
            f.type = _T.TYPE_ENUM if kind in _ENUMS else _T.TYPE_MESSAGE
            f.type_name = f".inference.{kind}"
        else:
            f.type = kind


def _model_config_class():
    fd = descriptor_pb2.FileDescriptorProto(name="acom_test_model_config.proto", package="inference",
                                            syntax="proto3")
    for name, values in _ENUMS.items():
        fd.enum_type.add(name=name, value=[descriptor_pb2.EnumValueDescriptorProto(name=k, number=v)
                                           for k, v in values.items()])
    for name, fields in _MESSAGES.items():
        msg = fd.message_type.add(name=name)
        _add_fields(msg, fields)
        if name == "ModelConfig":
            entry = msg.nested_type.add(name="ParametersEntry")
            entry.options.map_entry = True
            _add_fields(entry, [("key", 1, _T.TYPE_STRING, False), ("value", 2, "ModelParameter", False)])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


_ONNX_TYPES = {"TYPE_INT64": onnx.TensorProto.INT64, "TYPE_FP32": onnx.TensorProto.FLOAT}


def _assert_config_fits_onnx(text: str, onnx_path: Path, bundle) -> None:
    """Every config input/output exists in the graph with the same dtype, rank and fixed dims."""
    cfg = text_format.Parse(text, _model_config_class()())
    assert cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size > 0
    assert cfg.dynamic_batching.max_queue_delay_microseconds > 0 and cfg.instance_group[0].kind == 1  # GPU
    assert cfg.parameters["codebook_hash"].string_value == bundle.manifest.codebook_hash
    graph = onnx.load(str(onnx_path)).graph
    values = {v.name: v.type.tensor_type for v in list(graph.input) + list(graph.output)}
    dtype_name = cfg.DESCRIPTOR.fields_by_name["input"].message_type.fields_by_name["data_type"].enum_type
    declared = list(cfg.input) + list(cfg.output)
    assert {t.name for t in declared} == set(values)
    for t in declared:
        tensor = values[t.name]
        assert tensor.elem_type == _ONNX_TYPES[dtype_name.values_by_number[t.data_type].name], t.name
        model_dims = [-1] + list(t.reshape.shape if t.HasField("reshape") else t.dims)  # -1: the batch
        onnx_dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        assert model_dims == onnx_dims, (t.name, model_dims, onnx_dims)


def _run_cli_json(argv: list[str]) -> tuple[int, dict]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv + ["--json"])
    return rc, json.loads(buf.getvalue())  # stdout holds the JSON only: exporter chatter must not reach it


def _assert_repository(out: Path, summary: dict, bundle) -> None:
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "README.md", "acom_ac_tail_nq1/1/model.onnx", "acom_ac_tail_nq1/config.pbtxt", "checks.json"]
    readme = (out / "README.md").read_text()
    assert bundle.manifest.codebook_hash in readme and "frame rate: 5" in readme
    (model,) = summary["models"]
    assert model["name"] == "acom_ac_tail_nq1" and Path(model["check"]["onnx"]).exists()
    assert summary["failures"] == [] and model["check"]["max_abs_diff"] < TOLERANCE / 10
    assert model["check"]["argmax_agreement"] == 1.0 and any(c["batch"] > 1 for c in model["check"]["cases"])
    _assert_config_fits_onnx((out / model["name"] / "config.pbtxt").read_text(), Path(model["onnx"]), bundle)
    assert not list(out.parent.glob(".repo*"))  # no staging folder left behind


def _copying_export(good: Path, bias_shift: float = 0.0):
    """An export_tail_onnx that copies ``good`` (no slow export), its head's bias moved by ``bias_shift``."""
    def export(bundle, out_path, n_q):
        model = onnx.load(str(good))
        init = next(i for i in model.graph.initializer if i.name.endswith("head.bias"))
        init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init) + bias_shift, init.name))
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(out_path))
        return Path(out_path)
    return export


def test_ac_triton_cli(bundles, tmp_path, monkeypatch, capsys) -> None:
    """--force over an old folder writes a checked repository; write_triton_repository publishes one; a model
    that differs from PyTorch is refused (exit 1, nothing written)."""
    bundle, out = bundles["ac"], tmp_path / "repo"
    out.mkdir()
    (out / "stale.txt").write_text("replaced by --force")
    rc, summary = _run_cli_json(["--bundle", str(bundle.path), "--out", str(out), "--n-q", "1", "--force"])
    assert rc == 0, summary
    _assert_repository(out, summary, bundle)

    good = out / "acom_ac_tail_nq1/1/model.onnx"
    monkeypatch.setattr(onnx_tail, "export_tail_onnx", _copying_export(good))
    written = write_triton_repository(bundle, tmp_path / "w", [1], settings=TritonSettings(instance_kind="KIND_CPU"))
    assert Path(written["models"][0]["onnx"]).exists() and Path(written["repository"]) == tmp_path / "w"
    assert "kind: KIND_CPU" in Path(written["models"][0]["config"]).read_text()
    with pytest.raises(ExportError, match="--force"):
        write_triton_repository(bundle, tmp_path / "w", [1])

    monkeypatch.setattr(onnx_tail, "export_tail_onnx", _copying_export(good, bias_shift=0.1))
    bad = tmp_path / "bad"
    assert main(["--bundle", str(bundle.path), "--out", str(bad), "--n-q", "1"]) == 1
    assert "exceeds the tolerance" in capsys.readouterr().err
    assert not bad.exists() and not list(tmp_path.glob(".bad*"))


def test_cli_exit_codes_for_bad_input(bundles, tmp_path, capsys) -> None:
    assert main(["--bundle", str(tmp_path / "missing"), "--out", str(tmp_path / "r1")]) == 2
    assert "manifest" in capsys.readouterr().err and not (tmp_path / "r1").exists()
    (tmp_path / "r2").mkdir()
    assert main(["--bundle", str(bundles["ac"].path), "--out", str(tmp_path / "r2")]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["--bundle", str(bundles["ac"].path), "--out", str(tmp_path / "r3"), "--n-q", "3"]) == 2
    assert "1..2" in capsys.readouterr().err and not (tmp_path / "r3").exists()
