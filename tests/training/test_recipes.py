"""The named recipes at a tiny scale on the generated sets, and `acom train` from features alone."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from acom.cli import main as acom
from acom.core.checkpoint import load_checkpoint
from acom.core.models import build_model
from acom.core.split import SplitModel, make_rvq
from acom.corpora.featcache import FeatureSet, cached_features, feature_path
from acom.errors import AcomError
from acom.training import recipes
from acom.training.train import TrainConfig, make_optimizer, run_epoch
from tests.core.test_split import _toy_features


@pytest.mark.parametrize("name", ["paper-librispeech", "paper-us8k"])
def test_paper_recipes_take_real_steps(name: str, speech_set: Path, tmp_path: Path) -> None:
    """Build the paper-size model, cut where the paper cuts, and take two optimizer steps on real features."""
    r = recipes.get(name)
    model = build_model(r.task, r.model)
    split = SplitModel(model, r.split_layer, make_rvq(model, r.split_layer, r.codebook_sizes))
    assert split.frame_rate == 25.0 and split.rvq.config.codebook_sizes == r.codebook_sizes
    if r.task == "asr":
        assert len(model.blocks) == 13 and r.split_layer == 4 and model.config.dim == 512  # stem + 12 blocks
        # own cache folder: the shared speech set must stay as generated (a determinism test compares it)
        fs = cached_features("asr", "dev", model.config.n_mels, root=speech_set, cache=tmp_path / "features")
    else:  # ECAPA-style: the server side is pooling and classifier only
        assert r.split_layer == len(model.blocks) - 1
        fs = FeatureSet("ac", [torch.randn(80, 200).half() for _ in range(4)], [0, 1, 2, 3], list("abcd"), 80)
    fs.feats, fs.targets = fs.feats[:2], fs.targets[:2]
    cfg = TrainConfig(epochs=1, batch_frames=2000, device="cpu")
    opt, sched = make_optimizer(split, cfg, steps=2)
    before = [p.detach().clone() for p in split.parameters()]
    losses = run_epoch(split, split, opt, sched, fs, cfg, 0, torch.device("cpu"), _vocab(r.task))
    assert losses["task"] > 0 and losses["rvq"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, split.parameters(), strict=False))


def _vocab(task: str):
    from acom.core.ctc import CharVocab
    return CharVocab() if task == "asr" else None


def test_unknown_recipe_names_the_known_ones() -> None:
    with pytest.raises(AcomError, match="known: edge-asr"):
        recipes.get("whisper")
    with pytest.raises(AcomError, match="is for task 'asr'"):
        recipes.get("edge-asr", "ac")


def test_acom_train_from_features_only(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """What a GPU machine without the TTS tools runs: precomputed features in, split checkpoint out."""
    feats = tmp_path / "features"
    _toy_features(40, 0).save(feature_path(feats, "ac", "train", 40))
    _toy_features(10, 1).save(feature_path(feats, "ac", "dev", 40))
    rc = acom(["train", "--task", "ac", "--features", str(feats), "--out", str(tmp_path / "run"), "--epochs", "2",
               "--split-epochs", "1", "--batch-frames", "2000", "--codebooks", "8,4", "--device", "cpu"])
    assert rc == 0
    split, payload = load_checkpoint(tmp_path / "run" / "split.pt", "ac")
    assert split.rvq.config.codebook_sizes == (8, 4) and "priors" in payload and "optimizer" not in payload
    assert json.loads((tmp_path / "run" / "command.json").read_text())["seed"] == 0
    _toy_features(10, 2).save(feature_path(feats, "ac", "test", 40))
    capsys.readouterr()  # drop the training log lines
    assert acom(["eval", "--task", "ac", "--checkpoint", str(tmp_path / "run" / "split.pt"), "--features",
                 str(feats), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["n_q"] for r in rows["results"]] == [1, 2]
    assert rows["results"][0]["nominal_bps"] == pytest.approx(5.0 * 3) and rows["results"][0]["accuracy"] >= 0.9
    for r in rows["results"]:  # what a device sends for these codes: range-coded payload, framed as wire v3
        seconds = sum(f.shape[1] for f in _toy_features(10, 2).feats) / 100  # 10 ms log-mel hops
        assert r["wire_bps"] > r["payload_bps"] > 0 and "1 s packets" in r["wire"]
        assert r["wire_bps"] - r["payload_bps"] >= 8 * 32 / seconds  # at least the header of the one full packet
    # Stage 2 again from that uncut model, with other codebooks: the new run folder gets the uncut model too.
    again = tmp_path / "again"
    assert acom(["train", "--task", "ac", "--features", str(feats), "--out", str(again), "--init",
                 str(tmp_path / "run" / "full.pt"), "--epochs", "0", "--split-epochs", "1", "--batch-frames", "2000",
                 "--codebooks", "16,4", "--device", "cpu", "--distill", "0.5"]) == 0
    assert (again / "full.pt").read_bytes() == (tmp_path / "run" / "full.pt").read_bytes()
    log = [json.loads(line) for line in (again / "log.jsonl").read_text().splitlines()]
    assert log[-1]["stage"] == "split" and log[-1]["distill"] >= 0  # the uncut model was distilled
    assert load_checkpoint(again / "split.pt", "ac")[0].rvq.config.codebook_sizes == (16, 4)


def test_two_process_data_parallel_training(tmp_path: Path) -> None:
    """torchrun with 2 CPU processes (gloo): DistributedDataParallel trains both stages and one rank writes."""
    import subprocess
    import sys
    feats = tmp_path / "features"
    _toy_features(40, 0).save(feature_path(feats, "ac", "train", 40))
    _toy_features(10, 1).save(feature_path(feats, "ac", "dev", 40))
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run([str(torchrun), "--nproc-per-node", "2", "--master-port", "29731", "-m",
                           "acom.training.train_cli", "--task", "ac", "--features", str(feats), "--out",
                           str(tmp_path / "run"), "--epochs", "2", "--split-epochs", "1", "--batch-frames", "1000",
                           "--codebooks", "8", "--device", "cpu"], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["epoch"]) for r in log] == [("full", 1), ("full", 2), ("split", 1)]
    split, payload = load_checkpoint(tmp_path / "run" / "split.pt", "ac")
    assert "priors" in payload and log[-1]["dev_accuracy"] >= 0.9


def test_acom_train_refuses_a_bad_cut_before_training(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    feats = tmp_path / "features"
    _toy_features(4, 0).save(feature_path(feats, "ac", "train", 40))
    _toy_features(4, 1).save(feature_path(feats, "ac", "dev", 40))
    base = ["train", "--task", "ac", "--features", str(feats), "--out", str(tmp_path / "run")]
    assert acom(base + ["--split-layer", "42"]) == 2
    assert "split layer 42 does not exist" in capsys.readouterr().err
    assert acom(base + ["--codebooks", "64,1"]) == 2
    assert "2..65536" in capsys.readouterr().err
    assert acom(base + ["--codebooks", "sixty"]) == 2
    capsys.readouterr()
    assert acom(base + ["--distill", "-1"]) == 2
    assert "--distill -1.0: must be 0 (off) or a positive weight" in capsys.readouterr().err
    assert acom(base + ["--time-pool", "0"]) == 2
    assert "--time-pool 0: allowed 1..16 frames per code frame" in capsys.readouterr().err
    for c in ("0", "9999"):  # the codebook space has 1 channel at least and at most the cut's width
        assert acom(base + ["--code-dim", c]) == 2
        assert f"--code-dim {c}: allowed 1.." in capsys.readouterr().err
    assert acom(base + ["--split-epochs", "-1"]) == 2
    assert "epochs are counts, 0 or more" in capsys.readouterr().err
    for n in ("0", "33"):  # the server keeps a block at least, and at most 32
        assert acom(base + ["--server-blocks", n]) == 2
        assert f"--server-blocks {n}: allowed 1..32 with the cut after block 3 of recipe edge-ac" in (
            capsys.readouterr().err)
    assert acom(base + ["--server-blocks", "2", "--init", str(tmp_path / "full.pt")]) == 2
    assert "the model comes from --init as it is" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_server_blocks_count_the_blocks_after_the_cut() -> None:
    """--server-blocks N leaves N blocks after the cut wherever it is, by changing the wide (asr) or post-pool
    (ac) block count."""
    from acom.training.train_cli import _model_config
    for task, recipe, layer, n in (("asr", "edge-asr", 2, 6), ("asr", "edge-asr", 4, 3), ("asr", "edge-asr", 0, 5),
                                   ("ac", "edge-ac", 3, 5), ("ac", "edge-ac", 1, 3)):
        ns = SimpleNamespace(server_blocks=n, init=None, model=None, task=task)
        model = build_model(task, _model_config(ns, recipes.get(recipe), layer))
        assert len(model.blocks) - 1 - layer == n, (task, layer, n)
    ns = SimpleNamespace(server_blocks=None, init=None, model=None, task="asr")
    assert _model_config(ns, recipes.get("edge-asr-12hz"), 2) == recipes.get("edge-asr-12hz").model


def test_acom_train_with_no_split_epochs_stops_after_stage_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    feats = tmp_path / "features"
    _toy_features(4, 0).save(feature_path(feats, "ac", "train", 40))
    _toy_features(4, 1).save(feature_path(feats, "ac", "dev", 40))
    base = ["train", "--task", "ac", "--features", str(feats), "--out", str(tmp_path / "run"), "--split-epochs", "0",
            "--batch-frames", "1000", "--device", "cpu"]
    assert acom(base + ["--epochs", "1", "--server-blocks", "5"]) == 0
    assert (tmp_path / "run" / "full.pt").exists() and not (tmp_path / "run" / "split.pt").exists()
    _, payload = load_checkpoint(tmp_path / "run" / "full.pt", "ac")
    assert payload["rvq_config"] is None and payload["model_config"]["server_blocks"] == 5
    before = (tmp_path / "run" / "full.pt").read_bytes(), (tmp_path / "run" / "command.json").read_bytes()
    # --resume without the option that shaped the model: refused, naming it, and the checkpoint untouched
    assert acom(base + ["--epochs", "2", "--resume"]) == 2
    assert "was trained with server_blocks=5; this command builds server_blocks=3" in capsys.readouterr().err
    assert ((tmp_path / "run" / "full.pt").read_bytes(), (tmp_path / "run" / "command.json").read_bytes()) == before
    assert acom(base + ["--epochs", "2", "--resume", "--server-blocks", "5"]) == 0
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]


def test_rate_accuracy_report_over_two_seeds(tmp_path: Path) -> None:
    """The benchmark's JSON has the promised keys, averages over the runs, and checks the targets."""
    feats = tmp_path / "features"
    _toy_features(40, 0).save(feature_path(feats, "ac", "train", 40))
    _toy_features(10, 1).save(feature_path(feats, "ac", "dev", 40))
    _toy_features(10, 2).save(feature_path(feats, "ac", "test", 40))
    runs = []
    for seed in (0, 1):
        run = tmp_path / f"run{seed}"
        assert acom(["train", "--task", "ac", "--features", str(feats), "--out", str(run), "--epochs", "2",
                     "--split-epochs", "1", "--batch-frames", "2000", "--codebooks", "4,4", "--seed", str(seed),
                     "--device", "cpu"]) == 0
        runs.append(str(run))
    out = tmp_path / "reports"
    assert acom(["bench", "rate-accuracy", "--task", "ac", "--runs", *runs, "--features", str(feats),
                 "--out", str(out)]) == 0
    report = json.loads((out / "ac_rate_accuracy.json").read_text())
    assert {"task", "test_set", "full_model", "points", "targets"} <= set(report) and report["seeds"] == [0, 1]
    assert [p["n_q"] for p in report["points"]] == [1, 2]
    for p in report["points"]:
        assert {"system", "n_q", "codebook_sizes", "nominal_bps", "entropy_bps", "accuracy"} <= set(p)
        assert p["nominal_bps"] == 5.0 * 2 * p["n_q"] and len(p["accuracy_per_seed"]) == 2
        assert p["accuracy"] == pytest.approx(sum(p["accuracy_per_seed"]) / 2, abs=1e-4)
    assert all(isinstance(t["met"], bool) for t in report["targets"])
    assert (out / "ac_rate_accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_rate_accuracy_scores_a_shared_uncut_model_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Two cut systems trained from one uncut checkpoint (`--init`): the report's uncut rows count that model
    once (one seed), while each system's points keep their own run, and each run's training in all is named."""
    feats = tmp_path / "features"
    for name, n, seed in (("train", 40, 0), ("dev", 10, 1), ("test", 10, 2)):
        _toy_features(n, seed).save(feature_path(feats, "ac", name, 40))
    common = ["--features", str(feats), "--batch-frames", "2000", "--device", "cpu", "--seed", "0"]
    base = tmp_path / "base"
    assert acom(["train", "--task", "ac", "--out", str(base), "--epochs", "2", "--split-epochs", "1",
                 "--codebooks", "4,4", *common]) == 0
    k8 = tmp_path / "k8"
    assert acom(["train", "--task", "ac", "--out", str(k8), "--init", str(base / "full.pt"), "--epochs", "0",
                 "--split-epochs", "1", "--codebooks", "8", *common]) == 0
    assert (k8 / "full.pt").read_bytes() == (base / "full.pt").read_bytes()
    out = tmp_path / "reports"
    assert acom(["bench", "rate-accuracy", "--task", "ac", "--runs", str(base), str(k8), "--features", str(feats),
                 "--out", str(out)]) == 0
    report = json.loads((out / "ac_rate_accuracy.json").read_text())
    assert report["seeds"] == [0, 0]
    assert [r["seeds"] for r in report["full_model"]] == [[0]]  # scored once, not [0, 0]
    assert sorted((p["codebook_sizes"], p["seeds"]) for p in report["points"]) == [
        ([4], [0]), ([4, 4], [0]), ([8], [0])]
    # 2 stage-1 epochs, then 1 of stage 2 on top: the cut had more training than its reference, and says so
    assert report["training_epochs"] == [{"run": str(r), "seed": 0, "uncut": 2, "cut": 3} for r in (base, k8)]
    assert f"note: {k8}: the cut model had 3 epochs of training in all, the uncut model 2" in capsys.readouterr().out


def test_lm_weights_are_chosen_for_each_model_scored(monkeypatch: pytest.MonkeyPatch) -> None:
    """The uncut model and the split model at each number of stages get their own LM weights on dev (as each
    fine-tuned codec model does), not the uncut model's for all."""
    from acom.comparisons import rate_accuracy as ra

    full, split, lm = object(), object(), object()
    dev = SimpleNamespace(targets=["a b"])
    picks = {"full": (1.0, 0.0), 1: (0.3, 2.5), 2: (0.6, 1.0)}
    monkeypatch.setattr(ra, "infer", lambda model, fs, n_q=None: (["full" if model is full else n_q], None))
    monkeypatch.setattr(ra, "tune_lm_weights", lambda outputs, targets, lm_, dec: picks[outputs[0]])
    want = {None: (1.0, 0.0), 1: (0.3, 2.5), 2: (0.6, 1.0)}
    assert ra.lm_weights(lm, dev, full, range(1, 3), split) == {ra.BEAM_LM: want}
    assert ra.lm_weights(lm, dev, full, range(1, 3), split, (ra.BEAM_LM, ra.BEAM_LM_LEX)) == {
        ra.BEAM_LM: want, ra.BEAM_LM_LEX: want}
    assert set(ra.lm_weights(None, dev, full, range(1, 3), split)[ra.BEAM_LM].values()) == {(0.5, 1.0)}  # no LM


def test_eval_every_and_the_gpu_transfer_round_trip(tmp_path: Path) -> None:
    """`--eval-every 2`: dev metrics on epochs 2 and 3 (the last) only. bench/gpu_train.py packs a run with
    float16 weights and no optimizer state, and unpacks it to float32 checkpoints that load and agree."""
    import importlib.util
    feats = tmp_path / "features"
    _toy_features(40, 0).save(feature_path(feats, "ac", "train", 40))
    _toy_features(10, 1).save(feature_path(feats, "ac", "dev", 40))
    run = tmp_path / "run"
    assert acom(["train", "--task", "ac", "--features", str(feats), "--out", str(run), "--epochs", "3",
                 "--split-epochs", "1", "--batch-frames", "2000", "--codebooks", "8", "--device", "cpu",
                 "--eval-every", "2"]) == 0
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["epoch"], "dev_accuracy" in r) for r in log] == [
        ("full", 1, False), ("full", 2, True), ("full", 3, True), ("split", 1, True)]
    spec = importlib.util.spec_from_file_location("gpu_train", Path(__file__).parents[2] / "bench" / "gpu_train.py")
    gpu_train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_train)
    gpu_train.pack(run, tmp_path / "missing.log", tmp_path / "run.tar.xz")
    back = gpu_train.unpack(tmp_path / "run.tar.xz", tmp_path / "back")
    for name in ("full.pt", "split.pt"):
        a, pa = load_checkpoint(run / name, "ac")
        b, pb = load_checkpoint(back / name, "ac")
        assert "optimizer" not in pb and "float16" in pb["transfer"]
        for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert y.dtype == x.dtype, k
            torch.testing.assert_close(y, x.half().to(x.dtype), rtol=0, atol=0)
    assert (back / "log.jsonl").read_text() == (run / "log.jsonl").read_text()


