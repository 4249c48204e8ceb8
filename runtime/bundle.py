"""Reading an export bundle on the server: the manifest, the tail (server half) and the entropy-coder priors.

The bundle is the contract between device and server (written by ``acom.export.bundle``; layout in
docs/export.md). This side needs only torch and safetensors, so a GPU server without ExecuTorch or LiteRT
can load it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file

from acom.codes.priors import CodePriors
from acom.core.models import build_model
from acom.core.rvq import ResidualVQ, RVQConfig
from acom.core.split import SplitModel
from acom.errors import ExportError
from acom.runtime.manifest import SCHEMA_VERSION, Manifest, read_manifest

__all__ = ["SCHEMA_VERSION", "Bundle", "Manifest", "load_priors", "load_tail", "open_bundle", "read_manifest"]

def _checked_file(bundle: Path, manifest: Manifest, rel: str) -> Path:
    """Path of a listed bundle file whose SHA-256 matches the manifest (a torn copy must not load)."""
    path = bundle / rel
    listed = manifest.files.get(rel)
    if listed is None:
        raise ExportError(f"{bundle / 'manifest.json'}: files has no entry for {rel!r}")
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as e:
        raise ExportError(f"{path}: cannot read ({e})") from e
    if digest != listed.sha256:
        raise ExportError(f"{path}: SHA-256 {digest[:12]}... does not match the manifest ({listed.sha256[:12]}...)")
    return path


def load_tail(bundle: Path) -> SplitModel:
    """The server half of a bundle (rebuilt from the manifest and tail.safetensors), for ServerDecoder."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    m = manifest.model
    rvq_cfg = {**m.rvq_config, "codebook_sizes": m.codebook_sizes}
    state = load_file(str(_checked_file(bundle, manifest, manifest.tail)))
    if m.config.get("kind") == "custom":  # a user's own model: its tail is a torch.export program
        from acom.core.custom import CustomModel
        if "programs.tail" not in state:
            raise ExportError(f"{bundle / 'tail.safetensors'}: a custom model's tail without its program")
        model = CustomModel.from_programs(manifest.task, m.config, {"tail": state.pop("programs.tail")})
    else:
        model = build_model(manifest.task, m.config)
    split = SplitModel(model, m.split_layer, ResidualVQ(RVQConfig(**rvq_cfg)))
    missing, unexpected = split.load_state_dict(state, strict=False)
    edge = tuple(f"model.blocks.{i}." for i in range(m.split_layer + 1)) + ("model.tail.",)
    if unexpected or any(not k.startswith(edge) for k in missing):
        raise ExportError(f"{bundle / 'tail.safetensors'}: weights do not fit the model in the manifest "
                          f"(missing {[k for k in missing if not k.startswith(edge)][:5]}, "
                          f"unexpected {unexpected[:5]})")
    if split.rvq.codebook_hash() != manifest.codebook_hash:
        raise ExportError(f"{bundle / 'tail.safetensors'}: its codebooks hash to {split.rvq.codebook_hash()[:16]}..., "
                          f"the manifest says {manifest.codebook_hash[:16]}...")
    return split.eval()


def load_priors(bundle: Path, manifest: Manifest) -> CodePriors | None:
    """The entropy-coder priors of a bundle, or None when it has none."""
    rel = manifest.priors
    if not rel:
        return None
    return CodePriors.from_tensors(load_file(str(_checked_file(Path(bundle), manifest, rel))))


@dataclass(frozen=True)
class Bundle:
    """What the server needs from a bundle."""

    path: Path
    manifest: Manifest
    split: SplitModel  # the tail's weights (the edge blocks are left untrained: never run here)
    priors: CodePriors | None

    @property
    def task(self) -> str:
        return self.manifest.task

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """K per stage of the full quantizer (packets may carry fewer stages than the device exported)."""
        return tuple(self.split.rvq.config.codebook_sizes)

    @property
    def frame_rate(self) -> float:
        return self.manifest.frame_rate


def open_bundle(path: Path) -> Bundle:
    """Load and check a bundle for serving."""
    path = Path(path)
    manifest = read_manifest(path)
    split = load_tail(path)
    return Bundle(path, manifest, split, load_priors(path, manifest))
