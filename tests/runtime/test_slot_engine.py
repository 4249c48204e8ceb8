"""The slot engine (all streams' state in shared ring buffers) gives what the per-stream engine and the
offline tail give: same transcripts, partial results, counts and packet spans."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acom.errors import AcomError
from acom.runtime.engine import AsrEngine, Work
from acom.runtime.engines import make_engine
from acom.runtime.slot_engine import SlotAsrEngine, _bucket, _Text
from acom.runtime.streams import Chunk
from tests.runtime.conftest import offline_text
from tests.runtime.test_engine import gap_steps, stream_through


def test_transcripts_equal_offline_with_several_passes_and_growth(asr_case):
    _, bundle, codes = asr_case
    want = [offline_text(bundle, c) for c in codes]
    assert any(want)
    # chunk 8 < the 25- and 40-frame pieces: several passes per step; capacity 2 < 5 streams: the rings grow
    engine = SlotAsrEngine(bundle, chunk=8, capacity=2)
    last = stream_through(engine, codes, seed=0)
    assert [last[i].text for i in range(len(codes))] == want
    assert all(last[i].final and last[i].frames == codes[i].shape[1] for i in range(len(codes)))
    assert not engine.streams and not engine.slot_of  # ended streams leave no state behind
    assert engine.capacity >= len(codes) and sorted(engine.free) == list(range(engine.capacity))
    assert engine.lookahead_frames == AsrEngine(bundle).lookahead_frames == 16


@pytest.mark.parametrize("buckets", [False, True])
def test_the_convolution_as_conv1d_gives_the_same(asr_case, buckets):
    """The GPU path (cuDNN depthwise conv1d) checked here on CPU against the shifted-copies path."""
    _, bundle, codes = asr_case
    engine = SlotAsrEngine(bundle, buckets=buckets)
    for r in engine.runners:
        r.conv1d = True
    last = stream_through(engine, codes, seed=2)
    assert [last[i].text for i in range(len(codes))] == [offline_text(bundle, c) for c in codes]


def step_by_step(engine, codes: list[np.ndarray], seed: int, seen: set | None = None) -> list[list[tuple]]:
    """Every step's results (key, final, frames, missing, seqs, text) with several chunks per stream, lost
    frames, and stages missing from some packets; the slot engine's tensor sizes into `seen`."""
    rng, pos, seq, out = random.Random(seed), [0] * len(codes), [0] * len(codes), []
    while any(p < c.shape[1] for p, c in zip(pos, codes)):
        work = {}
        for i, c in enumerate(codes):
            chunks = []
            for _ in range(rng.choice([0, 1, 1, 2, 3])):
                n = min(rng.choice([1, 5, 25, 60]), c.shape[1] - pos[i])
                if n <= 0:
                    break
                piece = c[: rng.choice([1, c.shape[0]]), pos[i]: pos[i] + n]
                chunks.append(Chunk(pos[i], n, None if rng.random() < 0.15 else piece, (seq[i], seq[i]), 0.5))
                pos[i] += n
                seq[i] += 1
            if chunks or (pos[i] >= c.shape[1] and rng.random() < 0.5):
                work[(3, i)] = Work(chunks, pos[i] >= c.shape[1])
        if work:
            out.append([(r.key, r.final, r.frames, r.missing_frames, r.seqs, r.text) for r in engine.step(work)])
            if seen is not None:
                seen.update(engine.shapes)
    return out


def test_every_step_equals_the_per_stream_engine(asr_case):
    _, bundle, codes = asr_case
    for seed in range(3):
        a = step_by_step(AsrEngine(bundle), codes, seed)
        b = step_by_step(SlotAsrEngine(bundle, chunk=16, capacity=1), codes, seed)
        assert a == b
        assert any(r[3] for rows in b for r in rows)  # lost frames were exercised


