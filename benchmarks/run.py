"""Run every benchmark: ``python -m benchmarks.run [--short]``. Each writes benchmarks/results/*.json."""
from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["benchmarks.audio_core", "benchmarks.ws_transport", "benchmarks.ws_sessions",
              "benchmarks.phone_calls"]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            print(f"{name}: not written yet, skipped")
            continue
        rc = module.main(argv)
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
