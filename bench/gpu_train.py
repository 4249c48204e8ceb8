"""Train several ASR runs at once on one GPU within a fixed time budget (a leased GPU machine, docs/training.md).

The runs share the GPU, so an epoch's time is only known with all of them running: each run first trains
two calibration epochs together with the others, then the number of stage-1 epochs that fits the budget
is fixed (and recorded in the run's command.json, so the run is reproducible with plain `acom train`), and
the real runs start together. Afterwards each run folder is packed into one tar file with its checkpoints'
weights in float16 and without optimizer state (small enough to copy back); `--unpack` restores them here.

    python bench/gpu_train.py --features feats --out $OUT --budget-s 400 \\
        --run rpi-s0:rpi-asr:0 --run edge-s0:edge-asr:0
    python bench/gpu_train.py --unpack $OUT/rpi-s0.tar.xz --into runs/
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def train_cmd(recipe: str, seed: int, out: Path, features: Path, epochs: int, split_epochs: int,
              codebooks: str, eval_every: int) -> list[str]:
    return [sys.executable, "-m", "acom.training.train_cli", "--task", "asr", "--recipe", recipe,
            "--features", str(features), "--out", str(out), "--epochs", str(epochs), "--split-epochs",
            str(split_epochs), "--codebooks", codebooks, "--seed", str(seed), "--eval-every", str(eval_every)]


def start(cmds: dict[str, list[str]], logs: Path, threads: int) -> dict[str, subprocess.Popen]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    logs.mkdir(parents=True, exist_ok=True)
    return {name: subprocess.Popen(cmd, env=env, stdout=(logs / f"{name}.log").open("w"), stderr=subprocess.STDOUT,
                                   start_new_session=True) for name, cmd in cmds.items()}


def stop(procs: dict[str, subprocess.Popen]) -> None:
    for p in procs.values():
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    for p in procs.values():
        p.wait()


def log_rows(run: Path) -> list[dict]:
    f = run / "log.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()] if f.is_file() else []


def calibrate(runs: list[tuple[str, str, int]], args, tmp: Path) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per stage-1 epoch of each run while all run together (the second epoch: the first warms up),
    and seconds before the first epoch starts."""
    cmds = {n: train_cmd(r, s, tmp / n, args.features, 50, 1, args.codebooks, 1000) for n, r, s in runs}
    procs = start(cmds, tmp / "logs", args.threads)
    t0, secs, startup = time.time(), {}, {}
    while len(secs) < len(runs) and time.time() - t0 < args.calibrate_s:
        time.sleep(0.5)
        for n, _, _ in runs:
            rows = [r for r in log_rows(tmp / n) if r["stage"] == "full"]
            if rows and n not in startup:  # loading, normalization, model build: paid again by the real run
                startup[n] = time.time() - t0 - rows[0]["seconds"]
            if len(rows) >= 2:
                secs[n] = rows[1]["seconds"]
            elif procs[n].poll() is not None:
                stop(procs)
                raise SystemExit(f"calibration of {n} failed:\n" + (tmp / "logs" / f"{n}.log").read_text()[-3000:])
    stop(procs)
    if len(secs) < len(runs):
        raise SystemExit(f"calibration took over {args.calibrate_s} s: {secs}")
    return secs, startup


def pack(run: Path, out_log: Path, dest: Path) -> None:
    """run/{full,split}.pt with float16 weights and no optimizer state, with the logs, into one tar."""
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(dest, "w:xz") as tar:
        for name in ("full.pt", "split.pt"):
            if (run / name).is_file():
                payload = torch.load(run / name, map_location="cpu", weights_only=True)
                payload.pop("optimizer", None)
                payload.pop("scheduler", None)
                payload["state_dict"] = {k: v.half() if v.is_floating_point() else v
                                         for k, v in payload["state_dict"].items()}
                payload["transfer"] = "weights rounded to float16 to copy them off the GPU machine"
                torch.save(payload, Path(tmp) / name)
                tar.add(Path(tmp) / name, arcname=f"{run.name}/{name}")
        for name in ("log.jsonl", "command.json"):
            if (run / name).is_file():
                tar.add(run / name, arcname=f"{run.name}/{name}")
        if out_log.is_file():  # the end of the run's output (errors, if any)
            (Path(tmp) / "train.out").write_text(out_log.read_text(errors="replace")[-20000:])
            tar.add(Path(tmp) / "train.out", arcname=f"{run.name}/train.out")


