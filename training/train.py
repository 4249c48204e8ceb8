"""Training: stage 1 trains the uncut model, stage 2 inserts the quantizer at the cut and fine-tunes.

Runs on CPU, on one CUDA GPU, or on several under `torchrun` (DistributedDataParallel: each rank takes
every world_size-th batch). Each epoch appends a JSON line to `log.jsonl` and writes a checkpoint that
`resume` continues from.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from acom.core.checkpoint import load_checkpoint, save_checkpoint
from acom.core.ctc import CharVocab
from acom.core.models import config_dict
from acom.core.split import SplitModel, make_rvq
from acom.core.tasks import TASKS
from acom.corpora.featcache import FeatureSet
from acom.errors import AcomError, DataError
from acom.training import augment as A
from acom.training.evaluate import evaluate
from acom.training.rate import BigramRate


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Settings of one training stage."""

    epochs: int  # passes over the train set
    lr: float = 2e-3  # peak learning rate (AdamW), reached after warmup, cosine decay to 5% of it
    warmup: float = 0.08  # share of the steps spent warming up
    weight_decay: float = 0.01  # AdamW weight decay
    batch_frames: int = 20000  # log-mel frames per batch (100 per second of audio)
    grad_clip: float = 5.0  # gradient norm clip
    seed: int = 0  # seeds python, numpy and torch
    vtlp: bool = True  # vocal tract length perturbation (ASR)
    spec_augment: bool = True  # frequency and time masks
    freeze_edge: bool = False  # stage 2: keep the device part (blocks 0..L) fixed, train quantizer and server
    rvq_weight: float = 1.0  # weight of the quantizer losses (stage 2)
    distill: float = 0.0  # stage 2: weight of the KL divergence from the uncut model's posteriors (needs a teacher)
    rate_weight: float = 0.0  # stage 2: weight of the soft bigram bits per code frame (acom.training.rate)
    rate_target: float = 0.0  # bits per code frame: the rate term applies only to batches whose codes cost more
    device: str = "auto"  # 'auto' (cuda when present), 'cpu' or 'cuda'
    eval_every: int = 1  # dev evaluation and checkpoint every this many epochs (and after the last)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AcomError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)


def length_batches(lengths: list[int], batch_frames: int, rng: random.Random) -> list[list[int]]:
    """Index batches of similar lengths holding at most batch_frames padded frames, in shuffled order."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches, cur, longest = [], [], 0
    for i in order:
        longest2 = max(longest, lengths[i])
        if cur and longest2 * (len(cur) + 1) > batch_frames:
            batches.append(cur)
            cur, longest2 = [], lengths[i]
        cur.append(i)
        longest = longest2
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def task_loss(split: SplitModel, out, targets: list, vocab: CharVocab | None) -> torch.Tensor:
    """CTC over characters (ASR) or cross-entropy with label smoothing (AC)."""
    if TASKS[split.model.task].sequence:
        ys = [torch.tensor(vocab.encode(t)) for t in targets]
        log_probs = out.logits.transpose(0, 1)  # [T, B, V]
        return F.ctc_loss(log_probs, torch.cat(ys).to(log_probs.device), out.lengths,
                          torch.tensor([len(y) for y in ys]), blank=vocab.blank, zero_infinity=True)
    return F.cross_entropy(out.logits, torch.tensor(targets, device=out.logits.device), label_smoothing=0.1)


def distill_loss(student, teacher) -> torch.Tensor:
    """Mean KL(teacher || student) of the output distributions: per valid frame (ASR, CTC posteriors
    [B, T, V] with lengths) or per clip (classification, logits [B, C])."""
    lt, ls = F.log_softmax(teacher.logits, -1), F.log_softmax(student.logits, -1)
    kl = (lt.exp() * (lt - ls)).sum(-1)  # [B, T] or [B]
    if kl.dim() == 1 or student.lengths is None:
        return kl.mean()
    valid = torch.arange(kl.shape[1], device=kl.device)[None] < student.lengths[:, None]
    return (kl * valid).sum() / valid.sum().clamp(min=1)


def augmented(split: SplitModel, x: torch.Tensor, lengths: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Augment raw log-mels [B, n_mels, T] in the normalized domain (masks fill with the band mean)."""
    mean, std = split.model.feat_mean, split.model.feat_std
    z = (x - mean) / std
    if cfg.vtlp and TASKS[split.model.task].sequence:
        z = A.vtlp(z)
    if cfg.spec_augment:
        z = A.spec_augment(z, lengths)
    x = z * std + mean
    return A.random_gain_shift(x) if not TASKS[split.model.task].sequence else x


def set_normalization(split: SplitModel, train: FeatureSet) -> None:
    """Per-band mean/std of the train log-mels into the model (stage 1 only; stage 2 keeps them)."""
    allf = torch.cat([f.float() for f in train.feats[:2000]], dim=1)
    split.model.set_normalization(allf.mean(dim=1), allf.std(dim=1))


