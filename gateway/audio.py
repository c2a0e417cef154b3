"""The one thin wrapper over the compiled audio core. Nothing else imports ``gateway._native``.

PCM is always 16-bit signed little-endian mono (``bytes``, ``bytearray``, or any contiguous buffer of
bytes or int16 such as a ``memoryview``, ``array('h')`` or numpy int16 array); G.711 is one byte per
sample. Every function returns new ``bytes``. ``bytes`` input takes the fastest path (no view).

- ``ulaw_encode/ulaw_decode/alaw_encode/alaw_decode``: G.711, bit-exact with ``audioop``.
- ``Resampler(in_rate, out_rate)``: streaming, any two of 8000/16000/24000/48000 Hz; returns what
  it can on every call (4 ms delay when the lower rate is 8 kHz, 2 ms otherwise, nothing held back).
- ``Transcoder``: one native call per frame for the phone paths (decode + resample, resample +
  encode), optionally with base64 on either side (see its docstring).

Objects own C state: it is freed when they are garbage-collected, or at once by ``close()`` / ``with``.
They are not thread-safe (each reuses its output buffer); use one per stream.
"""
from __future__ import annotations

import threading
from math import gcd as _gcd
from typing import Union

from gateway._native import ffi, lib

BytesLike = Union[bytes, bytearray, memoryview]

RATES = (8000, 16000, 24000, 48000)
CODECS = ("l16", "ulaw", "alaw")
_CODEC_ID = {"l16": 0, "pcm16": 0, "ulaw": 1, "pcmu": 1, "alaw": 2, "pcma": 2}


class AudioError(RuntimeError):
    """The C core returned an error code."""


def _check(code: int) -> None:
    if code != lib.CVG_OK:
        raise AudioError(ffi.string(lib.cvg_strerror(code)).decode())


def version() -> str:
    return ffi.string(lib.cvg_version()).decode()


# ---------------------------------------------------------------- input validation

_BYTE_FORMATS = frozenset(["B", "b", "c"])
_PCM_FORMATS = _BYTE_FORMATS | {"h", "<h", "=h"}


def _byte_len(data, what: str, formats=_BYTE_FORMATS) -> int:
    """Length in bytes of bytes-like ``data``; TypeError/ValueError naming ``what`` otherwise.

    Besides bytes/bytearray, any contiguous buffer of bytes (or, where ``formats`` allows, of int16:
    ``array('h')``, a numpy int16 array) is accepted."""
    cls = type(data)
    if cls is bytes or cls is bytearray:
        return len(data)
    try:
        view = data if cls is memoryview else memoryview(data)
    except TypeError:
        raise TypeError(f"{what}: expected bytes, bytearray or memoryview, got {cls.__name__}") from None
    if view.format not in formats:
        raise TypeError(f"{what}: buffer of {view.format!r} items is not supported (bytes or int16 only)")
    if not view.c_contiguous:
        raise ValueError(f"{what}: buffer must be C-contiguous")
    return view.nbytes


def _bytes_in(data, what: str, formats=_BYTE_FORMATS):
    """(object cffi passes as ``const uint8_t *``, byte length): bytes as they are, other buffers
    through a view. The C side reads PCM16 with unaligned loads, so no copy is ever needed."""
    if type(data) is bytes:
        return data, len(data)
    n = _byte_len(data, what, formats)
    return ffi.from_buffer("uint8_t[]", data), n


def _odd(what: str, n: int) -> ValueError:
    return ValueError(f"{what}: PCM16 needs an even number of bytes, got {n}")


def _rate(rate, what: str) -> int:
    if type(rate) is not int:
        if isinstance(rate, bool) or not isinstance(rate, int):
            raise TypeError(f"{what} must be an int, got {type(rate).__name__}")
        rate = int(rate)
    if rate not in RATES:
        raise ValueError(f"{what}={rate} is not supported (use one of {', '.join(map(str, RATES))})")
    return rate


def _codec(codec, what: str) -> int:
    if not isinstance(codec, str):
        raise TypeError(f"{what} must be a str, got {type(codec).__name__}")
    try:
        return _CODEC_ID[codec.lower()]
    except KeyError:
        raise ValueError(f"{what}={codec!r} is not supported (use one of {', '.join(CODECS)})") from None


# ---------------------------------------------------------------- G.711