def unpack(tar_path: Path, into: Path) -> Path:
    """Restore a packed run folder under `into` (weights back to float32)."""
    with tarfile.open(tar_path) as tar:
        names = tar.getnames()
        tar.extractall(into, filter="data")
    run = into / Path(names[0]).parts[0]
    for name in ("full.pt", "split.pt"):
        if (run / name).is_file():
            payload = torch.load(run / name, map_location="cpu", weights_only=True)
            payload["state_dict"] = {k: v.float() if v.is_floating_point() else v
                                     for k, v in payload["state_dict"].items()}
            torch.save(payload, run / name)
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", type=Path, help="folder of asr-{train,dev}-40.safetensors")
    ap.add_argument("--out", type=Path, help="where the packed runs and logs go")
    ap.add_argument("--run", action="append", default=[], help="NAME:RECIPE:SEED (repeat)")
    ap.add_argument("--budget-s", type=float, default=400, help="seconds for calibration, training and packing")
    ap.add_argument("--split-epochs", type=int, default=12)
    ap.add_argument("--codebooks", default="256,64,64")
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--max-epochs", type=int, default=400)
    ap.add_argument("--split-cost", type=float, default=1.4, help="a stage-2 epoch's time over a stage-1 epoch's")
    ap.add_argument("--reserve-s", type=float, default=60, help="for quantizer init, finalize and packing")
    ap.add_argument("--calibrate-s", type=float, default=120)
    ap.add_argument("--threads", type=int, default=3, help="CPU threads per run")
    ap.add_argument("--unpack", type=Path, nargs="*", help="packed runs to restore (with --into)")
    ap.add_argument("--into", type=Path, default=ROOT / "runs")
    args = ap.parse_args(argv)
    if args.unpack:
        for t in args.unpack:
            print(f"{t} -> {unpack(t, args.into)}")
        return 0
    deadline = time.time() + args.budget_s
    runs = [(n, r, int(s)) for n, r, s in (spec.split(":") for spec in args.run)]
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-train-"))
    secs, startup = calibrate(runs, args, work / "cal")
    left = deadline - time.time() - args.reserve_s
    epochs = {n: max(1, min(args.max_epochs, int((left - startup[n]) / secs[n] - args.split_epochs * args.split_cost)))
              for n, _, _ in runs}
    plan = {"epoch_s": secs, "startup_s": {n: round(v, 1) for n, v in startup.items()}, "epochs": epochs,
            "split_epochs": args.split_epochs, "seconds_left": round(left)}
    print(json.dumps(plan), flush=True)
    cmds = {n: train_cmd(r, s, work / n, args.features, epochs[n], args.split_epochs, args.codebooks,
                         args.eval_every) for n, r, s in runs}
    procs = start(cmds, work / "logs", args.threads)
    while any(p.poll() is None for p in procs.values()) and time.time() < deadline - 15:
        time.sleep(2)
    late = [n for n, p in procs.items() if p.poll() is None]
    stop(procs)
    plan["unfinished"] = late
    plan["returncodes"] = {n: p.returncode for n, p in procs.items()}
    (args.out / "plan.json").write_text(json.dumps(plan, indent=1))
    with ThreadPoolExecutor() as pool:  # xz: a run of 4 M parameters fits the 16 MiB a returned file may have
        list(pool.map(lambda n: pack(work / n, work / "logs" / f"{n}.log", args.out / f"{n}.tar.xz"),
                      [n for n, _, _ in runs]))
    print(json.dumps(plan), flush=True)
    return 0 if not late else 1


if __name__ == "__main__":
    sys.exit(main())
