"""Benchmark: how fast `acom data synth-speech` and `synth-urban` generate, as a real-time factor.

Target: 60 minutes of speech in at most 15 minutes on this machine's 2 cores, i.e. a real-time
factor (wall seconds per second of audio generated) of at most 0.25. Writes reports/synth_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from acom.corpora.synth.speech import SpeechSynthConfig, generate_speech

TARGET_RTF = 15 / 60


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--minutes", type=float, default=60.0, help="minutes of clean speech to generate")
    p.add_argument("--clips-per-class", type=int, default=100, help="urban clips per class to generate")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", type=Path, default=Path("reports/synth_speed.json"))
    ns = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="acom-bench-"))
    try:
        t0 = time.perf_counter()
        m = generate_speech(tmp / "speech", SpeechSynthConfig(minutes=ns.minutes, seed=0, workers=ns.workers))
        speech_wall = time.perf_counter() - t0
        # everything written, test-noisy included (it is rendered in the same pass as test-clean)
        audio_min = sum(s["minutes"] for s in m["subsets"].values())
        clean_min = sum(m["subsets"][s]["minutes"] for s in ("train", "dev", "test-clean"))
        from acom.corpora.synth.urban import generate_urban
        t0 = time.perf_counter()
        u = generate_urban(tmp / "urban", clips_per_class=ns.clips_per_class, seed=0, workers=ns.workers)
        urban_wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "machine": {"cpus": os.cpu_count(), "workers": ns.workers, "python": platform.python_version()},
        "speech": {"clean_minutes": round(clean_min, 2), "minutes_written": round(audio_min, 2),
                   "wall_s": round(speech_wall, 1), "rtf": round(speech_wall / (clean_min * 60), 4),
                   "minutes_for_60_min": round(speech_wall / clean_min, 2), "target_rtf": TARGET_RTF,
                   "meets_target": speech_wall / (clean_min * 60) <= TARGET_RTF},
        "urban": {"clips": ns.clips_per_class * 10, "audio_minutes": round(u.get("total_seconds", 0) / 60, 2),
                  "wall_s": round(urban_wall, 1)},
    }
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    ns.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
