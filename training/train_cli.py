"""`acom train`, `acom eval` and `acom features`: the split-model workflow from the command line."""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
from pathlib import Path

import torch

from acom.codes.framing import framed_bps
from acom.codes.priors import CodePriors
from acom.core.checkpoint import PRETRAINED, load_checkpoint, model_from_payload, read_uncut, trained_epochs, uncut
from acom.core.custom import load_object, load_user_model
from acom.core.models import model_config
from acom.core.split import SplitModel, make_rvq
from acom.core.tasks import TASKS
from acom.corpora.datasets import US8K_CLASSES
from acom.corpora.featcache import cached_features, subsets_for
from acom.corpora.splits import cv_names
from acom.errors import AcomError, DataError
from acom.training import recipes
from acom.training.decoding import WordNgramLM
from acom.training.evaluate import infer, rate_fields, score
from acom.training.pooled import PooledCut, load_as_trained
from acom.training.train import TrainConfig, fit, insert_quantizer, seed_everything, set_normalization

SPLITS_HELP = ("asr: a subset's own name (train-clean-100, dev-clean, test-other, the generated train, dev, "
               "test-clean, test-noisy), several joined with + (train-clean-100+train-clean-360), or the roles "
               "train, dev, test; ac: train, dev, test (folds 1-8, 9, 10), fold3, folds1-8, cv1-test .. cv10-test")


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, help="data set folder as it comes (LibriSpeech layout for asr, "
                   "UrbanSound8K for ac); only read, never written")
    p.add_argument("--cache", "--features", dest="cache", type=Path,
                   help="feature cache folder (default: ~/.cache/acom/features/<data folder>-<hash>; $ACOM_FEATURES, "
                   "$ACOM_CACHE or $XDG_CACHE_HOME move it); with --cache and no --data, features are read as they are "
                   "(training on a machine without the audio)")
    p.add_argument("--fold", type=int, metavar="K", help="ac: 10-fold cross-validation on UrbanSound8K's folds: "
                   "test on fold K, validate on the next, train on the other eight (splits cvK-train, cvK-dev, "
                   "cvK-test)")


