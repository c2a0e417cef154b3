from gateway import audio


def test_native_core_loads():
    assert audio.version() == "0.1.0"
