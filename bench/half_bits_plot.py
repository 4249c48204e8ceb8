"""Plot: the half-the-bits operating points beside the earlier ones and the codec pipelines -> docs/half_bits.png.

Reads the rate-accuracy reports (no model is run). Left, sound classes on the 200-clip set (test, 2 seeds):
accuracy against bit/s for the earlier 5 frames/s points (reports/ac_rate_accuracy.json), the 2.5 frames/s
recipe (reports/ac-pool10/) and the codec pipelines (the uncut model on decoded audio, as trained and fine-tuned).
Right, speech: WER over the uncut model's WER against bit/s (beam+LM, test-clean): the 360-minute set's
points at 25 code frames/s (reports/asr-360-cut/, 2 seeds) and at 12.5 and 8.3 (reports/asr-360-half/, 2 seeds,
over their own uncut models; 12.5 with 30 and 40 stage-2 epochs in reports/asr-360-half-e30/ and
reports/asr-360-half-e40/, and from a stage 1 trained on the pooled cut in reports/asr-360-pool-stage1/, 1 x 64
with 40 stage-2 epochs, and reports/asr-360-pool-k56/, 1 x 56 with 50; 25 with
a rate term in the loss in reports/asr-360-rate-term/, seed 0), and the codec pipelines measured on the
90-minute set (reports/asr-edge-gpu3/, 3 seeds), each over its own set's uncut WER;
the targets at 60 and 40 bit/s drawn. Third, the points near 60 bit/s of those reports up close (test-clean,
greedy and beam+LM, each over its own uncut WER). Stars: cuts over an uncut model trained as many epochs
as the cut (reports/asr-360-control/ratios.json; reports/ac-pool10-control/ for sound classes).
The models are demonstrations trained on synthetic speech and sounds.

    python bench/half_bits_plot.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CODEC_COLORS = {"codec2": "C7", "opus": "C4", "mp3": "C5"}


def load(rel: str) -> dict:
    return json.loads((ROOT / "reports" / rel).read_text())


def codec_points(ax, points: list[dict], metric, test_set: str, decoder: str) -> None:
    """The codec pipelines of a report: one marker per codec setting, filled when fine-tuned."""
    seen = set()
    for p in points:
        if p.get("bench") != "codecs" or p["test_set"] != test_set or p["decoder"] != decoder or p.get("snr_db"):
            continue
        family = p["system"].split("-")[0]
        tuned = p.get("full_model") == "fine-tuned"
        label = f"{family} ({'fine-tuned' if tuned else 'as trained'})"
        ax.plot(p["measured_bps"], metric(p), "s" if tuned else "x", color=CODEC_COLORS.get(family, "C8"),
                ms=5, label=None if label in seen else label)
        seen.add(label)


def acom_line(ax, points: list[dict], metric, test_set: str, decoder: str, label: str, **kw) -> None:
    pts = sorted((p for p in points if p.get("system", "acom") == "acom" and p.get("bench") != "codecs"
                  and p["test_set"] == test_set and p["decoder"] == decoder), key=lambda p: p["entropy_bps"])
    ax.plot([p["entropy_bps"] for p in pts], [metric(p) for p in pts], **{"marker": "o", "ls": "-", **kw},
            label=label)
    for p in pts:
        ax.annotate(f"{p['entropy_bps']:.1f}", (p["entropy_bps"], metric(p)), textcoords="offset points",
                    xytext=(4, -10), fontsize=7)


def classes(ax) -> None:
    old, new = load("ac_rate_accuracy.json"), load("ac-pool10/ac_rate_accuracy.json")
    acc = lambda p: 100 * p["accuracy"]  # noqa: E731
    codec_points(ax, old["points"], acc, "test", "argmax")
    acom_line(ax, old["points"], acc, "test", "argmax", "ACoM 5 frames/s, 1 and 2 x 64 (earlier)", color="C0")
    acom_line(ax, new["points"], acc, "test", "argmax", "ACoM 2.5 frames/s, 1 x 64 (edge-ac-pool10)",
              color="C3")
    for rep, color, name in ((old, "C0", "5 frames/s"), (new, "C3", "2.5 frames/s")):
        full = next(f for f in rep["full_model"] if f["test_set"] == "test" and f.get("snr_db") is None)
        ax.axhline(100 * full["accuracy"], ls="--", lw=1, color=color, label=f"uncut, {name}")
        ax.axhline(100 * full["accuracy"] - 1, ls=":", lw=1, color=color)
    ctl = load("ac-pool10-control/ac_rate_accuracy.json")  # retrained cuts beside uncut models trained as long
    acom_line(ax, ctl["points"], acc, "test", "argmax", "ACoM 2.5 frames/s, retrained", color="k", marker="*",
              ls="none")
    full = next(f for f in ctl["full_model"] if f["test_set"] == "test" and f.get("snr_db") is None)
    ax.axhline(100 * full["accuracy"], ls="-.", lw=1, color="k", label="uncut trained as long as the cut (60 epochs)")
    low = [p["accuracy"] for p in old["points"] if p.get("bench") == "codecs" and p["test_set"] == "test"
           and not p.get("snr_db") and p["accuracy"] < 0.84]
    if low:
        ax.text(6, 84.5, f"{len(low)} codec settings below the axis ({100 * min(low):.0f}-{100 * max(low):.0f}%)",
                fontsize=7, color="C7")
    ax.axvspan(1, 10, color="C2", alpha=0.08, label="target: <= 10 bit/s, within 1 point (dotted)")
    ax.set(xscale="log", xlim=(5, 3e4), ylim=(84, 100), xlabel="bit/s (ACoM: range-coded; codecs: measured)",
           ylabel="accuracy, %", title="Sound classes (200-clip set, test, 2 seeds)")
    ax.legend(fontsize=7, loc="lower right")


# The 12.5 code frames/s speech reports (asr-360-half also holds the 8.3 frames/s point): (folder, what differs,
# color, marker), drawn in both speech panels.
HALF_RATE = (("asr-360-half", "1 x 64, 10 stage-2 epochs", "C3", "o"),
             ("asr-360-half-e30", "1 x 64, 30 stage-2 epochs", "C1", "o"),
             ("asr-360-half-e40", "1 x 64, 40 stage-2 epochs", "C9", "s"),
             ("asr-360-pool-stage1", "1 x 64, stage 1 pooled (--pool-stage1), 40 stage-2 epochs", "C5", "^"),
             ("asr-360-pool-k56", "1 x 56, stage 1 pooled, 50 stage-2 epochs", "C6", "v"))


def uncut_wer(rep: dict, test_set: str, decoder: str) -> float:
    """The uncut model's WER in a rate-accuracy report, which each of its points is divided by."""
    return next(f["wer"] for f in rep["full_model"] if f["test_set"] == test_set and f["decoder"] == decoder
                and f.get("snr_db") is None)


