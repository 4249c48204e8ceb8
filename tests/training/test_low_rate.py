"""The low-rate recipes stay deployable. The classifier's (`edge-ac-pool10`: 2.5 frames/s at the cut, one
codebook): trained by name, exported for the Raspberry Pi 4 (ExecuTorch) and the Cortex-M55 board (TFLite Micro,
vela, the C graph and firmware) with every artifact's codes equal to its int8 reference, the C graph's codes equal
to TFLite Micro's, the M55 firmware fed live audio over its UART under QEMU sending TFLite Micro's codes, and
served: the server's labels and scores equal the offline split model's. The speech one (`edge-asr-12hz`: the
quantizer pools 2 frames per code frame, 12.5 code frames/s; trained with `--code-dim 8`): the same export
checks, and its codes served over UDP get the offline split model's transcripts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from acom.cli import main as acom
from acom.core.audio import load_audio
from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.core.ctc import CharVocab, ctc_greedy
from acom.core.tasks import TASKS
from acom.corpora.featcache import cached_features, open_dataset
from acom.export.graph import EdgeGraph
from acom.export.micro import run_tflm
from acom.export.verify import item_codes, make_windows
from acom.firmware_host.edge_c import pcm16
from acom.firmware_host.uart_audio import stream_audio
from acom.runtime.manifest import read_manifest
from tests.firmware_host.test_firmware_uart import _codes
from tests.training.test_your_model import (
    assert_c_graph_equals_tflm,
    assert_c_graph_exact,
    assert_served_as_offline,
    export_both,
    offline_codes,
    serve,
)


def test_the_low_rate_classifier_recipe_trains_exports_and_serves(urban_set: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert acom(["train", "--task", "ac", "--recipe", "edge-ac-pool10", "--data", str(urban_set), "--train", "fold1",
                 "--dev", "fold2", "--out", str(run), "--epochs", "1", "--split-epochs", "1", "--distill", "1"]) == 0
    split, payload = load_checkpoint(run / "split.pt", "ac")
    assert split.frame_rate == 2.5 and split.rvq.config.codebook_sizes == (64,)
    bundles = export_both(run / "split.pt", urban_set, tmp_path, "ac", kind=None)
    m55 = json.loads((bundles["cortex-m55-u55"] / "manifest.json").read_text())
    assert m55["c_graph"]["written"] and m55["firmware"]["written"]
    assert m55["frame_rate"] == 2.5
    assert_c_graph_equals_tflm(bundles["cortex-m55-u55"], urban_set)
    # the firmware: its window holds whole code frames (1.2 s: 3 frames), its codes are TFLite Micro's
    m55_dir = bundles["cortex-m55-u55"]
    item = open_dataset("ac", urban_set, TASKS["ac"].test_subset).items[0]
    pcm = pcm16(load_audio(item.path, 16000))
    run = stream_audio("cortex-m55-u55", m55_dir / read_manifest(m55_dir).firmware.elf, [(7, pcm)], timeout=240)
    assert run.window_samples == 19200 and run.errors == []
    w = make_windows(EdgeGraph(split, 1, frontend=False).eval(), [(pcm.astype(np.float32) / 32768.0, 0)], 19200, 6400)
    want = item_codes(run_tflm((m55_dir / "edge_int8.tflite").read_bytes(), w.inputs)[0], w)[0]
    got = _codes(m55_dir, run.packets)[7]
    assert got.shape == want.shape and (got == want).mean() >= 0.99  # the C front end on 16-bit audio

    fs = cached_features("ac", "test", 40, root=urban_set)
    codes = offline_codes(split, fs.feats[:6])
    assert all(x.shape[1] <= 11 for x in codes)  # 4 s clips: 10 frames (a padded last one at most)
    assert_served_as_offline(split, bundles["rpi4"], codes)


def test_the_12hz_speech_recipe_trains_exports_and_serves(speech_set: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert acom(["train", "--task", "asr", "--recipe", "edge-asr-12hz", "--data", str(speech_set), "--init",
                 str(PRETRAINED / "asr" / "full.pt"), "--out", str(run), "--epochs", "0", "--split-epochs", "1",
                 "--code-dim", "8"]) == 0
    split, _ = load_checkpoint(run / "split.pt", "asr")
    assert split.frame_rate == 12.5 and split.rvq.config.codebook_sizes == (64,)
    assert split.rvq.config.code_dim == 8  # not the recipe's 16: the C graph and the server follow the checkpoint
    # one epoch from the 25 frames/s model: its int8 WER on 8 items moves by a word with the calibration windows
    bundles = export_both(run / "split.pt", speech_set, tmp_path, "asr", kind=None, metric_gate=False)
    m55 = json.loads((bundles["cortex-m55-u55"] / "manifest.json").read_text())
    assert m55["c_graph"]["written"] and m55["firmware"]["written"] and m55["frame_rate"] == 12.5
    assert m55["graph"]["window_samples"] % 1280 == 0  # whole code frames of 80 ms
    assert_c_graph_exact(bundles["cortex-m55-u55"], speech_set)  # with 8 code channels one code of 390 flips
    fs = cached_features("asr", "test-clean", 40, root=speech_set)
    codes = offline_codes(split, fs.feats[:4])
    assert all(abs(c.shape[1] - f.shape[1] / 8) <= 1 for c, f in zip(codes, fs.feats[:4]))  # 100 -> 12.5 frames/s
    with torch.no_grad():
        want = [ctc_greedy(split.server()(torch.as_tensor(c)[None])[0], CharVocab()) for c in codes]
    assert any(want)
    got = serve(bundles["rpi4"], codes)
    assert [got[i]["text"] for i in range(len(codes))] == want

