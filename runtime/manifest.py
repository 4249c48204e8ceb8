"""The bundle's manifest as types: the contract between the device half and the server (docs/export.md).

``acom.export`` builds a ``Manifest`` and writes ``Manifest.to_dict()`` as ``manifest.json``; the server, the
clients and the device tools read it back with ``read_manifest`` (fields checked, a missing or mistyped one
named). Facts that differ per runtime (an artifact's operator counts, vela's summary, a check's numbers) stay
plain JSON values inside the typed records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from acom.core.tasks import TASKS
from acom.errors import ExportError

SCHEMA_VERSION = 1
KIND = "acom-bundle"


def _need(d: Any, key: str, kind: type | tuple, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise ExportError(f"{where}: field {key!r} is missing")
    value = d[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple)
                                                                                  else (kind,))):
        raise ExportError(f"{where}: field {key!r} is {type(value).__name__}, expected "
                          f"{' or '.join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))}")
    return value


@dataclass(frozen=True)
class FrontEnd:
    """The log-mel front end the edge graph expects, where it runs ("graph", "firmware"; None: server bundle),
    and the feature normalization (mean and std per mel band)."""

    runs_in: str | None
    config: dict  # FrontEndConfig.to_dict(): sample_rate, n_fft, n_mels, win/hop lengths, frame_rate, ...
    feature_mean: tuple[float, ...]
    feature_std: tuple[float, ...]

    @classmethod
    def from_dict(cls, d: dict, where: str) -> FrontEnd:
        rest = {k: v for k, v in d.items() if k not in ("runs_in", "feature_mean", "feature_std")}
        return cls(d.get("runs_in"), rest, tuple(_need(d, "feature_mean", list, where)),
                   tuple(_need(d, "feature_std", list, where)))

    def to_dict(self) -> dict:
        return {"runs_in": self.runs_in, **self.config, "feature_mean": list(self.feature_mean),
                "feature_std": list(self.feature_std)}


@dataclass(frozen=True)
class GraphSpec:
    """The edge graph's input and output: [1, n_mels, T] features (or audio) in, codes [1, n_q, T_cut] out."""

    input_shape: tuple[int, ...]
    codes_shape: tuple[int, ...]
    window_samples: int  # audio samples one run of the graph consumes
    codes_dtype: str = "int32"


@dataclass(frozen=True)
class ModelSpec:
    """What rebuilds the server half: the model config, the cut and the quantizer's config."""

    config: dict
    split_layer: int
    rvq_config: dict

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """K per stage of the full quantizer (packets may carry fewer stages than it has)."""
        return tuple(self.rvq_config["codebook_sizes"])


@dataclass(frozen=True)
class Artifact:
    """One exported file the device runs, its runtime, whether it was verified, and its runtime's facts."""

    file: str
    runtime: str
    verified: bool
    facts: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict, where: str) -> Artifact:
        return cls(_need(d, "file", str, where), _need(d, "runtime", str, where), bool(d.get("verified")),
                   {k: v for k, v in d.items() if k not in ("file", "runtime", "verified")})

    def to_dict(self) -> dict:
        return {"file": self.file, "runtime": self.runtime, "verified": self.verified, **self.facts}


@dataclass(frozen=True)
class CGraph:
    """An MCU bundle's C graph (c/): written, or why not."""

    written: bool
    reason: str | None = None
    facts: dict = field(default_factory=dict)  # files, how to run it

    @classmethod
    def from_dict(cls, d: dict, where: str) -> CGraph:
        return cls(bool(_need(d, "written", bool, where)), d.get("reason"),
                   {k: v for k, v in d.items() if k not in ("written", "reason")})

    def to_dict(self) -> dict:
        return {"written": self.written, **({"reason": self.reason} if self.reason else {}), **self.facts}


