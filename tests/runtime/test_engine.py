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
    x = torch.randn(2, block.inp.in_features, 90)
    streamer, rng = ConformerStreamer(block), random.Random(1)
    states = [streamer.new_state(torch.device("cpu")) for _ in range(2)]
    outs, pos = [[], []], 0
    with torch.inference_mode():
        want = block(x, None).transpose(1, 2)
        while pos < 90:
            n = min(rng.choice([1, 2, 7, 30]), 90 - pos)
            got = streamer.step(states, [x[0, :, pos: pos + n].T, x[1, :, pos: pos + n].T], [pos + n == 90] * 2)
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
    _, bundle, codes = asr_case
    c = codes[0]
    engine = AsrEngine(bundle)
    parts = [Chunk(0, 20, c[:, :20], (0, 0), 0.0), Chunk(20, 20, None, (1, 1), 0.0),
             Chunk(40, c.shape[1] - 40, c[:, 40:], (2, 2), 0.0)]
    (r,) = engine.step({(1, 1): Work(parts, True)})
    assert r.final and r.missing_frames == 20 and r.frames == c.shape[1] and r.seqs == (0, 2)
    filled = c.copy()
    with torch.inference_mode():
        x = bundle.split.rvq.decode(torch.as_tensor(filled)[None])
        x[..., 20:40] = 0
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
