"""``python -m callgate.native [--require]``: which path callgate runs on, and why.

Prints one line: ``native core: <file>`` or ``pure Python: <reason>``. With
``--require`` the exit status is 1 on the pure-Python path (for CI and packaging checks).
"""

from __future__ import annotations

import argparse
import sys

from callgate.native.loader import native_status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callgate.native",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--require", action="store_true",
                        help="exit 1 unless the native core is in use")
    args = parser.parse_args(argv)
    status = native_status()
    print(status.describe())
    return 1 if args.require and not status.native else 0


if __name__ == "__main__":
    sys.exit(main())
