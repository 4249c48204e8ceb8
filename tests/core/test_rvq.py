"""ResidualVQ: shapes, encode/decode against forward, data-driven init, training, restarts, export."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from acom.core.rvq import QuantizedResult, ResidualVQ, RVQConfig
from acom.errors import AcomError

D = 32
SIZES = (64, 16, 256)
CFG = RVQConfig(dim=D, codebook_sizes=SIZES, code_dim=8)


def mixture(n: int, *, seed: int, d: int = D, comps: int = 12, rank: int = 6) -> torch.Tensor:
    """[n, d] draws of a fixed Gaussian mixture: each component a centre plus a rank-6 spread.

    The mixture's parameters are always the same; ``seed`` only picks the samples, so different
    seeds give held-out data from one distribution.
    """
    g = torch.Generator().manual_seed(1234)
    centres = torch.randn(comps, d, generator=g) * 3.0
    loads = torch.randn(comps, rank, d, generator=g)
    s = torch.Generator().manual_seed(seed)
    label = torch.randint(0, comps, (n,), generator=s)
    latent = torch.randn(n, rank, generator=s)
    spread = torch.einsum("nr,nrd->nd", latent, loads[label])
    return centres[label] + spread + 0.1 * torch.randn(n, d, generator=s)


def as_features(x: torch.Tensor) -> torch.Tensor:
    """[N, D] -> [1, D, N]: one long 'utterance' in the channels-first layout."""
    return x.T.unsqueeze(0).contiguous()


@torch.no_grad()
def rel_error(model: ResidualVQ, feats: torch.Tensor, n_q: int) -> float:
    """Reconstruction MSE over the per-channel variance of feats [B, D, T]."""
    var = (feats - feats.mean(dim=(0, 2), keepdim=True)).square().mean()
    return float((model.decode(model.encode(feats, n_q)) - feats).square().mean() / var)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tensors here are tiny: on a shared 2-core machine, thread hand-offs cost 100x the maths."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def train_x() -> torch.Tensor:
    return mixture(4000, seed=1)


@pytest.fixture(scope="module")
def test_feats() -> torch.Tensor:
    return as_features(mixture(2000, seed=2))


@pytest.fixture(scope="module")
def inited(train_x: torch.Tensor) -> ResidualVQ:
    """A model initialised from data; tests must not change it (they deepcopy to train)."""
    model = ResidualVQ(CFG).eval()
    model.init_from_data(train_x, seed=0)
    return model


def test_shapes_with_differing_codebook_sizes() -> None:
    torch.manual_seed(0)
    model = ResidualVQ(CFG).eval()
    x = torch.randn(2, D, 7)
    codes = model.encode(x)
    assert codes.shape == (2, 3, 7) and codes.dtype == torch.int64
    for stage, k in enumerate(SIZES):
        assert 0 <= int(codes[:, stage].min()) and int(codes[:, stage].max()) < k
    assert model.encode(x, n_q=2).shape == (2, 2, 7)
    for n in (1, 2, 3):
        assert model.decode(codes[:, :n]).shape == (2, D, 7)
    assert [tuple(cb.shape) for cb in model.codebooks()] == [(k, 8) for k in SIZES]
    for cb in model.codebooks():
        torch.testing.assert_close(cb.norm(dim=1), torch.ones(cb.shape[0]))


@pytest.mark.parametrize("n_q", [1, 2, 3])
def test_decode_of_encode_equals_forward_in_eval(inited: ResidualVQ, test_feats: torch.Tensor,
                                                 n_q: int) -> None:
    x = test_feats[:, :, :300]
    with torch.no_grad():
        result = inited(x, n_q=n_q)
        codes = inited.encode(x, n_q)
        assert isinstance(result, QuantizedResult) and result.n_q == n_q
        assert torch.equal(result.codes, codes)
        torch.testing.assert_close(inited.decode(codes), result.x, atol=1e-5, rtol=1e-5)


def test_error_falls_with_each_stage(inited: ResidualVQ, train_x: torch.Tensor,
                                     test_feats: torch.Tensor) -> None:
    train_err = [rel_error(inited, as_features(train_x), n) for n in (1, 2, 3)]
    test_err = [rel_error(inited, test_feats, n) for n in (1, 2, 3)]
    # On the init data least squares guarantees it; on held-out data it must generalise.
    for errs in (train_err, test_err):
        assert errs[0] < 0.6, errs
        assert all(b <= a for a, b in zip(errs, errs[1:])), errs
    assert test_err[2] < 0.7 * test_err[0], test_err


def test_init_from_data_beats_random_init(inited: ResidualVQ, test_feats: torch.Tensor) -> None:
    torch.manual_seed(0)
    random_model = ResidualVQ(CFG).eval()
    assert rel_error(inited, test_feats, 3) < 0.35 * rel_error(random_model, test_feats, 3)


def test_init_uses_most_codewords(inited: ResidualVQ, train_x: torch.Tensor) -> None:
    codes = inited.encode(as_features(train_x))
    for stage, k in enumerate(SIZES):
        used = torch.unique(codes[0, stage]).numel()
        assert used >= 0.9 * k, f"stage {stage}: {used}/{k} codewords used"


def test_init_with_fewer_vectors_than_codewords() -> None:
    model = ResidualVQ(RVQConfig(dim=D, codebook_sizes=(64, 8), code_dim=8))
    x = mixture(20, seed=3)
    model.init_from_data(x)
    for cb in model.codebooks():
        assert torch.isfinite(cb).all()
    # Sampling with replacement plus noise must still give distinct seeds.
    assert torch.unique(model.codebooks()[0], dim=0).shape[0] == 64
    assert rel_error(model, as_features(x), 2) < rel_error(model, as_features(x), 1) < 1.0


def test_quantizer_dropout_varies_n_q_in_training_only(inited: ResidualVQ) -> None:
    model = ResidualVQ(CFG)
    model.load_state_dict(inited.state_dict())
    x = torch.randn(2, D, 5)
    torch.manual_seed(0)
    with torch.no_grad():
        model.train()
        used = [model(x).n_q for _ in range(120)]
        model.eval()
        used_eval = {model(x).n_q for _ in range(20)}
    assert set(used) == {1, 2, 3}
    assert 0.4 < used.count(3) / len(used) < 0.9  # 0.5 kept whole plus 0.5 * 1/3 drawn as 3
    assert used_eval == {3}
    result = model.train()(x)
    assert result.codes.shape == (2, result.n_q, 5)


def test_no_dropout_means_all_stages_in_training() -> None:
    model = ResidualVQ(RVQConfig(dim=D, codebook_sizes=SIZES, quantizer_dropout=0.0)).train()
    assert {model(torch.randn(1, D, 3)).n_q for _ in range(20)} == {3}


def test_gradients_flow_straight_through(inited: ResidualVQ) -> None:
    model = ResidualVQ(CFG)
    model.load_state_dict(inited.state_dict())
    x = torch.randn(2, D, 9, requires_grad=True)
    result = model.train()(x, n_q=3)
    # The quantized output alone (no quantizer loss) must carry gradient to the input and encoder.
    result.x.square().mean().backward(retain_graph=True)
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for stage in model.stages:
        assert stage.in_proj.weight.grad.abs().sum() > 0
        assert stage.codebook.grad is None  # argmax + stop-gradient: only the loss trains it
    result.loss.backward()
    for stage in model.stages:
        assert stage.codebook.grad.abs().sum() > 0
    expected = 0.25 * result.commit_loss + 1.0 * result.codebook_loss
    torch.testing.assert_close(result.loss, expected)


def test_short_training_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = ResidualVQ(RVQConfig(dim=D, codebook_sizes=(32, 32), code_dim=8))
    data = as_features(mixture(512, seed=4))
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    before = rel_error(model.eval(), data, 2)
    losses = []
    model.train()
    for _ in range(100):
        result = model(data)
        loss = F.mse_loss(result.x, data) + result.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    after = rel_error(model.eval(), data, 2)
    assert after < 0.6 * before, (before, after)
    assert sum(losses[-10:]) < 0.6 * sum(losses[:10]), (losses[:10], losses[-10:])


def _unreachable_direction(z: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """A unit vector that no row of z [N, c] prefers over its best codeword in live [K, c]."""
    candidates = F.normalize(torch.randn(512, z.shape[1], generator=torch.Generator().manual_seed(5)), dim=1)
    margin = (z @ candidates.T - (z @ live.T).max(dim=1, keepdim=True).values).max(dim=0).values
    best = int(torch.argmin(margin))
    assert margin[best] < 0, "no unreachable direction among the candidates"
    return candidates[best]


def test_dead_codewords_are_restarted() -> None:
    # Three components with a rank-1 spread: the projections lie on a few arcs of the sphere,
    # leaving most directions free, so a codeword placed there is never chosen.
    train_x = mixture(3072, seed=6, comps=3, rank=1)
    cfg = RVQConfig(dim=D, codebook_sizes=(32,), code_dim=4, quantizer_dropout=0.0,
                    dead_code_threshold=0.1, ema_decay=0.5)
    model = ResidualVQ(cfg)
    model.init_from_data(train_x)
    stage, dead = model.stages[0], torch.arange(4)
    feats = as_features(train_x)
    with torch.no_grad():
        z = stage.project(feats)[0].T
        stage.codebook[dead] = _unreachable_direction(z, stage.unit_codebook()[4:])
    assert not torch.isin(model.eval().encode(feats), dead).any()  # the setup holds

    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for step in range(12):
        batch = feats[:, :, step * 256 : (step + 1) * 256]
        result = model(batch)
        loss = F.mse_loss(result.x, batch) + result.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    codes = model.eval().encode(feats)
    assert torch.isin(dead, codes).all(), torch.bincount(codes.flatten(), minlength=32)[:4]


def test_codebook_hash_is_stable_and_tracks_every_weight(inited: ResidualVQ) -> None:
    model = ResidualVQ(CFG)
    model.load_state_dict(inited.state_dict())
    first = model.codebook_hash()
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert model.codebook_hash() == first == inited.codebook_hash()
    seen = {first}
    for name in ("in_proj.bias", "codebook", "out_proj.weight"):
        with torch.no_grad():
            model.stages[2].get_parameter(name).view(-1)[0] += 1e-3
        seen.add(model.codebook_hash())
    assert len(seen) == 4
    # Usage statistics are training state, not part of what the codes mean.
    with torch.no_grad():
        model.stages[0].usage.zero_()
    assert model.codebook_hash() in seen


@pytest.mark.parametrize(
    ("kwargs", "allowed"),
    [
        ({"codebook_sizes": (1,)}, "2..65536"),
        ({"codebook_sizes": (256, 65537)}, "2..65536"),
        ({"codebook_sizes": ()}, "2..65536"),
        ({"codebook_sizes": (256,), "code_dim": 0}, "1..dim=32"),
        ({"codebook_sizes": (256,), "code_dim": 33}, "1..dim=32"),
        ({"codebook_sizes": (256,), "quantizer_dropout": 1.5}, "[0, 1]"),
        ({"codebook_sizes": (256,), "ema_decay": 1.0}, "[0, 1)"),
        ({"codebook_sizes": (256,), "time_pool": 0}, "1..16"),
        ({"codebook_sizes": (256,), "time_pool": 2.0}, "1..16"),
    ],
)
def test_bad_config_names_what_is_allowed(kwargs: dict, allowed: str) -> None:
    with pytest.raises(AcomError, match=re.escape(allowed)):
        RVQConfig(dim=D, **kwargs)


def test_boundary_errors(inited: ResidualVQ) -> None:
    x = torch.randn(1, D, 4)
    with pytest.raises(AcomError, match=re.escape("1..3")):
        inited(x, n_q=0)
    with pytest.raises(AcomError, match=re.escape("[B, 32, T]")):
        inited.encode(torch.randn(1, D + 1, 4))
    with pytest.raises(AcomError, match=re.escape("[B, 1..3, T]")):
        inited.decode(torch.zeros(1, 4, 4, dtype=torch.int64))
    bad = inited.encode(x)
    bad[0, 1, 0] = 16  # stage 1 has K = 16
    with pytest.raises(AcomError, match=re.escape("K=[64, 16, 256]")):
        inited.decode(bad)


def test_encode_int64_and_int32_paths_agree(inited: ResidualVQ, test_feats: torch.Tensor) -> None:
    wide, narrow = inited.encode(test_feats), inited.encode_int32(test_feats)
    assert wide.dtype == torch.int64 and narrow.dtype == torch.int32
    assert torch.equal(wide, narrow.long())
    torch.testing.assert_close(inited.decode(narrow), inited.decode(wide))
    z = inited.stages[0].project(test_feats)
    assert torch.equal(inited.nearest(z, 0), narrow[:, 0])


class _EncodeOnly(nn.Module):
    """What an edge graph wraps: features in, int32 codes out."""

    def __init__(self, rvq: ResidualVQ) -> None:
        super().__init__()
        self.rvq = rvq

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rvq.encode_int32(x)


def test_torch_export_of_encode_gives_eager_codes(inited: ResidualVQ, test_feats: torch.Tensor) -> None:
    x = test_feats[:, :, :50]
    program = torch.export.export(_EncodeOnly(inited).eval(), (x,))
    ops = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert "aten.embedding.default" in ops and "aten.argmax.default" in ops
    # Indexing lowers to ops TFLite Micro lacks; cdist has no edge kernel at all.
    assert not [op for op in ops if "index" in op or "cdist" in op], ops
    other = test_feats[:, :, 50:100]
    for feats in (x, other):
        assert torch.equal(program.module()(feats), inited.encode_int32(feats))


def test_time_pool_codes_the_mean_of_each_run_and_repeats_it_back(inited: ResidualVQ, test_feats: torch.Tensor) -> None:
    pooled = ResidualVQ(replace(CFG, time_pool=3)).eval()
    pooled.load_state_dict(inited.state_dict())
    x = test_feats[..., :101]  # 33 runs of 3 and a last run of 2, padded with a copy of its last frame
    means = torch.cat([x[..., :99].reshape(1, D, 33, 3).mean(-1),
                       torch.stack([x[..., 99], x[..., 100], x[..., 100]], -1).mean(-1, keepdim=True)], -1)
    torch.testing.assert_close(pooled.pool(x), means)
    codes = pooled.encode(x)
    assert codes.shape == (1, 3, 34) and torch.equal(codes, inited.encode(means))
    y = pooled.decode(codes)
    assert y.shape == (1, D, 102)
    torch.testing.assert_close(y, inited.decode(codes).repeat_interleave(3, dim=-1))
    with torch.no_grad():  # the training path: the same codes, the output back at the input's 101 frames
        out = pooled(x)
    assert torch.equal(out.codes, codes) and out.x.shape == x.shape
    torch.testing.assert_close(out.x, y[..., :101])
    assert pooled.codebook_hash() != inited.codebook_hash()  # pooled codes mean other features
