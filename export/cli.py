"""`acom-export`: turns a trained edge head into device artifacts. Not built yet (issue 5).

The console script exists so the command name is reserved and says plainly what it cannot do yet.
"""

from __future__ import annotations

import sys

EXIT_NOT_BUILT = 1


def main(argv: list[str] | None = None) -> int:
    """Print that export is not built yet and exit 1 (a failure: nothing was exported)."""
    print("acom-export: not built yet (export to ExecuTorch/LiteRT is issue 5); nothing was exported",
          file=sys.stderr)
    return EXIT_NOT_BUILT


if __name__ == "__main__":
    sys.exit(main())
