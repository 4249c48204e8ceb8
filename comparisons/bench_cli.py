"""`acom bench NAME ...`: the comparisons, one subcommand each."""

from __future__ import annotations

from acom.comparisons import comparison, rate_accuracy

# name: (entry point, one line for --help)
BENCHES = {
    "rate-accuracy": (rate_accuracy.main, "the task metric against bit/s, per trained run and number of stages"),
    "codecs": (comparison.main, "against codec pipelines (Codec2, Opus, MP3) into uncut models, and neural codecs"),
}


def usage() -> str:
    lines = ["usage: acom bench NAME [options]   (acom bench NAME --help for its options)", "", "benchmarks:"]
    return "\n".join([*lines, *(f"  {name:14s} {text}" for name, (_, text) in BENCHES.items())])


def bench_main(argv: list[str]) -> int:
    """Run the named benchmark; ``--help`` (or nothing) lists them. Exit 2 for an unknown name."""
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] not in BENCHES:
        print(f"acom bench: unknown benchmark {argv[0]!r}; allowed: {', '.join(BENCHES)}\n\n{usage()}")
        return 2
    return BENCHES[argv[0]][0](argv[1:])