@dataclass(frozen=True)
class Firmware:
    """An MCU bundle's firmware (firmware/, docs/firmware.md): the device as an image that takes its audio on its
    UART; built, or why not. Bundles exported before it have none (the field is absent)."""

    written: bool
    reason: str | None = None
    elf: str | None = None  # "firmware/acom-fw.elf"
    hex: str | None = None  # the image as Intel hex (addresses included)
    images: tuple[dict, ...] = ()  # the image as raw .bin, one per load region: {"file", "address"}
    sections: dict = field(default_factory=dict)  # text, data, bss bytes; flash_bytes (text + data), ram_bytes
    settings: dict = field(default_factory=dict)  # compiled in: device_id, frames_per_packet, full_every, ...
    window_samples: int | None = None  # samples of audio one window of the firmware takes

    @classmethod
    def from_dict(cls, d: dict, where: str) -> Firmware:
        if not _need(d, "written", bool, where):
            return cls(False, d.get("reason"))
        sections = _need(d, "sections", dict, where)
        for key in ("text", "data", "bss", "flash_bytes", "ram_bytes"):
            _need(sections, key, int, f"{where} sections")
        return cls(True, None, _need(d, "elf", str, where), _need(d, "hex", str, where),
                   tuple(_need(d, "images", list, where)), sections, _need(d, "settings", dict, where),
                   _need(d, "window_samples", int, where))

    def to_dict(self) -> dict:
        if not self.written:
            return {"written": False, "reason": self.reason}
        return {"written": True, "elf": self.elf, "hex": self.hex, "images": list(self.images),
                "sections": self.sections, "settings": self.settings, "window_samples": self.window_samples}


