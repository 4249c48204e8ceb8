"""Named recipes: a model config, the cut, the quantizer and the learning rate, by name.

The edge defaults are sized for Cortex-M boards (device part under 10 M MAC/s for ASR, 2 M for sound
classification). The paper recipes are the configurations of "Task-Specific Audio Coding for Machines"
(WASPAA 2025) for users with the real data sets and GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from acom.errors import AcomError


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """One named training configuration."""

    name: str
    task: str  # 'asr' or 'ac'
    model: dict  # fields of AsrConfig / ClassifierConfig that differ from the defaults
    split_layer: int  # cut after this block (0 = stem)
    codebook_sizes: tuple[int, ...]  # K per RVQ stage
    rvq: dict = field(default_factory=dict)  # other RVQConfig fields
    lr: float = 2e-3  # peak learning rate of stage 1 (stage 2 uses half)
    data: str = ""  # what it is meant to be trained on


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe(name="edge-asr", task="asr", model={}, split_layer=2, codebook_sizes=(64, 64, 64),
           data="the synthetic LibriSpeech-layout set (acom data synth-speech)"),
    # the same model, its cut's frames averaged in pairs before one codebook of 64 (12.5 code frames/s, about
    # 60 bit/s range-coded) and repeated after it on the server (docs/training.md, "Half the bits")
    Recipe(name="edge-asr-12hz", task="asr", model={}, split_layer=2, codebook_sizes=(64,), rvq=dict(time_pool=2),
           data="the synthetic LibriSpeech-layout set (acom data synth-speech)"),
    Recipe(name="edge-ac", task="ac", model={}, split_layer=3, codebook_sizes=(64, 64), lr=3e-3,
           data="the synthetic UrbanSound8K-layout set (acom data synth-urban)"),
    # the same pooled twice as much before the cut (2.5 frames/s), one codebook: 9.4 bit/s range-coded within
    # 1 point of its uncut model (trained with --split-epochs 30 --distill 1; docs/training.md)
    Recipe(name="edge-ac-pool10", task="ac", model=dict(pool=10), split_layer=3, codebook_sizes=(64,), lr=3e-3,
           data="the synthetic UrbanSound8K-layout set (acom data synth-urban)"),
    # a Raspberry Pi class device runs more than a microcontroller: wider blocks after the same cut (4.1 M
    # parameters in all), trained on a GPU from precomputed features (docs/training.md)
    Recipe(name="rpi-asr", task="asr", split_layer=2, codebook_sizes=(256, 64, 64),
           model=dict(stem_channels=128, edge_dim=144, edge_blocks=2, dim=192, blocks=6, ffn_mult=2, heads=4),
           data="the synthetic LibriSpeech-layout set (acom data synth-speech)"),
    # Conformer, 12 blocks of d=512, RVQ after block 4, 25 frames/s, one codebook of 1024 (250 bit/s)
    Recipe(name="paper-librispeech", task="asr", split_layer=4, codebook_sizes=(1024,), lr=1e-3,
           model=dict(n_mels=80, stem_channels=256, edge_dim=512, edge_blocks=4, dim=512, blocks=8, heads=8,
                      ffn_mult=4, conv_kernel=31, left_context=64, right_context=4, dropout=0.1),
           data="LibriSpeech 960 h, test on test-clean/test-other"),
    # the same with one codebook of 64: 150 bit/s
    Recipe(name="paper-librispeech-150", task="asr", split_layer=4, codebook_sizes=(64,), lr=1e-3,
           model=dict(n_mels=80, stem_channels=256, edge_dim=512, edge_blocks=4, dim=512, blocks=8, heads=8,
                      ffn_mult=4, conv_kernel=31, left_context=64, right_context=4, dropout=0.1),
           data="LibriSpeech 960 h"),
    # ECAPA-TDNN-style classifier: the RVQ after its last block, time-pooled to 25 frames/s; the server
    # side is only attentive statistics pooling and the classifier, so nothing bypasses the cut
    Recipe(name="paper-us8k", task="ac", split_layer=4, codebook_sizes=(1024,), lr=1e-3,
           model=dict(n_mels=80, channels=512, edge_blocks=3, pool=1, server_blocks=0),
           data="UrbanSound8K: train folds 1-8, validate on 9, test on 10"),
)}
DEFAULT = {"asr": "edge-asr", "ac": "edge-ac"}


def get(name: str, task: str | None = None) -> Recipe:
    """The recipe called `name` (AcomError naming the known ones, or if it is for another task)."""
    if name not in RECIPES:
        raise AcomError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    if task is not None and recipe.task != task:
        raise AcomError(f"recipe {name!r} is for task {recipe.task!r}, not {task!r}")
    return recipe
