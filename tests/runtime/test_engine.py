"""The streaming tail equals the offline tail: same transcripts and labels from the same codes."""

from __future__ import annotations

import random

import numpy as np
import torch

from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.core.ctc import CharVocab, ctc_greedy
from acom.runtime.conformer_stream import ConformerStreamer
from acom.runtime.engine import AsrEngine, ClassifierEngine, WindowRunner, Work
from acom.runtime.streams import Chunk
from tests.runtime.conftest import offline_text


def stream_through(engine, codes: list[np.ndarray], seed: int, lost: set[tuple[int, int]] = frozenset()) -> dict:
    """Feed every stream in random chunk sizes, interleaved; returns the last result per stream."""
    rng, pos, last = random.Random(seed), [0] * len(codes), {}
    while any(p < c.shape[1] for p, c in zip(pos, codes)):
        work = {}
        for i, c in enumerate(codes):
            if pos[i] >= c.shape[1] or rng.random() < 0.3:
                continue
            n = min(rng.choice([1, 3, 25, 40]), c.shape[1] - pos[i])
            piece = None if (i, pos[i]) in lost else c[:, pos[i]: pos[i] + n]
            work[(9, i)] = Work([Chunk(pos[i], n, piece, (pos[i], pos[i]), 0.0)], pos[i] + n >= c.shape[1])
            pos[i] += n
        last.update({r.key[1]: r for r in engine.step(work)})
    return last


def test_conformer_streamer_matches_the_block_on_whole_input():
    torch.manual_seed(0)
    split, _ = load_checkpoint(PRETRAINED / "asr" / "split.pt")
    block = split.model.blocks[3]
    x = torch.randn(2, block.inp.in_features, 300)
    streamer, rng = ConformerStreamer(block), random.Random(1)
    states = [streamer.new_state(torch.device("cpu")) for _ in range(2)]
    outs, pos = [[], []], 0
    with torch.inference_mode():
        want = block(x, None).transpose(1, 2)
        while pos < 300:  # 150 frames at once: attended in blocks of BLOCK queries
            n = min(rng.choice([1, 2, 7, 30, 150]), 300 - pos)
            got = streamer.step(states, [x[0, :, pos: pos + n].T, x[1, :, pos: pos + n].T], [pos + n == 300] * 2)
            for i in range(2):
                outs[i].append(got[i])
            pos += n
    for i in range(2):
        torch.testing.assert_close(torch.cat(outs[i]), want[i], atol=1e-4, rtol=1e-4)


def test_asr_stream_transcripts_equal_offline(asr_case):
    _, bundle, codes = asr_case
    want = [offline_text(bundle, c) for c in codes]
    assert any(want), "the test utterances should produce some text"
    engine = AsrEngine(bundle)
    last = stream_through(engine, codes, seed=0)
    assert [last[i].text for i in range(len(codes))] == want
    assert all(last[i].final and last[i].frames == codes[i].shape[1] for i in range(len(codes)))
    assert not engine.streams  # ended streams leave no state behind
    engine.runners = [WindowRunner(b) for b in engine.tail]  # the generic path agrees too
    last = stream_through(engine, codes, seed=1)
    assert [last[i].text for i in range(len(codes))] == want
    assert engine.lookahead_frames == 16  # 4 blocks x (2 attention + 2 convolution) frames of look-ahead


def test_asr_lost_frames_are_counted_and_decoded_as_zeros(asr_case):
    assert_lost_frames_decoded_as_zeros(asr_case[1], asr_case[2])


def assert_lost_frames_decoded_as_zeros(bundle, codes: list[np.ndarray]) -> None:
    """Code frames 20..39 of a stream lost: counted, and the transcript is the offline tail's with zeros there."""
    c, p = codes[0], bundle.split.time_pool  # a lost code frame is p zero frames at the cut
    engine = AsrEngine(bundle)
    parts = [Chunk(0, 20, c[:, :20], (0, 0), 0.0), Chunk(20, 20, None, (1, 1), 0.0),
             Chunk(40, c.shape[1] - 40, c[:, 40:], (2, 2), 0.0)]
    (r,) = engine.step({(1, 1): Work(parts, True)})
    assert r.final and r.missing_frames == 20 and r.frames == c.shape[1] and r.seqs == (0, 2)
    filled = c.copy()
    with torch.inference_mode():
        x = bundle.split.rvq.decode(torch.as_tensor(filled)[None])
        x[..., 20 * p: 40 * p] = 0
        m = bundle.split.model
        y, _ = m.run_blocks(x, None, bundle.split.split_layer + 1, len(m.blocks))
        assert r.text == ctc_greedy(m.head_forward(y, None)[0], CharVocab())