def test_rate_accuracy_against_a_control(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`--uncut FULL.pt`: the cut compared with another uncut checkpoint (a control trained as long), whose rows,
    epochs and name the report holds; a count that does not match --runs, or a checkpoint that is not uncut,
    exits 2 naming it and writes nothing."""
    feats = tmp_path / "features"
    for name, n, seed in (("train", 40, 0), ("dev", 10, 1), ("test", 10, 2)):
        _toy_features(n, seed).save(feature_path(feats, "ac", name, 40))
    common = ["--features", str(feats), "--batch-frames", "2000", "--device", "cpu", "--seed", "0"]
    base, ctl = tmp_path / "base", tmp_path / "ctl"
    assert acom(["train", "--task", "ac", "--out", str(base), "--epochs", "2", "--split-epochs", "1",
                 "--codebooks", "4", *common]) == 0
    assert acom(["train", "--task", "ac", "--out", str(ctl), "--init", str(base / "full.pt"), "--epochs", "1",
                 "--split-epochs", "0", *common]) == 0
    capsys.readouterr()
    assert acom(["eval", "--task", "ac", "--checkpoint", str(ctl / "full.pt"), "--features", str(feats), "--json",
                 "--show", "0"]) == 0
    want = json.loads(capsys.readouterr().out)["results"][0]["accuracy"]
    out = tmp_path / "reports"
    bench = ["bench", "rate-accuracy", "--task", "ac", "--runs", str(base), "--features", str(feats)]
    assert acom(bench + ["--uncut", str(ctl / "full.pt"), "--out", str(out)]) == 0
    assert "note:" not in capsys.readouterr().out  # 3 epochs each: nothing to flag
    report = json.loads((out / "ac_rate_accuracy.json").read_text())
    assert report["uncut_models"] == [str(ctl / "full.pt")]
    assert report["training_epochs"] == [{"run": str(base), "seed": 0, "uncut": 3, "cut": 3}]
    assert report["full_model"][0]["accuracy"] == pytest.approx(want, abs=1e-4)

    refusals = {
        (str(ctl / "full.pt"), str(ctl / "full.pt")): "--uncut: 2 checkpoint(s) for 1 --runs folder(s)",
        (str(base / "split.pt"),): f"--uncut {base / 'split.pt'}: not an uncut ac checkpoint (task 'ac', a quantizer)",
        (str(tmp_path / "none.pt"),): f"{tmp_path / 'none.pt'}: checkpoint not found",
    }
    for paths, message in refusals.items():
        assert acom(bench + ["--uncut", *paths, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "bad").exists()
