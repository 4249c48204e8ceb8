"""A user's own ``nn.Module`` as a split model: cut after a named submodule, the RVQ between the halves.

The contract: the module takes normalized log-mels ``[B, n_mels, T]`` (acom's front end, 100 frames/s) and
returns, for ASR, CTC scores ``[B, T_cut, V]`` over ``CharVocab`` (log-probabilities or logits: a log-softmax is
applied), or, for sound classes, logits ``[B, classes]``. ``wrap`` cuts it (``cut_module``: a layer or a
container), finds the layout at the cut (``cut_layout``: ``[B, D, T]`` or ``[B, T, D]``) and its frame rate,
and returns a ``CustomModel``: a ``BlockModel`` whose one block is the device half and whose head is the
server half, so ``SplitModel``, training, evaluation, export and the server take it as they take acom's own.

Checkpoints hold both halves as ``torch.export`` programs (graph and weights, the time axis dynamic), so eval,
export and serve load them without the user's code (``from_programs``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from acom.core.ctc import CharVocab
from acom.core.models import BlockModel
from acom.core.split import cut_layout, cut_module
from acom.core.tasks import TASKS, get_task
from acom.errors import AcomError


@dataclass(frozen=True, kw_only=True)
class CustomConfig:
    """What a checkpoint records of a user's model (its layers are in the checkpoint's programs)."""

    kind: str = "custom"
    source: str = ""  # where the module came from ("my_model.py:build"), for the record
    cut: str  # the submodule the cut follows
    layout: str  # "BDT" or "BTD": the module's own layout at the cut
    n_mels: int = 40
    cut_dim: int  # D: features per frame at the cut
    stride: int  # log-mel frames per frame at the cut
    vocab_size: int = 0  # ASR: CTC outputs
    num_classes: int = 0  # sound classes: outputs


class EdgePart(nn.Module):
    """The device half as a block: log-mel ``[B, n_mels, T]`` -> ``[B, D, T / stride]`` (channels first)."""

    def __init__(self, part: nn.Module, config: CustomConfig) -> None:
        super().__init__()
        self.part, self.layout = part, config.layout
        self.out_dim, self.stride = config.cut_dim, config.stride

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        y = self.part(x)
        return y.transpose(1, 2) if self.layout == "BTD" else y

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths + self.stride - 1, self.stride, rounding_mode="floor")


class Program(nn.Module):
    """A loaded ``torch.export`` program as a module: inference only (it keeps the mode it was exported in;
    ``train()``/``eval()`` leave it alone, which the program's own module refuses)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def train(self, mode: bool = True) -> Program:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


class _Absent(nn.Module):
    """Where a server bundle's model has no device half."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AcomError("this model holds the server half only: the device half is in the bundle's edge program")


class CustomModel(BlockModel):
    """A user's module cut in two: ``blocks[0]`` runs on the device, ``tail`` (as the head) on the server."""

    def __init__(self, task: str, edge: nn.Module, tail: nn.Module, config: CustomConfig) -> None:
        super().__init__(config.n_mels)
        self.task, self.config = task, config
        self.blocks = nn.ModuleList([EdgePart(edge, config)])
        self.tail = tail

    def head_forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Features at the cut ``[B, D, T]`` -> ASR log-probs ``[B, T, V]`` or class logits ``[B, C]``."""
        y = self.tail(x.transpose(1, 2) if self.config.layout == "BTD" else x)
        return F.log_softmax(y, dim=-1) if TASKS[self.task].sequence else y

    def programs(self) -> dict[str, torch.Tensor]:
        """Both halves as ``torch.export`` programs (bytes in uint8 tensors), batch and time dynamic."""
        c = self.config
        x = torch.zeros(2, c.n_mels, 64 * c.stride)
        with torch.no_grad():
            y = self.blocks[0].part(x)
        out = {}
        training = self.training
        self.eval()
        try:
            for name, part, example, t_dim in (("edge", self.blocks[0].part, x, 2),
                                               ("tail", self.tail, y, 2 if c.layout == "BDT" else 1)):
                auto = torch.export.Dim.AUTO  # dynamic where the graph allows (a strided conv guards short inputs)
                try:
                    ep = torch.export.export(part, (example,), dynamic_shapes=({0: auto, t_dim: auto},))
                except Exception as e:  # noqa: BLE001 - torch.export's many error types: say which half and why
                    raise AcomError(f"the {name} half of the model cut at {c.cut!r} cannot be saved as a "
                                    f"torch.export program with a dynamic batch and time: "
                                    f"{str(e).splitlines()[0][:300]}") from e
                buf = io.BytesIO()
                torch.export.save(ep, buf)
                out[name] = torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)
        finally:
            self.train(training)
        return out

    @classmethod
    def from_programs(cls, task: str, config: dict, programs: dict[str, torch.Tensor]) -> CustomModel:
        """The model a checkpoint holds: its programs (graph and weights), no user code needed. Without an
        "edge" program (a server bundle holds the tail only) the device half is absent and must not be run."""
        cfg = CustomConfig(**config)
        parts = [Program(torch.export.load(io.BytesIO(programs[n].numpy().tobytes())).module()) if n in programs
                 else _Absent() for n in ("edge", "tail")]
        return cls(task, parts[0], parts[1], cfg)


def wrap(model: nn.Module, cut: str, task: str, n_mels: int = 40, source: str = "") -> CustomModel:
    """``model`` (the contract above) cut after submodule ``cut``: a ``CustomModel`` sharing its weights.

    AcomError naming what was found when the cut is not a submodule, its output is not a sequence of frames,
    the frame rate at the cut is not a whole fraction of the log-mel's, or the output is not the task's."""
    task = get_task(task).name
    model = model.eval()
    edge, tail = cut_module(model, cut)
    example = torch.randn(1, n_mels, 400)
    layout = cut_layout(edge, example)
    with torch.no_grad():
        at_cut = edge(example)
        out = model(example)
    t_axis = 2 if layout == "BDT" else 1
    frames, dim = at_cut.shape[t_axis], at_cut.shape[3 - t_axis]
    stride = 400 // frames if frames else 0
    if not frames or stride * frames != 400:
        raise AcomError(f"the cut at {cut!r} gives {frames} frames for 400 log-mel frames: expected a whole "
                        f"fraction of them (a time stride such as 1, 2, 4)")
    cfg = dict(source=source, cut=cut, layout=layout, n_mels=n_mels, cut_dim=dim, stride=stride)
    if TASKS[task].sequence:
        want = (1, frames, CharVocab().size)
        if tuple(out.shape) != want:
            raise AcomError(f"the model's output is {tuple(out.shape)} for 400 log-mel frames: an ASR model must "
                            f"give CTC scores [B, T_cut, V] = {want} (V: acom.core.ctc.CharVocab, blank first)")
        config = CustomConfig(**cfg, vocab_size=want[2])
    else:
        if out.dim() != 2:
            raise AcomError(f"the model's output is {tuple(out.shape)}: a classifier must give logits [B, classes]")
        config = CustomConfig(**cfg, num_classes=int(out.shape[1]))
    return CustomModel(task, edge, tail, config).train()


def load_object(spec: str, option: str):
    """NAME from FILE.py for ``spec`` "FILE.py:NAME"; AcomError naming the option, the file or the name."""
    import importlib.util
    from pathlib import Path

    path, _, name = spec.rpartition(":")
    if not path or not name:
        raise AcomError(f"{option} {spec!r}: expected FILE.py:NAME")
    if not Path(path).is_file():
        raise AcomError(f"{option} {spec!r}: {path} not found")
    loader = importlib.util.spec_from_file_location(f"acom_user_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    obj = getattr(module, name, None)
    if obj is None:
        have = [n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, nn.Module)]
        raise AcomError(f"{option} {spec!r}: {path} has no {name!r}; its nn.Module classes: "
                        f"{', '.join(have) or 'none'}")
    return obj


def load_user_model(spec: str, cut: str | None, task: str) -> CustomModel:
    """``FILE.py:NAME`` (a module class, or a function returning a module, called without arguments) cut
    after ``cut``: AcomError naming the file, the name or the cut when one is wrong."""
    make = load_object(spec, "--model")
    if not cut:
        raise AcomError("--model needs --cut SUBMODULE: where the device half ends")
    model = make if isinstance(make, nn.Module) else make()
    if not isinstance(model, nn.Module):
        raise AcomError(f"--model {spec!r}: it gave a {type(model).__name__}, not an nn.Module")
    return wrap(model, cut, task, source=spec)
