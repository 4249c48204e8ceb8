"""Residual vector quantizer placed at the cut: features ``[B, D, T]`` in, integer codes out.

Each stage follows DAC's factorized, cosine-similarity codebooks: a 1x1 ``in_proj`` maps the
residual to ``code_dim`` channels, the projection and the codebook are L2-normalized, the code is the
codeword with the largest dot product, and a 1x1 ``out_proj`` maps the normalized codeword back to
``D`` channels, which is subtracted from the residual before the next stage.

The encode path is written for the edge exporters: the search is a matmul plus argmax and the
codeword gather is ``F.embedding`` on int32 indices. ``cdist`` and tensor indexing (``cb[idx]``)
are avoided on purpose: indexing lowers to SELECT/GATHER_ND forms that TFLite Micro lacks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from acom.errors import AcomError

__all__ = ["QuantizedResult", "RVQConfig", "ResidualVQ"]

MIN_CODEBOOK_SIZE = 2
MAX_CODEBOOK_SIZE = 65536  # codes travel as at most 16 bits


@dataclass(frozen=True, kw_only=True)
class RVQConfig:
    """Settings of the residual vector quantizer at the cut."""

    dim: int
    """Feature channels D at the cut (the model's layer width)."""
    codebook_sizes: tuple[int, ...]
    """Codewords K per stage, in stage order; each in 2..65536 and free to differ between stages."""
    code_dim: int = 16
    """Channels of the factorized low-dimensional code space (DAC), 1..dim; the lookup runs here."""
    commitment_weight: float = 0.25
    """Weight of the commitment loss mse(z_e, sg(z_q)) that pulls the encoder towards its codewords."""
    codebook_weight: float = 1.0
    """Weight of the codebook loss mse(sg(z_e), z_q) that pulls the codewords towards the encoder."""
    quantizer_dropout: float = 0.5
    """Probability that a training batch uses a random number of stages 1..n_q, so one model serves
    every bitrate chosen at run time; 0 always trains all stages."""
    dead_code_threshold: float = 0.02
    """A codeword whose EMA usage (share of assignments times K, so uniform use is 1.0) falls below
    this is restarted on a random projected input of the current batch; 0 disables restarts."""
    ema_decay: float = 0.99
    """Decay of the per-codeword usage EMA, in [0, 1); about 1 / (1 - decay) batches are averaged."""
    time_pool: int = 1
    """Frames at the cut per code frame, 1..16: ``encode`` averages each run of this many frames into one
    code frame (a lower frame rate, so fewer bit/s) and ``decode`` repeats each decoded frame as many times,
    so the blocks after the cut run at their own rate. 1: no pooling."""

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise AcomError(f"dim must be >= 1, got {self.dim}")
        sizes = tuple(self.codebook_sizes)
        object.__setattr__(self, "codebook_sizes", sizes)  # a list would make the config unhashable
        if not sizes:
            raise AcomError(
                "codebook_sizes must name at least one stage, each K in "
                f"{MIN_CODEBOOK_SIZE}..{MAX_CODEBOOK_SIZE}; got ()"
            )
        bad = [k for k in sizes if isinstance(k, bool) or not isinstance(k, int)
               or not MIN_CODEBOOK_SIZE <= k <= MAX_CODEBOOK_SIZE]
        if bad:
            raise AcomError(
                f"each codebook size K must be an int in {MIN_CODEBOOK_SIZE}..{MAX_CODEBOOK_SIZE}, "
                f"got {bad} in codebook_sizes={sizes}"
            )
        if not 1 <= self.code_dim <= self.dim:
            raise AcomError(f"code_dim must be in 1..dim={self.dim}, got {self.code_dim}")
        if self.commitment_weight < 0 or self.codebook_weight < 0:
            raise AcomError(
                f"loss weights must be >= 0, got commitment_weight={self.commitment_weight}, "
                f"codebook_weight={self.codebook_weight}"
            )
        if not 0.0 <= self.quantizer_dropout <= 1.0:
            raise AcomError(f"quantizer_dropout must be in [0, 1], got {self.quantizer_dropout}")
        if self.dead_code_threshold < 0:
            raise AcomError(f"dead_code_threshold must be >= 0, got {self.dead_code_threshold}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise AcomError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if isinstance(self.time_pool, bool) or not isinstance(self.time_pool, int) or not 1 <= self.time_pool <= 16:
            raise AcomError(f"time_pool must be an int in 1..16, got {self.time_pool!r}")

    @property
    def n_q(self) -> int:
        """Number of stages (the most codes per frame)."""
        return len(self.codebook_sizes)


@dataclass(frozen=True)
class QuantizedResult:
    """What the training forward of ``ResidualVQ`` returns."""

    x: Tensor
    """Quantized features ``[B, D, T]``; gradients reach the input straight through each stage."""
    codes: Tensor
    """Codes ``[B, n_q, T]``, int64, for the ``n_q`` stages used."""
    commit_loss: Tensor
    """Scalar commitment loss, summed over the stages used."""
    codebook_loss: Tensor
    """Scalar codebook loss, summed over the stages used."""
    n_q: int
    """Number of stages used (smaller than the model's under quantizer dropout)."""
    commitment_weight: float = 0.25
    """Copied from the config so that ``loss`` needs nothing else."""
    codebook_weight: float = 1.0
    """Copied from the config so that ``loss`` needs nothing else."""
    projections: tuple[Tensor, ...] = ()
    """Each used stage's normalized projection z_e ``[B, code_dim, T_code]`` (for a rate term in training)."""

    @property
    def loss(self) -> Tensor:
        """Weighted sum of the quantizer losses, to add to the task loss."""
        return self.commitment_weight * self.commit_loss + self.codebook_weight * self.codebook_loss


class _Stage(nn.Module):
    """One quantizer stage: in_proj, cosine codebook lookup, out_proj."""

    def __init__(self, dim: int, code_dim: int, size: int) -> None:
        super().__init__()
        self.in_proj = nn.Conv1d(dim, code_dim, kernel_size=1)
        self.out_proj = nn.Conv1d(code_dim, dim, kernel_size=1)
        self.codebook = nn.Parameter(torch.randn(size, code_dim))  # [K, code_dim], unnormalized
        # Usage in units of the uniform share (1.0); starts "healthy" so nothing restarts at once.
        self.register_buffer("usage", torch.ones(size))

    def project(self, residual: Tensor) -> Tensor:
        """[B, D, T] -> normalized [B, code_dim, T]."""
        return F.normalize(self.in_proj(residual), dim=1)

    def unit_codebook(self) -> Tensor:
        """[K, code_dim], each row of unit length."""
        return F.normalize(self.codebook, dim=1)

    def nearest(self, z: Tensor) -> Tensor:
        """Normalized [B, code_dim, T] -> int32 [B, T]: largest cosine similarity."""
        scores = torch.matmul(self.unit_codebook(), z)  # [K, c] @ [B, c, T] -> [B, K, T]
        return torch.argmax(scores, dim=1).to(torch.int32)

    def lookup(self, idx: Tensor) -> Tensor:
        """int [B, T] -> normalized codewords [B, code_dim, T] (embedding, not indexing, for TFLM)."""
        return F.embedding(idx.to(torch.int32), self.unit_codebook()).transpose(1, 2)

    @torch.no_grad()
    def restart_dead(self, z: Tensor, threshold: float) -> None:
        """Move codewords whose usage EMA is below ``threshold`` onto random rows of z [B, c, T].

        Runs before this batch's lookup, so the moved codeword wins at least the vector it sits on
        and the graph never holds a codeword that changed after use. Usage of the moved codewords
        is reset to 1.0 (uniform) to give them time to prove themselves.
        """
        dead = torch.nonzero(self.usage < threshold).flatten()
        if dead.numel() == 0:
            return
        pool = z.transpose(1, 2).reshape(-1, z.shape[1])  # [B*T, code_dim]
        pick = torch.randint(0, pool.shape[0], (dead.numel(),), device=pool.device)
        self.codebook.data[dead] = pool[pick].to(self.codebook.dtype)
        self.usage[dead] = 1.0

    @torch.no_grad()
    def update_usage(self, idx: Tensor, decay: float) -> None:
        """Fold this batch's codes idx [B, T] into the usage EMA (share of vectors times K)."""
        size = self.usage.numel()
        counts = torch.bincount(idx.reshape(-1).long(), minlength=size).to(self.usage.dtype)
        self.usage.mul_(decay).add_(counts * (size / idx.numel()), alpha=1.0 - decay)


def pool_frames(x: Tensor, p: int) -> Tensor:
    """Features [B, D, T] -> [B, D, ceil(T / p)]: the mean of each run of ``p`` frames, a last short run padded
    with copies of its last frame."""
    if p == 1:
        return x
    pad = (-x.shape[-1]) % p
    return F.avg_pool1d(F.pad(x, (0, pad), mode="replicate") if pad else x, p)


def repeat_frames(x: Tensor, p: int) -> Tensor:
    """Features [B, D, T] -> [B, D, T * p], each frame repeated ``p`` times (expand + reshape: the form ONNX
    exports with symbolic T)."""
    if p == 1:
        return x
    b, d, t = x.shape
    return x[..., None].expand(b, d, t, p).reshape(b, d, t * p)


class ResidualVQ(nn.Module):
    """Residual vector quantizer over channels-first features ``[B, D, T]``.

    ``forward`` is the training path (losses, quantizer dropout, usage tracking, dead-code
    restarts); ``encode`` / ``decode`` are the device and server halves and never change weights.
    """

    def __init__(self, config: RVQConfig) -> None:
        super().__init__()
        self.config = config
        self.stages = nn.ModuleList(_Stage(config.dim, config.code_dim, k) for k in config.codebook_sizes)

    @property
    def n_q(self) -> int:
        """Number of stages."""
        return self.config.n_q

    # --- shared helpers --------------------------------------------------------------------

    def _check_features(self, x: Tensor) -> None:
        # Rank and channel count are static under torch.export, so this adds no graph branches.
        if x.dim() != 3 or x.shape[1] != self.config.dim:
            raise AcomError(f"ResidualVQ expects features [B, {self.config.dim}, T], got {tuple(x.shape)}")

    def _check_n_q(self, n_q: int) -> int:
        if not 1 <= n_q <= self.n_q:
            raise AcomError(f"n_q must be in 1..{self.n_q}, got {n_q}")
        return n_q

    def _training_n_q(self) -> int:
        """Stages for one training batch: all, or with probability ``quantizer_dropout`` 1..n_q."""
        if self.training and float(torch.rand(())) < self.config.quantizer_dropout:
            return int(torch.randint(1, self.n_q + 1, ()))
        return self.n_q

    # --- training path ---------------------------------------------------------------------

    def forward(self, x: Tensor, n_q: int | None = None) -> QuantizedResult:
        """Quantize ``x`` [B, D, T] with ``n_q`` stages (None: all, or random under dropout).

        Losses live in the normalized code space of each stage. The quantized output of a stage
        is ``out_proj(z_e + sg(z_q - z_e))``, so gradients reach ``in_proj`` and the input.
        In training mode, usage EMAs are updated and dead codewords restarted.
        """
        self._check_features(x)
        used = self._training_n_q() if n_q is None else self._check_n_q(n_q)
        steps, x = x.shape[-1], self.pool(x)
        residual, quantized = x, torch.zeros_like(x)
        commit, codebook = x.new_zeros(()), x.new_zeros(())
        codes, projections = [], []
        for stage in self.stages[:used]:
            z_e = stage.project(residual)
            projections.append(z_e)
            if self.training:
                stage.restart_dead(z_e.detach(), self.config.dead_code_threshold)
            idx = stage.nearest(z_e)
            z_q = stage.lookup(idx)
            commit = commit + F.mse_loss(z_e, z_q.detach())
            codebook = codebook + F.mse_loss(z_e.detach(), z_q)
            out = stage.out_proj(z_e + (z_q - z_e).detach())
            if self.training:
                stage.update_usage(idx, self.config.ema_decay)
            quantized = quantized + out
            residual = residual - out
            codes.append(idx.long())
        return QuantizedResult(
            x=self.unpool(quantized)[..., :steps], codes=torch.stack(codes, dim=1), commit_loss=commit,
            codebook_loss=codebook, n_q=used, commitment_weight=self.config.commitment_weight,
            codebook_weight=self.config.codebook_weight, projections=tuple(projections),
        )

    # --- device and server halves ----------------------------------------------------------

    def pool(self, x: Tensor) -> Tensor:
        """Features [B, D, T] -> [B, D, ceil(T / time_pool)]: the mean of each run of ``time_pool`` frames
        (a last short run padded with copies of its last frame). The op the classifier's device graph runs."""
        return pool_frames(x, self.config.time_pool)

    def unpool(self, x: Tensor) -> Tensor:
        """Decoded features [B, D, T] -> [B, D, T * time_pool], each frame repeated (expand + reshape: the form
        ONNX exports with symbolic T)."""
        return repeat_frames(x, self.config.time_pool)

    def nearest(self, z: Tensor, stage: int) -> Tensor:
        """Codes of stage ``stage`` for normalized projections ``z`` [B, code_dim, T] -> int32 [B, T].

        A matmul with the unit codebook and an argmax: the form every edge runtime lowers.
        """
        return self.stages[stage].nearest(z)

    def encode_int32(self, x: Tensor, n_q: int | None = None) -> Tensor:
        """Codes of features ``x`` [B, D, T] with the first ``n_q`` stages -> int32 [B, n_q, T / time_pool].

        This is the export path: only average pooling, conv, normalize, matmul, argmax and embedding.
        """
        self._check_features(x)
        used = self.n_q if n_q is None else self._check_n_q(n_q)
        residual = self.pool(x)
        codes = []
        for i in range(used):
            stage = self.stages[i]
            idx = self.nearest(stage.project(residual), i)
            codes.append(idx)
            if i + 1 < used:  # the last residual is never needed
                residual = residual - stage.out_proj(stage.lookup(idx))
        return torch.stack(codes, dim=1)

    def encode(self, x: Tensor, n_q: int | None = None) -> Tensor:
        """Codes of features ``x`` [B, D, T] -> int64 [B, n_q, T] (``encode_int32`` widened)."""
        return self.encode_int32(x, n_q).to(torch.int64)

    def decode(self, codes: Tensor) -> Tensor:
        """Features [B, D, T * time_pool] from codes [B, n, T] of the first ``n`` (1..n_q) stages, any int dtype.

        Raises:
            AcomError: wrong rank, too many stages, or a code outside 0..K-1 of its stage.
        """
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.n_q:
            raise AcomError(f"codes must be [B, 1..{self.n_q}, T], got {tuple(codes.shape)}")
        if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
            raise AcomError(f"codes must be an integer tensor, got {codes.dtype}")
        sizes = self.config.codebook_sizes[: codes.shape[1]]
        limits = torch.tensor(sizes, device=codes.device).view(1, -1, 1)
        if codes.numel() and bool(((codes < 0) | (codes >= limits)).any()):
            raise AcomError(f"codes must lie in 0..K-1 per stage with K={list(sizes)}")
        out = None
        for i in range(codes.shape[1]):
            stage = self.stages[i]
            part = stage.out_proj(stage.lookup(codes[:, i]))
            out = part if out is None else out + part
        return self.unpool(out)

    # --- inspection ------------------------------------------------------------------------

    def codebooks(self) -> list[Tensor]:
        """The unit codebooks the search uses, one detached ``[K, code_dim]`` per stage."""
        return [stage.unit_codebook().detach() for stage in self.stages]

    def codebook_hash(self) -> str:
        """SHA-256 hex of everything that decides the codes and their meaning.

        Bytes hashed, in order: the ASCII header ``acom-rvq-v1 dim=D code_dim=C K=k1,k2,...\\n`` (with
        `` pool=P`` before the newline when time_pool P > 1: pooled codes mean other features),
        then per stage the float32 little-endian, row-major values of in_proj weight [C, D],
        in_proj bias [C], raw codebook [K, C], out_proj weight [D, C] and out_proj bias [D].
        """
        cfg = self.config
        digest = hashlib.sha256(
            f"acom-rvq-v1 dim={cfg.dim} code_dim={cfg.code_dim} "
            f"K={','.join(map(str, cfg.codebook_sizes))}"
            f"{f' pool={cfg.time_pool}' if cfg.time_pool > 1 else ''}\n".encode("ascii")
        )
        for stage in self.stages:
            for t in (stage.in_proj.weight, stage.in_proj.bias, stage.codebook,
                      stage.out_proj.weight, stage.out_proj.bias):
                arr = t.detach().to("cpu", torch.float32).contiguous().numpy()
                digest.update(arr.astype("<f4", copy=False).tobytes(order="C"))
        return digest.hexdigest()

    # --- data-driven initialisation --------------------------------------------------------

    @torch.no_grad()
    def init_from_data(self, x: Tensor, *, iters: int = 10, seed: int = 0) -> None:
        """Initialise every stage from features ``x`` [N, D], stage by stage on the residual.

        Per stage: ``in_proj`` projects the centred residual onto its top ``code_dim`` principal
        directions; the codebook is spherical k-means (``iters`` rounds, seeded) of the normalized
        projections; ``out_proj`` is the least-squares affine map from the codewords that encode
        picks back to the residual. Least squares can always fall back to zero, so on ``x`` the error
        never grows with the number of stages. Usage EMAs are reset. Runs on the module's device.
        """
        if x.dim() != 2 or x.shape[1] != self.config.dim or x.shape[0] < 1:
            raise AcomError(f"init_from_data expects [N >= 1, {self.config.dim}], got {tuple(x.shape)}")
        gen = torch.Generator(device="cpu").manual_seed(seed)
        ref = self.stages[0].codebook
        residual = x.detach().to(ref.device, ref.dtype).T.unsqueeze(0)  # [1, D, N]: the stage layout
        for stage in self.stages:
            weight, bias = _pca(residual[0].T, self.config.code_dim)
            stage.in_proj.weight.copy_(weight.unsqueeze(-1))
            stage.in_proj.bias.copy_(bias)
            z = stage.project(residual)  # [1, c, N]
            stage.codebook.copy_(_spherical_kmeans(z[0].T, stage.codebook.shape[0], iters, gen))
            parts = z.split(_chunk(stage.codebook.shape[0]), dim=2)  # bounded memory for large K, N
            chosen = stage.lookup(torch.cat([stage.nearest(part) for part in parts], dim=1))  # as encode picks
            weight, bias = _least_squares(chosen[0].T, residual[0].T)
            stage.out_proj.weight.copy_(weight.unsqueeze(-1))
            stage.out_proj.bias.copy_(bias)
            stage.usage.fill_(1.0)
            residual = residual - stage.out_proj(chosen)


def _pca(r: Tensor, code_dim: int) -> tuple[Tensor, Tensor]:
    """r [N, D] -> (weight [code_dim, D], bias [code_dim]) projecting the centred r onto its top PCs.

    Not whitened on purpose: equalising the variances lets low-variance (mostly noise) directions
    steer the cosine lookup; measured on a decaying spectrum, whitening with code_dim=16 left
    twice the error of this projection.
    """
    r64 = r.double()
    mean = r64.mean(0)
    centred = r64 - mean
    # eigh of the D x D covariance gives D directions even when N < D or the residual is rank-deficient.
    _, evecs = torch.linalg.eigh(centred.T @ centred / r64.shape[0])  # ascending eigenvalues
    weight = evecs.flip(1)[:, :code_dim].T
    return weight.to(r.dtype), (-weight @ mean).to(r.dtype)


def _spherical_kmeans(u: Tensor, k: int, iters: int, gen: torch.Generator) -> Tensor:
    """Unit vectors u [N, c] -> k unit centroids [k, c] by cosine k-means.

    Seeds are distinct samples when N >= k; otherwise samples drawn with replacement plus noise,
    so that duplicated seeds still split. Empty clusters are reseeded the same way each round.
    """
    n, c = u.shape
    if n >= k:
        cent = u[torch.randperm(n, generator=gen)[:k].to(u.device)].clone()
    else:
        cent = _noisy_samples(u, k, gen)
    for _ in range(iters):
        assign = torch.cat([torch.argmax(part @ cent.T, dim=1) for part in u.split(_chunk(k), dim=0)])
        sums = torch.zeros(k, c, dtype=u.dtype, device=u.device).index_add_(0, assign, u)
        counts = torch.bincount(assign, minlength=k)
        empty = counts == 0
        cent = F.normalize(sums, dim=1)
        if bool(empty.any()):
            cent[empty] = _noisy_samples(u, int(empty.sum()), gen)
    return cent


def _chunk(k: int) -> int:
    """Vectors per chunk so that a chunk's [chunk, K] score matrix stays near 2**24 floats (64 MB)."""
    return max(1, 2**24 // k)


def _noisy_samples(u: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """k rows of u [N, c] drawn with replacement, jittered and renormalized -> [k, c]."""
    rows = u[torch.randint(0, u.shape[0], (k,), generator=gen).to(u.device)]
    noise = torch.randn(rows.shape, generator=gen, dtype=u.dtype).to(u.device) * (0.1 / u.shape[1] ** 0.5)
    return F.normalize(rows + noise, dim=1)


def _least_squares(a: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
    """Affine map codewords a [N, c] -> residual r [N, D]: (weight [D, c], bias [D]).

    Solved on the CPU in float64 with gelsd (SVD based), the driver that tolerates the
    rank-deficient designs small or clumped data give; CUDA only offers QR without pivoting.
    """
    a64, r64 = a.detach().to("cpu", torch.float64), r.detach().to("cpu", torch.float64)
    design = torch.cat([a64, torch.ones(a64.shape[0], 1, dtype=torch.float64)], dim=1)
    sol = torch.linalg.lstsq(design, r64, driver="gelsd").solution  # [c + 1, D]
    return sol[:-1].T.to(r.device, r.dtype).contiguous(), sol[-1].to(r.device, r.dtype)
