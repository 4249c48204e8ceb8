"""Models built from the block library: an ASR model (CTC over characters) and a sound classifier.

A model is `frontend` (log-mel, no weights) -> `blocks` (a list; any block boundary can be the cut) ->
`head`. Block 0 is the stem; `split_layer=L` puts blocks 0..L on the device. Settings are one frozen
dataclass per model; `build_model(task, config)` makes one from its name and fields (as stored in checkpoints).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from acom.core.blocks import AttentiveStatsPool, Block, ConformerBlock, ConvStem, TDNNBlock, TimePool
from acom.core.features import FrontEndConfig, LogMel
from acom.core.tasks import TASKS, get_task
from acom.errors import AcomError


@dataclass(frozen=True, kw_only=True)
class AsrConfig:
    """A Conformer-CTC recognizer whose first blocks are narrow enough for a microcontroller."""

    n_mels: int = 40  # log-mel bands of the front-end
    stem_channels: int = 64  # channels of the convolutional subsampling (100 -> 25 frames/s)
    edge_dim: int = 96  # width of the stem output and of the first `edge_blocks` Conformer blocks
    edge_blocks: int = 2  # narrow blocks (the default cut is after the last of them)
    dim: int = 144  # width of the remaining blocks
    blocks: int = 4  # wide blocks after the narrow ones
    heads: int = 4  # attention heads
    ffn_mult: int = 2  # feed-forward expansion (2 rather than 4 keeps the device part under 10 M MAC/s)
    conv_kernel: int = 15  # depthwise kernel of the Conformer conv module (frames)
    left_context: int = 40  # frames of past each attention query sees (1.6 s at 25 frames/s)
    right_context: int = 2  # frames of future any block sees (80 ms): bounded latency, chunked device runs
    dropout: float = 0.15  # dropout in every block
    vocab_size: int = 29  # CTC blank, space, apostrophe, A-Z

    @property
    def num_blocks(self) -> int:
        return 1 + self.edge_blocks + self.blocks


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig:
    """A TDNN sound classifier with attentive statistics pooling (ECAPA-TDNN style, small)."""

    n_mels: int = 40  # log-mel bands of the front-end
    channels: int = 56  # width of the device-side TDNN blocks (56 keeps the device part under 2 M MAC/s)
    edge_blocks: int = 2  # TDNN blocks after the stem on the device side
    pool: int = 5  # time pooling before the cut: 25 / pool frames/s at the cut (5 frames/s by default)
    server_channels: int = 192  # width of the server-side TDNN blocks
    server_blocks: int = 3  # TDNN blocks after the pooling
    num_classes: int = 10  # UrbanSound8K has 10
    dropout: float = 0.2  # dropout before the classifier

    @property
    def num_blocks(self) -> int:
        return 2 + self.edge_blocks + self.server_blocks


class BlockModel(nn.Module):
    """frontend -> blocks -> head. `forward(feats [B, n_mels, T], lengths [B])` -> (logits, out_lengths)."""

    task: str
    config: AsrConfig | ClassifierConfig
    blocks: nn.ModuleList

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        self.frontend = LogMel(FrontEndConfig(n_mels=n_mels))
        # Fixed per-band normalization of the log-mels, set from the train set (`set_normalization`): an
        # affine map the device can apply frame by frame, unlike per-utterance mean/variance normalization.
        self.register_buffer("feat_mean", torch.zeros(n_mels, 1))
        self.register_buffer("feat_std", torch.ones(n_mels, 1))

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-band mean and std [n_mels] of the train set's log-mels."""
        self.feat_mean.copy_(mean.reshape(-1, 1))
        self.feat_std.copy_(std.clamp(min=1e-3).reshape(-1, 1))

    def run_blocks(self, x: torch.Tensor, lengths: torch.Tensor | None, start: int, stop: int
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Blocks start..stop-1 on x [B, C, T] with valid lengths [B] (or None for unpadded input).

        With start 0, x is log-mels [B, n_mels, T] and is normalized first.
        """
        if start == 0:
            x = (x - self.feat_mean) / self.feat_std
        for block in self.blocks[start:stop]:
            pad = None if lengths is None else _pad_mask(lengths, x.shape[-1])
            x = block(x, pad)
            lengths = None if lengths is None else block.out_lengths(lengths).clamp(max=x.shape[-1])
        return x, lengths

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, lengths = self.run_blocks(feats, lengths, 0, len(self.blocks))
        return self.head_forward(x, lengths), lengths

    def head_forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def cut_dim(self, split_layer: int) -> int:
        """Feature width at the cut after block `split_layer` (AcomError if no such block)."""
        check_split_layer(self, split_layer)
        return self.blocks[split_layer].out_dim

    def frame_rate_at(self, split_layer: int) -> float:
        """Frames per second at the output of block `split_layer`."""
        rate = self.frontend.cfg.frame_rate
        for block in self.blocks[: split_layer + 1]:
            rate /= block.stride
        return rate


def _pad_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """[B, T] True where frame index >= length."""
    return torch.arange(t, device=lengths.device)[None, :] >= lengths[:, None]


def check_split_layer(model: BlockModel, split_layer: int) -> None:
    """The cut must leave at least one block on each side... or none on the server (cut after the last block)."""
    n = len(model.blocks)
    if not 0 <= split_layer < n:
        raise AcomError(f"split layer {split_layer} does not exist: this {model.task} model has blocks 0..{n - 1} "
                        f"(0 = stem); allowed --split-layer values are 0..{n - 1}")


class AsrModel(BlockModel):
    """Log-mel -> ConvStem (to 25 frames/s) -> Conformer blocks -> CTC log-probabilities [B, T, V]."""

    task = "asr"

    def __init__(self, config: AsrConfig) -> None:
        super().__init__(config.n_mels)
        self.config = c = config
        blocks: list[Block] = [ConvStem(c.n_mels, c.stem_channels, c.edge_dim, right_context=c.right_context)]
        kw = dict(heads=c.heads, ffn_mult=c.ffn_mult, kernel=c.conv_kernel, left_context=c.left_context,
                  right_context=c.right_context, dropout=c.dropout)
        blocks += [ConformerBlock(c.edge_dim, c.edge_dim, **kw) for _ in range(c.edge_blocks)]
        blocks += [ConformerBlock(c.edge_dim if i == 0 else c.dim, c.dim, **kw) for i in range(c.blocks)]
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv1d(blocks[-1].out_dim, c.vocab_size, 1)

    def head_forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        return F.log_softmax(self.head(x).transpose(1, 2), dim=-1)


class SoundClassifier(BlockModel):
    """Log-mel -> TDNN stem (to 25 frames/s) -> TDNN blocks -> time pool -> TDNN -> attentive pooling -> logits."""

    task = "ac"

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__(config.n_mels)
        self.config = c = config
        blocks: list[Block] = [TDNNBlock(c.n_mels, c.channels, kernel=5, stride=4)]
        blocks += [TDNNBlock(c.channels, c.channels, kernel=3, dilation=2 + i) for i in range(c.edge_blocks)]
        blocks += [TimePool(c.channels, c.pool)]
        blocks += [TDNNBlock(c.channels if i == 0 else c.server_channels, c.server_channels, kernel=3,
                             dilation=1 + i, right_context=2) for i in range(c.server_blocks)]
        self.blocks = nn.ModuleList(blocks)
        self.pool = AttentiveStatsPool(blocks[-1].out_dim)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(2 * blocks[-1].out_dim, c.num_classes)

    def head_forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        pad = None if lengths is None else _pad_mask(lengths, x.shape[-1])
        return self.head(self.drop(self.pool(x, pad)))


MODELS = {"asr": (AsrModel, AsrConfig), "ac": (SoundClassifier, ClassifierConfig)}  # per task of core.tasks


def default_split_layer(model: BlockModel) -> int:
    """The device/server boundary the defaults use: after the narrow blocks (ASR), after the pooling (AC)."""
    c = model.config
    return c.edge_blocks if TASKS[model.task].sequence else c.edge_blocks + 1


def build_model(task: str, config: dict | AsrConfig | ClassifierConfig | None = None) -> BlockModel:
    """A model for `task` ('asr' or 'ac') from a config object or a dict of its fields."""
    return MODELS[get_task(task).name][0](model_config(task, config))


def model_config(task: str, config: dict | AsrConfig | ClassifierConfig | None = None
                 ) -> AsrConfig | ClassifierConfig:
    """The config object of `task`'s model from a dict of its fields (None: the defaults), unknown fields refused."""
    cfg_cls = MODELS[get_task(task).name][1]
    if isinstance(config, dict) and config.get("kind") == "custom":
        raise AcomError("a model of your own (core/custom.py): its layers are in its checkpoint's programs, not in "
                        "its config; this command takes acom's block models only")
    if config is None:
        config = cfg_cls()
    elif isinstance(config, dict):
        allowed = {f.name for f in fields(cfg_cls)}
        unknown = set(config) - allowed
        if unknown:
            raise AcomError(f"{cfg_cls.__name__} has no fields {sorted(unknown)}; allowed: {sorted(allowed)}")
        config = cfg_cls(**config)
    elif not isinstance(config, cfg_cls):
        raise AcomError(f"task {task!r} needs a {cfg_cls.__name__}, got {type(config).__name__}")
    return config


def config_dict(model: BlockModel) -> dict:
    """The model's config as plain fields (what checkpoints store)."""
    return asdict(model.config)
