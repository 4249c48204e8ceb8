"""Bit budget and entropy coding of RVQ codes: exact round trips, real rates, priors I/O, bad input."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import acom.codes.priors as bitrate
from acom.codes.budget import nominal_bits_per_frame, nominal_bps, packed_bits_per_frame
from acom.codes.priors import CodePriors, decode_codes, encode_codes, entropy_bps
from acom.errors import AcomError, DataError

SIZES = (1024, 64, 3)


def _uniform(rng: np.random.Generator, sizes, num_frames: int) -> np.ndarray:
    """Random codes [len(sizes), num_frames]."""
    return np.stack([rng.integers(0, k, num_frames) for k in sizes]).reshape(len(sizes), num_frames)


def _markov(rng: np.random.Generator, k: int, n_q: int, num_frames: int) -> np.ndarray:
    """Codes [n_q, T]: mostly a fixed successor of the previous code, else a Zipf-skewed draw."""
    succ = np.random.default_rng(123).permutation(k)  # same chain for train and test
    zipf = 1.0 / np.arange(1, k + 1) ** 1.1
    zipf /= zipf.sum()
    out = np.zeros((n_q, num_frames), dtype=np.int64)
    for s in range(n_q):
        jumps = rng.random(num_frames) < 0.15
        draws = rng.choice(k, size=num_frames, p=zipf)
        out[s, 0] = draws[0]
        for t in range(1, num_frames):
            out[s, t] = draws[t] if jumps[t] else succ[out[s, t - 1]]
    return out


@pytest.fixture(scope="module")
def priors() -> CodePriors:
    rng = np.random.default_rng(0)
    return CodePriors.estimate([_uniform(rng, SIZES, 300) for _ in range(20)], SIZES)


# ---- the bit budget -------------------------------------------------------------------------

@pytest.mark.parametrize(("rate", "sizes", "bps"), [
    (25.0, (1024,), 250.0), (25.0, (64,), 150.0), (25.0, (256, 256), 400.0),
    (50.0, (1000,), 50 * math.log2(1000)), (25.0, (3, 1), 25 * math.log2(3)),
])
def test_nominal_bps(rate, sizes, bps):
    assert nominal_bps(rate, sizes) == pytest.approx(bps, rel=1e-12)


def test_packed_bits_exceed_nominal_only_for_non_powers_of_two():
    assert packed_bits_per_frame((1024, 64)) == nominal_bits_per_frame((1024, 64)) == 16
    assert packed_bits_per_frame(SIZES) == 18 > nominal_bits_per_frame(SIZES)
    assert packed_bits_per_frame((1000,)) == 10 and nominal_bits_per_frame((1000,)) < 9.97
    assert packed_bits_per_frame((1,)) == 0 and packed_bits_per_frame((2**16 + 1,)) == 17


@pytest.mark.parametrize(("rate", "sizes"), [(0.0, (8,)), (float("nan"), (8,)), (25.0, ()), (25.0, (0,)),
                                             (25.0, (8, 2.5))])
def test_budget_rejects_bad_arguments(rate, sizes):
    with pytest.raises(AcomError, match="expected"):
        nominal_bps(rate, sizes)


# ---- round trips ----------------------------------------------------------------------------

@pytest.mark.parametrize("context", [True, False])
@pytest.mark.parametrize("n_q", [1, 2, 3])
@pytest.mark.parametrize("num_frames", [0, 1, 2, 250])
def test_round_trip(priors, context, n_q, num_frames):
    codes = _uniform(np.random.default_rng(num_frames + 7 * n_q), SIZES[:n_q], num_frames)
    data = encode_codes(codes, priors, context)
    assert isinstance(data, bytes)
    assert (len(data) == 0) == (num_frames == 0)
    back = decode_codes(data, priors, n_q, num_frames, context)
    assert back.shape == (n_q, num_frames) and np.array_equal(back, codes)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), sizes=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       context=st.booleans(), train_frames=st.integers(0, 12), num_frames=st.integers(0, 24))
def test_round_trip_property(data, sizes, context, train_frames, num_frames):
    def codes_of(frames: int, n_q: int) -> np.ndarray:
        rows = [data.draw(st.lists(st.integers(0, k - 1), min_size=frames, max_size=frames))
                for k in sizes[:n_q]]
        return np.array(rows, dtype=np.int64).reshape(n_q, frames)

    priors = CodePriors.estimate([codes_of(train_frames, len(sizes))], sizes)
    n_q = data.draw(st.integers(1, len(sizes)))
    codes = codes_of(num_frames, n_q)
    data_bytes = encode_codes(codes, priors, context)
    assert np.array_equal(decode_codes(data_bytes, priors, n_q, num_frames, context), codes)


def test_codes_never_seen_in_training_still_encode():
    rng = np.random.default_rng(1)
    train = [rng.integers(0, 10, (2, 200)) for _ in range(5)]  # codes 10..63 and most pairs never occur
    priors = CodePriors.estimate(train, (64, 64))
    codes = np.stack([np.arange(64), np.arange(63, -1, -1)])
    for context in (True, False):
        data = encode_codes(codes, priors, context)
        assert np.array_equal(decode_codes(data, priors, 2, 64, context), codes)


# ---- the context model pays off, and the coder is close to the information content -----------

def test_context_beats_unigram_beats_nominal_on_markov_codes():
    rng = np.random.default_rng(2)
    k, n_q, rate = 256, 2, 25.0
    priors = CodePriors.estimate([_markov(rng, k, n_q, 250) for _ in range(60)], (k,) * n_q)
    test = [_markov(rng, k, n_q, 250) for _ in range(12)]
    ctx = entropy_bps(test, priors, rate, context=True)
    uni = entropy_bps(test, priors, rate, context=False)
    print(f"\nnominal {ctx['nominal_bps']:.1f}  unigram {uni['bps']:.1f} (ideal {uni['ideal_bps']:.1f})  "
          f"context {ctx['bps']:.1f} (ideal {ctx['ideal_bps']:.1f}) bit/s")
    assert ctx["nominal_bps"] == uni["nominal_bps"] == nominal_bps(rate, (k,) * n_q) == 400.0
    assert uni["bps"] < 0.95 * uni["nominal_bps"]
    assert ctx["bps"] < 0.6 * uni["bps"]
    for r in (ctx, uni):
        assert r["seconds"] == 12 * 250 / rate and r["bps"] == r["bits"] / r["seconds"]
        assert abs(r["bits"] - r["ideal_bits"]) <= 0.03 * r["ideal_bits"] + 32 * len(test)
    assert ctx["bits"] == sum(8 * len(encode_codes(c, priors, True)) for c in test)


def test_ideal_uses_the_coders_probabilities():
    rng = np.random.default_rng(3)
    priors = CodePriors.estimate([_markov(rng, 32, 1, 300) for _ in range(3)], (32,))
    model = priors._models[0]
    codes = _markov(rng, 32, 1, 100)[0]
    p = model.code_probs(codes, context=True)
    assert p[0] == model.p_uni[codes[0]]
    assert all(p[t] == model.row(int(codes[t - 1]))[codes[t]] for t in range(1, codes.size))
    rows = np.stack([model.row(h) for h in range(32)])
    assert (rows > 0).all() and np.allclose(rows.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_entropy_bps_raises_if_a_round_trip_fails(priors, monkeypatch):
    codes = _uniform(np.random.default_rng(4), SIZES, 20)
    monkeypatch.setattr(bitrate, "decode_codes", lambda *a, **kw: np.zeros_like(codes))
    with pytest.raises(AcomError, match="utterance 0.*round-trip"):
        entropy_bps([codes], priors, 25.0)


def test_entropy_bps_rejects_mixed_n_q_and_empty_sets(priors):
    rng = np.random.default_rng(5)
    with pytest.raises(DataError, match="utterance 1.*n_q 2"):
        entropy_bps([_uniform(rng, SIZES[:2], 5), _uniform(rng, SIZES, 5)], priors, 25.0)
    with pytest.raises(DataError, match="at least one"):
        entropy_bps([], priors, 25.0)
    with pytest.raises(DataError, match="no frames"):
        entropy_bps([_uniform(rng, SIZES, 0)], priors, 25.0)


# ---- priors: counting and storage -------------------------------------------------------------

def test_estimate_counts_unigrams_and_bigrams_per_stage():
    priors = CodePriors.estimate([np.array([[0, 1, 0, 1], [2, 2, 2, 0]]), np.array([[1, 1], [0, 0]])], (2, 3))
    assert priors.n_q == 2 and priors.codebook_sizes == (2, 3)
    s0, s1 = priors.stages
    assert s0.unigram.tolist() == [2, 4] and s1.unigram.tolist() == [3, 0, 3]
    assert list(zip(s0.bigram_prev.tolist(), s0.bigram_cur.tolist(), s0.bigram_count.tolist())) == [
        (0, 1, 2), (1, 0, 1), (1, 1, 1)]
    assert list(zip(s1.bigram_prev.tolist(), s1.bigram_cur.tolist(), s1.bigram_count.tolist())) == [
        (0, 0, 1), (2, 0, 1), (2, 2, 2)]


def test_estimate_merges_in_chunks_the_same(monkeypatch):
    rng = np.random.default_rng(6)
    train = [rng.integers(0, 50, (1, 40)) for _ in range(30)]
    whole = CodePriors.estimate(train, (50,)).to_tensors()
    monkeypatch.setattr(bitrate, "_MERGE_EVERY", 64)
    chunked = CodePriors.estimate(train, (50,)).to_tensors()
    assert whole.keys() == chunked.keys() and all(torch.equal(whole[n], chunked[n]) for n in whole)


def test_priors_tensors_round_trip_gives_identical_bytes(priors, tmp_path):
    from safetensors.torch import load_file, save_file

    codes = _uniform(np.random.default_rng(8), SIZES, 100)
    tensors = priors.to_tensors()
    save_file(tensors, tmp_path / "priors.safetensors")
    torch.save({"code_priors": tensors}, tmp_path / "ckpt.pt")
    loaded = [CodePriors.from_tensors(tensors),
              CodePriors.from_tensors(load_file(tmp_path / "priors.safetensors")),
              CodePriors.from_tensors(torch.load(tmp_path / "ckpt.pt", weights_only=True)["code_priors"])]
    for context in (True, False):
        data = encode_codes(codes, priors, context)
        for other in loaded:
            assert other.codebook_sizes == SIZES and other.alpha == priors.alpha
            assert encode_codes(codes, other, context) == data


def test_from_tensors_names_a_missing_key(priors):
    tensors = priors.to_tensors()
    del tensors["stage1.bigram_cur"]
    with pytest.raises(DataError, match="stage1.bigram_cur"):
        CodePriors.from_tensors(tensors)
    tensors = priors.to_tensors()
    tensors["stage0.bigram_cur"] = tensors["stage0.bigram_cur"].flip(0)
    with pytest.raises(DataError, match="sorted"):
        CodePriors.from_tensors(tensors)


# ---- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize(("stage", "value"), [(1, 64), (2, -1), (0, 1024)])
def test_out_of_range_code_names_stage_and_range(priors, stage, value):
    codes = _uniform(np.random.default_rng(9), SIZES, 10)
    codes[stage, 4] = value
    allowed = f"0..{SIZES[stage] - 1}"
    with pytest.raises(DataError, match=f"stage {stage}, frame 4: code {value} .*{allowed}"):
        encode_codes(codes, priors)
    with pytest.raises(DataError, match=f"utterance 2, stage {stage}.*{allowed}"):
        CodePriors.estimate([codes * 0, codes * 0, codes], SIZES)


def test_wrong_shapes_and_counts_raise(priors):
    rng = np.random.default_rng(10)
    with pytest.raises(DataError, match=r"n_q 1\.\.3"):
        encode_codes(_uniform(rng, SIZES + (4,), 5), priors)
    with pytest.raises(DataError, match="n_q 1..3"):
        encode_codes(np.zeros(5, dtype=np.int64), priors)
    with pytest.raises(DataError, match="utterance 1.*n_q 3"):
        CodePriors.estimate([_uniform(rng, SIZES, 5), _uniform(rng, SIZES[:2], 5)], SIZES)
    with pytest.raises(DataError, match="integers"):
        encode_codes(np.zeros((1, 5), dtype=np.float32), priors)
    with pytest.raises(AcomError, match="1..3"):
        decode_codes(b"", priors, 4, 5)
    with pytest.raises(AcomError, match="<= 65536"):
        CodePriors.estimate([], (2**16 + 1,))


def test_any_bytes_decode_to_valid_codes_or_data_error():
    # Skewed priors make some byte strings invalid for the coder; those must surface as DataError.
    priors = CodePriors.estimate([np.zeros((1, 200), dtype=np.int64)], (1000,))
    rng = np.random.default_rng(12)
    errors = 0
    for i in range(3000):
        try:
            codes = decode_codes(rng.bytes(int(rng.integers(0, 9))), priors, 1, 20, context=bool(i % 2))
        except DataError as e:
            assert "1 stages x 20 frames" in str(e)
            errors += 1
        else:
            assert codes.shape == (1, 20) and codes.min() >= 0 and codes.max() < 1000
    assert errors > 0


def test_encode_is_fast_enough():
    rng = np.random.default_rng(11)
    priors = CodePriors.estimate([_markov(rng, 1024, 2, 250) for _ in range(20)], (1024, 1024))
    codes = _markov(rng, 1024, 2, 250)
    start = time.perf_counter()
    data = encode_codes(codes, priors)
    assert time.perf_counter() - start < 0.5
    assert np.array_equal(decode_codes(data, priors, 2, 250), codes)