class _Scratch(threading.local):
    """Per-thread output buffer for the module-level G.711 functions (the GIL is released during
    the C call, so a shared buffer would race)."""

    def __init__(self):
        self.grow(0)

    def grow(self, n: int) -> None:
        self.cap = max(2 * n, 8192)
        self.codes = ffi.new("uint8_t[]", self.cap)
        self.pcm = ffi.cast("int16_t *", self.codes)
        self.view = ffi.buffer(self.codes)


_scratch = _Scratch()
_cvg_ulaw_encode_le, _cvg_alaw_encode_le = lib.cvg_ulaw_encode_le, lib.cvg_alaw_encode_le
_cvg_ulaw_decode, _cvg_alaw_decode = lib.cvg_ulaw_decode, lib.cvg_alaw_decode


def _encode(fn, pcm) -> bytes:
    """Any buffer, any size, with the errors spelled out (the public functions inline the common case)."""
    src, n = _bytes_in(pcm, "pcm", _PCM_FORMATS)
    s = _scratch
    if n > s.cap:
        s.grow(n)
    rc = fn(src, n, s.codes)
    if rc:
        if n & 1:
            raise _odd("pcm", n)
        _check(rc)
    return s.view[:n >> 1]


def _decode(fn, codes) -> bytes:
    src, n = _bytes_in(codes, "codes")
    s = _scratch
    if 2 * n > s.cap:
        s.grow(2 * n)
    _check(fn(src, n, s.pcm))
    return s.view[:2 * n]


# The four public functions repeat a few lines on purpose: a bytes frame that fits the scratch
# buffer goes straight to C and back (one cffi call, one slice), which is most of their cost.

def ulaw_encode(pcm: BytesLike) -> bytes:
    """PCM16 -> mu-law (one byte per sample), bit-exact with ``audioop.lin2ulaw(pcm, 2)``."""
    if type(pcm) is bytes:
        s, n = _scratch, len(pcm)
        if n <= s.cap and not _cvg_ulaw_encode_le(pcm, n, s.codes):
            return s.view[:n >> 1]
    return _encode(_cvg_ulaw_encode_le, pcm)


def alaw_encode(pcm: BytesLike) -> bytes:
    """PCM16 -> A-law, bit-exact with ``audioop.lin2alaw(pcm, 2)``."""
    if type(pcm) is bytes:
        s, n = _scratch, len(pcm)
        if n <= s.cap and not _cvg_alaw_encode_le(pcm, n, s.codes):
            return s.view[:n >> 1]
    return _encode(_cvg_alaw_encode_le, pcm)


def ulaw_decode(codes: BytesLike) -> bytes:
    """mu-law -> PCM16, bit-exact with ``audioop.ulaw2lin(codes, 2)``."""
    if type(codes) is bytes:
        s, n = _scratch, len(codes)
        if 2 * n <= s.cap and not _cvg_ulaw_decode(codes, n, s.pcm):
            return s.view[:2 * n]
    return _decode(_cvg_ulaw_decode, codes)


def alaw_decode(codes: BytesLike) -> bytes:
    """A-law -> PCM16, bit-exact with ``audioop.alaw2lin(codes, 2)``."""
    if type(codes) is bytes:
        s, n = _scratch, len(codes)
        if 2 * n <= s.cap and not _cvg_alaw_decode(codes, n, s.pcm):
            return s.view[:2 * n]
    return _decode(_cvg_alaw_decode, codes)


# ---------------------------------------------------------------- resampler

class _Native:
    """Owns one C object: freed by ``close()``, ``with``, or the garbage collector (``ffi.gc``)."""

    __slots__ = ("_st",)

    def close(self) -> None:
        st, self._st = self._st, None
        if st is not None:
            ffi.release(st)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _state(self):
        st = self._st
        if st is None:
            raise ValueError(f"{type(self).__name__} is closed")
        return st


_resampler_process_bytes = lib.cvg_resampler_process_bytes


def _flags(low_delay) -> int:
    if not isinstance(low_delay, bool):
        raise TypeError(f"low_delay must be a bool, got {type(low_delay).__name__}")
    return lib.CVG_RESAMPLER_MIN_PHASE if low_delay else 0


def _new(ctor, free, *args):
    err = ffi.new("int *")
    st = ctor(*args, err)
    if st == ffi.NULL:
        _check(err[0] or lib.CVG_ERR_ALLOC)
    return ffi.gc(st, free)


