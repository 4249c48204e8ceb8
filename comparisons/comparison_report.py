"""The comparison's targets, table (reports/<task>_comparison.md) and plot, from the rate-accuracy report."""

from __future__ import annotations

from pathlib import Path

from acom.core.tasks import TASKS

TAG = "codecs"
CODEC_CEILING_BPS = 3200  # "every codec pipeline at or below 3.2 kbit/s" (configured rate)
ACOM_BPS = {"asr": 150, "ac": 50}  # ACoM's budget in the targets (entropy-coded bit/s)
EDGE_SHARE = 0.01  # the edge head's MAC/s as a share of a neural codec encoder's


def conditions(report: dict) -> list[tuple[str, float | None]]:
    """(test set, SNR) pairs present: the clean test set first, then test-noisy from high to low SNR."""
    clean = report["test_set"]
    snrs = sorted({p["snr_db"] for p in report["points"] if p.get("test_set") == "test-noisy"}, reverse=True)
    return [(clean, None)] + [("test-noisy", s) for s in snrs]


def cond_name(cond: tuple[str, float | None]) -> str:
    return cond[0] if cond[1] is None else f"{cond[1]:g} dB"


def _name(task: str) -> str:
    """The metric as people write it: "WER", "accuracy"."""
    return TASKS[task].unit.removesuffix(" %")


def metric_of(task: str) -> str:
    return TASKS[task].metric


def main_decoder(task: str) -> str:
    return TASKS[task].main_decoder


def _in(p: dict, cond: tuple[str, float | None], decoder: str) -> bool:
    return p.get("test_set") == cond[0] and p.get("snr_db") == cond[1] and p.get("decoder") == decoder


def bps(p: dict) -> float:
    """What a point sends: entropy-coded bit/s (ACoM) or the codec's measured payload bit/s."""
    return p["entropy_bps"] if p.get("system") == "acom" else p["measured_bps"]


def check_targets(report: dict) -> list[dict]:
    """Issue 4's targets against the report's numbers: ACoM at its budget against every codec pipeline at or
    below 3.2 kbit/s (as trained and fine-tuned) on the clean test set and at 5 dB, and the edge head's MAC/s
    against the neural codec encoders'."""
    task = report["task"]
    metric, better = metric_of(task), TASKS[task].best
    out = []
    decoders = TASKS[task].decoders
    for dec in decoders:
        for cond in [(report["test_set"], None), ("test-noisy", 5.0)]:
            pts = [p for p in report["points"] if _in(p, cond, dec)]
            acom = [p for p in pts if p.get("system") == "acom" and p["entropy_bps"] <= ACOM_BPS[task]]
            codecs = [p for p in pts if p.get("family") and p["nominal_bps"] <= CODEC_CEILING_BPS]
            way = "lower" if TASKS[task].lower_is_better else "higher"
            name = (f"ACoM <= {ACOM_BPS[task]} bit/s {way} {_name(task)} than "
                    f"every codec pipeline <= 3.2 kbit/s, {cond_name(cond)}, {dec}")
            if not acom or not codecs:
                cheapest = min((p for p in pts if p.get("system") == "acom"), key=bps, default=None)
                note = "no points measured" if cheapest is None or not codecs else (
                    f"no ACoM point at <= {ACOM_BPS[task]} bit/s: the cheapest, n_q={cheapest['n_q']}, sends "
                    f"{bps(cheapest):.1f} bit/s ({metric} {cheapest[metric]:.4f}; best codec "
                    f"{better(codecs, key=lambda p: p[metric])[metric]:.4f})")
                out.append({"bench": TAG, "target": name, "value": None, "bound": None, "met": False, "note": note})
                continue
            a = better(acom, key=lambda p: p[metric])
            c = better(codecs, key=lambda p: p[metric])
            met = TASKS[task].better(a[metric], c[metric])
            out.append({"bench": TAG, "target": name, "value": a[metric], "bound": c[metric], "met": met,
                        "note": f"ACoM n_q={a['n_q']} at {a['entropy_bps']:.0f} bit/s; best codec "
                                f"{c['system']} ({c['full_model']} model) at {c['measured_bps']:.0f} bit/s"})
    costs = report.get("device_cost", {})
    edge = costs.get("acom_edge_macs_per_s", {})
    if edge:
        e = min(edge.values())
        for system in sorted({r["system"] for r in costs.get("neural_codecs", [])}):
            enc = min(r["encoder_macs_per_s"] for r in costs["neural_codecs"] if r["system"] == system)
            out.append({"bench": TAG, "target": f"ACoM edge head MAC/s <= 1% of the {system} encoder's",
                        "value": round(e / enc, 5), "bound": EDGE_SHARE, "met": e / enc <= EDGE_SHARE,
                        "note": f"{e / 1e6:.2f} M against {enc / 1e9:.2f} G MAC/s"})
    return out


def _fmt(task: str, v: float | None) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}"


def _table(report: dict, dec: str) -> list[str]:
    task, metric = report["task"], metric_of(report["task"])
    conds = conditions(report)
    head = ["system", "model", "bit/s", "on the wire"] + [cond_name(c) for c in conds]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    full = {(r["test_set"], r.get("snr_db")): r for r in report["full_model"] if r["decoder"] == dec}
    vals = [_fmt(task, full.get(c, {}).get(metric)) for c in conds]
    lines.append("| uncut model | - | (audio) | - | " + " | ".join(vals) + " |")
    keys = []
    for p in report["points"]:
        k = (p.get("system"), p.get("full_model"), p.get("n_q"))
        if k not in keys and p.get("decoder") == dec:
            keys.append(k)
    for system, model, n_q in keys:
        by_cond = {(p["test_set"], p.get("snr_db")): p for p in report["points"] if p.get("decoder") == dec
                   and (p.get("system"), p.get("full_model"), p.get("n_q")) == (system, model, n_q)}
        clean = by_cond.get(conds[0]) or next(iter(by_cond.values()))
        label = f"acom n_q={n_q}" if system == "acom" else system
        rate = f"{bps(clean):.0f} | " + (f"{clean['wire_bps']:.0f}" if "wire_bps" in clean else "-")
        vals = [_fmt(task, by_cond.get(c, {}).get(metric)) for c in conds]
        lines.append(f"| {label} | {model or 'split'} | {rate} | " + " | ".join(vals) + " |")
    return lines


