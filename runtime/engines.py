"""``make_engine``: the tail engine for a bundle's task and the device it runs on."""

from __future__ import annotations

import torch

from acom.core.blocks import ConformerBlock
from acom.core.tasks import TASKS
from acom.errors import AcomError
from acom.runtime.bundle import Bundle
from acom.runtime.engine import AsrEngine, ClassifierEngine
from acom.runtime.slot_engine import DTYPES, SlotAsrEngine

ENGINES = ("auto", "slot", "stream")


def make_engine(bundle: Bundle, device: str = "cpu", window_s: float = 4.0, kind: str = "auto",
                dtype: str = "float32", buckets: bool = False):
    """The engine for the bundle's task. ASR, ``auto``: on CUDA ``slot`` (runtime/slot_engine.py: all streams'
    state in shared tensors, a step's kernels independent of the number of streams) when every tail block is
    a Conformer block; otherwise ``stream`` (``AsrEngine``), which costs less for the one or two streams a CPU
    server's step holds (measured here: 8.0 against 11.6 ms a step for two streams, 10.4-10.6 since the slot
    engine's rows per pass shrank; p99 at 50 served streams 39-43 against 55-56 ms; docs/serve.md). ``kind`` forces
    one. Classification: ``ClassifierEngine``. ``dtype`` "bfloat16": the
    slot engine's blocks in bfloat16 (the others run float32 only); ``buckets``: its tensor sizes rounded up to a
    few (runtime/slot_engine.py)."""
    if kind not in ENGINES:
        raise AcomError(f"engine {kind!r}: allowed {', '.join(ENGINES)}")
    if dtype not in DTYPES:
        raise AcomError(f"tail dtype {dtype!r}: allowed {', '.join(DTYPES)}")
    if getattr(bundle.split.model.config, "kind", "") == "custom":  # a user's own model (runtime/whole_engine.py)
        if kind == "slot" or dtype != "float32" or buckets:
            raise AcomError("a custom model's tail runs once per stream on the stream engine: drop --engine slot, "
                            "--dtype and --tail-buckets")
        from acom.runtime.whole_engine import WholeStreamEngine
        return WholeStreamEngine(bundle, device)
    tail = bundle.split.model.blocks[bundle.split.split_layer + 1:]
    cuda = torch.device(device).type == "cuda"
    conformer = all(isinstance(b, ConformerBlock) for b in tail)
    slot = TASKS[bundle.task].sequence and (kind == "slot" or (kind == "auto" and cuda and conformer))
    if buckets and not slot:
        raise AcomError("tail buckets: only the ASR slot engine pads its batches (use --engine slot)")
    if dtype != "float32" and not slot:
        raise AcomError(f"tail dtype {dtype}: only the ASR slot engine runs it (this {bundle.task} bundle would run "
                        f"on the {'classifier' if bundle.task != 'asr' else 'per-stream'} engine); use float32")
    if not TASKS[bundle.task].sequence:
        return ClassifierEngine(bundle, device, window_s)
    if slot:
        return SlotAsrEngine(bundle, device, dtype=dtype, buckets=buckets)
    return AsrEngine(bundle, device)
