"""The device's range coder (firmware_host/c/acom_range.c) writes the bytes of acom.codes.priors.encode_codes
for any priors and codes (hypothesis, this machine's gcc; a seeded batch under qemu-aarch64), refuses a code
outside its codebook as Python does, and the server's decoder gets the codes back. The Cortex-M builds run the
vectors' range-coded cases in test_wire_c.py."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acom.codes.priors import CodePriors, decode_codes, encode_codes
from acom.errors import DataError
from acom.firmware_host import wire_c

SIZES = [1, 2, 3, 7, 64, 255, 512, 4096, 65536]


def skewed(rng: np.random.Generator, sizes: list[int], n: int, p: float) -> np.ndarray:
    """[len(sizes), n] codes, geometric (small codes likely), as trained RVQ codes are far from uniform."""
    return np.stack([np.minimum(rng.geometric(p, n) - 1, k - 1) for k in sizes])


def expected(codes: np.ndarray, priors: CodePriors) -> str:
    """The line encode_stdin.c must print: Python's bytes, or -1 (ACOM_E_FIELD) where Python refuses."""
    try:
        data = encode_codes(codes, priors)
    except DataError:
        return "E -1 "
    return f"E {len(data)} {data.hex()}"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), sizes=st.lists(st.sampled_from(SIZES), min_size=1, max_size=3),
       frames=st.integers(0, 60), alpha=st.sampled_from([0.5, 1e-3, 3.0]), p=st.floats(0.02, 0.95),
       spoil=st.booleans())
def test_c_range_codes_as_python_does(encoder, seed, sizes, frames, alpha, p, spoil):
    """Priors counted on skewed codes; codes to send mostly likely ones, some uniform (often never seen in
    training), and (spoil) now and then one past K: the same bytes, or the same refusal."""
    rng = np.random.default_rng(seed)
    priors = CodePriors.estimate([skewed(rng, sizes, 100, p) for _ in range(int(rng.integers(1, 4)))], sizes,
                                 alpha=alpha)
    n_q = int(rng.integers(1, len(sizes) + 1))
    codes = skewed(rng, sizes[:n_q], frames, p)
    codes[:, ::3] = np.stack([rng.integers(0, k, codes[:, ::3].shape[1]) for k in sizes[:n_q]])
    if spoil and frames and sizes[0] < 65536:
        codes[0, int(rng.integers(frames))] = sizes[0]
    got = encoder(wire_c.entropy_record(codes, priors))
    assert got == [expected(codes, priors)]
    if got[0] != "E -1 " and frames:
        data = bytes.fromhex(got[0].split(" ")[2])
        np.testing.assert_array_equal(decode_codes(data, priors, n_q, frames), codes)


def test_c_range_coder_saves_bits_and_trims_tails(encoder):
    """On skewed codes the coder spends far less than bit-packing, and drops tail bytes (lengths not whole
    32-bit words), as Python's does."""
    rng = np.random.default_rng(5)
    priors = CodePriors.estimate([skewed(rng, [512], 4000, 0.05)], [512])
    records, lengths = b"", []
    for _ in range(40):
        codes = skewed(rng, [512], 25, 0.05)
        records += wire_c.entropy_record(codes, priors)
        lengths.append(len(encode_codes(codes, priors)))
    got = [int(line.split()[1]) for line in encoder(records)]
    assert got == lengths
    assert np.mean(got) < 0.75 * 25 * 9 / 8  # 9 bits a code packed
    assert any(n % 4 for n in got)


def test_aarch64_range_coder_agrees_on_a_random_batch():
    """The rpi4 build under qemu-aarch64: 60 seeded records in one run."""
    rng = np.random.default_rng(11)
    records, want = b"", []
    for _ in range(60):
        sizes = [int(rng.choice(SIZES)) for _ in range(int(rng.integers(1, 4)))]
        priors = CodePriors.estimate([skewed(rng, sizes, 200, 0.2)], sizes)
        codes = skewed(rng, sizes, int(rng.integers(0, 50)), 0.2)
        records += wire_c.entropy_record(codes, priors)
        want.append(expected(codes, priors))
    assert wire_c.run_encoder("rpi4", records) == want
