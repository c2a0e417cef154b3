"""The one thin wrapper over the compiled audio core. Nothing else imports ``gateway._native``."""
from __future__ import annotations

from gateway._native import ffi, lib


class AudioError(RuntimeError):
    """The C core returned an error code."""


def _check(code: int) -> None:
    if code != lib.CVG_OK:
        raise AudioError(ffi.string(lib.cvg_strerror(code)).decode())


def version() -> str:
    return ffi.string(lib.cvg_version()).decode()
