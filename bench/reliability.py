"""The reliability report: each hostile or careless probe of the server, the tests that reproduce it (run
now, pass or fail recorded), and the measured targets from the other benchmarks' reports (coverage-guided
fuzzing, the memory ceiling, overload). Writes reports/reliability.json and reports/reliability.md.

    python bench/reliability.py            # runs the probes' tests (about 2 minutes), reads the reports
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
S, E, W = "tests/runtime/test_server.py::", "tests/runtime/test_engine.py::", "tests/runtime/test_wire_short.py::"

PROBES = [  # (what was reproduced on loopback, the tests that failed before and pass now)
    ("one 36-byte packet whose first frame jumps 10,000 frames took the server from 0.25 to 4.3 GB",
     [S + "test_packets_that_claim_too_many_frames_are_refused_before_any_work",
      E + "test_a_long_gap_runs_as_gap_keep_frames_with_the_same_transcript",
      E + "test_a_long_gap_gives_the_classifier_the_same_labels",
      "tests/runtime/test_slot_engine.py::test_a_long_gap_gives_what_the_per_stream_engine_gives"]),
    ("a failing tail step lost the other streams of its batch and kept failed streams' state",
     [S + "test_a_failing_stream_costs_no_other_stream_its_result",
      S + "test_a_stream_whose_tail_fails_midway_is_ended_with_an_error",
      S + "test_a_failing_tail_step_is_counted_and_the_server_goes_on"]),
    ("20 valid range-coded packets of 4,096 frames made one step allocate 5.1 GB",
     [S + "test_packets_that_claim_too_many_frames_are_refused_before_any_work",
      S + "test_a_burst_runs_in_steps_within_the_frame_budget",
      S + "test_a_stream_sending_faster_than_the_tail_loses_its_own_frames_only",
      "tests/runtime/test_memory.py::test_the_worst_packets_stay_under_the_memory_ceiling",
      "tests/runtime/test_engine.py::test_conformer_streamer_matches_the_block_on_whole_input"]),
    ("an unauthenticated sender evicted a keyed device's contexts and crowded out its held packets",
     [W + "test_packets_that_fail_their_checks_create_and_evict_no_source_state",
      W + "test_one_source_cannot_fill_the_held_packets_of_all",
      S + "test_short_packets_from_each_source_use_its_own_full_packets"]),
    ("decode_packet raised struct.error for a compact packet extended past 2^32",
     ["tests/runtime/test_wire_v2.py::test_a_v2_compact_packet_extended_past_32_bits_is_a_wire_error",
      W + "test_any_bytes_with_contexts_give_a_packet_or_a_wire_error",
      "tests/runtime/test_fuzz_cov.py::test_a_short_fuzzing_run_finds_nothing"]),
    ("a failure to write results went unnoticed and SIGTERM hung",
     ["tests/runtime/test_serve_cli.py::test_a_result_that_cannot_be_written_stops_the_server_with_status_1",
      "tests/runtime/test_serve_cli.py::test_serve_subprocess_writes_results_and_flushes_on_sigterm"]),
    ("a restarted keyed server accepted captured streams again",
     [S + "test_replays_stay_refused_after_a_restart_with_a_state_file",
      "tests/runtime/test_replay_state.py::test_saved_ids_load_into_the_next_reassembler"]),
    ("800 ASR streams on 2 cores: latency grew without bound, nothing refused",
     [S + "test_admission_control_refuses_new_streams_while_the_tail_lags",
      S + "test_admission_by_the_measured_number_of_slots",
      "tests/runtime/test_serve_cli.py::test_the_tail_runs_on_its_cpus_and_the_receiving_loop_on_the_others"]),
    ("CLI: tracebacks, silently accepted bad values, leftover temporary folders, no warnings",
     ["tests/runtime/test_serve_cli.py::test_serve_bad_input_exits_2_naming_the_problem",
      "tests/runtime/test_serve_cli.py::test_public_listening_without_keys_and_readable_keys_are_warned_about",
      "tests/test_cli.py::test_bad_input_exits_2_with_the_reason",
      "tests/export/test_pipeline.py::test_temporary_folders_of_killed_exports_are_removed"]),
]


def run_tests(ids: list[str]) -> dict[str, str]:
    """pytest on the given node ids (one run); node id -> passed | failed | skipped | missing."""
    with tempfile.TemporaryDirectory(prefix="acom-rel-") as tmp:
        xml = Path(tmp) / "junit.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:logging", "-n", "2", "--dist", "loadgroup",
                        f"--junitxml={xml}", *sorted(set(ids))], cwd=ROOT, capture_output=True, text=True)
        got = {}
        if xml.exists():
            for case in ET.parse(xml).iter("testcase"):
                path = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "").split("[")[0]
                state = ("failed" if case.find("failure") is not None or case.find("error") is not None
                         else "skipped" if case.find("skipped") is not None else "passed")
                if got.get(path) != "failed":
                    got[path] = state
    return {i: got.get(i, "missing") for i in ids}


def targets() -> list[dict]:
    """The issue's measured targets, read from the benchmarks' reports."""
    rows = []
    fuzz = json.loads((ROOT / "reports" / "fuzz_cov.json").read_text())
    f = fuzz["fuzzing"]
    runs = [{"runs_executed": f["libfuzzer_stats"].get("number_of_executed_units", 0), "harness": f.get("harness"),
             "findings": f["findings"], "peak_rss_mb": f["libfuzzer_stats"].get("peak_rss_mb")},
            *fuzz.get("earlier_runs", [])]
    total = sum(r["runs_executed"] for r in runs)
    now = sum(r["runs_executed"] for r in runs if r["harness"] == f.get("harness"))  # with today's harness
    found = any(r["findings"] for r in runs)
    w = fuzz["files"]["wire.py"]  # coverage.py's percent counts statements and branches together
    wire = round(100 * (1 - w["branches_missed"] / w["branches"]), 1)
    rows.append({"target": "coverage-guided fuzzing: >= 10 M inputs, nothing but WireError, no memory growth",
                 "measured": f"{now:,} inputs with the harness of today ({f.get('harness')}), "
                             f"{total:,} in all {len(runs)} runs; findings {found}, peak RSS "
                             f"{max(r['peak_rss_mb'] or 0 for r in runs)} MB",
                 "met": now >= 10_000_000 and not found})
    rows.append({"target": "branch coverage of runtime/wire.py >= 95%",
                 "measured": f"{wire}% ({w['branches'] - w['branches_missed']} of {w['branches']} branches; "
                             f"statements and branches together {w['coverage_percent']}%)", "met": wire >= 95})
    mem = json.loads((ROOT / "reports" / "serve_memory.json").read_text())
    for task, cases in mem.items():
        for name, r in cases.items():
            ceiling = 240 + r["streams"]
            rows.append({"target": f"memory ceiling, {task} {name} worst packets: growth <= 240 MB + 1 MB a stream "
                                   f"({ceiling:.0f} MB)",
                         "measured": f"{r['growth_mb']} MB", "met": r["growth_mb"] <= ceiling})
    over = json.loads((ROOT / "reports" / "serve_overload.json").read_text())
    for task, entry in over.items():
        for row in entry["loads"]:
            pinned = f", the tail on CPU {entry['tail_cpus']}" if entry.get("tail_cpus") else ""
            rows.append({"target": f"overload {task} {row['load']} (capacity {entry['measured_capacity_streams']} "
                                   f"devices, measured in the same run{pinned}): "
                                   + ("nothing refused" if row["load"] == "1x" else
                                      f"admitted p99 <= {entry['p99_target_ms']} ms, the rest refused and counted"),
                         "measured": f"p99 {row['p99_ms_median']} ms, refused {row['packets_refused_overload']} of "
                                     f"{row['packets_sent']} packets",
                         "met": row["met"]})
    return rows


def markdown(report: dict) -> str:
    out = ["# Reliability report", "", "Written by `bench/reliability.py`. Probes: what was reproduced on loopback, "
           "and the tests that reproduce it (run when this report was written).", "",
           "| probe | tests | result |", "|---|---|---|"]
    for p in report["probes"]:
        ok = sum(v == "passed" for v in p["tests"].values())
        names = "<br>".join(f"`{t.split('::')[-1]}`" for t in p["tests"])
        out.append(f"| {p['probe']} | {names} | {ok} of {len(p['tests'])} pass |")
    out += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    out += [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |" for t in report["targets"]]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "reliability.json")
    args = ap.parse_args(argv)
    states = run_tests([t for _, tests in PROBES for t in tests])
    report = {"probes": [{"probe": p, "tests": {t: states[t] for t in tests}} for p, tests in PROBES],
              "targets": targets()}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    bad = [t for p in report["probes"] for t, v in p["tests"].items() if v != "passed"]
    print(json.dumps({"tests": len(states), "not_passed": bad,
                      "targets_missed": [t["target"] for t in report["targets"] if not t["met"]]}, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