def write_markdown(report: dict, path: Path) -> None:
    """reports/<task>_comparison.md: targets, the metric per system and condition, the device's cost."""
    task = report["task"]
    unit = TASKS[task].unit
    lines = [f"# {task}: ACoM against codec pipelines", "",
             f"Runs: {', '.join(report['runs'])} (seeds {report['seeds']}; metrics are means over seeds). "
             "Written by `acom bench codecs`; the numbers are in "
             f"`{task}_rate_accuracy.json`. Bit/s: ACoM's codes after the range coder (entropy_bps); a codec's "
             "payload bits as sent (measured_bps), on the clean test set. On the wire (wire_bps, in the JSON): "
             "both framed as acom's packets (wire v3, 1 s packets, no key, a full packet every 8), which adds "
             "the same bytes a packet to ACoM's codes and to a codec's bitstream ('-': a report written before "
             "it was measured). 'as-trained': the full model as trained on clean audio; 'fine-tuned': the same "
             "model fine-tuned on decoded audio of that codec family.", "", "## Targets", "",
             "| target | value | bound | met | note |", "|---|---|---|---|---|"]
    for t in report["targets"]:
        lines.append(f"| {t['target']} | {t['value']} | {t['bound']} | {'yes' if t['met'] else 'NO'} | "
                     f"{t.get('note', '')} |")
    sizes = {cond_name((p["test_set"], p.get("snr_db"))): p["items"] for p in report["points"] if "items" in p}
    lines += ["", "Items per column: " + ", ".join(f"{k} {v}" for k, v in sizes.items()) + ". Each SNR column is "
              "the part of test-noisy mixed at that SNR, not the same items as the clean column: compare systems "
              "within a column."]
    decoders = (main_decoder(task), *(d for d in TASKS[task].decoders if d != main_decoder(task)))
    for dec in decoders:
        lines += ["", f"## {unit}, {dec} decoding", ""] + _table(report, dec)
    costs = report.get("device_cost", {})
    if costs:
        lines += ["", "## Device cost per second of audio", "",
                  f"Codec encoders: CPU time measured here (one x86 thread, median of 3 over "
                  f"{costs['audio_seconds_timed']} s of the test set). Neural codec encoders and the ACoM edge "
                  "head: multiply-accumulates (the edge head with a real-FFT front-end, its layers and its "
                  "nearest-codeword search).", "", "| device work | cost |", "|---|---|"]
        for system, s in costs["codec_encoder_cpu_s_per_s"].items():
            lines.append(f"| {system} encoder | {1000 * s:.2f} ms CPU |")
        for r in costs["neural_codecs"]:
            lines.append(f"| {r['system']} encoder + RVQ at {r['bitrate_bps'] / 1000:g} kbit/s (n_q={r['n_q']}) | "
                         f"{r['device_macs_per_s'] / 1e9:.3f} G MAC (encoder {r['encoder_macs_per_s'] / 1e9:.3f} G) |")
        for n_q, m in costs["acom_edge_macs_per_s"].items():
            lines.append(f"| ACoM edge head, n_q={n_q} | {float(m) / 1e6:.2f} M MAC |")
    path.write_text("\n".join(lines) + "\n")


def plot(report: dict, path: Path) -> None:
    """Metric against bit/s, one panel per condition: ACoM, every codec (as trained and fine-tuned), uncut."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    task, metric, dec = report["task"], metric_of(report["task"]), main_decoder(report["task"])
    conds = conditions(report)
    cols = min(3, len(conds))
    rows = -(-len(conds) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False, sharey=True)
    colors = {"acom": "C3", "codec2": "C0", "opus": "C2", "mp3": "C1"}
    for ax, cond in zip(axes.flat, conds):
        for r in report["full_model"]:
            if (r["test_set"], r.get("snr_db"), r["decoder"]) == (*cond, dec):
                ax.axhline(r[metric], ls="--", lw=1, color="k", label="uncut model (audio)")
        pts = [p for p in report["points"] if _in(p, cond, dec)]
        acom = sorted((p for p in pts if p.get("system") == "acom"), key=bps)
        ax.plot([bps(p) for p in acom], [p[metric] for p in acom], "o-", color=colors["acom"], label="ACoM")
        for fam in ("codec2", "opus", "mp3"):
            for model, style in (("as-trained", "s-"), ("fine-tuned", "^:")):
                line = sorted((p for p in pts if p.get("family") == fam and p.get("full_model") == model), key=bps)
                if line:
                    ax.plot([bps(p) for p in line], [p[metric] for p in line], style, color=colors[fam],
                            ms=4, label=f"{fam} + full model {model}")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_title(cond_name(cond))
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xlabel("bit/s (log scale)")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{_name(task)} ({dec})")
    for ax in list(axes.flat)[len(conds):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower right", fontsize=8, frameon=True)
    fig.suptitle(f"{task}: ACoM against codec pipelines ({len(set(report['seeds']))} seed(s))")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
