"""gateway.tts: WAV parsing, rate conversion through the native core, espeak-ng as a subprocess,
the HTTP backend against a real server on 127.0.0.1, the LRU cache, and the startup warning."""
from __future__ import annotations

import logging
import math
import shutil
import struct
from array import array

import pytest
import trio

from conftest import require
from gateway import tts
from gateway.tts import CachedTts, EspeakTts, HttpTts, TtsConfig, TtsError, make_tts, parse_wav


def wav(pcm: bytes, rate: int, channels: int = 1, data_size: int | None = None) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    size = len(pcm) if data_size is None else data_size
    return (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", size) + pcm)


def sine(rate: int, seconds: float, hz: float = 440.0, amp: int = 8000) -> bytes:
    n = int(rate * seconds)
    return array("h", (int(amp * math.sin(2 * math.pi * hz * i / rate)) for i in range(n))).tobytes()


def dominant_hz(pcm: bytes, rate: int) -> float:
    """Zero-crossing frequency estimate (enough for a pure tone)."""
    s = array("h", pcm)[rate // 10:]                 # skip the filter's start-up
    crossings = sum(1 for a, b in zip(s, s[1:]) if a < 0 <= b)
    return crossings * rate / len(s)


def test_parse_wav_plain_streaming_and_stereo():
    pcm = sine(16000, 0.1)
    assert parse_wav(wav(pcm, 16000)) == (pcm, 16000)
    # espeak-ng --stdout writes a placeholder size: the data runs to the end of the file
    assert parse_wav(wav(pcm, 22050, data_size=0x7FFFF000)) == (pcm, 22050)
    stereo = array("h", [1, -1] * 100).tobytes()
    assert parse_wav(wav(stereo, 8000, channels=2)) == (array("h", [1] * 100).tobytes(), 8000)


@pytest.mark.parametrize("data", [b"", b"RIFF", b"RIFF\0\0\0\0WAVE", b"not a wav at all",
                                  wav(b"\0\0", 16000)[:30],
                                  wav(b"\0\0", 16000).replace(b"\x10\x00", b"\x08\x00", 1)])
def test_parse_wav_rejects_garbage(data):
    with pytest.raises(TtsError):
        parse_wav(data)


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_to_output_rate_keeps_pitch_and_duration(rate):
    out = tts.to_output_rate(sine(rate, 1.0), rate)
    assert abs(len(out) / 48000 - 1.0) < 0.01
    assert abs(dominant_hz(out, 24000) - 440) < 5


def test_pure_python_interpolation_matches_numpy(monkeypatch):
    pcm = sine(22050, 0.2)
    fast = tts._interpolate(pcm, 22050, 48000)
    import builtins
    real_import = builtins.__import__

    def no_numpy(name, *a, **kw):
        if name == "numpy":
            raise ImportError("no numpy")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_numpy)
    slow = tts._interpolate(pcm, 22050, 48000)
    assert len(fast) == len(slow)
    assert max(abs(a - b) for a, b in zip(array("h", fast), array("h", slow))) <= 1


async def test_espeak_renders_a_prompt_at_24k():
    require(shutil.which("espeak-ng") is not None, "espeak-ng is not installed")
    backend = EspeakTts()
    pcm = await backend.synthesize("For support press 2.")
    seconds = len(pcm) / 48000
    assert 0.8 < seconds < 5
    assert max(abs(x) for x in array("h", pcm)) > 1000          # speech, not silence
    # text is never parsed as an option (it goes on stdin)
    assert len(await backend.synthesize("--version -v xx")) > 0
    with pytest.raises(TtsError):
        await backend.synthesize("hello", voice="--bad")
    with pytest.raises(TtsError):
        await backend.synthesize("   ")


async def test_espeak_missing_is_a_clear_warning_and_unavailable(caplog):
    caplog.set_level(logging.WARNING)
    backend = make_tts(TtsConfig(backend="espeak"))
    backend.backend.path = None                     # as if the package were not installed
    assert not tts.tts_available(backend)
    with pytest.raises(TtsError, match="not installed"):
        await backend.synthesize("hello")
    missing = EspeakTts(binary="espeak-ng-that-does-not-exist")
    assert not missing.available
    caplog.clear()
    import gateway.tts as mod
    orig = mod.shutil.which
    try:
        mod.shutil.which = lambda name: None
        made = make_tts(TtsConfig(backend="espeak"))
    finally:
        mod.shutil.which = orig
    assert not made.available
    assert "espeak-ng is not installed" in caplog.text
    assert make_tts(TtsConfig(backend="none")) is None
    assert tts.tts_available(None) is False


async def test_cache_is_an_lru_bounded_in_bytes():
    class Counting:
        name, available = "count", True

        def __init__(self):
            self.calls = 0

        async def synthesize(self, text, voice=None):
            self.calls += 1
            return b"\0\0" * 1000 * len(text)        # 2 KB per character

    backend = Counting()
    cache = CachedTts(backend, max_bytes=40_000)
    await cache.synthesize("aaaa")                   # 8 KB
    await cache.synthesize("aaaa")
    assert backend.calls == 1 and cache.hits == 1
    await cache.synthesize("aaaa", voice="other")    # the voice is part of the key
    assert backend.calls == 2
    for text in ("bbbb", "cccc", "dddd", "eeee"):
        await cache.synthesize(text)
    assert cache.size <= 40_000
    await cache.synthesize("eeee")
    assert backend.calls == 6                        # still cached
    await cache.synthesize("aaaa")                   # evicted long ago
    assert backend.calls == 7
    await cache.synthesize("x" * 6)                  # 12 KB > a quarter: not kept
    await cache.synthesize("x" * 6)
    assert backend.calls == 9


async def http_tts_server(task_status=trio.TASK_STATUS_IGNORED):
    """POST {"text"} -> path /wav: a WAV at 16 kHz; /l16: raw PCM with audio/L16;rate=8000;
    /slow: never answers; /500: an error; /big: a too large answer."""
    import h11
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])

    async def handle(stream):
        conn = h11.Connection(h11.SERVER)
        target = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                target = event.target.decode()
            elif isinstance(event, h11.EndOfMessage):
                break
        status, ctype, body = 200, "audio/wav", wav(sine(16000, 0.5), 16000)
        if target == "/l16":
            ctype, body = "audio/L16; rate=8000", sine(8000, 0.5)
        elif target == "/slow":
            await trio.sleep(3600)
        elif target == "/500":
            status, ctype, body = 500, "text/plain", b"down"
        elif target == "/big":
            body = b"\0" * (tts.MAX_AUDIO_BYTES + 2)
        headers = [("content-type", ctype), ("content-length", str(len(body)))]
        await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
        await stream.send_all(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
        await stream.aclose()

    await trio.serve_listeners(handle, listeners)


async def test_http_backend(nursery):
    # Real clock: with autojump_clock the virtual clock leaps to the backend's deadline whenever
    # every task waits on the (real) socket, so a large answer could "time out" spuriously.
    port = await nursery.start(http_tts_server)
    base = f"http://127.0.0.1:{port}"
    pcm = await HttpTts(base + "/wav").synthesize("hello")
    assert abs(len(pcm) / 48000 - 0.5) < 0.01
    pcm = await HttpTts(base + "/l16").synthesize("hello")
    assert abs(len(pcm) / 48000 - 0.5) < 0.01
    assert abs(dominant_hz(pcm, 24000) - 440) < 10
    with pytest.raises(TtsError, match="500"):
        await HttpTts(base + "/500").synthesize("hello")
    with pytest.raises(TtsError, match="too large"):
        await HttpTts(base + "/big", timeout_s=120).synthesize("hello")
    with pytest.raises(TtsError, match="unreachable"):
        await HttpTts("http://127.0.0.1:1/x").synthesize("hello")
    with pytest.raises(ValueError):
        HttpTts("ftp://example.com/")


async def test_http_backend_times_out(nursery, autojump_clock):
    port = await nursery.start(http_tts_server)
    t0 = trio.current_time()
    with pytest.raises(TtsError, match="timed out"):
        await HttpTts(f"http://127.0.0.1:{port}/slow", timeout_s=2).synthesize("hello")
    assert trio.current_time() - t0 < 3            # virtual time: the deadline, not the hour
