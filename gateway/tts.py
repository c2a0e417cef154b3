"""Text-to-speech for voice flows: prompts rendered as PCM16LE mono 24 kHz (the agent-side rate a
session plays towards the caller; the session's native resampler takes it to the provider's format).

Backends (same interface: ``available``, ``name``, ``async synthesize(text, voice) -> bytes``):

* :class:`EspeakTts` — the embedded default: ``espeak-ng --stdout`` run as a subprocess (text on
  stdin, so nothing in it is ever parsed as an option), its WAV parsed and resampled;
* :class:`HttpTts` — POST ``{"text", "voice"}`` to a URL that answers a WAV, or raw PCM16LE with
  its rate in ``Content-Type: audio/L16; rate=N`` or an ``X-Sample-Rate`` header.

:class:`CachedTts` wraps either with a bounded LRU (bytes) keyed by text + voice: menus repeat the
same prompts on every call. :func:`make_tts` builds the configured backend and logs a clear warning
when espeak-ng is missing; ``tts_available(backend)`` is the capability flag flow validation uses.

Resampling: the native core takes 8/16/24/48 kHz. espeak-ng speaks at 22050 Hz, so other rates are
first brought to 48 kHz by linear interpolation (numpy when installed, else pure Python), then the
native resampler's low-pass takes 48 kHz to 24 kHz, which removes the interpolation's images
(speech energy sits far below them). Every failure is a :class:`TtsError` with a short reason;
texts are never logged (they may carry a caller's data).
"""
from __future__ import annotations

import collections
import logging
import re
import shutil
import struct
from array import array
from typing import Protocol

import httpx
import msgspec
import trio

from gateway import audio

log = logging.getLogger("converse.tts")

OUT_RATE = 24_000
MAX_TEXT_CHARS = 4000
MAX_AUDIO_BYTES = 16 * 1024 * 1024          # a backend answer larger than this is refused
_VOICE_RE = re.compile(r"^[A-Za-z0-9_+-]{1,40}$")
_L16_RATE_RE = re.compile(r"rate\s*=\s*(\d+)", re.I)


class TtsError(Exception):
    """Speech could not be rendered (backend missing, failed, timed out or answered garbage)."""


class TtsBackend(Protocol):
    name: str

    @property
    def available(self) -> bool: ...

    async def synthesize(self, text: str, voice: str | None = None) -> bytes: ...


def tts_available(backend: TtsBackend | None) -> bool:
    """The capability flag for ``gateway.flows.validate(tts_available=...)``."""
    return backend is not None and backend.available


