"""No allocation per frame: the C side (counted build of native/tests/test_alloc.c) and the Python
wrappers (tracemalloc: steady-state calls leave no memory behind)."""
import os
import shutil
import subprocess
import tracemalloc

from gateway import audio
from tests.conftest import ROOT, require


def test_c_core_allocates_nothing_between_new_and_free(tmp_path):
    cc = os.environ.get("CC", "cc")
    require(shutil.which(cc) is not None, f"C compiler {cc!r} not found")
    src = sorted(str(p) for p in (ROOT / "native" / "src").glob("*.c"))
    exe = tmp_path / "test_alloc"
    subprocess.run([cc, "-std=c11", "-O1", "-DCVG_COUNT_ALLOCS=1", f"-I{ROOT / 'native' / 'include'}",
                    "-o", str(exe), str(ROOT / "native" / "tests" / "test_alloc.c"), *src, "-lm"],
                   check=True, capture_output=True, timeout=120)
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 allocations" in run.stdout


def _growth(fn, calls=10_000):
    fn()                                              # warm up: buffers sized on the first call
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(calls):
            fn()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_wrappers_hold_no_memory_across_10000_frames():
    frame24 = bytes(range(256)) * 3 + bytes(192)      # 20 ms at 24 kHz
    r = audio.Resampler(24000, 16000)
    t_in = audio.Transcoder.inbound("ulaw")
    t_out = audio.Transcoder.outbound("ulaw")
    payload = "f39/" * 40
    for fn in (lambda: r.process(frame24), lambda: t_in.process_b64(payload),
               lambda: t_out.process_to_b64(frame24), lambda: audio.ulaw_encode(frame24)):
        assert _growth(fn) < 4096
