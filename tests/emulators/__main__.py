"""Run all four emulators until interrupted, for trying the control plane by hand:

    .venv/bin/python -m tests.emulators      (from the repository root)

Prints the environment that points ``converse`` at them and each provider's test credentials as
JSON on one line, then serves until Ctrl-C / SIGTERM.
"""
from __future__ import annotations

import contextlib
import json
import signal
import threading

from . import ExotelEmulator, MetaEmulator, PlivoEmulator, TwilioEmulator


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.ExitStack() as stack:
        emus = {name: stack.enter_context(cls()) for name, cls in
                (("twilio", TwilioEmulator), ("plivo", PlivoEmulator),
                 ("exotel", ExotelEmulator), ("meta", MetaEmulator))}
        env = {"TWILIO_API_BASE": emus["twilio"].url, "PLIVO_API_BASE": emus["plivo"].url,
               "EXOTEL_API_BASE": emus["exotel"].url, "META_GRAPH_BASE": emus["meta"].base}
        print(json.dumps({"env": env, "credentials": {n: e.creds for n, e in emus.items()}}),
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
