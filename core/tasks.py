"""The tasks acom knows, as data: one entry per task that call sites ask instead of comparing names.

Each entry says what the model outputs and how it is decoded, which metric scores it and in which direction,
which field of a data item is the reference, and which subsets results are reported on. The data set loader of
each task is registered beside the data sets (``acom.corpora.featcache.LOADERS``, keyed by the same name):
the model core cannot import the data sets, which sit a layer above it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from acom.errors import AcomError


@dataclass(frozen=True)
class Task:
    """One task: its outputs, decoders, metric and data."""

    name: str  # "asr", "ac": what checkpoints, bundles and command lines call it
    title: str
    sequence: bool  # per-frame outputs (CTC log-probs [T, V], a transcript) rather than one per clip
    metric: str  # the headline metric: "wer" (lower is better) or "accuracy"
    lower_is_better: bool
    unit: str  # how the metric is shown, in percent
    target_field: str  # the data item's field that holds the reference ("transcript", "label")
    decoders: tuple[str, ...]  # decoding rules the reports compare; the first is the plain one
    main_decoder: str  # the one headline figures use
    test_subset: str  # where results are reported
    eval_sets: tuple[str, ...]  # subsets the rate-accuracy reports score
    default_data: str  # the data set `make setup` generates for it
    outputs: tuple[str, ...]  # the server tail's outputs (ONNX names)
    verify_items: int  # test items an export verifies on by default

    def better(self, a: float, b: float) -> bool:
        """Whether metric value ``a`` is strictly better than ``b``."""
        return a < b if self.lower_is_better else a > b

    def best(self, values: Iterable, key: Callable | None = None):
        """The best of ``values`` (by ``key``, as ``min``/``max`` take it)."""
        return (min if self.lower_is_better else max)(values, key=key)

    def loss(self, new: float, reference: float) -> float:
        """How much worse ``new`` is than ``reference``, in the metric's units (negative: better)."""
        return new - reference if self.lower_is_better else reference - new

    def target(self, item):
        """The reference of one data item (a transcript or a class label)."""
        return getattr(item, self.target_field)


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("asr", "speech recognition", sequence=True, metric="wer", lower_is_better=True, unit="WER %",
         target_field="transcript", decoders=("greedy", "beam+lm"), main_decoder="beam+lm", test_subset="test-clean",
         eval_sets=("dev", "test-clean"), default_data="data/speech", outputs=("log_probs", "out_lengths"),
         verify_items=40),
    Task("ac", "sound classification", sequence=False, metric="accuracy", lower_is_better=False, unit="accuracy %",
         target_field="label", decoders=("argmax",), main_decoder="argmax", test_subset="test", eval_sets=("test",),
         default_data="data/urban", outputs=("logits",), verify_items=200),
)}


def get_task(name: str) -> Task:
    """The task called ``name``; AcomError listing the known ones otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise AcomError(f"unknown task {name!r}; allowed: {', '.join(TASKS)}") from None
