"""A pooled quantizer (``time_pool`` 2: 12.5 code frames/s) on the server: the
streaming tails give the offline tail's transcripts, long gaps count in tail frames, and the ONNX tail matches
ServerDecoder."""

from __future__ import annotations

from acom.runtime.engine import AsrEngine
from acom.runtime.onnx_tail import TOLERANCE, check_failures, check_tail_onnx, export_tail_onnx
from acom.runtime.slot_engine import SlotAsrEngine
from acom.runtime.streams import Chunk
from tests.runtime.conftest import offline_text
from tests.runtime.test_engine import assert_lost_frames_decoded_as_zeros, gap_steps, stream_through


def test_pooled_streams_get_the_offline_transcripts(asr_pool_case):
    _, bundle, codes = asr_pool_case
    assert bundle.frame_rate == 12.5 and bundle.split.time_pool == 2
    want = [offline_text(bundle, c) for c in codes]
    assert sum(map(len, want)) > 20, want  # the transcripts compared are not all empty
    for engine in (AsrEngine(bundle), SlotAsrEngine(bundle, chunk=16, capacity=2)):  # passes and growth too
        assert engine.kept(Chunk(0, 7, codes[0][:, :7], (0, 0), 0.0)) == 14  # tail frames
        last = stream_through(engine, codes, seed=3)
        assert [last[i].text for i in range(len(codes))] == want, type(engine).__name__
        assert all(last[i].frames == codes[i].shape[1] for i in range(len(codes)))  # code frames, as sent


def test_pooled_lost_frames_are_zeros_for_each_tail_frame(asr_pool_case):
    assert_lost_frames_decoded_as_zeros(asr_pool_case[1], asr_pool_case[2])


def test_a_long_pooled_gap_runs_as_gap_keep_tail_frames(asr_pool_case):
    _, bundle, codes = asr_pool_case
    engine = AsrEngine(bundle)
    assert engine.kept(Chunk(0, 300, None, (0, 0), 0.0)) == engine.gap_keep < 600
    full = type("Full", (AsrEngine,), {"gap_keep": 10 ** 9})(bundle)
    for c in codes[:2]:
        got, want = gap_steps(engine, c, 300), gap_steps(full, c, 300)
        assert [(r.text, r.frames, r.missing_frames) for r in got] == [(r.text, r.frames, r.missing_frames)
                                                                         for r in want]


def test_the_pooled_onnx_tail_matches_the_server_decoder(asr_pool_case, tmp_path):
    _, bundle, _ = asr_pool_case
    path = export_tail_onnx(bundle, tmp_path / "tail.onnx", 1)
    check = check_tail_onnx(bundle, path, 1, cases=((1, 0.08), (3, 2.0)))
    assert check["max_abs_diff"] < TOLERANCE / 10 and check["out_lengths_equal"], check
    assert check_failures(check) == []
    assert [c["frames"] for c in check["cases"]] == [1, 25]  # code frames in, 12.5 a second

