"""Audio core benchmark: ours vs soxr, libsamplerate and audioop, side by side in one process.

``python -m benchmarks.audio_core [--short]`` (``benchmarks/run.py`` passes ``--short`` in CI).

Speed: speech files from ../shared/audio streamed in 20 ms frames through each engine's Python API
(so the Python call is included), CPU time of this process (``time.process_time``: less sensitive to
other load on a shared box than wall time), engines interleaved round by round, best round kept.
Quality and latency: deterministic measurements from benchmarks/_signal.py on -6 dBFS tones, also
streamed in 20 ms frames. Every table prints each engine's figure and its ratio to ours.
Results: benchmarks/results/audio_core.json (full run) or audio_core_short.json (--short).
"""
from __future__ import annotations

import argparse
import base64
import json
import pathlib
import platform
import struct
import sys
import time
import warnings
import wave

import numpy as np

from benchmarks import _signal
from gateway import audio

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop
    except ImportError:  # Python 3.13+ without audioop-lts
        audioop = None
try:
    import soxr
except ImportError:
    soxr = None
try:
    import samplerate
except ImportError:
    samplerate = None

AUDIO_DIR = pathlib.Path(__file__).resolve().parents[2] / "shared" / "audio"
RESULTS = pathlib.Path(__file__).resolve().parent / "results"
CONVERSIONS = [(8000, 16000), (16000, 24000), (24000, 8000), (24000, 16000), (48000, 16000)]
SOXR_QUALITIES = ["QQ", "LQ", "MQ", "HQ", "VHQ"]
SRC_TYPES = ["sinc_fastest", "sinc_medium", "sinc_best"]


# ---------------------------------------------------------------- inputs