def speech(ax) -> None:
    cut, codecs = load("asr-360-cut/asr_rate_accuracy.json"), load("asr-edge-gpu3/asr_rate_accuracy.json")
    dec, ts = "beam+lm", "test-clean"

    def over(rep):
        base = uncut_wer(rep, ts, dec)
        return lambda p: p["wer"] / base
    codec_points(ax, codecs["points"], over(codecs), ts, dec)
    acom_line(ax, cut["points"], over(cut), ts, dec, "ACoM 25 frames/s, 1 x 512 and 1 x 64 (360-minute set)",
              color="C0")
    for rel, what, color, marker in HALF_RATE:
        rep = load(f"{rel}/asr_rate_accuracy.json")  # each point over its own seeds' uncut WER
        label = ("ACoM 12.5 and 8.3 code frames/s, 1 x 64 and 1 x 48 (--time-pool 2 and 3, 10 stage-2 epochs, "
                 "360-minute set)" if rel == "asr-360-half" else f"ACoM 12.5 code frames/s, {what}")
        acom_line(ax, rep["points"], over(rep), ts, dec, label, color=color, marker=marker)
    rate = load("asr-360-rate-term/asr_rate_accuracy.json")
    acom_line(ax, rate["points"], over(rate), ts, dec, "ACoM 25 frames/s, 1 x 64 with a rate term "
              "(--rate-weight 0.1, 10 epochs, seed 0)", color="C4", marker="D", ls="none")
    control_stars(ax, ts, dec)
    ax.axhline(1.0, ls="--", lw=1, color="k", label="uncut model")
    for bps, ratio in ((60, 1.10), (40, 1.25)):
        ax.plot([1, bps, bps], [ratio, ratio, 0.9], color="C2", lw=1)
        ax.annotate(f"target: <= {bps} bit/s, <= {ratio}x", (21, ratio), xytext=(0, 3), textcoords="offset points",
                    fontsize=7, color="C2")
    ax.set(xscale="log", xlim=(20, 3e4), ylim=(0.95, 2.1), xlabel="bit/s (ACoM: range-coded; codecs: measured)",
           ylabel="WER / uncut WER (beam+LM, test-clean)",
           title="Speech (ACoM: 360-minute set; codecs: 90-minute set)")
    ax.legend(fontsize=6.5, loc="upper right")


