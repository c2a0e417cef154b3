"""RELIABILITY 2: the C core fuzzed through cffi *under AddressSanitizer and
UndefinedBehaviorSanitizer*, and crash inputs committed and replayed by the normal test run.

A program is JSON: ``{"target": "resampler"|"transcoder"|"jitter", "args": [...], "ops": [...]}``
(random rates and lengths with flush/reset sequences; random sequence numbers around the 2**32
wrap, duplicates, late frames, clears and resets). ``tests/reliability_corpus/native/*.json`` holds
the committed ones: seeds for the known-hard corners and every input that ever crashed.

- ``test_corpus_replays_cleanly``: every committed program through the normal build (in-process,
  fast): only the wrappers' own errors (ValueError, TypeError, AudioError) may come out.
- ``test_sanitized_core_survives_corpus_and_random_programs``: the core is compiled again with
  ``-fsanitize=address,undefined -fno-sanitize-recover=all`` (cffi, same sources/cdef as
  native/build.py, cached by source hash under native/build/asan), and a subprocess with libasan
  preloaded replays the corpus and ``CONVERSE_NATIVE_FUZZ_PROGRAMS`` seeded random programs
  (default 300; ``CONVERSE_NATIVE_FUZZ_SEED`` picks another stream). Any sanitizer report or
  signal fails the test and prints the program that was running: commit it to the corpus.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = HERE / "reliability_corpus" / "native"
WRAP = 2**32
RATES = (8000, 16000, 24000, 48000)
CODECS = ("l16", "ulaw", "alaw")


# ------------------------------------------------------------------ programs
def random_program(rng: random.Random) -> dict:
    target = rng.choice(["resampler", "transcoder", "jitter"])
    if target == "jitter":
        fb = rng.choice([2, 4, 8, 64, 640])
        capacity = rng.randint(1, 16)
        max_delay = rng.randint(0, capacity - 1)
        args = [fb, capacity, rng.randint(0, max_delay), max_delay, capacity + rng.randint(0, 60)]
        cursor, ops = rng.choice([0, WRAP - rng.randint(1, 40), rng.randrange(WRAP)]), []
        for _ in range(rng.randint(0, 150)):
            kind = rng.random()
            if kind < 0.5:
                seq = cursor + rng.choice([0, 0, 0, 1, -1, 2, -3, rng.randint(-300, 300),
                                           rng.randint(-2**31, 2**31)])
                cursor += 1
                size = fb if rng.random() < 0.95 else rng.choice([0, 1, fb - 1, fb + 2])
                ops.append(["put", seq % WRAP, size])
            elif kind < 0.9:
                ops.append(["get"])
            else:
                ops.append([rng.choice(["clear", "reset", "drain", "stats"])])
        return {"target": target, "args": args, "ops": ops}
    if target == "resampler":
        args = [rng.choice(RATES), rng.choice(RATES), rng.random() < 0.3]
    else:
        args = [rng.choice(CODECS), rng.choice(RATES), rng.choice(CODECS), rng.choice(RATES),
                rng.random() < 0.3]
    ops = []
    for _ in range(rng.randint(0, 40)):
        kind = rng.random()
        if kind < 0.75:
            n = rng.choice([0, 1, 2, 3, 160, 320, 640, 641, 960, 1920,
                            rng.randint(0, 20000)])
            ops.append(["process", n, rng.randrange(2**32)])
        else:
            ops.append([rng.choice(["flush", "reset", "delay"])])
    return {"target": target, "args": args, "ops": ops}


def _payload(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def run_program(program: dict) -> None:
    """Run one program against gateway.audio; only the wrappers' own errors may escape a call."""
    from gateway import audio

    clean = (ValueError, TypeError, audio.AudioError)
    args, ops = program["args"], program["ops"]
    if program["target"] == "jitter":
        try:
            jb = audio.JitterBuffer(*args)
        except clean:
            return
        fb = jb.frame_bytes
        for op in ops:
            try:
                if op[0] == "put":
                    seq, size = op[1], op[2]
                    frame = (seq.to_bytes(4, "little") * (size // 4 + 1))[:size]
                    assert jb.put(seq, frame) in audio.JitterBuffer.PUT_RESULTS
                elif op[0] == "get":
                    data, kind = jb.get()
                    assert len(data) == fb and kind in audio.JitterBuffer.KINDS
                elif op[0] == "drain":
                    jb.drain()
                elif op[0] == "stats":
                    jb.stats()
                else:
                    getattr(jb, op[0])()
            except clean:
                pass
        jb.close()
        return
    try:
        if program["target"] == "resampler":
            obj = audio.Resampler(args[0], args[1], low_delay=bool(args[2]))
        else:
            obj = audio.Transcoder(*args[:4], low_delay=bool(args[4]))
    except clean:
        return
    for op in ops:
        try:
            if op[0] == "process":
                assert isinstance(obj.process(_payload(op[1], op[2])), bytes)
            elif op[0] == "delay":
                obj.delay_ms
            else:
                getattr(obj, op[0])()
        except clean:
            pass
    obj.close()


def corpus() -> list[pathlib.Path]:
    return sorted(CORPUS.glob("*.json"))


# ------------------------------------------------------------------ in-process replay
@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.stem)
def test_corpus_replays_cleanly(path):
    run_program(json.loads(path.read_text()))


def test_corpus_is_not_empty():
    assert len(corpus()) >= 5


# ------------------------------------------------------------------ sanitized build
def _asan_runtime() -> str | None:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        return None
    out = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True, text=True,
                         timeout=30).stdout.strip()
    return out if out and os.path.isabs(out) and os.path.exists(out) else None