def run_epoch(split, ddp_model, opt, sched, train: FeatureSet, cfg: TrainConfig, epoch: int, device,  # noqa: PLR0913
              vocab, rank: int = 0, world: int = 1, progress: bool = True, teacher=None, loss_fn=None,
              rate: BigramRate | None = None) -> dict:
    """One pass over the train set; returns mean losses. ``teacher`` (frozen, eval mode): its posteriors on the
    same augmented batch pull the model's towards them with weight ``cfg.distill``. ``loss_fn(out, targets)``
    (a ``SplitOutput`` and the batch's transcripts or class ids -> a scalar) replaces the task's loss; the
    quantizer's losses are added to either. ``rate``: ``cfg.rate_weight`` times its soft bits per code frame
    are added too, in batches whose codes cost more than ``cfg.rate_target`` bits a frame (without a target
    the codes can collapse onto a few: one weight measured did), and the log gains ``bits`` (the codes'
    cross-entropy under its bigram, per code frame)."""
    split.train()
    rng = random.Random(cfg.seed * 1000 + epoch)
    batches = length_batches([f.shape[1] for f in train.feats], cfg.batch_frames, rng)
    # every rank must take the same number of steps, or DistributedDataParallel waits forever
    batches = batches[: len(batches) // world * world][rank::world] if world > 1 else batches
    sums, n = {"loss": 0.0, "task": 0.0, "rvq": 0.0, **({"distill": 0.0} if teacher is not None else {}),
               **({"bits": 0.0} if rate is not None else {})}, 0
    for idx in tqdm(batches, desc=f"epoch {epoch}", unit="batch", disable=rank != 0 or not progress,
                    leave=False):
        x, lengths = A.pad_batch([train.feats[i] for i in idx])
        x, lengths = augmented(split, x.to(device), lengths.to(device), cfg), lengths.to(device)
        out = ddp_model(x, lengths)
        targets = [train.targets[i] for i in idx]
        task = loss_fn(out, targets) if loss_fn is not None else task_loss(split, out, targets, vocab)
        rvq = out.quant.loss if out.quant is not None else torch.zeros((), device=device)
        loss = task + cfg.rvq_weight * rvq
        if rate is not None and out.quant is not None:
            soft, hard = rate(split.rvq, out.quant.projections, out.quant.codes, out.cut_lengths)
            if float(hard) > cfg.rate_target:  # below the target, nothing pushes the codes further together
                loss = loss + cfg.rate_weight * soft
            sums["bits"] += float(hard)
        if teacher is not None:
            with torch.no_grad():
                target = teacher(x, lengths)
            kd = distill_loss(out, target)
            loss = loss + cfg.distill * kd
            sums["distill"] += float(kd.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(split.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        if world > 1 and split.rvq is not None:
            # dead-code restarts move codewords to each rank's own batch: rank 0's copy wins everywhere
            for p in split.rvq.parameters():
                torch.distributed.broadcast(p.data, src=0)
        sums["loss"] += float(loss.detach())
        sums["task"] += float(task.detach())
        sums["rvq"] += float(rvq.detach())
        n += 1
    return {k: v / max(n, 1) for k, v in sums.items()}


def make_optimizer(split: SplitModel, cfg: TrainConfig, steps: int):
    params = [p for p in split.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, int(cfg.warmup * steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, steps - warm))))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def insert_quantizer(split_full: SplitModel, split_layer: int, codebook_sizes: tuple[int, ...],
                     train: FeatureSet, seed: int, max_frames: int = 60000, **rvq_kw) -> SplitModel:
    """Stage 2 start: the trained uncut model with a ResidualVQ after `split_layer`, initialized from the
    train set's real features at the cut (PCA + spherical k-means + least squares, in ResidualVQ)."""
    model = split_full.model
    rvq = make_rvq(model, split_layer, codebook_sizes, **rvq_kw)
    split = SplitModel(model, split_layer, rvq).eval()
    rows, have = [], 0
    with torch.no_grad():
        for i in np.random.default_rng(seed).permutation(len(train)):
            x = rvq.pool(split.cut_features(train.feats[i].float()[None])[0])  # code frames, as encode sees them
            rows.append(x[0].T)
            have += x.shape[-1]
            if have >= max_frames:
                break
    rvq.init_from_data(torch.cat(rows), seed=seed)
    return split


def fit(split: SplitModel,  # noqa: PLR0913 (the run's data, settings and resume state)
        train: FeatureSet, dev: FeatureSet, cfg: TrainConfig, out_dir: Path, stage: str,
        meta: dict, resume: bool = False, progress: bool = True, teacher: SplitModel | None = None,
        loss_fn=None) -> dict:
    """Train `split` for cfg.epochs, evaluating on `dev` after each epoch; returns the last dev metrics.
    With ``cfg.distill`` > 0, ``teacher`` (the uncut model stage 2 started from, or one given with --teacher) is
    distilled into `split`.

    Writes out_dir/{stage}.pt after every epoch (with optimizer state: `resume` continues from it) and
    appends to out_dir/log.jsonl.
    """
    if len(train) == 0:
        raise DataError("the train set is empty")
    if cfg.distill < 0 or (cfg.distill > 0) != (teacher is not None):
        raise AcomError(f"distill {cfg.distill}: a positive weight needs a teacher model (and 0 none)")
    if cfg.rate_weight < 0 or (cfg.rate_weight > 0 and split.rvq is None):
        raise AcomError(f"rate weight {cfg.rate_weight}: must be 0 (off) or positive, and needs a quantizer")
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    device = pick_device(cfg.device)
    if world > 1:
        device = _init_distributed(rank, device)
    seed_everything(cfg.seed + rank)
    vocab = CharVocab() if TASKS[split.model.task].sequence else None
    if cfg.freeze_edge and split.rvq is not None:
        for block in split.model.blocks[: split.split_layer + 1]:
            block.requires_grad_(False)
    split.to(device)
    if teacher is not None:
        teacher = teacher.to(device).eval().requires_grad_(False)
    # quantizer dropout leaves the unused stages without gradients in some steps
    ddp_model = split if world == 1 else torch.nn.parallel.DistributedDataParallel(split, find_unused_parameters=True)
    steps = cfg.epochs * math.ceil(len(length_batches([f.shape[1] for f in train.feats], cfg.batch_frames,
                                                        random.Random(0))) / world)
    opt, sched = make_optimizer(split, cfg, steps)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt, start = out_dir / f"{stage}.pt", 0
    if resume and ckpt.is_file():
        start = _resume(ckpt, split, opt, sched)
    metrics: dict = {}
    rate = BigramRate(split.rvq.config.codebook_sizes).to(device) if cfg.rate_weight > 0 else None
    for epoch in range(start, cfg.epochs):
        t0 = time.time()
        losses = run_epoch(split, ddp_model, opt, sched, train, cfg, epoch, device, vocab, rank, world, progress,
                           teacher, loss_fn, rate)
        if rank != 0:
            continue
        last = epoch + 1 == cfg.epochs
        if not last and (epoch + 1) % max(1, cfg.eval_every):
            # on a GPU an epoch can take less time than the dev evaluation and the checkpoint's copy to CPU
            row = {"stage": stage, "epoch": epoch + 1, "seconds": round(time.time() - t0, 1),
                   "lr": sched.get_last_lr()[0], **losses}
            with (out_dir / "log.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
            continue
        metrics = evaluate(split, dev, max_items=400, device=device)
        row = {"stage": stage, "epoch": epoch + 1, "seconds": round(time.time() - t0, 1),
               "lr": sched.get_last_lr()[0], **losses, **{f"dev_{k}": v for k, v in metrics.items()
                                                         if isinstance(v, (int, float))}}
        with (out_dir / "log.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        if progress:
            print(json.dumps(row), flush=True)
        save_checkpoint(ckpt, split.cpu(), stage=stage, epoch=epoch + 1, train_config=asdict(cfg),
                        optimizer=opt.state_dict(), scheduler=sched.state_dict(), dev_metrics=_plain(metrics),
                        **meta)
        split.to(device)
    split.cpu()
    return metrics


def _plain(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}


def _rvq_fields(cfg: dict) -> dict:
    """A quantizer config's fields as comparable values, prefixed rvq_ (codebook sizes as a tuple)."""
    return {f"rvq_{k}": tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}


def _resume(ckpt: Path, split: SplitModel, opt, sched) -> int:
    """Load weights, optimizer and scheduler from a checkpoint of this stage; returns epochs done. Refused
    (AcomError naming the settings) when the checkpoint's model or quantizer is not the one built for this run:
    options that shape them (--server-blocks, --code-dim, --time-pool, --codebooks) must be given again."""
    _, payload = load_checkpoint(ckpt, split.model.task)
    now = {**config_dict(split.model), **(_rvq_fields(asdict(split.rvq.config)) if split.rvq else {}),
           "split_layer": split.split_layer, "cut_pool": getattr(split, "cut_pool", None)}
    then = {**payload["model_config"], **(_rvq_fields(payload["rvq_config"]) if payload["rvq_config"] else {}),
            "split_layer": payload["split_layer"], "cut_pool": payload.get("cut_pool")}
    differ = sorted(k for k in now.keys() | then.keys() if now.get(k) != then.get(k))
    if differ:
        raise AcomError(f"--resume: {ckpt} was trained with " + ", ".join(f"{k}={then.get(k)}" for k in differ)
                        + "; this command builds " + ", ".join(f"{k}={now.get(k)}" for k in differ)
                        + ": give the options it was trained with again")
    split.load_state_dict(payload["state_dict"])
    opt.load_state_dict(payload["optimizer"])
    sched.load_state_dict(payload["scheduler"])
    return int(payload["epoch"])


def _init_distributed(rank: int, device: torch.device) -> torch.device:
    if not torch.distributed.is_initialized():  # stage 2 reuses stage 1's process group
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    return device
