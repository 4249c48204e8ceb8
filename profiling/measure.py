"""Measured execution per second of audio, counted by a QEMU plugin (c/test/qemu_insn.c): guest instructions,
not cycles (QEMU models no timing), so a core that retires at most `issue width` instructions a cycle needs at
least instructions / width cycles: a lower bound on the share of its clock.

- Cortex-M bundles: the firmware's device loop (c/app/device_app.c) on noise, once per stage (the audio alone,
  + the front end, + the graph, + packets); a stage's cost is the difference.
- Linux bundles: acom-edge under qemu-aarch64 on 1 and 4 windows; the difference per second of audio.
- Codec2, the codec pipeline's encoder: Debian's ``c2enc`` under ``qemu-x86_64`` on 1 and 5 s of speech-band
  noise: an x86-64 count, a proxy for an Arm core's (said so wherever it is shown).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from acom.boards import Board
from acom.errors import AcomError
from acom.runtime.manifest import Manifest

ISSUE_WIDTH = {"Cortex-M4F": 1, "Cortex-M7": 2, "Cortex-M55": 1, "Cortex-A72": 3, "Cortex-A76": 4}
STAGES = ("audio", "front_end", "graph", "packets")


def issue_width(board: Board) -> int:
    """Instructions the board's core retires a cycle at most (its decode width)."""
    for core, width in ISSUE_WIDTH.items():
        if board.core.startswith(core):
            return width
    raise AcomError(f"board {board.name}: core {board.core!r} has no known issue width (known: "
                    f"{', '.join(ISSUE_WIDTH)})")


def device_instructions(bundle: Path, manifest: Manifest, board: Board, work: Path) -> dict:
    """{"per_s": instructions per second of audio, "stages": per stage (MCU) or {}, "how": what ran}."""
    if board.kind == "linux":
        from acom.firmware_host.edge_runner import count_instructions
        counted = count_instructions(board.name, bundle, work)
        return {"per_s": counted["per_s_audio"], "stages": {}, "startup": counted["startup"],
                "how": f"acom-edge under qemu-aarch64 -cpu {board.emulator.cpu}, 1 vs 4 windows of noise"}
    from acom.firmware_host.cbuild import insn_plugin
    from acom.firmware_host.device_c import app_instructions
    window = manifest.graph.window_samples if manifest.frontend.runs_in == "graph" else \
        round(board.window_s * manifest.sample_rate)
    pcm = (np.random.default_rng(0).standard_normal(2 * window) * 3000).astype(np.int16)
    plugin, seconds = insn_plugin(work), len(pcm) / manifest.sample_rate
    totals = [app_instructions(board.name, bundle, [(0, pcm)], stage, False, plugin, work)[0]
              for stage in range(len(STAGES) - 1)]
    last, functions = app_instructions(board.name, bundle, [(0, pcm)], len(STAGES) - 1, False, plugin, work,
                                       by_function=True)
    totals.append(last)
    per_stage = {name: (totals[i] - totals[i - 1]) / seconds for i, name in enumerate(STAGES) if i}
    top = dict(list(functions.items())[:12])
    return {"per_s": (totals[-1] - totals[0]) / seconds, "stages": per_stage,
            "functions_per_s": {k: v / seconds for k, v in top.items()},
            "how": f"the firmware under qemu-system-arm -machine {board.emulator.machine}, 2 windows of noise"}


def codec2_instructions(mode: str, work: Path, sample_rate: int = 8000) -> float:
    """x86-64 instructions per second of audio of Debian's c2enc in `mode` (e.g. "1200"), under qemu-x86_64."""
    from acom.firmware_host.cbuild import count_instructions, insn_plugin, tool
    counts = []
    for seconds in (1, 5):
        raw = work / f"codec2-{seconds}.raw"
        noise = np.random.default_rng(1).standard_normal(seconds * sample_rate) * 3000
        raw.write_bytes(noise.astype("<i2").tobytes())
        cmd = [tool("qemu-x86_64"), tool("c2enc"), mode, str(raw), str(work / "out.bit")]
        counts.append(count_instructions(cmd, insn_plugin(work), timeout=300, program=1)[1])
    return (counts[1] - counts[0]) / 4


def etdump_operators(bundle: Path, manifest: Manifest, work: Path, top: int = 12) -> dict:
    """ExecuTorch's own per-operator times (an ETDump from acom-edge --profile, built for this machine, read by
    executorch's Inspector) on 4 windows of noise: {"ms_per_s_audio": {operator: ms per second of audio, the
    largest `top`}, "total_ms_per_s_audio"}. This machine's x86 times: the profile's shape, not a Pi's speed."""
    import soundfile as sf
    from executorch.devtools import Inspector

    from acom.firmware_host.edge_runner import build_edge, edge_command
    wav, dump = work / "etdump-noise.wav", work / "edge.etdp"
    seconds = 4 * manifest.graph.window_samples / manifest.sample_rate
    noise = np.random.default_rng(2).standard_normal(4 * manifest.graph.window_samples) * 3000
    sf.write(wav, noise.astype(np.int16), manifest.sample_rate, subtype="PCM_16")
    run = subprocess.run([*edge_command("host", build_edge("host")), "--bundle", str(bundle), "--udp",
                          "127.0.0.1:9", "--profile", str(dump), str(wav)], capture_output=True, text=True,
                         timeout=300)
    if run.returncode != 0:
        raise AcomError(f"acom-edge --profile: exit {run.returncode}: {run.stderr[-300:]}")
    totals: dict[str, float] = {}
    for block in Inspector(etdump_path=str(dump)).event_blocks:
        if block.name != "Execute":
            continue
        for e in block.events:
            if e.perf_data is not None and e.name not in ("OPERATOR_CALL", "Method::execute"):
                totals[e.name] = totals.get(e.name, 0.0) + sum(e.perf_data.raw)
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])
    return {"ms_per_s_audio": {k: round(v / seconds, 4) for k, v in ranked[:top]},
            "total_ms_per_s_audio": round(sum(v for k, v in totals.items() if k != "DELEGATE_CALL") / seconds, 3)}