# -- audio conversion ---------------------------------------------------------------------------
def parse_wav(data: bytes) -> tuple[bytes, int]:
    """(PCM16LE mono, rate) from a RIFF/WAVE file. Streaming writers (espeak-ng --stdout) put a
    placeholder size in the data chunk: the data then runs to the end of the file. Stereo is
    reduced to its first channel."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise TtsError("not a WAV file")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8:pos + 8 + size]          # a short slice when the size is a placeholder
        if cid == b"fmt ":
            if len(body) < 16:
                raise TtsError("WAV fmt chunk too short")
            fmt = struct.unpack_from("<HHIIHH", body)
        elif cid == b"data":
            if fmt is None:
                raise TtsError("WAV data before its fmt chunk")
            return _pcm_from_wav(fmt, body)
        pos += 8 + size + (size & 1)
    raise TtsError("WAV file has no data chunk")


def _pcm_from_wav(fmt: tuple, body: bytes) -> tuple[bytes, int]:
    tag, channels, rate, _, block, bits = fmt
    if tag not in (1, 0xFFFE) or bits != 16:
        raise TtsError(f"WAV must be 16-bit PCM (format {tag}, {bits} bits)")
    if not 1 <= channels <= 8 or not 4000 <= rate <= 192_000 or block != 2 * channels:
        raise TtsError("WAV header is inconsistent")
    body = body[:len(body) - len(body) % block]
    if channels > 1:
        samples = array("h", body)
        body = samples[::channels].tobytes()
    return body, rate


def _interpolate(pcm: bytes, in_rate: int, out_rate: int) -> bytes:
    """Linear interpolation (the native low-pass that follows removes its images)."""
    n = len(pcm) // 2
    if n < 2:
        return pcm
    step = in_rate / out_rate
    m = int((n - 1) / step) + 1
    try:
        import numpy as np
    except ImportError:
        src = array("h", pcm)
        out = array("h", bytes(2 * m))
        for i in range(m):
            p = i * step
            j = int(p)
            a = src[j]
            out[i] = a if j + 1 >= n else int(a + (src[j + 1] - a) * (p - j))
        return out.tobytes()
    src = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    pos = np.arange(m, dtype=np.float64) * step
    return np.interp(pos, np.arange(n), src).round().astype("<i2").tobytes()


def to_output_rate(pcm: bytes, rate: int) -> bytes:
    """PCM16LE mono at ``rate`` -> PCM16LE mono 24 kHz, through the native resampler."""
    if len(pcm) % 2:
        pcm = pcm[:-1]
    if rate == OUT_RATE:
        return bytes(pcm)
    if rate not in audio.RATES:
        pcm, rate = _interpolate(pcm, rate, 48_000), 48_000
    with audio.Resampler(rate, OUT_RATE) as rs:
        return rs.process(pcm) + rs.flush()


def _check_text(text: str, voice: str | None) -> None:
    if not isinstance(text, str) or not text.strip():
        raise TtsError("nothing to say")
    if len(text) > MAX_TEXT_CHARS:
        raise TtsError(f"text longer than {MAX_TEXT_CHARS} characters")
    if voice is not None and not _VOICE_RE.match(voice):
        raise TtsError("voice names are 1-40 letters, digits, '_', '+' or '-'")


# -- backends -----------------------------------------------------------------------------------
class EspeakTts:
    """espeak-ng as a subprocess: ``espeak-ng --stdout -v VOICE -s RATE`` with the text on stdin."""

    name = "espeak-ng"

    def __init__(self, *, binary: str = "espeak-ng", voice: str = "en-us", words_per_minute: int = 160,
                 timeout_s: float = 10.0):
        self.path = shutil.which(binary)
        self.voice = voice
        self.words_per_minute = int(words_per_minute)
        self.timeout_s = timeout_s

    @property
    def available(self) -> bool:
        return self.path is not None

    async def synthesize(self, text: str, voice: str | None = None) -> bytes:
        voice = voice or self.voice
        _check_text(text, voice)
        if self.path is None:
            raise TtsError("espeak-ng is not installed")
        argv = [self.path, "--stdout", "-v", voice, "-s", str(self.words_per_minute)]
        try:
            with trio.fail_after(self.timeout_s):
                done = await trio.run_process(argv, stdin=text.encode("utf-8"),
                                              capture_stdout=True, capture_stderr=True,
                                              check=False)
        except trio.TooSlowError:
            raise TtsError("espeak-ng timed out") from None
        except OSError as exc:
            raise TtsError(f"espeak-ng could not run ({type(exc).__name__})") from None
        if done.returncode != 0:
            why = done.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
            raise TtsError(f"espeak-ng failed ({done.returncode}): {why[0][:120] if why else ''}")
        pcm, rate = parse_wav(done.stdout)
        return to_output_rate(pcm, rate)


class HttpTts:
    """An HTTP TTS service: POST ``{"text", "voice"}`` (JSON) to ``url``; the answer is a WAV or
    raw PCM16LE (rate from ``audio/L16; rate=N``, ``X-Sample-Rate``, else ``default_rate``)."""

    name = "http"

    def __init__(self, url: str, *, voice: str | None = None, headers: dict | None = None,
                 timeout_s: float = 10.0, default_rate: int = OUT_RATE,
                 client: httpx.AsyncClient | None = None):
        if not url.startswith(("http://", "https://")):
            raise ValueError("the HTTP TTS backend needs an http(s):// URL")
        self.url = url
        self.voice = voice
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s
        self.default_rate = default_rate
        self._client = client

    @property
    def available(self) -> bool:
        return True

    async def synthesize(self, text: str, voice: str | None = None) -> bytes:
        voice = voice or self.voice
        _check_text(text, voice)
        body = msgspec.json.encode({"text": text, "voice": voice})
        headers = {"Content-Type": "application/json", **self.headers}
        client = self._client or httpx.AsyncClient(follow_redirects=False)
        try:
            with trio.fail_after(self.timeout_s):
                request = client.build_request("POST", self.url, content=body, headers=headers,
                                               timeout=httpx.Timeout(self.timeout_s))
                response = await client.send(request, stream=True)
                try:
                    data = await _read_capped(response)
                finally:
                    await response.aclose()
        except trio.TooSlowError:
            raise TtsError("TTS service timed out") from None
        except (httpx.HTTPError, OSError, ValueError) as exc:
            raise TtsError(f"TTS service unreachable ({type(exc).__name__})") from None
        finally:
            if self._client is None:
                await client.aclose()
        if not 200 <= response.status_code < 300:
            raise TtsError(f"TTS service answered HTTP {response.status_code}")
        if data[:4] == b"RIFF":
            pcm, rate = parse_wav(data)
        else:
            pcm, rate = data, self._rate(response)
        if not 4000 <= rate <= 192_000:
            raise TtsError(f"TTS service sent an unusable sample rate {rate}")
        return to_output_rate(pcm, rate)

    def _rate(self, response: httpx.Response) -> int:
        m = _L16_RATE_RE.search(response.headers.get("content-type", ""))
        raw = m.group(1) if m else response.headers.get("x-sample-rate")
        try:
            return int(raw) if raw else self.default_rate
        except ValueError:
            raise TtsError("TTS service sent an unreadable sample rate") from None


async def _read_capped(response: httpx.Response) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_AUDIO_BYTES:
            raise TtsError("TTS answer too large")
        chunks.append(chunk)
    return b"".join(chunks)


class CachedTts:
    """A bounded LRU of rendered prompts (keyed by backend, voice and text) around a backend.
    ``max_bytes`` bounds the audio held; a single prompt larger than a quarter of it is not kept."""

    def __init__(self, backend: TtsBackend, max_bytes: int = 32 * 1024 * 1024):
        self.backend = backend
        self.name = backend.name
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._items: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()

    @property
    def available(self) -> bool:
        return self.backend.available

    def __len__(self) -> int:
        return len(self._items)

    async def synthesize(self, text: str, voice: str | None = None) -> bytes:
        key = (self.backend.name, voice, text)
        pcm = self._items.get(key)
        if pcm is not None:
            self._items.move_to_end(key)
            self.hits += 1
            return pcm
        self.misses += 1
        pcm = await self.backend.synthesize(text, voice)
        self._keep(key, pcm)
        return pcm

    def _keep(self, key: tuple, pcm: bytes) -> None:
        if len(pcm) > self.max_bytes // 4 or key in self._items:
            return
        self._items[key] = pcm
        self.size += len(pcm)
        while self.size > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.size -= len(old)


class TtsConfig(msgspec.Struct, frozen=True, kw_only=True):
    """``backend``: espeak (default) | http | none. Read by ``converse`` from CONVERSE_TTS_*."""
    backend: str = "espeak"
    voice: str = "en-us"
    words_per_minute: int = 160
    url: str | None = None                  # http backend
    timeout_s: float = 10.0
    cache_bytes: int = 32 * 1024 * 1024


    @classmethod
    def from_env(cls, env=None) -> "TtsConfig":
        """CONVERSE_TTS_BACKEND, _VOICE, _WPM, _URL, _TIMEOUT_S, _CACHE_BYTES (unset: defaults)."""
        import os
        env = os.environ if env is None else env
        raw = {"backend": env.get("CONVERSE_TTS_BACKEND"), "voice": env.get("CONVERSE_TTS_VOICE"),
               "words_per_minute": env.get("CONVERSE_TTS_WPM"), "url": env.get("CONVERSE_TTS_URL"),
               "timeout_s": env.get("CONVERSE_TTS_TIMEOUT_S"),
               "cache_bytes": env.get("CONVERSE_TTS_CACHE_BYTES")}
        try:
            return msgspec.convert({k: v for k, v in raw.items() if v}, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ValueError(f"bad CONVERSE_TTS_* setting: {exc}") from None


def config_available(config: TtsConfig) -> bool:
    """Whether ``config`` can speak, without building it (the control plane's validation flag)."""
    if config.backend == "http":
        return bool(config.url)
    if config.backend == "espeak":
        return shutil.which("espeak-ng") is not None
    return False


def make_tts(config: TtsConfig | None = None) -> CachedTts | None:
    """The configured backend behind a cache, or None for ``backend="none"``. Logs a warning at
    startup when it cannot speak, so an operator learns it before a voice flow is assigned."""
    config = config or TtsConfig()
    if config.backend == "none":
        log.warning("text-to-speech is disabled: voice flows that speak will be rejected")
        return None
    if config.backend == "http":
        if not config.url:
            raise ValueError("the http TTS backend needs a url (CONVERSE_TTS_URL)")
        backend: TtsBackend = HttpTts(config.url, voice=config.voice if config.voice != "en-us"
                                      else None, timeout_s=config.timeout_s)
    elif config.backend == "espeak":
        backend = EspeakTts(voice=config.voice, words_per_minute=config.words_per_minute,
                            timeout_s=config.timeout_s)
        if not backend.available:
            log.warning("espeak-ng is not installed: voice flows cannot speak and will be "
                        "rejected by validation (apt install espeak-ng, or set CONVERSE_TTS_BACKEND="
                        "http with CONVERSE_TTS_URL)")
    else:
        raise ValueError(f"unknown TTS backend {config.backend!r} (espeak, http or none)")
    return CachedTts(backend, config.cache_bytes)
