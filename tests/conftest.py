import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_AUDIO = ROOT.parent / "shared" / "audio"

pytest_plugins = ["fixtures_emulators", "fixtures_gateway", "fixtures_control"]

# CI sets CONVERSE_REQUIRE_ALL=1: a dependency missing there is a failure, not a skip.
REQUIRE_ALL = os.environ.get("CONVERSE_REQUIRE_ALL") == "1"


def require(ok: bool, why: str) -> None:
    """Skip (or, in CI, fail) the calling test when a dependency is missing; ``why`` says which."""
    if ok:
        return
    if REQUIRE_ALL:
        pytest.fail(f"dependency missing (CONVERSE_REQUIRE_ALL=1): {why}")
    pytest.skip(why)


@pytest.fixture
def shared_audio() -> pathlib.Path:
    require(SHARED_AUDIO.is_dir(), f"speech fixtures not found at {SHARED_AUDIO}")
    return SHARED_AUDIO