@dataclass(frozen=True)
class Verification:
    """How the artifacts were checked against the float model on test windows."""

    passed: bool
    failures: tuple[str, ...]
    details: dict  # data, test subset, items, windows, float metric, thresholds, per-artifact checks

    @classmethod
    def from_dict(cls, d: dict, where: str) -> Verification:
        return cls(bool(_need(d, "passed", bool, where)), tuple(d.get("failures", ())),
                   {k: v for k, v in d.items() if k not in ("passed", "failures")})

    def to_dict(self) -> dict:
        return {"passed": self.passed, "failures": list(self.failures), **self.details}


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``. ``board`` is None for a server-only bundle (no device artifacts)."""

    task: str
    board: str | None
    created: str
    checkpoint: dict  # path, sha256, the training command
    codebook_hash: str  # SHA-256 of the codebooks (hex); packets carry its first 8 bytes
    frame_rate: float  # code frames per second of audio
    n_q: int  # stages the device sends
    codebook_sizes: tuple[int, ...]  # K of those stages
    sample_rate: int
    frontend: FrontEnd
    model: ModelSpec
    tail: str = "tail.safetensors"
    priors: str | None = None
    graph: GraphSpec | None = None
    artifacts: tuple[Artifact, ...] = ()
    c_graph: CGraph | None = None
    firmware: Firmware | None = None
    verification: Verification | None = None
    nominal_bps: float | None = None
    costs: dict = field(default_factory=dict)  # macs_per_s, macs_per_s_on_device, peak_memory_bytes, ...
    extra: dict = field(default_factory=dict)  # qat, stage_seconds
    files: dict[str, FileEntry] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    COSTS = ("macs_per_s", "macs_per_s_on_device", "peak_memory_bytes", "model_flash_bytes")
    EXTRA = ("qat", "stage_seconds", "out")

    def artifact(self, name: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.file == name), None)

    def to_dict(self) -> dict:
        d = {"schema_version": self.schema_version, "kind": KIND, "task": self.task, "board": self.board,
             "created": self.created, "checkpoint": self.checkpoint, "codebook_hash": self.codebook_hash,
             "frame_rate": self.frame_rate, "n_q": self.n_q, "codebook_sizes": list(self.codebook_sizes)}
        if self.nominal_bps is not None:
            d["nominal_bps"] = self.nominal_bps
        d.update(sample_rate=self.sample_rate, frontend=self.frontend.to_dict())
        if self.graph is not None:
            d["graph"] = {f.name: list(v) if isinstance(v, tuple) else v
                          for f in fields(self.graph) for v in [getattr(self.graph, f.name)]}
        d["artifacts"] = [a.to_dict() for a in self.artifacts]
        if self.c_graph is not None:
            d["c_graph"] = self.c_graph.to_dict()
        if self.firmware is not None:
            d["firmware"] = self.firmware.to_dict()
        d["verification"] = None if self.verification is None else self.verification.to_dict()
        d.update(self.costs)
        d["model"] = {"config": self.model.config, "split_layer": self.model.split_layer,
                      "rvq_config": self.model.rvq_config}
        d.update(tail=self.tail, priors=self.priors, **self.extra)
        if self.files:
            d["files"] = {k: {"sha256": v.sha256, "bytes": v.bytes} for k, v in self.files.items()}
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "manifest") -> Manifest:
        """A manifest from its JSON; ExportError naming the field that is missing or of the wrong type."""
        if not isinstance(d, dict) or d.get("schema_version") != SCHEMA_VERSION:
            version = d.get("schema_version") if isinstance(d, dict) else None
            raise ExportError(f"{where}: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")
        model = _need(d, "model", dict, where)
        if _need(d, "task", str, where) not in TASKS:
            raise ExportError(f"{where}: field 'task' is {d['task']!r}, expected one of {', '.join(TASKS)}")
        graph = d.get("graph")
        num = (int, float)
        return cls(
            task=_need(d, "task", str, where), board=d.get("board"), created=str(d.get("created", "")),
            checkpoint=d.get("checkpoint") or {}, codebook_hash=_need(d, "codebook_hash", str, where),
            frame_rate=float(_need(d, "frame_rate", num, where)), n_q=_need(d, "n_q", int, where),
            codebook_sizes=tuple(_need(d, "codebook_sizes", list, where)),
            sample_rate=_need(d, "sample_rate", int, where),
            frontend=FrontEnd.from_dict(_need(d, "frontend", dict, where), f"{where} frontend"),
            model=ModelSpec(_need(model, "config", dict, f"{where} model"),
                            _need(model, "split_layer", int, f"{where} model"),
                            _need(model, "rvq_config", dict, f"{where} model")),
            tail=d.get("tail") or "tail.safetensors", priors=d.get("priors"),
            graph=None if graph is None else GraphSpec(tuple(_need(graph, "input_shape", list, f"{where} graph")),
                                                       tuple(_need(graph, "codes_shape", list, f"{where} graph")),
                                                       _need(graph, "window_samples", int, f"{where} graph"),
                                                       graph.get("codes_dtype", "int32")),
            artifacts=tuple(Artifact.from_dict(a, f"{where} artifacts") for a in d.get("artifacts") or ()),
            c_graph=None if d.get("c_graph") is None else CGraph.from_dict(d["c_graph"], f"{where} c_graph"),
            firmware=None if d.get("firmware") is None else Firmware.from_dict(d["firmware"], f"{where} firmware"),
            verification=None if d.get("verification") is None
            else Verification.from_dict(d["verification"], f"{where} verification"),
            nominal_bps=d.get("nominal_bps"), costs={k: d[k] for k in cls.COSTS if k in d},
            extra={k: d[k] for k in cls.EXTRA if k in d},
            files={k: FileEntry(_need(v, "sha256", str, f"{where} files {k}"), _need(v, "bytes", int,
                                                                                   f"{where} files {k}"))
                   for k, v in (d.get("files") or {}).items()})


def read_manifest(bundle: Path) -> Manifest:
    """``manifest.json`` of ``bundle``; ExportError if unreadable, of another schema version or malformed."""
    path = Path(bundle) / "manifest.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ExportError(f"{path}: not a readable bundle manifest ({e})") from e
    return Manifest.from_dict(raw, str(path))