def control_stars(ax, test_set: str, decoder: str, near: bool = False) -> None:
    """The cuts of reports/asr-360-control/ratios.json over an uncut model trained as long (the control)."""
    labelled = False
    for entry in load("asr-360-control/ratios.json").values():
        for r in entry["rows"]:
            if r["test_set"] != test_set or r["decoder"] != decoder or (near and not 56 <= r["entropy_bps"] <= 63):
                continue
            ax.plot(r["entropy_bps"], r["ratio_to_control"], "*", color="k", mfc="k" if decoder != "greedy" else
                    "none", ms=10, label=None if labelled else
                    f"over an uncut model trained as long ({decoder})")
            labelled = True


def near_60(ax) -> None:
    """The points near 60 bit/s up close: test-clean, greedy (open) and beam+LM (filled); the stars over the
    control include 8.3 code frames/s and the cut after block 4."""
    ts = "test-clean"
    for rel, what, color, marker in HALF_RATE:
        rep = load(f"{rel}/asr_rate_accuracy.json")
        for dec, fill in (("greedy", "none"), ("beam+lm", color)):
            base = uncut_wer(rep, ts, dec)
            for p in rep["points"]:
                if p["test_set"] == ts and p["decoder"] == dec and p["frame_rate"] == 12.5:
                    ax.plot(p["entropy_bps"], p["wer"] / base, marker, color=color, mfc=fill, ms=7,
                            label=f"{what} ({dec})")
    for dec in ("greedy", "beam+lm"):
        control_stars(ax, ts, dec, near=True)
    ax.axvline(60, color="C2", lw=1)
    ax.axhline(1.10, color="C2", lw=1, label="target: <= 60 bit/s, <= 1.1x")
    ax.axhline(1.0, ls="--", lw=1, color="k")
    ax.set(xlim=(56, 63), ylim=(0.98, 1.3), xlabel="bit/s, range-coded (test-clean)",
           ylabel="WER / uncut WER (test-clean)", title="Speech near 60 bit/s, up close")
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)


def main() -> int:
    fig, axes = plt.subplots(1, 3, figsize=(19, 6), gridspec_kw={"width_ratios": [1, 1.15, 0.85]})
    classes(axes[0])
    speech(axes[1])
    near_60(axes[2])
    fig.suptitle("Half the bits (demonstration models trained on synthetic speech and sounds)", fontsize=10)
    fig.tight_layout()
    out = ROOT / "docs" / "half_bits.png"
    fig.savefig(out, dpi=110)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