def test_buckets_pad_to_few_shapes_and_change_nothing(asr_case):
    """Rows and frames rounded up (padding rows on the scratch slot, which no stream gets): every step's
    results as without, with fewer distinct tensor sizes."""
    _, bundle, codes = asr_case
    shapes: dict[bool, set] = {False: set(), True: set()}
    for seed in range(3):
        runs = {}
        for buckets in (False, True):
            engine = SlotAsrEngine(bundle, chunk=16, capacity=2, buckets=buckets)
            runs[buckets] = step_by_step(engine, codes, seed, seen=shapes[buckets])
            assert 0 not in engine.slot_of.values() or not buckets  # the scratch slot is nobody's
        assert runs[True] == runs[False]
    assert len(shapes[True]) < len(shapes[False])
    # streams at a bucket size, frames in a multiple of 8 (block outputs: of 8, or the block's most)
    assert all(s[0] == _bucket(s[0]) and s[1] % 8 == 0 for s in shapes[True])
    assert [_bucket(n) for n in (5, 9, 61, 65, 402, 5000)] == [5, 10, 64, 80, 448, 5120]


def test_slots_are_reused_and_make_engine_picks_by_device(asr_case):
    _, bundle, codes = asr_case
    assert isinstance(make_engine(bundle), AsrEngine)  # on CPU the per-stream engine costs less per small step
    engine = make_engine(bundle, kind="slot")
    assert isinstance(engine, SlotAsrEngine)
    with pytest.raises(AcomError, match="allowed auto, slot, stream"):
        make_engine(bundle, kind="fast")
    with pytest.raises(AcomError, match="only the ASR slot engine pads"):
        make_engine(bundle, buckets=True)  # the per-stream engine on CPU
    assert make_engine(bundle, kind="slot", buckets=True).buckets and not engine.buckets
    c = codes[0]
    for n in range(20):  # streams come and go: the same slots serve them, nothing grows
        (r,) = engine.step({(0, n): Work([Chunk(0, c.shape[1], c, (0, 0), 0.0)], True)})
        assert r.text == offline_text(bundle, c)
    assert engine.capacity == 64 and len(engine.free) == 64


def test_bfloat16_changes_few_characters_and_leaves_the_model_float32(asr_case):
    """bfloat16 blocks (the GPU option): transcripts within a few characters of float32's, checked on CPU."""
    import jiwer
    import torch

    _, bundle, codes = asr_case
    want = [offline_text(bundle, c) for c in codes]
    for conv1d in (False, True):  # both convolution paths (the CUDA one is conv1d)
        engine = SlotAsrEngine(bundle, dtype="bfloat16")
        for r in engine.runners:
            r.conv1d = conv1d
            assert r.kv.dtype == r.b.att.qkv.weight.dtype == torch.bfloat16
        last = stream_through(engine, codes, seed=4)
        got = [last[i].text for i in range(len(codes))]
        assert got != [""] * len(codes)
        assert jiwer.cer(want, got) <= 0.03, (want, got)
    assert bundle.split.model.blocks[-1].att.qkv.weight.dtype == torch.float32  # the blocks were copied
    with pytest.raises(AcomError, match="allowed float32, bfloat16"):
        SlotAsrEngine(bundle, dtype="float16")
    with pytest.raises(AcomError, match="only the ASR slot engine"):  # the per-stream engine runs float32 only
        make_engine(bundle, kind="stream", dtype="bfloat16")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="AB '", max_size=6), max_size=8))
def test_text_collapses_spaces_like_join_split(pieces):
    t, raw = _Text(), ""
    for p in pieces:
        t.add(p)
        raw += p
        assert t.text == " ".join(raw.split())


def test_a_long_gap_gives_what_the_per_stream_engine_gives(asr_case):
    _, bundle, codes = asr_case
    slot = SlotAsrEngine(bundle, chunk=32)
    assert slot.gap_keep < 600  # the gap runs as gap_keep frames in both engines
    want = [(r.text, r.frames, r.missing_frames, r.final) for r in gap_steps(AsrEngine(bundle), codes[1], 600)]
    assert [(r.text, r.frames, r.missing_frames, r.final) for r in gap_steps(slot, codes[1], 600)] == want
