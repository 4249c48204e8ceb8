"""`acom bench NAME ...`: the comparisons, one subcommand each."""

from __future__ import annotations

import argparse
import textwrap

from acom.comparisons import comparison, rate_accuracy

# name: (module with parser() and main(argv), one line for --help)
BENCHES = {
    "rate-accuracy": (rate_accuracy, "the task metric against bit/s, per trained run and number of stages, beside "
                      "the uncut model"),
    "codecs": (comparison, "against codec pipelines (Codec2, Opus, MP3) into uncut models, clean and in noise, and "
               "neural codecs' device cost; needs the rate-accuracy report of the same runs"),
}

EXAMPLES = """\
Examples:
  acom bench rate-accuracy --task ac --data data/urban            # the shipped classifier
  acom bench rate-accuracy --task asr --runs runs/asr-s0 runs/asr-s1 --data data/speech90
  acom bench codecs --task asr --runs runs/asr-s0 runs/asr-s1 --data data/speech90
"""


def _usage(p: argparse.ArgumentParser) -> str:
    """A parser's usage lines without 'usage: ', indented by two, continuation lines kept aligned."""
    first, *rest = p.format_usage().rstrip().splitlines()
    return "\n".join(["  " + first.removeprefix("usage: "), *("  " + line[len("usage: "):] for line in rest)])


def parser() -> argparse.ArgumentParser:
    """`acom bench`: the benchmark name, each benchmark's usage in the epilog; its options are its own parser's."""
    usages = "\n".join(_usage(module.parser()) for module, _ in BENCHES.values())
    p = argparse.ArgumentParser(
        prog="acom bench",
        description=textwrap.fill("Benchmarks that put ACoM beside its baselines on the same test sets and write "
                                  "their reports (JSON, a PNG plot, Markdown) to --out (default reports/), each "
                                  "target marked met or missed with its margin.", 100),
        epilog=f"Options of each benchmark (`acom bench NAME --help` explains them):\n{usages}\n\n{EXAMPLES}\n"
               "Exit codes: 0 done; 1 failure; 2 bad input or usage.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="name", metavar="NAME", required=True, title="benchmarks")
    for name, (_, text) in BENCHES.items():
        sub.add_parser(name, help=text, add_help=False)
    return p


def bench_main(argv: list[str]) -> int:
    """Run the named benchmark with the rest of ``argv``; ``--help`` describes them all. An unknown or missing name
    is a usage error (exit 2, from argparse)."""
    ns = parser().parse_args(argv[:1])  # the benchmark's own parser reads the rest
    return BENCHES[ns.name][0].main(argv[1:])
