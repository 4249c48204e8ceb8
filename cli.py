"""`acom`: the command-line entry point. Each subcommand lives in its package and is imported only when used."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from acom import __version__
from acom.errors import AcomError

# subcommand -> ('module:function(argv)', one-line help). Later packages add theirs here.
COMMANDS = {
    "data": ("acom.corpora.data_cli:main", "generate the embedded data sets, or summarize a data set"),
    "features": ("acom.training.train_cli:features_main", "precompute log-mel features (to train elsewhere)"),
    "train": ("acom.training.train_cli:train_main", "train a split model (uncut, then with the RVQ at the cut)"),
    "eval": ("acom.training.train_cli:eval_main", "WER/CER or accuracy of a checkpoint, per number of stages"),
    "boards": ("acom.boards.cli:main", "the board profiles acom-export targets (RAM, flash, runtimes, energy)"),
    "serve": ("acom.runtime.serve_cli:main", "receive codes over UDP/serial and run the batched tail (JSON lines)"),
    "triton": ("acom.runtime.triton_cli:main", "export the tail to ONNX and write a checked Triton model repository"),
    "send": ("acom.firmware_host.client:main", "act as a device: audio -> edge artifact -> packets over UDP/serial"),
    "flash": ("acom.firmware_host.flash:main", "put a bundle's device program on its board, or run it emulated"),
    "profile": ("acom.profiling.profile:main", "a bundle's MACs, memory, instructions and energy per second of audio"),
    "plan": ("acom.profiling.plan:main", "every cut and number of stages of a checkpoint against a board's budgets"),
    "bench": ("acom.comparisons.bench_cli:bench_main",
              "benchmarks: rate-accuracy (metric against bit/s), codecs (against codec pipelines)"),
}

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    """Dispatch `acom <command> ...`; exit 0 on success, 2 on bad input (an AcomError), 1 on other failures."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="acom", description="Audio coding for machines: split models, RVQ codes, edge export, host runtime.",
        epilog="Exit codes: 0 success, 1 failure, 2 bad input or usage. `acom COMMAND --help` for each command.")
    parser.add_argument("--version", action="version", version=f"acom {__version__}")
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND",
                        help="; ".join(f"{k}: {v[1]}" for k, v in sorted(COMMANDS.items())))
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    ns = parser.parse_args(argv[:1] if argv and not argv[0].startswith("-") else argv)
    module_name, _, func = COMMANDS[ns.command][0].partition(":")
    try:
        return getattr(importlib.import_module(module_name), func)(argv[1:])
    except AcomError as e:
        print(f"acom {ns.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stdout = open(os.devnull, "w")
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
