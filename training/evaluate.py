"""Evaluation of a (split) model on precomputed features: WER/CER or accuracy/macro-F1/confusion, per n_q.

`evaluate(..., n_q=k)` runs the model with k quantizer stages at the cut and returns the codes too, so the
entropy-coded bitrate is measured on exactly what was scored.
"""

from __future__ import annotations

import numpy as np
import torch

from acom.codes import framing
from acom.codes.budget import nominal_bps
from acom.codes.framing import session_rates
from acom.codes.priors import CodePriors, entropy_bps
from acom.core.ctc import CharVocab, ctc_greedy
from acom.core.split import SplitModel
from acom.core.tasks import TASKS
from acom.corpora.featcache import FeatureSet
from acom.training.augment import pad_batch
from acom.training.decoding import WordNgramLM, ctc_beam_search_many
from acom.training.metrics import classification_metrics, wer_cer


@torch.no_grad()
def infer(split: SplitModel, fs: FeatureSet, n_q: int | None = None, batch_frames: int = 40000,
          max_items: int | None = None, device: str | torch.device = "cpu"
          ) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Model outputs per item (ASR: log-probs [T, V]; AC: logits [classes]) and codes [n_q, T_cut] (or None).

    `n_q=None` runs the model uncut when it has no quantizer, else with all its stages.
    """
    split.eval().to(device)
    items = list(range(len(fs)))[: max_items]
    order = sorted(items, key=lambda i: fs.feats[i].shape[1])
    outputs: dict[int, np.ndarray] = {}
    codes: dict[int, np.ndarray | None] = {}
    i = 0
    while i < len(order):
        batch = [order[i]]
        # sorted by length, so the newest item is the longest: the batch pads to its length
        while (i + len(batch) < len(order)
               and fs.feats[order[i + len(batch)]].shape[1] * (len(batch) + 1) <= batch_frames):
            batch.append(order[i + len(batch)])
        i += len(batch)
        x, lengths = pad_batch([fs.feats[j] for j in batch])
        out = split(x.to(device), lengths.to(device), n_q=n_q)
        for k, j in enumerate(batch):
            if TASKS[split.model.task].sequence:
                outputs[j] = out.logits[k, : int(out.lengths[k])].cpu().numpy()
            else:
                outputs[j] = out.logits[k].cpu().numpy()
            codes[j] = None if out.quant is None else out.quant.codes[k, :, : int(out.cut_lengths[k])].cpu().numpy()
    return [outputs[j] for j in items], [codes[j] for j in items]


def rate_fields(split: SplitModel, n_q: int, codes: list[np.ndarray], priors: CodePriors | None) -> dict:
    """n_q, codebook sizes, nominal bit/s, (with priors) the entropy-coded bit/s of `codes` per utterance, and
    what a device sends for them as one session (``codes.framing.DEFAULT``: 1 s packets, range-coded with
    priors, else bit-packed): ``payload_bps`` and ``wire_bps``."""
    sizes = list(split.rvq.config.codebook_sizes[:n_q])
    row = {"n_q": n_q, "codebook_sizes": sizes, "nominal_bps": nominal_bps(split.frame_rate, sizes)}
    if priors is not None:
        row["entropy_bps"] = round(entropy_bps(codes, priors, split.frame_rate)["bps"], 2)
    if codes and all(c is not None for c in codes):
        row.update(session_rates(codes, sizes, split.frame_rate, framing.DEFAULT, priors),
                   wire=framing.DEFAULT.describe())
    return row


def score(task: str, outputs: list[np.ndarray], targets: list,  # noqa: PLR0913 (decoder options)
          lm: WordNgramLM | None = None, beam: int = 0, num_classes: int = 10, alpha: float = 0.5, beta: float = 1.0,
          lexicon: bool = False, show: int = 3) -> dict:
    """Task metrics of model outputs: greedy (beam=0) or beam search with an optional word LM (ASR), spelling
    only the LM's words with `lexicon`; ``examples`` holds the first `show` [reference, hypothesis] pairs
    (transcripts, or class ids)."""
    if TASKS[task].sequence:
        vocab = CharVocab()
        if beam:
            hyps = ctc_beam_search_many(outputs, vocab, lm, beam=beam, alpha=alpha, beta=beta, lexicon=lexicon)
        else:
            hyps = [ctc_greedy(o, vocab) for o in outputs]
        m = wer_cer(list(targets), hyps)
        return {"wer": m["wer"], "cer": m["cer"], "examples": [[r, h] for r, h in zip(targets[:show], hyps[:show])]}
    preds = [int(np.argmax(o)) for o in outputs]
    return {**classification_metrics(list(targets), preds, num_classes),
            "examples": [[int(t), p] for t, p in zip(targets[:show], preds[:show])]}


def evaluate(split: SplitModel, fs: FeatureSet, n_q: int | None = None, max_items: int | None = None,
             lm: WordNgramLM | None = None, beam: int = 0, device: str | torch.device = "cpu") -> dict:
    """Metrics of `split` on `fs` (the first max_items items), greedy decoding unless beam > 0."""
    outputs, _ = infer(split, fs, n_q, max_items=max_items, device=device)
    targets = fs.targets[: len(outputs)]
    num_classes = getattr(split.model.config, "num_classes", 0)
    return score(split.model.task, outputs, targets, lm, beam, num_classes)
