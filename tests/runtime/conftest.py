"""Fixtures of the runtime tests: server bundles of the shipped models and real codes to send."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from acom.core.checkpoint import PRETRAINED, load_checkpoint, save_checkpoint
from acom.core.ctc import CharVocab, ctc_greedy
from acom.core.rvq import ResidualVQ
from acom.core.split import SplitModel
from acom.core.tasks import TASKS
from acom.corpora.featcache import open_dataset
from acom.export.bundle import write_server_bundle
from acom.runtime.bundle import Bundle, open_bundle


def edge_codes(task: str, data: Path, n_q: int | None, items: int) -> list[np.ndarray]:
    """Codes [n_q, T] of the first test items, from the shipped model's float edge half."""
    split, _ = load_checkpoint(PRETRAINED / task / "split.pt")
    ds = open_dataset(task, data, TASKS[task].test_subset)
    with torch.inference_mode():
        return [split.edge(n_q)(torch.from_numpy(ds[i][0])[None])[0].numpy() for i in range(min(items, len(ds)))]


def offline_text(bundle: Bundle, codes: np.ndarray) -> str:
    """Greedy transcript of the tail run once on a whole stream's codes."""
    with torch.inference_mode():
        return ctc_greedy(bundle.split.server()(torch.as_tensor(codes)[None])[0], CharVocab())


@pytest.fixture(scope="session")
def asr_case(tmp_path_factory, speech_set) -> tuple[Path, Bundle, list[np.ndarray]]:
    """(bundle folder, bundle, codes [n_q=2, T] of 5 real test utterances) for the shipped ASR model."""
    out = tmp_path_factory.mktemp("bundles") / "asr"
    write_server_bundle(PRETRAINED / "asr" / "split.pt", out)
    return out, open_bundle(out), edge_codes("asr", speech_set, 2, 5)


@pytest.fixture(scope="session")
def ac_case(tmp_path_factory, urban_set) -> tuple[Path, Bundle, list[np.ndarray]]:
    """(bundle folder, bundle, codes [2, T] of 6 real test clips) for the shipped classifier."""
    out = tmp_path_factory.mktemp("bundles") / "ac"
    write_server_bundle(PRETRAINED / "ac" / "split.pt", out)
    return out, open_bundle(out), edge_codes("ac", urban_set, None, 6)


def pooled_checkpoint(path: Path) -> Path:
    """The shipped ASR split model with its quantizer averaging 2 frames per code frame (same weights, not
    trained for it: its transcripts are rougher, and the tests compare them with the offline tail's)."""
    split, _ = load_checkpoint(PRETRAINED / "asr" / "split.pt")
    rvq = ResidualVQ(replace(split.rvq.config, time_pool=2))
    rvq.load_state_dict(split.rvq.state_dict())
    save_checkpoint(path, SplitModel(split.model, split.split_layer, rvq))
    return path


@pytest.fixture(scope="session")
def asr_pool_case(tmp_path_factory, speech_set) -> tuple[Path, Bundle, list[np.ndarray]]:
    """(bundle folder, bundle, codes [2, T] of 5 real test utterances at 12.5 code frames/s) for the shipped
    ASR model with a quantizer that averages 2 frames per code frame."""
    root = tmp_path_factory.mktemp("pooled")
    ckpt = pooled_checkpoint(root / "split.pt")
    write_server_bundle(ckpt, root / "bundle")
    split, _ = load_checkpoint(ckpt)
    ds = open_dataset("asr", speech_set, TASKS["asr"].test_subset)
    with torch.inference_mode():
        codes = [split.edge(2)(torch.from_numpy(ds[i][0])[None])[0].numpy() for i in range(5)]
    return root / "bundle", open_bundle(root / "bundle"), codes