def _split(ns: argparse.Namespace, role: str, given: str | None, default: str) -> str:
    """The split name for a role: the one given, else fold K's with --fold, else the default."""
    if ns.fold is not None:
        if ns.task != "ac":
            raise DataError(f"--fold {ns.fold}: cross-validation folds are UrbanSound8K's (--task ac)")
        if given is not None:
            raise DataError(f"--fold {ns.fold} chooses the {role} split itself: drop the other split option")
        return cv_names(ns.fold)[role]
    return given or default


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="acom train", description="Stage 1: train the uncut model (or load it with "
                                "--init). Stage 2: insert the RVQ after --split-layer and fine-tune with task "
                                "loss + quantizer losses. Writes OUT/full.pt, OUT/split.pt, OUT/log.jsonl.")
    p.add_argument("--task", choices=list(TASKS), required=True)
    p.add_argument("--recipe", default=None, help=f"named model+quantizer settings: {', '.join(recipes.RECIPES)} "
                   "(default: the task's edge default)")
    _data_args(p)
    p.add_argument("--train", metavar="SPLIT", help=f"training split (default train). {SPLITS_HELP}")
    p.add_argument("--dev", metavar="SPLIT", help="validation split (default dev; asr: dev-clean when the folder "
                   "has LibriSpeech's subsets)")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, log.jsonl)")
    p.add_argument("--epochs", type=int, default=None, help="stage 1 epochs (default 20; with --init default 0, "
                   "stage 2 from it; with --init and N > 0, stage 1 trains --init N epochs more, a fresh schedule "
                   "at --lr, and writes it to OUT/full.pt)")
    p.add_argument("--split-epochs", type=int, default=6, help="stage 2 epochs (0: stop after stage 1, writing "
                   "OUT/full.pt only)")
    p.add_argument("--init", type=Path, help="a trained uncut checkpoint to start stage 2 from (or to train "
                   "further with --epochs N)")
    p.add_argument("--reference", type=Path, help="with --init and no stage 1: the uncut checkpoint copied to "
                   "OUT/full.pt, the model the benchmarks compare the cut with (default: --init; needed when --init "
                   "was trained with --pool-stage1)")
    p.add_argument("--model", metavar="FILE.py:NAME", help="your own nn.Module instead of a recipe's: NAME in FILE.py, "
                   "a class or a function returning the module (log-mels in; CTC scores [B, T, 29] or class logits "
                   "out: docs/training.md); --epochs 0 keeps the weights it comes with")
    p.add_argument("--cut", metavar="SUBMODULE", help="with --model: the submodule after which the device half ends "
                   "(a layer or a container such as encoder)")
    p.add_argument("--loss", metavar="FILE.py:NAME", help="a loss of your own instead of the task's: NAME(out, "
                   "targets) -> scalar tensor, out an acom.core.split.SplitOutput (logits [B, T, V] log-probs or "
                   "[B, classes], lengths), targets the batch's transcripts or class ids; the quantizer's losses "
                   "are added")
    p.add_argument("--split-layer", type=int, help="cut after this block (0 = stem); default: the recipe's")
    p.add_argument("--codebooks", help="codebook sizes per stage, e.g. 64,64,64 (default: the recipe's)")
    p.add_argument("--time-pool", type=int, help="frames at the cut averaged into one code frame (1..16; the server "
                   "repeats each decoded frame as many times): 2 halves the code frame rate and the bit/s "
                   "(default: the recipe's, 1 for most)")
    p.add_argument("--code-dim", type=int, metavar="C", help="channels of each codebook's space: the cut's "
                   "features are projected to C channels, where the search runs (1..the cut's width; default: "
                   "the recipe's, 16)")
    p.add_argument("--pool-stage1", action="store_true", help="stage 1 trains the uncut model with the cut's "
                   "frames already averaged in runs of the time pool and repeated (no codebooks), so both sides of "
                   "the cut learn the lower frame rate before stage 2; needs a time pool over 1 (with --init: "
                   "--epochs N trains that model further, pooled)")
    p.add_argument("--server-blocks", type=int, metavar="N", help="blocks after the cut, the server's part (asr: "
                   "the wide Conformer blocks, recipes 4; ac: the TDNN blocks after the pooling, recipes 3): more "
                   "costs the device nothing; a new model only (refused with --init or --model)")
    p.add_argument("--freeze-edge", action="store_true", help="stage 2 trains only the quantizer and server part")
    p.add_argument("--split-dropout", type=float, default=None, metavar="P", help="stage 2: set every dropout "
                   "layer of the model to P (0..0.9; 0 turns dropout off for a cut that underfits; default: the "
                   "model's own)")
    p.add_argument("--distill", type=float, default=0.0, help="stage 2: add this weight times the KL divergence "
                   "from the uncut model's output distribution (per frame for ASR) to the loss (default 0: off)")
    p.add_argument("--teacher", type=Path, default=None, metavar="UNCUT.pt", help="with --distill: distill from "
                   "this uncut checkpoint of the task (e.g. one trained longer) instead of the model stage 2 starts "
                   "from; recorded as 'teacher' in split.pt")
    p.add_argument("--rate-weight", type=float, default=0.0, help="stage 2: add this weight times the codes' "
                   "soft bits per code frame under a running bigram of the train codes (what the range coder "
                   "spends) to the loss, trading bits for task loss; the log gains a 'bits' column (default 0: off)")
    p.add_argument("--rate-target", type=float, default=None, metavar="BPS", help="with --rate-weight: apply it "
                   "only to batches whose codes cost more than BPS bit/s (at the code frame rate), so the codes "
                   "settle near it instead of collapsing (default: always apply it)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    p.add_argument("--batch-frames", type=int, default=20000, help="log-mel frames per batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--resume", action="store_true", help="continue each stage from OUT/<stage>.pt")
    p.add_argument("--eval-every", type=int, default=1, help="evaluate on dev and write the resumable checkpoint "
                   "every N epochs (and after the last); >1 saves time on a GPU")
    p.add_argument("--max-epochs-now", type=int, default=None, help=argparse.SUPPRESS)
    return p


def _check_numbers(ns: argparse.Namespace) -> None:
    """Fill in --epochs' default (20; 0 with --init), then refuse out-of-range epochs, pooling and loss weights
    before anything is read or written."""
    if ns.epochs is None:
        ns.epochs = 0 if ns.init else 20
    if ns.epochs < 0 or ns.split_epochs < 0:
        raise AcomError(f"--epochs {ns.epochs} --split-epochs {ns.split_epochs}: epochs are counts, 0 or more")
    if ns.time_pool is not None and not 1 <= ns.time_pool <= 16:
        raise AcomError(f"--time-pool {ns.time_pool}: allowed 1..16 frames per code frame")
    if ns.time_pool not in (None, 1) and ns.model:
        raise AcomError("--time-pool with --model: a model of your own is served frame by frame as it comes; "
                        "pool inside your model before its cut instead")
    if ns.pool_stage1 and ns.init and not ns.epochs:
        raise AcomError("--pool-stage1 shapes stage 1, which --init with --epochs 0 skips: give --epochs N to "
                        "train --init further with its cut pooled")
    if ns.init and ns.epochs and ns.reference:
        raise AcomError(f"--reference with --init and --epochs {ns.epochs}: stage 1 trains --init further, and "
                        "that model (OUT/full.pt) is the uncut one; drop --reference")
    if ns.pool_stage1 and ns.split_epochs:
        raise AcomError("--pool-stage1 trains stage 1 only (give --split-epochs 0): its model is a start for stage "
                        "2 (--init), not the uncut model a cut is compared with (--reference names that one)")
    if ns.reference and not ns.init:
        raise AcomError("--reference names the uncut model beside a stage 2 started with --init; give --init too")
    if ns.pool_stage1 and ns.model:
        raise AcomError("--pool-stage1 with --model: pool inside your model before its cut instead")
    if ns.split_dropout is not None and not 0.0 <= ns.split_dropout <= 0.9:
        raise AcomError(f"--split-dropout {ns.split_dropout}: allowed 0 to 0.9")
    if ns.distill < 0:
        raise AcomError(f"--distill {ns.distill}: must be 0 (off) or a positive weight")
    if ns.teacher is not None and not (ns.distill > 0 and ns.split_epochs):
        raise AcomError(f"--teacher {ns.teacher}: a teacher is distilled from in stage 2; give --distill W > 0 "
                        "and --split-epochs N > 0")
    if not ns.rate_weight >= 0:
        raise AcomError(f"--rate-weight {ns.rate_weight}: must be 0 (off) or a positive weight")
    if ns.rate_target is not None and not (ns.rate_target > 0 and ns.rate_weight > 0):
        raise AcomError(f"--rate-target {ns.rate_target}: give a positive bit/s, with a positive --rate-weight")


def train_main(argv: list[str]) -> int:
    ns = train_parser().parse_args(argv)
    seed_everything(ns.seed)  # the model's initial weights come from this seed too
    recipe = recipes.get(ns.recipe or recipes.DEFAULT[ns.task], ns.task)
    split_layer = ns.split_layer if ns.split_layer is not None else recipe.split_layer
    try:
        sizes = tuple(int(k) for k in ns.codebooks.split(",")) if ns.codebooks else recipe.codebook_sizes
    except ValueError:
        raise AcomError(f"--codebooks {ns.codebooks!r}: give integers separated by commas, e.g. 64,64") from None
    _check_numbers(ns)
    # check the cut and the quantizer before spending an hour on stage 1
    if ns.model:
        if ns.init or ns.split_layer is not None:
            raise AcomError("--model brings its own weights and cut (--cut): drop --init and --split-layer")
        user = SplitModel(load_user_model(ns.model, ns.cut, ns.task), 0, None)
        split_layer = 0
    elif ns.cut:
        raise AcomError("--cut names a submodule of your own --model; acom's recipes cut with --split-layer")
    loss_fn = load_object(ns.loss, "--loss") if ns.loss else None
    if loss_fn is not None and not callable(loss_fn):
        raise AcomError(f"--loss {ns.loss!r}: not a function")
    model_cfg = _model_config(ns, recipe, split_layer)
    probe = user.model if ns.model else uncut(ns.task, model_cfg).model
    rvq_kw = _rvq_options(ns, recipe, probe.cut_dim(split_layer))
    make_rvq(probe, split_layer, sizes, **rvq_kw)
    n_mels = probe.frontend.cfg.n_mels
    train = cached_features(ns.task, _split(ns, "train", ns.train, "train"), n_mels, root=ns.data, cache=ns.cache)
    dev = cached_features(ns.task, _split(ns, "dev", ns.dev, "dev"), n_mels, root=ns.data, cache=ns.cache)
    # read before anything is written: a bad --teacher, --init or --reference leaves no run folder
    teacher = _teacher(ns, probe)
    if ns.init:
        full, init_payload = load_checkpoint(ns.init, ns.task)
        if ns.epochs:
            _check_continued(ns, init_payload, rvq_kw.get("time_pool", 1))
        else:
            reference = _reference(ns, init_payload)
    ns.out.mkdir(parents=True, exist_ok=True)
    meta = {"command": "acom train " + " ".join(argv), "recipe": recipe.name}
    # the training behind each stage's start, so a report can set a cut's epochs in all beside its reference's
    before = trained_epochs(init_payload) if ns.init else 0
    if not (ns.resume and (ns.out / "command.json").is_file()):  # a resumed run keeps the command that began it
        (ns.out / "command.json").write_text(json.dumps({**meta, "argv": argv, "seed": ns.seed}, indent=1))
    lr = ns.lr or recipe.lr
    if ns.init and not ns.epochs:
        if not (ns.out / "full.pt").exists():  # a run folder holds both halves (the benchmarks read RUN/full.pt)
            shutil.copyfile(reference, ns.out / "full.pt")
    else:  # stage 1: a new model, or --init trained further
        if not ns.init:  # with --init, its weights and input normalization are the start
            full = user if ns.model else uncut(ns.task, model_cfg)
            set_normalization(full, train)
        if ns.pool_stage1:
            full = PooledCut(full, rvq_kw["time_pool"])
        fit(full, train, dev, TrainConfig(epochs=ns.epochs, lr=lr, batch_frames=ns.batch_frames, seed=ns.seed,
                                          device=ns.device, eval_every=ns.eval_every), ns.out, "full",
            {**meta, "epochs_before": before, **({"cut_pool": rvq_kw["time_pool"]} if ns.pool_stage1 else {})},
            resume=ns.resume, loss_fn=loss_fn)
    if ns.split_epochs == 0:  # stage 1 only: its checkpoint is the run (stage 2 later with --init)
        return 0
    # the uncut model as it is now, before stage 2 changes the blocks it shares with the split model
    teacher = _distilled_from(teacher, full, ns.distill)
    split = insert_quantizer(full, split_layer, sizes, train, ns.seed, **rvq_kw)
    set_dropout(split, ns.split_dropout)
    cfg = TrainConfig(epochs=ns.split_epochs, lr=lr / 2, batch_frames=ns.batch_frames, seed=ns.seed,
                      freeze_edge=ns.freeze_edge, device=ns.device, eval_every=ns.eval_every, distill=ns.distill,
                      rate_weight=ns.rate_weight,
                      rate_target=(ns.rate_target or 0.0) / split.frame_rate)  # bit/s -> bits per code frame
    split_meta = {**meta, "epochs_before": None if before is None else before + ns.epochs, **_stage2_options(ns)}
    fit(split, train, dev, cfg, ns.out, "split", split_meta, resume=ns.resume, teacher=teacher, loss_fn=loss_fn)
    if int(os.environ.get("RANK", 0)) == 0:  # under torchrun, one rank writes
        finalize(ns.out / "split.pt", split, train)
    return 0


def _model_config(ns: argparse.Namespace, recipe: recipes.Recipe, split_layer: int) -> dict:
    """The recipe's model fields with --server-blocks applied: the blocks after the cut at `split_layer` made N by
    changing the count of the model's last kind of block (asr `blocks`, ac `server_blocks`)."""
    if ns.server_blocks is None:
        return recipe.model
    if ns.init or ns.model:
        raise AcomError(f"--server-blocks {ns.server_blocks}: the model comes from "
                        f"{'--init' if ns.init else '--model'} as it is; give it when training a new model")
    cfg = model_config(ns.task, recipe.model)
    if not 0 <= split_layer < cfg.num_blocks:
        return recipe.model  # make_rvq refuses the cut itself, naming the blocks there are
    key = "blocks" if ns.task == "asr" else "server_blocks"
    now = getattr(cfg, key)
    after = cfg.num_blocks - 1 - split_layer
    low = max(1, after - now)
    if not low <= ns.server_blocks <= 32:
        raise AcomError(f"--server-blocks {ns.server_blocks}: allowed {low}..32 with the cut after block {split_layer} "
                        f"of recipe {recipe.name}")
    return {**recipe.model, key: now + ns.server_blocks - after}


def _rvq_options(ns: argparse.Namespace, recipe: recipes.Recipe, width: int) -> dict:
    """The recipe's quantizer settings with --time-pool and --code-dim applied, refused when out of range
    (`width`: the channels of the features at the cut)."""
    rvq_kw = {**recipe.rvq, **({"time_pool": ns.time_pool} if ns.time_pool is not None else {}),
              **({"code_dim": ns.code_dim} if ns.code_dim is not None else {})}
    if ns.pool_stage1 and rvq_kw.get("time_pool", 1) == 1:
        raise AcomError(f"--pool-stage1: recipe {recipe.name} pools 1 frame per code frame; add --time-pool 2 or more")
    if ns.code_dim is not None and not 1 <= ns.code_dim <= width:
        raise AcomError(f"--code-dim {ns.code_dim}: allowed 1..{width}, the width of the features at the cut")
    return rvq_kw


def set_dropout(model: torch.nn.Module, p: float | None) -> int:
    """Set every nn.Dropout in `model` to probability `p` (None: leave them); returns how many there are."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    for m in layers:
        m.p = m.p if p is None else p
    return len(layers)


def _distilled_from(teacher: SplitModel | None, full: torch.nn.Module, distill: float) -> torch.nn.Module | None:
    """Stage 2's teacher: --teacher's model, else a frozen copy of the uncut model as stage 2 begins (None
    without --distill)."""
    if distill <= 0:
        return None
    return teacher if teacher is not None else copy.deepcopy(full)


def _stage2_options(ns: argparse.Namespace) -> dict:
    """Stage-2 options recorded in split.pt when given: the dropout set and the teacher distilled from."""
    return {**({"split_dropout": ns.split_dropout} if ns.split_dropout is not None else {}),
            **({"teacher": str(ns.teacher)} if ns.teacher is not None else {})}


def _teacher(ns: argparse.Namespace, probe: torch.nn.Module) -> SplitModel | None:
    """The --teacher checkpoint as a model (None without one), refused unless it is an uncut model of the task
    that reads the same log-mels and has the same outputs as the model trained (`probe`: one built like it)."""
    if ns.teacher is None:
        return None
    teacher = model_from_payload(ns.teacher, read_uncut(ns.teacher, ns.task, "--teacher"))
    n_mels = probe.frontend.cfg.n_mels
    if teacher.model.frontend.cfg.n_mels != n_mels:
        raise AcomError(f"--teacher {ns.teacher}: reads {teacher.model.frontend.cfg.n_mels} log-mel bands, "
                        f"the model trained {n_mels}")
    want, got = (_outputs(m, n_mels) for m in (probe, teacher.model))
    if want != got:
        raise AcomError(f"--teacher {ns.teacher}: its model has {got} outputs, the model trained {want}")
    return teacher


@torch.no_grad()
def _outputs(model: torch.nn.Module, n_mels: int) -> int:
    """Output classes (CTC symbols or sound classes) of a model, from one forward pass of 2 s of zeros."""
    logits, _ = model.eval()(torch.zeros(1, n_mels, 200), torch.tensor([200]))
    return int(logits.shape[-1])


def _reference(ns: argparse.Namespace, init: dict) -> Path:
    """The uncut checkpoint a stage 2 from --init is compared with: --reference, else --init itself (refused
    when --init, whose payload is `init`, was trained with its cut pooled: not an uncut model's accuracy)."""
    if ns.reference is None:
        if init.get("cut_pool"):
            raise AcomError(f"--init {ns.init}: trained with its cut pooled (--pool-stage1), so it is not the uncut "
                            f"model to compare the cut with; name that one with --reference UNCUT.pt")
        return ns.init
    read_uncut(ns.reference, ns.task, "--reference")
    return ns.reference


def _check_continued(ns: argparse.Namespace, init: dict, time_pool: int) -> None:
    """Refuse an --init that stage 1 cannot train further as asked: one with a quantizer, or one whose cut was
    pooled (its payload's ``cut_pool``) unless --pool-stage1 pools it the same way."""
    if init["rvq_config"] is not None:
        raise AcomError(f"--init {ns.init} with --epochs {ns.epochs}: a checkpoint with a quantizer; stage 1 trains "
                        "an uncut model (full.pt) further")
    pooled = init.get("cut_pool")
    if pooled and not (ns.pool_stage1 and pooled == time_pool):
        raise AcomError(f"--init {ns.init} with --epochs {ns.epochs}: trained with its cut pooled in runs of "
                        f"{pooled} (cut_pool), so stage 1 continues it with --pool-stage1 --time-pool {pooled}")


def finalize(path: Path, split, train) -> None:
    """Add what the server and the reports need to the stage-2 checkpoint: entropy-coder priors estimated on
    the train set's codes, and (ASR) the word language model of the train transcripts."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    _, codes = infer(split, train)
    priors = CodePriors.estimate([c for c in codes], split.rvq.config.codebook_sizes)
    payload["priors"] = priors.to_tensors()
    if TASKS[split.model.task].sequence:
        payload["lm"] = json.dumps(WordNgramLM.train(train.targets, order=3).to_dict())
    payload.pop("optimizer", None)
    payload.pop("scheduler", None)
    torch.save(payload, path)


def eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="acom eval", description="Task metrics of a checkpoint on a subset: WER/CER "
                                "(greedy, or --beam N with the word LM) or accuracy/macro-F1/confusion, for the "
                                "uncut model and for each number of quantizer stages, with bit/s.")
    p.add_argument("--checkpoint", type=Path, help="split.pt (or full.pt for the uncut model); default: the shipped "
                   "demonstration model of --task (trained on synthetic sets)")
    p.add_argument("--task", choices=list(TASKS), required=True)
    _data_args(p)
    p.add_argument("--subset", metavar="SPLIT", default=None, help="split to score (default: the task's test set, "
                   f"test-clean or test). {SPLITS_HELP}")
    p.add_argument("--beam", type=int, default=0, help="beam width for CTC beam search with the LM (0: greedy)")
    p.add_argument("--lexicon", action="store_true", help="with --beam: spell only the words of the LM's training "
                   "transcripts (closed vocabulary; wants a wider beam, e.g. 64)")
    p.add_argument("--codec", help="score the subset's audio after this codec and back (a baseline pipeline; "
                   "needs --data): codec2-450 .. codec2-3200, opus-6k .. opus-16k, mp3-8k, mp3-16k")
    p.add_argument("--show", type=int, default=3, metavar="N", help="print the first N items' references beside "
                   "what the model gave (transcripts or class names; default 3)")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def eval_main(argv: list[str]) -> int:
    ns = eval_parser().parse_args(argv)
    ns.checkpoint = ns.checkpoint or PRETRAINED / ns.task / "split.pt"
    split, payload = load_as_trained(ns.checkpoint, ns.task)
    if ns.lexicon and not ns.beam:
        raise DataError("--lexicon constrains the beam search: give --beam N too (e.g. --beam 64)")
    if ns.lexicon and "lm" not in payload:
        raise DataError(f"{ns.checkpoint}: no word LM stored (field 'lm'), which --lexicon needs")
    if ns.beam and "lm" not in payload:
        print(f"acom eval: {ns.checkpoint} stores no word LM (uncut checkpoints do not): beam search without a "
              f"language model", file=sys.stderr)
    if ns.show < 0:
        raise DataError(f"--show {ns.show}: give 0 or more items")
    subset = _split(ns, "test", ns.subset, TASKS[ns.task].test_subset)
    n_mels = split.model.frontend.cfg.n_mels
    codec = None
    if ns.codec:
        from acom.baselines.codecs import get_codec
        from acom.baselines.coded_sets import coded_set
        if ns.data is None:
            raise DataError("--codec needs --data: the audio goes through the codec")
        cs = coded_set(ns.task, ns.data, subset, get_codec(ns.codec).system, n_mels)
        fs = cs.features
        codec = {"system": ns.codec, "measured_bps": round(cs.measured_bps, 1),
                 "wire_bps": framed_bps(cs.measured_bps, cs.seconds), "padded_clips": cs.padded}
    else:
        fs = cached_features(ns.task, subset, n_mels, root=ns.data, cache=ns.cache)
    rows = evaluate_checkpoint(split, payload, fs, ns.beam, ns.lexicon, ns.show)
    result = {"checkpoint": str(ns.checkpoint), "subset": subset, "items": len(fs), "results": rows,
              **({"codec": codec} if codec else {})}
    print(json.dumps(result, indent=1) if ns.json else _table(result))
    return 0


def evaluate_checkpoint(split, payload: dict, fs, beam: int = 0, lexicon: bool = False, show: int = 3) -> list[dict]:
    """One row per n_q (1..n_q of the quantizer; the uncut model when there is none), with the first `show`
    items' [reference, hypothesis]."""
    lm = WordNgramLM.from_dict(json.loads(payload["lm"])) if beam and "lm" in payload else None
    priors = CodePriors.from_tensors(payload["priors"]) if "priors" in payload else None
    ncls = getattr(split.model.config, "num_classes", 0)
    if split.rvq is None:
        outputs, _ = infer(split, fs)
        return [{"n_q": 0, **score(split.model.task, outputs, fs.targets, lm, beam, ncls, lexicon=lexicon, show=show)}]
    rows = []
    for n_q in range(1, split.rvq.config.n_q + 1):
        outputs, codes = infer(split, fs, n_q)
        rows.append({**rate_fields(split, n_q, codes, priors),
                     **score(split.model.task, outputs, fs.targets, lm, beam, ncls, lexicon=lexicon, show=show)})
    return rows


def _table(result: dict) -> str:
    lines = [f"{result['checkpoint']} on {result['subset']} ({result['items']} items)"]
    wire = next((r["wire"] for r in result["results"] if "wire" in r), None)
    if wire:
        lines.append(f"  sent as one session: {wire}")
    if "codec" in result:
        c = result["codec"]
        lines.append(f"  after {c['system']}: {c['measured_bps']:.0f} bit/s of codec payload ({c['wire_bps']:.0f} "
                     f"on the wire, framed as acom's packets), "
                     f"{c['padded_clips']} clip(s) shorter than a codec frame padded")
    for r in result["results"]:
        metric = (f"WER {r['wer']:.3f} CER {r['cer']:.3f}" if "wer" in r
                  else f"accuracy {r['accuracy']:.3f} macro-F1 {r['macro_f1']:.3f}")
        rate = f"{r.get('nominal_bps', 0):7.1f} bit/s nominal, {r.get('entropy_bps', 0):7.1f} entropy-coded"
        if "wire_bps" in r:
            rate += f", sent: {r['payload_bps']:.1f} payload -> {r['wire_bps']:.1f} on the wire"
        lines.append(f"  n_q={r['n_q']}: {metric}   {rate if r['n_q'] else 'uncut'}")
        if "confusion" in r:
            names = US8K_CLASSES if len(r["confusion"]) == len(US8K_CLASSES) else [str(i) for i in
                                                                                range(len(r["confusion"]))]
            width = max(map(len, names))
            lines += ["    confusion (rows: true class, columns: predicted, in the same order):"]
            lines += [f"      {name:>{width}} " + " ".join(f"{v:3d}" for v in row)
                      for name, row in zip(names, r["confusion"])]
    last = result["results"][-1]
    if last.get("examples"):
        names = US8K_CLASSES if "confusion" in last and len(last["confusion"]) == len(US8K_CLASSES) else None
        lines.append(f"  first {len(last['examples'])} items (n_q={last['n_q']}; reference -> model):")
        for ref, hyp in last["examples"]:
            if isinstance(ref, str):
                lines += [f"    ref: {ref}", f"    got: {hyp}"]
            else:
                lines.append(f"    {names[ref] if names else ref} -> {names[hyp] if names else hyp}")
    return "\n".join(lines)


def features_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="acom features", description="Precompute log-mel features of splits of a data "
                                "set (to train elsewhere, e.g. on a GPU machine without the TTS tools).")
    p.add_argument("--task", choices=list(TASKS), required=True)
    p.add_argument("--data", type=Path, required=True, help="data set folder (only read)")
    p.add_argument("--out", type=Path, help="feature folder (default: the cache folder acom train and eval use)")
    p.add_argument("--splits", help="comma-separated splits (default: train, dev and the test sets that exist). "
                   + SPLITS_HELP)
    p.add_argument("--n-mels", type=int, default=40)
    ns = p.parse_args(argv)
    names = ns.splits.split(",") if ns.splits else subsets_for(ns.task)
    done = 0
    for name in names:
        try:
            fs = cached_features(ns.task, name, ns.n_mels, root=ns.data, cache=ns.out)
        except DataError as e:
            if ns.splits:
                raise
            print(f"{name}: skipped ({e})")
            continue
        done += 1
        print(f"{name}: {len(fs)} items, {sum(f.shape[1] for f in fs.feats) / 100 / 60:.1f} min")
    if not done:
        raise DataError(f"{ns.data}: none of the splits {', '.join(names)} is there")
    return 0


if __name__ == "__main__":
    sys.exit(train_main(sys.argv[1:]))