class Resampler(_Native):
    """Streaming PCM16 resampler between any two of 8000, 16000, 24000 and 48000 Hz.

    ``process(pcm)`` returns every output sample the input so far allows (fed 20 ms, it returns
    20 ms, delayed by ``delay_ms``); the result does not depend on how the input is split.
    ``flush()`` returns the tail still owed and starts a new stream; ``reset()`` drops all state.

    ``low_delay=True`` uses the minimum-phase twin of the filter: the same magnitude response
    (ripple, -3 dB point, rejection) with ~0.3 ms group delay through most of the band instead of
    2-4 ms, rising towards the band edge (the phase is not linear; fine for speech).
    ``delay_ms`` then reports the group delay at a quarter of the lower Nyquist (1 kHz at 8 kHz).
    """

    __slots__ = ("in_rate", "out_rate", "_out", "_view", "_cap", "_lens")

    def __init__(self, in_rate: int, out_rate: int, *, low_delay: bool = False):
        self._st = None
        self.in_rate = _rate(in_rate, "in_rate")
        self.out_rate = _rate(out_rate, "out_rate")
        self._st = _new(lib.cvg_resampler_new_ex, lib.cvg_resampler_free, self.in_rate, self.out_rate,
                        _flags(low_delay))
        self._lens = ffi.new("size_t[2]")
        self._grow(2 * self.out_rate // 10 + 16)  # samples: 200 ms, so 20 ms frames never regrow

    def _grow(self, samples: int) -> None:
        self._cap = 2 * samples                   # bytes
        self._out = ffi.new("uint8_t[]", self._cap)
        self._view = ffi.buffer(self._out)

    def process(self, pcm: BytesLike) -> bytes:
        st = self._st
        if type(pcm) is bytes and st is not None:            # the per-frame path: one C call
            got = _resampler_process_bytes(st, pcm, len(pcm), self._out, self._cap)
            if got >= 0:
                return self._view[:got]
        return self._process_any(pcm)

    def _process_any(self, pcm) -> bytes:
        """Other buffer types, errors, and inputs too big for the output buffer."""
        st = self._state()
        src, n = _bytes_in(pcm, "pcm", _PCM_FORMATS)
        got = _resampler_process_bytes(st, src, n, self._out, self._cap)
        if got >= 0:
            return self._view[:got]
        if n & 1:
            raise _odd("pcm", n)
        if got != -lib.CVG_ERR_LENGTH:
            _check(-got)
        self._grow(int(lib.cvg_resampler_max_out(st, n >> 1)) + 16)   # a big input: grow, retry
        got = _resampler_process_bytes(st, src, n, self._out, self._cap)
        _check(-got if got < 0 else 0)
        return self._view[:got]

    def flush(self) -> bytes:
        st = self._state()
        need = int(lib.cvg_resampler_flush_len(st))
        if 2 * need > self._cap:
            self._grow(need)
        lens = self._lens
        lens[1] = self._cap >> 1
        _check(lib.cvg_resampler_flush(st, ffi.cast("int16_t *", self._out), lens + 1))
        return self._view[:2 * lens[1]]

    def reset(self) -> None:
        _check(lib.cvg_resampler_reset(self._state()))

    @property
    def delay_ms(self) -> float:
        """Group delay added by the filter, in milliseconds (nothing else is held back)."""
        return lib.cvg_resampler_delay(self._state()) * 1000.0 / self.out_rate

    @property
    def taps(self) -> int:
        return lib.cvg_resampler_taps(self._state())


# ---------------------------------------------------------------- jitter/playout buffer

class JitterBuffer:
    """Jitter/playout buffer for fixed-size PCM16 frames (``native/include/cvg_jitter.h``).

    ``put(seq, frame)`` stores a frame; ``get()`` is one playout tick and returns
    ``(frame_bytes bytes, kind)`` with kind ``"real"`` (the frame put with the next sequence number,
    unchanged), ``"concealed"`` (the last real frame repeated, fading 6 dB per repeat) or
    ``"silence"``. Sequence numbers are 32-bit with wraparound: any non-negative int is taken modulo
    2**32, so a provider's unbounded counter can be passed as is (``int(msg["sequenceNumber"])``).
    Reordered frames are put back in order, duplicates and frames behind the playout point are
    dropped (counted), more than ``capacity`` buffered frames drop the oldest (counted), a jump of
    more than ``max_gap`` frames restarts the stream (resync).

    Two ways to use it:

    - Playout with a clock (``max_delay > 0``): call ``get()`` once per frame period. The target
      delay adapts between ``min_delay`` and ``max_delay`` frames from the observed arrival jitter.
    - Gap filler without a clock (``min_delay = max_delay = 0``, e.g. inbound to the agent): after
      each ``put``, ``drain()``. An in-order frame comes straight back; a frame after k missing ones
      comes back after k concealment frames, so the output keeps the sender's timeline (gaps up to
      ``max_gap``). Do not call ``get()`` when ``pending`` is 0 in this mode (an underrun tick would
      shorten the next gap by one frame).

    Owns C state, freed by ``close()``, ``with``, or the garbage collector. Not thread-safe.
    """

    REAL, CONCEALED, SILENCE = "real", "concealed", "silence"
    KINDS = (REAL, CONCEALED, SILENCE)
    PUT_RESULTS = ("stored", "late", "duplicate", "overflow", "resync", "dropped")
    MAX_FRAME_BYTES = 65536
    MAX_CAPACITY = 65536
    MAX_GAP = 1 << 30
    MAX_BYTES = 1 << 26  # capacity * frame_bytes
    _COUNTERS = ("received", "played", "late", "duplicate", "overflow", "discarded", "flushed",
                 "lost", "concealed", "silence", "ticks", "underruns", "resyncs", "buffered",
                 "delay", "target_delay", "jitter")

    def __init__(self, frame_bytes: int = 640, capacity: int = 50, min_delay: int = 0,
                 max_delay: int = 10, max_gap: int = 500):
        self._jb = None
        frame_bytes = self._int("frame_bytes", frame_bytes, 2, self.MAX_FRAME_BYTES)
        if frame_bytes % 2:
            raise ValueError(f"frame_bytes must be even (PCM16), got {frame_bytes}")
        capacity = self._int("capacity", capacity, 1, self.MAX_CAPACITY)
        if capacity * frame_bytes > self.MAX_BYTES:
            raise ValueError(f"capacity * frame_bytes must be at most {self.MAX_BYTES} bytes, "
                             f"got {capacity} * {frame_bytes}")
        max_delay = self._int("max_delay", max_delay, 0, capacity - 1)
        min_delay = self._int("min_delay", min_delay, 0, max_delay)
        max_gap = self._int("max_gap", max_gap, capacity, self.MAX_GAP)
        self.frame_bytes, self.capacity, self.max_gap = frame_bytes, capacity, max_gap
        self.min_delay, self.max_delay = min_delay, max_delay
        err = ffi.new("int *")
        jb = lib.cvg_jitter_new(frame_bytes, capacity, min_delay, max_delay, max_gap, err)
        if jb == ffi.NULL:
            _check(err[0] or lib.CVG_ERR_ALLOC)
        self._jb = ffi.gc(jb, lib.cvg_jitter_free, size=capacity * frame_bytes)
        # Reused on every call: the per-frame path allocates nothing on the C side.
        self._out = ffi.new("uint8_t[]", frame_bytes)
        self._outbuf = ffi.buffer(self._out)
        self._int_out = ffi.new("int *")
        self._counters = ffi.new("cvg_jitter_counters *")

    @staticmethod
    def _int(name: str, value, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if not lo <= value <= hi:
            raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
        return value

    def _state(self):
        jb = self._jb
        if jb is None:
            raise ValueError("JitterBuffer is closed")
        return jb

    @staticmethod
    def seq_from_ms(timestamp_ms, frame_ms: int = 20) -> int:
        """A frame sequence number from a media timestamp in ms (Twilio's stream-relative
        ``media.timestamp``, Plivo's epoch ms, as int or decimal str), rounded to the nearest frame so
        a timestamp that wobbles by a few ms maps to the same frame. When a provider drops audio its
        chunk counter may stay contiguous while the timestamp jumps: the timestamp shows the gap."""
        if isinstance(timestamp_ms, str):
            if not timestamp_ms.isascii() or not timestamp_ms.isdigit():
                raise ValueError(f"timestamp_ms must be a decimal number of ms, got {timestamp_ms[:20]!r}")
            timestamp_ms = int(timestamp_ms)
        elif isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int):
            raise TypeError(f"timestamp_ms must be an int or a decimal str, got {type(timestamp_ms).__name__}")
        if timestamp_ms < 0:
            raise ValueError(f"timestamp_ms must be >= 0, got {timestamp_ms}")
        if isinstance(frame_ms, bool) or not isinstance(frame_ms, int) or frame_ms <= 0:
            raise ValueError(f"frame_ms must be a positive int, got {frame_ms!r}")
        return ((timestamp_ms + frame_ms // 2) // frame_ms) & 0xFFFFFFFF

    def put(self, seq: int, frame) -> str:
        """Store one frame; returns what happened to it (one of ``PUT_RESULTS``)."""
        jb = self._state()
        if type(seq) is not int:
            if isinstance(seq, bool) or not hasattr(seq, "__index__"):
                raise TypeError(f"seq must be an int, got {type(seq).__name__}")
            seq = seq.__index__()
        if seq < 0:
            raise ValueError(f"seq must be >= 0, got {seq}")
        if isinstance(frame, memoryview):
            if not frame.c_contiguous:
                raise ValueError("frame: memoryview must be C-contiguous")
            n = frame.nbytes
        elif isinstance(frame, (bytes, bytearray)):
            n = len(frame)
        else:
            raise TypeError(f"frame must be bytes, bytearray or memoryview, got {type(frame).__name__}")
        if n != self.frame_bytes:
            raise ValueError(f"frame must be exactly frame_bytes={self.frame_bytes} bytes, got {n}")
        res = self._int_out
        _check(lib.cvg_jitter_put(jb, seq & 0xFFFFFFFF, ffi.from_buffer("uint8_t[]", frame), n, res))
        return self.PUT_RESULTS[res[0]]

    def get(self) -> tuple[bytes, str]:
        """One playout tick: ``(frame, kind)``."""
        kind = self._int_out
        _check(lib.cvg_jitter_get(self._state(), self._out, self.frame_bytes, kind))
        return self._outbuf[:], self.KINDS[kind[0]]

    def get_into(self, buf) -> str:
        """One playout tick into a writable buffer of at least ``frame_bytes`` bytes; returns the kind."""
        jb = self._state()
        try:
            dst = ffi.from_buffer("uint8_t[]", buf, require_writable=True)
        except (TypeError, BufferError):
            raise TypeError(f"buf must be a writable buffer (bytearray, memoryview), got {type(buf).__name__}") from None
        if len(dst) < self.frame_bytes:
            raise ValueError(f"buf must hold frame_bytes={self.frame_bytes} bytes, got {len(dst)}")
        kind = self._int_out
        _check(lib.cvg_jitter_get(jb, dst, len(dst), kind))
        return self.KINDS[kind[0]]

    @property
    def pending(self) -> int:
        """Frames from the playout point to the newest received (in zero-delay mode: what drain() returns)."""
        return lib.cvg_jitter_pending(self._state())

    def drain(self) -> list[tuple[bytes, str]]:
        """Zero-delay mode only: every frame available now, gaps filled with concealment."""
        if self.max_delay != 0:
            raise ValueError("drain() needs the zero-delay mode (max_delay=0); call get() once per tick")
        jb = self._state()
        out = []
        kind = self._int_out
        for _ in range(lib.cvg_jitter_pending(jb)):
            _check(lib.cvg_jitter_get(jb, self._out, self.frame_bytes, kind))
            out.append((self._outbuf[:], self.KINDS[kind[0]]))
        return out

    def clear(self) -> None:
        """Barge-in: drop everything buffered (counted as flushed); the next put starts a new stream."""
        _check(lib.cvg_jitter_clear(self._state()))

    def reset(self) -> None:
        """Back to a fresh buffer, counters included."""
        _check(lib.cvg_jitter_reset(self._state()))

    def stats(self) -> dict[str, int]:
        """Counters (see cvg_jitter.h): received == played + late + duplicate + overflow + discarded
        + flushed + buffered, and ticks == played + concealed + silence."""
        c = self._counters
        _check(lib.cvg_jitter_stats(self._state(), c))
        return {name: int(getattr(c, name)) for name in self._COUNTERS}

    def close(self) -> None:
        jb, self._jb = self._jb, None
        if jb is not None:
            ffi.release(jb)

    def __enter__(self) -> "JitterBuffer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------- fused phone paths

def _b64_in(payload) -> bytes:
    """A base64 media payload as the ASCII bytes the C side reads."""
    if type(payload) is str:
        try:
            return payload.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError("payload: base64 must be ASCII") from None
    if not isinstance(payload, bytes):
        raise TypeError(f"payload: expected str or bytes, got {type(payload).__name__}")
    return payload


def _b64_check(rc: int) -> None:
    """The base64 paths' errors, named after what the caller passed."""
    if rc == lib.CVG_ERR_ARG:
        raise ValueError("payload: invalid base64")
    if rc == lib.CVG_ERR_LENGTH:
        raise ValueError("payload: decoded PCM16 has an odd number of bytes")
    _check(rc)


class Transcoder(_Native):
    """Decode -> resample -> encode in one native call per frame, for the phone hot path.

    ``Transcoder(in_codec, in_rate, out_codec, out_rate)``; codecs are ``"ulaw"``, ``"alaw"`` or
    ``"l16"`` (PCM16 little-endian), rates any of 8000/16000/24000/48000. Shortcuts:

    - ``Transcoder.inbound(codec="ulaw", rate=8000)``: provider audio -> PCM16 16 kHz for the agent
    - ``Transcoder.outbound(codec="ulaw", rate=8000)``: agent PCM16 24 kHz -> provider audio

    ``process(data) -> bytes`` raw in, raw out. ``process_b64(payload) -> bytes`` takes one whole base64
    media payload (``str`` or ASCII bytes, as Twilio/Plivo/Exotel send it) and ``process_to_b64(data)
    -> str`` returns one; both do the base64 inside C. Invalid base64 or an odd PCM16 byte count raise
    ``ValueError`` and leave the stream untouched. The resampler keeps state across calls exactly as
    ``Resampler`` does (same delay, output independent of framing); ``flush()`` returns the tail in the
    output codec, ``reset()`` starts over. ``low_delay=True`` as for ``Resampler`` (4 ms -> ~0.3 ms
    on the 8 kHz paths).
    """

    __slots__ = ("in_codec", "in_rate", "out_codec", "out_rate", "_in_bps", "_out_bps", "_num", "_den",
                 "_out", "_chars", "_view", "_cap", "_len", "_in_formats", "_fill", "_fill_view",
                 "_fill_cap", "tally")

    def __init__(self, in_codec: str, in_rate: int, out_codec: str, out_rate: int, *, low_delay: bool = False):
        self._st = None
        in_id, out_id = _codec(in_codec, "in_codec"), _codec(out_codec, "out_codec")
        self.in_codec, self.out_codec = CODECS[in_id], CODECS[out_id]
        self.in_rate, self.out_rate = _rate(in_rate, "in_rate"), _rate(out_rate, "out_rate")
        self._st = _new(lib.cvg_transcoder_new, lib.cvg_transcoder_free,
                        in_id, self.in_rate, out_id, self.out_rate, _flags(low_delay))
        self._in_bps = 2 if in_id == 0 else 1
        self._out_bps = 2 if out_id == 0 else 1
        g = _gcd(self.in_rate, self.out_rate)
        self._num, self._den = self.out_rate // g, self.in_rate // g
        self._len = ffi.new("size_t *")
        self._in_formats = _PCM_FORMATS if self._in_bps == 2 else _BYTE_FORMATS
        self._grow(2 * self.out_rate // 10 * self._out_bps)  # 200 ms of output, base64-expanded
        self._fill_cap = 0
        # process_b64_fill's counts for its last call: (late or duplicate frames dropped, gaps
        # filled, concealment frames written); all zero on the common path
        self.tally = ffi.new("uint32_t[3]")

    @classmethod
    def inbound(cls, codec: str = "ulaw", rate: int = 8000, out_rate: int = 16000, *,
                low_delay: bool = False) -> "Transcoder":
        """Provider -> agent: ``codec`` at ``rate`` in, PCM16 at ``out_rate`` (16 kHz) out."""
        return cls(codec, rate, "l16", out_rate, low_delay=low_delay)

    @classmethod
    def outbound(cls, codec: str = "ulaw", rate: int = 8000, in_rate: int = 24000, *,
                 low_delay: bool = False) -> "Transcoder":
        """Agent -> provider: PCM16 at ``in_rate`` (24 kHz) in, ``codec`` at ``rate`` out."""
        return cls("l16", in_rate, codec, rate, low_delay=low_delay)

    def _grow(self, cap: int) -> None:
        self._cap = cap
        self._out = ffi.new("uint8_t[]", cap)
        self._chars = ffi.cast("char *", self._out)
        self._view = ffi.buffer(self._out)

    def _room(self, in_bytes: int, b64: bool = False) -> int:
        """Room for what in_bytes of input can make (an upper bound of the C side's exact need)."""
        need = ((in_bytes // self._in_bps) * self._num // self._den + 1) * self._out_bps
        if b64:
            need = (need + 2) // 3 * 4
        if need > self._cap:
            self._grow(need * 2)
        return self._cap

    def _in(self, data, what: str):
        src, n = _bytes_in(data, what, self._in_formats)
        if n % self._in_bps:
            raise _odd(what, n)
        return src, n

    def process(self, data: BytesLike) -> bytes:
        st = self._state()
        src, n = self._in(data, "data")
        length = self._len
        length[0] = self._room(n)
        _check(lib.cvg_transcoder_process(st, src, n, self._out, length))
        return self._view[:length[0]]

    def process_b64(self, payload: Union[str, bytes]) -> bytes:
        st = self._state()
        payload = _b64_in(payload)
        n = len(payload)
        length = self._len
        length[0] = self._room(n * 3 // 4 + 2)
        _b64_check(lib.cvg_transcoder_process_b64(st, payload, n, self._out, length))
        return self._view[:length[0]]

    def process_b64_fill(self, payload: Union[str, bytes], jitter: "JitterBuffer", seq: int,
                         per_chunk: bool = False) -> bytes:
        """``process_b64`` and then ``jitter``'s zero-delay gap filling, in one native call (the
        inbound phone step). When the PCM is a whole number of ``jitter.frame_bytes`` frames they
        are put as ``seq``, ``seq + 1``, ... (with ``per_chunk``, ``seq`` counts chunks of this many
        frames) and the buffer drained, exactly as ``put()`` then ``drain()`` per frame would: the
        result is the concealment for a gap in front of each frame, then the frame; nothing for a
        late or duplicate one. Other PCM comes back as it is. ``tally`` then holds (late or
        duplicate, gaps filled, concealment frames). ``jitter`` must be in zero-delay mode."""
        st = self._state()
        payload = _b64_in(payload)
        if seq < 0:
            raise ValueError(f"seq must be >= 0, got {seq}")
        n = len(payload)
        scratch = self._room(n * 3 // 4 + 2)
        need = scratch + jitter.frame_bytes * jitter.max_gap
        if need > self._fill_cap:
            self._fill_cap = need
            self._fill = ffi.new("uint8_t[]", need)
            self._fill_view = ffi.buffer(self._fill)
        length = self._len
        length[0] = self._fill_cap
        rc = lib.cvg_transcoder_process_b64_fill(st, payload, n, jitter._state(), seq & 0xFFFFFFFF,
                                                 per_chunk, self._out, scratch, self._fill, length,
                                                 self.tally)
        if rc != lib.CVG_OK:
            if rc == lib.CVG_ERR_ARG and jitter.max_delay:
                raise ValueError("jitter: gap filling needs the zero-delay mode (max_delay=0)")
            _b64_check(rc)
        return self._fill_view[:length[0]]

    def process_to_b64(self, data: BytesLike) -> str:
        return self.process_to_b64_bytes(data).decode("ascii")

    def process_to_b64_bytes(self, data: BytesLike) -> bytes:
        """``process_to_b64`` as ASCII bytes (ready to go into a UTF-8 message as is)."""
        st = self._state()
        src, n = self._in(data, "data")
        length = self._len
        length[0] = self._room(n, b64=True)
        _check(lib.cvg_transcoder_process_to_b64(st, src, n, self._chars, length))
        return self._view[:length[0]]

    def flush(self) -> bytes:
        st = self._state()
        need = int(lib.cvg_transcoder_flush_len(st))
        if need > self._cap:
            self._grow(need)
        length = self._len
        length[0] = self._cap
        _check(lib.cvg_transcoder_flush(st, self._out, length))
        return self._view[:length[0]]

    def reset(self) -> None:
        _check(lib.cvg_transcoder_reset(self._state()))

    @property
    def delay_ms(self) -> float:
        return lib.cvg_transcoder_delay(self._state()) * 1000.0 / self.out_rate