def test_classifier_labels_equal_offline(ac_case):
    _, bundle, codes = ac_case
    with torch.inference_mode():
        want = [torch.softmax(bundle.split.server()(torch.as_tensor(c)[None])[0], -1) for c in codes]
    engine = ClassifierEngine(bundle, window_s=60.0)  # the window holds the whole clip: same input as offline
    last = stream_through(engine, codes, seed=2)
    for i, p in enumerate(want):
        assert last[i].final and last[i].label == int(p.argmax())
        np.testing.assert_allclose(last[i].scores, p.numpy(), atol=1e-4)
    short = ClassifierEngine(bundle, window_s=1.0)  # 5 frames: the label pools the last second only
    (r,) = short.step({(1, 0): Work([Chunk(0, codes[0].shape[1], codes[0], (0, 0), 0.0)], True)})
    with torch.inference_mode():  # the blocks still see the whole stream: only the pooling is windowed
        m, cut = bundle.split.model, bundle.split.split_layer
        y, _ = m.run_blocks(bundle.split.rvq.decode(torch.as_tensor(codes[0])[None]), None, cut + 1, len(m.blocks))
        p = torch.softmax(m.head(m.pool(y[..., -5:], None))[0], -1)
    np.testing.assert_allclose(r.scores, p.numpy(), atol=1e-4)
    (r,) = short.step({(1, 1): Work([Chunk(0, 5, None, (-1, -1), 0.0)], True)})
    assert r.label is None and r.missing_frames == 5  # nothing received: no label, not a guess


def gap_steps(engine, c: np.ndarray, gap: int) -> list:
    """One stream: the first half of its frames, a lost gap of ``gap`` frames, the rest (ending it), a step each."""
    h = c.shape[1] // 2
    steps = [[Chunk(0, h, c[:, :h], (0, 0), 0.0)], [Chunk(h, gap, None, (1, 1), 0.0)],
             [Chunk(h + gap, c.shape[1] - h, c[:, h:], (2, 2), 0.0)]]
    return [engine.step({(1, 1): Work(chunks, i == 2)})[0] for i, chunks in enumerate(steps)]


def test_a_long_gap_runs_as_gap_keep_frames_with_the_same_transcript(asr_case):
    _, bundle, codes = asr_case
    c, gap = codes[0], 600
    engine = AsrEngine(bundle)
    assert engine.gap_keep == 4 * (40 + 7 + 2 + 7) + 1 < gap  # 4 blocks' reach (attention and convolution)
    assert engine.kept(Chunk(0, gap, None, (0, 0), 0.0)) == engine.gap_keep
    got = gap_steps(engine, c, gap)
    full = type("Full", (AsrEngine,), {"gap_keep": 10 ** 9})(bundle)  # the whole gap materialized
    assert [(r.text, r.frames, r.missing_frames) for r in got] == [(r.text, r.frames, r.missing_frames)
                                                                     for r in gap_steps(full, c, gap)]
    assert got[-1].frames == c.shape[1] + gap and got[-1].missing_frames == gap
    with torch.inference_mode():  # and offline, zeros in the gap
        x = bundle.split.rvq.decode(torch.as_tensor(c)[None])
        h = c.shape[1] // 2
        x = torch.cat([x[..., :h], x.new_zeros(1, x.shape[1], gap), x[..., h:]], dim=-1)
        m = bundle.split.model
        y, _ = m.run_blocks(x, None, bundle.split.split_layer + 1, len(m.blocks))
        assert got[-1].text == ctc_greedy(m.head_forward(y, None)[0], CharVocab())


def test_a_long_gap_gives_the_classifier_the_same_labels(ac_case):
    _, bundle, codes = ac_case
    engine = ClassifierEngine(bundle, window_s=4.0)
    assert engine.gap_keep == 2 * (1 + 2 + 3) + 20 + 1  # 3 TDNN blocks' reach both ways, the 20-frame window
    full = type("Full", (ClassifierEngine,), {"gap_keep": 10 ** 9})(bundle, window_s=4.0)
    for c in codes[:3]:
        got, want = gap_steps(engine, c, 200), gap_steps(full, c, 200)
        assert got[0].label is not None and got[-1].label is not None
        assert [(r.label, r.frames, r.missing_frames) for r in got] == [(r.label, r.frames, r.missing_frames)
                                                                          for r in want]
        for a, b in zip(got, want):
            assert (a.scores is None) == (b.scores is None)
            if a.scores is not None:
                np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
