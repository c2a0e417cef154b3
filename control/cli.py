"""The ``converse`` command."""
from __future__ import annotations

import argparse
import sys


def _selfcheck(args) -> int:
    from gateway import audio
    print(f"converse audio core {audio.version()} loaded")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="converse")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("selfcheck", help="load the native audio core and exit").set_defaults(func=_selfcheck)
    # Until the servers exist, `up` runs the self-check.
    sub.add_parser("up", help="run both planes on embedded defaults").set_defaults(func=_selfcheck)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