def _build_sanitized() -> pathlib.Path:
    """The core compiled with ASan+UBSan as the extension module ``_native_asan``; cached."""
    native = ROOT / "native"
    inputs = sorted([*(native / "src").glob("*.c"), *(native / "src").glob("*.h"),
                     *(native / "include").glob("*.h"), *(native / "cdef").glob("*.cdef")])
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in inputs)).hexdigest()[:16]
    out_dir = native / "build" / "asan" / digest
    built = list(out_dir.glob("_native_asan*.so"))
    if built:
        return built[0]
    out_dir.mkdir(parents=True, exist_ok=True)
    script = f"""
import pathlib
from cffi import FFI
native = pathlib.Path({str(native)!r})
ffi = FFI()
ffi.cdef("\\n".join(p.read_text() for p in sorted((native / "cdef").glob("*.cdef"))))
flags = ["-std=c11", "-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", "-fvisibility=hidden"]
headers = sorted((native / "include").glob("*.h"))
ffi.set_source("_native_asan", "".join('#include "' + h.name + '"\\n' for h in headers),
               sources=[str(p) for p in sorted((native / "src").glob("*.c"))],
               include_dirs=[str(native / "include")], extra_compile_args=flags,
               extra_link_args=["-fsanitize=address,undefined"], libraries=["m"])
ffi.compile(tmpdir={str(out_dir)!r})
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, cwd=out_dir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return next(out_dir.glob("_native_asan*.so"))


def test_sanitized_core_survives_corpus_and_random_programs(tmp_path):
    from conftest import require
    runtime = _asan_runtime()
    require(runtime is not None, "a C compiler with libasan (gcc -print-file-name=libasan.so)")
    module = _build_sanitized()
    binary = module.read_bytes()              # really instrumented, not a plain build
    assert b"__asan_report_load" in binary and b"__ubsan_handle" in binary
    programs = int(os.environ.get("CONVERSE_NATIVE_FUZZ_PROGRAMS", "300"))
    seed = int(os.environ.get("CONVERSE_NATIVE_FUZZ_SEED", "13"))
    current = tmp_path / "current.json"
    env = dict(os.environ, LD_PRELOAD=runtime, PYTHONPATH=str(ROOT),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=86",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    proc = subprocess.run([sys.executable, __file__, str(module), str(current), str(programs),
                           str(seed)], env=env, capture_output=True, text=True, timeout=600)
    report = (proc.stdout + proc.stderr)[-4000:]
    if proc.returncode != 0:
        program = current.read_text() if current.exists() else "(none)"
        pytest.fail(f"sanitized run failed (exit {proc.returncode}); commit this program to "
                    f"{CORPUS.relative_to(ROOT)}/crash-<name>.json and fix the core:\n{program}\n"
                    f"{report}")
    assert f"ran {len(corpus()) + programs} programs" in proc.stdout, report


def _main(module: str, current: str, programs: int, seed: int) -> None:
    """Subprocess entry: load the sanitized build as gateway._native, then run everything."""
    spec = importlib.util.spec_from_file_location("_native_asan", module)
    native = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(native)
    sys.modules["gateway._native"] = native
    from gateway import audio
    assert audio.lib is native.lib, "the sanitized build is not the one in use"
    with open("/proc/self/maps") as maps:
        assert "libasan" in maps.read(), "the ASan runtime is not loaded"
    rng = random.Random(seed)
    todo = [json.loads(p.read_text()) for p in corpus()]
    todo += [random_program(rng) for _ in range(programs)]
    for program in todo:
        with open(current, "w") as f:
            json.dump(program, f)
        run_program(program)
    print(f"ran {len(todo)} programs", flush=True)


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