def read_wav_pcm16(path: pathlib.Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").copy()


def read_wav_data_chunk(path: pathlib.Path) -> bytes:
    """The raw ``data`` chunk of a RIFF/WAVE file (``wave`` refuses mu-law, format tag 7)."""
    blob = path.read_bytes()
    pos = 12
    while pos + 8 <= len(blob):
        cid, size = blob[pos:pos + 4], struct.unpack("<I", blob[pos + 4:pos + 8])[0]
        if cid == b"data":
            return blob[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    raise ValueError(f"{path}: no data chunk")


def speech(rate: int, short: bool) -> np.ndarray:
    """Speech at `rate`: the fixture files (8 kHz comes from the mu-law file), or a synthetic stand-in."""
    names = ["en_hello"] if short else ["en_hello", "en_menu"]
    parts = []
    for name in names:
        if rate == 8000:
            path = AUDIO_DIR / f"{name}_8k_ulaw.wav"
            if path.exists():
                parts.append(np.frombuffer(audio.ulaw_decode(read_wav_data_chunk(path)), "<i2"))
        else:
            path = AUDIO_DIR / f"{name}_{rate // 1000}k.wav"
            if path.exists():
                parts.append(read_wav_pcm16(path))
    if not parts:  # fixtures missing: a chirp keeps the benchmark runnable, and says so in the JSON
        t = np.arange(rate * 6) / rate
        parts.append((8000 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype("<i2"))
    return np.concatenate(parts)


def frames_of(x: np.ndarray, rate: int) -> list[np.ndarray]:
    step = rate // 50
    return [x[i:i + step] for i in range(0, len(x) - step + 1, step)]


# ---------------------------------------------------------------- engines (factory -> feed)

def ours(i, o, low_delay=False):
    def make():
        r = audio.Resampler(i, o, low_delay=low_delay)
        return lambda x: np.frombuffer(r.process(x), np.int16)
    return make


def ours_low_delay(i, o):
    return ours(i, o, low_delay=True)


def ours_bytes(i, o):
    """What the gateway really does: bytes in, bytes out (speed only)."""
    def make():
        return audio.Resampler(i, o).process
    return make


def soxr_engine(q):
    def factory(i, o):
        def make():
            s = soxr.ResampleStream(i, o, 1, dtype="int16", quality=q)
            return s.resample_chunk
        return make
    return factory


def src_engine(kind):
    def factory(i, o):
        def make():
            r = samplerate.Resampler(kind, channels=1)
            ratio = o / i

            def feed(x):
                y = r.process(np.asarray(x, np.float32) * (1 / 32768), ratio, end_of_input=False)
                return np.clip(np.round(y * 32768), -32768, 32767).astype(np.int16)
            return feed
        return make
    return factory


def engines() -> dict:
    out = {"ours": ours, "ours low-delay": ours_low_delay}
    if soxr is not None:
        out.update({f"soxr {q}": soxr_engine(q) for q in SOXR_QUALITIES})
    if samplerate is not None:
        out.update({f"src {k}": src_engine(k) for k in SRC_TYPES})
    return out


# ---------------------------------------------------------------- timing

def cpu_us_per_call(fn_factories: dict, items_by_name: dict, rounds: int) -> dict:
    """Best-round CPU µs per item for each name; one fresh state per round, names interleaved."""
    best = {name: float("inf") for name in fn_factories}
    for _ in range(rounds):
        for name, factory in fn_factories.items():
            fn, items = factory(), items_by_name[name]
            fn(items[0])                                   # first call outside the clock (buffers)
            t0 = time.process_time_ns()
            for item in items:
                fn(item)
            best[name] = min(best[name], (time.process_time_ns() - t0) / 1000 / len(items))
    return best


def resampler_speed(short: bool) -> dict:
    rounds = 3 if short else 7
    res = {}
    names = engines()
    for i, o in CONVERSIONS:
        x = speech(i, short)
        fr = frames_of(x, i)
        if short:
            fr = fr[:250]
        factories = {name: f(i, o) for name, f in names.items()}
        factories["ours (bytes in/out)"] = ours_bytes(i, o)
        items = {name: fr for name in factories}
        items["ours (bytes in/out)"] = [f.tobytes() for f in fr]
        res[f"{i}->{o}"] = cpu_us_per_call(factories, items, rounds)
    return res


# ---------------------------------------------------------------- G.711 and the phone paths

def g711_speed(short: bool) -> dict:
    pcm = speech(8000, short)
    fr = [f.tobytes() for f in frames_of(pcm, 8000)]
    codes = [audio.ulaw_encode(f) for f in fr]
    fns = {"ours ulaw_encode": lambda: audio.ulaw_encode,
           "ours ulaw_decode": lambda: audio.ulaw_decode,
           "ours alaw_encode": lambda: audio.alaw_encode}
    items = {"ours ulaw_encode": fr, "ours ulaw_decode": codes, "ours alaw_encode": fr}
    if audioop is not None:
        fns.update({"audioop lin2ulaw": lambda: (lambda b: audioop.lin2ulaw(b, 2)),
                    "audioop ulaw2lin": lambda: (lambda b: audioop.ulaw2lin(b, 2)),
                    "audioop lin2alaw": lambda: (lambda b: audioop.lin2alaw(b, 2))})
        items.update({"audioop lin2ulaw": fr, "audioop ulaw2lin": codes, "audioop lin2alaw": fr})
    return cpu_us_per_call(fns, items, 3 if short else 9)


def pipecat_inbound():
    """Pipecat's Twilio path: base64 -> audioop.ulaw2lin -> soxr VHQ stream 8k -> 16k."""
    s = soxr.ResampleStream(8000, 16000, 1, dtype="int16", quality="VHQ")

    def feed(payload: str) -> bytes:
        pcm = audioop.ulaw2lin(base64.b64decode(payload), 2)
        return s.resample_chunk(np.frombuffer(pcm, np.int16)).tobytes()
    return feed


def pipecat_outbound():
    """Pipecat's Twilio path: soxr VHQ stream 24k -> 8k -> audioop.lin2ulaw -> base64."""
    s = soxr.ResampleStream(24000, 8000, 1, dtype="int16", quality="VHQ")

    def feed(pcm: bytes) -> str:
        y = s.resample_chunk(np.frombuffer(pcm, np.int16)).tobytes()
        return base64.b64encode(audioop.lin2ulaw(y, 2)).decode()
    return feed


def ours_fused_inbound():
    return audio.Transcoder.inbound("ulaw").process_b64


def ours_fused_outbound():
    return audio.Transcoder.outbound("ulaw").process_to_b64


def ours_python_b64_inbound():
    """Our transcoder with base64 left to Python (to see whether base64 inside C pays)."""
    t = audio.Transcoder.inbound("ulaw")
    return lambda payload: t.process(base64.b64decode(payload))


def ours_python_b64_outbound():
    t = audio.Transcoder.outbound("ulaw")
    return lambda pcm: base64.b64encode(t.process(pcm)).decode()


def ours_unfused_inbound():
    r = audio.Resampler(8000, 16000)
    return lambda payload: r.process(audio.ulaw_decode(base64.b64decode(payload)))


def ours_unfused_outbound():
    r = audio.Resampler(24000, 8000)
    return lambda pcm: base64.b64encode(audio.ulaw_encode(r.process(pcm))).decode()


def phone_paths(short: bool) -> dict:
    if soxr is None or audioop is None:
        return {"skipped": "soxr or audioop missing"}
    ulaw = audio.ulaw_encode(speech(8000, short).tobytes())
    payloads = [base64.b64encode(ulaw[i:i + 160]).decode() for i in range(0, len(ulaw) - 159, 160)]
    pcm24 = speech(24000, short)
    out_frames = [f.tobytes() for f in frames_of(pcm24, 24000)]
    rounds = 3 if short else 9
    inbound_fns = {"ours fused (base64 in C)": ours_fused_inbound,
                   "ours fused + Python base64": ours_python_b64_inbound,
                   "ours unfused (3 calls)": ours_unfused_inbound,
                   "pipecat (b64, audioop, soxr VHQ)": pipecat_inbound}
    inbound = cpu_us_per_call(inbound_fns, dict.fromkeys(inbound_fns, payloads), rounds)
    outbound_fns = {"ours fused (base64 in C)": ours_fused_outbound,
                    "ours fused + Python base64": ours_python_b64_outbound,
                    "ours unfused (3 calls)": ours_unfused_outbound,
                    "pipecat (soxr VHQ, audioop, b64)": pipecat_outbound}
    outbound = cpu_us_per_call(outbound_fns, dict.fromkeys(outbound_fns, out_frames), rounds)
    lat = {
        "inbound ours": _signal.latency(ours(8000, 16000), 8000, 16000),
        "inbound ours low-delay": _signal.latency(ours_low_delay(8000, 16000), 8000, 16000),
        "outbound ours low-delay": _signal.latency(ours_low_delay(24000, 8000), 24000, 8000),
        "inbound pipecat": _signal.latency(soxr_engine("VHQ")(8000, 16000), 8000, 16000),
        "outbound ours": _signal.latency(ours(24000, 8000), 24000, 8000),
        "outbound pipecat": _signal.latency(soxr_engine("VHQ")(24000, 8000), 24000, 8000),
    }
    return {"inbound_us": inbound, "outbound_us": outbound, "latency": lat}


# ---------------------------------------------------------------- quality and latency

def quality_latency(short: bool) -> dict:
    names = engines()
    if short:
        names = {k: v for k, v in names.items() if k in ("ours", "ours low-delay", "soxr HQ")}
    res = {}
    for i, o in CONVERSIONS:
        row = {}
        for name, factory in names.items():
            row[name] = {**_signal.quality(factory(i, o), i, o), **_signal.latency(factory(i, o), i, o)}
        if short:  # latency is cheap: measure it for every engine even in short mode
            for name, factory in engines().items():
                row.setdefault(name, _signal.latency(factory(i, o), i, o))
        res[f"{i}->{o}"] = row
    return res


# ---------------------------------------------------------------- report

def _ratio(v, ref):
    return f"{v / ref:6.2f}x" if ref and v == v and ref == ref else "   -  "


def print_speed(title: str, table: dict, ref_name: str) -> None:
    print(f"\n{title}")
    for conv, row in table.items():
        ref = row.get(ref_name)
        print(f"  {conv}")
        for name, us in sorted(row.items(), key=lambda kv: kv[1]):
            rt = 20000 / us if us else float("inf")
            print(f"    {name:36s} {us:9.2f} µs/20 ms  {rt:8.0f}x real time   {_ratio(us, ref)} of ours")


def print_quality(q: dict) -> None:
    print("\nquality and latency (-6 dBFS tones, 20 ms frames; ratio = engine / ours for latency)")
    hdr = (f"    {'engine':18s} {'SNR':>6s} {'THD+N':>6s} {'ripple':>7s} {'-3dB':>6s} {'reject':>7s} "
           f"{'1st out':>8s} {'held mean/max':>14s} {'grp dly':>8s} {'added mean/max ms':>18s} {'ratio':>7s}")
    for conv, row in q.items():
        print(f"  {conv}  (SNR/THD+N/reject dB, ripple dB to 0.875 Ny, -3 dB as x Ny, held in output samples)")
        print(hdr)
        ref = row["ours"]["added_latency_mean_ms"]
        for name, m in row.items():
            def f(key, fmt):
                return format(m[key], fmt) if key in m and m[key] is not None else "-"
            print(f"    {name:18s} {f('snr_db', '6.1f'):>6s} {f('thdn_db', '6.1f'):>6s} {f('ripple_db', '7.4f'):>7s} "
                  f"{f('minus3db_x_nyquist', '6.3f'):>6s} {f('rejection_db', '7.1f'):>7s} {f('first_output_ms', '8.0f'):>8s} "
                  f"{f('held_back_mean', '6.0f'):>6s}/{f('held_back_max', '<6.0f'):6s}  {f('group_delay_ms', '7.2f'):>8s} "
                  f"{f('added_latency_mean_ms', '8.2f'):>8s}/{f('added_latency_max_ms', '<8.2f'):8s} "
                  f"{_ratio(m['added_latency_mean_ms'], ref)}")


def targets(speed: dict, g711: dict, phone: dict, q: dict) -> dict:
    """The issue's targets, each with the measured figure and pass/miss."""
    out = {}
    for conv, row in speed.items():
        if "soxr HQ" in row:
            out[f"speed {conv} <= 0.5x soxr HQ"] = round(row["ours (bytes in/out)"] / row["soxr HQ"], 3)
    for conv, row in q.items():
        m = row["ours"]
        low = min(int(c) for c in conv.split("->"))
        if "ours low-delay" in row:
            out[f"low-delay added latency {conv} (ms)"] = round(row["ours low-delay"]["added_latency_max_ms"], 2)
        out[f"quality {conv}"] = {
            "snr>=86": round(m["snr_db"], 1), "ripple<=0.05": round(m["ripple_db"], 4),
            "-3dB>=0.92": round(m["minus3db_x_nyquist"], 3), "reject>=80": round(m["rejection_db"], 1),
            f"latency<={4 if low == 8000 else 2}ms": round(m["added_latency_max_ms"], 2)}
    if "audioop lin2ulaw" in g711:
        out["g711 encode >= 3x audioop"] = round(g711["audioop lin2ulaw"] / g711["ours ulaw_encode"], 2)
    if "inbound_us" in phone:
        out["fused inbound <= 0.5x pipecat"] = round(
            phone["inbound_us"]["ours fused (base64 in C)"] / phone["inbound_us"]["pipecat (b64, audioop, soxr VHQ)"], 3)
        out["fused outbound <= 0.5x pipecat"] = round(
            phone["outbound_us"]["ours fused (base64 in C)"] / phone["outbound_us"]["pipecat (soxr VHQ, audioop, b64)"], 3)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks.audio_core", description=__doc__.splitlines()[0])
    ap.add_argument("--short", action="store_true",
                    help="CI mode: fewer rounds, quality for ours (both modes) and soxr HQ only")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    speed = resampler_speed(args.short)
    print_speed("resampler speed (CPU µs per 20 ms chunk through the Python API; ratio = engine / ours)",
                speed, "ours (bytes in/out)")
    g711 = g711_speed(args.short)
    print_speed("G.711 (CPU µs per 20 ms frame of 160 samples)", {"8 kHz": g711}, "ours ulaw_encode")
    phone = phone_paths(args.short)
    if "inbound_us" in phone:
        print_speed("phone paths (CPU µs per 20 ms frame)", {"inbound mu-law 8k -> PCM16 16k": phone["inbound_us"],
                                                            "outbound PCM16 24k -> mu-law 8k": phone["outbound_us"]},
                    "ours fused (base64 in C)")
        for k, v in phone["latency"].items():
            print(f"    latency {k:24s} first output {v['first_output_ms']:.0f} ms, added mean "
                  f"{v['added_latency_mean_ms']:.1f} ms / max {v['added_latency_max_ms']:.1f} ms")
    q = quality_latency(args.short)
    print_quality(q)
    tg = targets(speed, g711, phone, q)
    print("\ntargets (ours):")
    for k, v in tg.items():
        print(f"  {k}: {v}")
    result = {
        "mode": "short" if args.short else "full",
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine()},
        "method": "CPU time (process_time), best of interleaved rounds, 20 ms frames through each Python API",
        "speech_fixtures": AUDIO_DIR.is_dir(),
        "resampler_us_per_20ms": speed,
        "g711_us_per_20ms": g711,
        "phone_paths": phone,
        "quality_latency": q,
        "targets": tg,
        "seconds": round(time.monotonic() - started, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / ("audio_core_short.json" if args.short else "audio_core.json")
    path.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(f"\nwrote {path} in {result['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
