"""The one thin wrapper over the compiled audio core. Nothing else imports ``gateway._native``.

PCM is always 16-bit signed little-endian mono (``bytes``, ``bytearray`` or a contiguous
``memoryview``); G.711 is one byte per sample. Every function returns new ``bytes``.

- ``ulaw_encode/ulaw_decode/alaw_encode/alaw_decode``: G.711, bit-exact with ``audioop``.
- ``Resampler(in_rate, out_rate)``: streaming, any two of 8000/16000/24000/48000 Hz; returns what
  it can on every call (4 ms delay when the lower rate is 8 kHz, 2 ms otherwise, nothing held back).
- ``Transcoder``: one native call per frame for the phone paths (decode + resample, resample +
  encode), optionally with base64 on either side (see its docstring).

Objects own C state: it is freed when they are garbage-collected, or at once by ``close()`` / ``with``.
They are not thread-safe (each reuses its output buffer); use one per stream.
"""
from __future__ import annotations

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

def _byte_len(data, what: str) -> int:
    """Length in bytes of a bytes-like ``data``; TypeError/ValueError naming ``what`` otherwise."""
    cls = type(data)
    if cls is bytes or cls is bytearray:
        return len(data)
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    if isinstance(data, memoryview):
        if not data.c_contiguous:
            raise ValueError(f"{what}: memoryview must be C-contiguous")
        return data.nbytes
    raise TypeError(f"{what}: expected bytes, bytearray or memoryview, got {cls.__name__}")


def _pcm_in(data, what: str = "pcm"):
    """(int16_t* cdata, sample count) for PCM16 ``data``; copies only a misaligned buffer."""
    n = _byte_len(data, what)
    if n & 1:
        raise ValueError(f"{what}: PCM16 needs an even number of bytes, got {n}")
    if type(data) is not bytes:  # a bytes payload is always aligned; views and bytearrays may not be
        if n == 0:
            return ffi.NULL, 0
        ptr = ffi.from_buffer("char[]", data)
        if int(ffi.cast("uintptr_t", ptr)) & 1:
            data = bytes(data)
    return ffi.from_buffer("int16_t[]", data), n >> 1


def _codes_in(data, what: str = "codes"):
    n = _byte_len(data, what)
    return ffi.from_buffer("uint8_t[]", data), n


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

def ulaw_encode(pcm: BytesLike) -> bytes:
    """PCM16 -> mu-law (one byte per sample), bit-exact with ``audioop.lin2ulaw(pcm, 2)``."""
    src, n = _pcm_in(pcm)
    out = ffi.new("uint8_t[]", n)
    _check(lib.cvg_ulaw_encode(src, n, out))
    return ffi.buffer(out, n)[:]


def alaw_encode(pcm: BytesLike) -> bytes:
    """PCM16 -> A-law, bit-exact with ``audioop.lin2alaw(pcm, 2)``."""
    src, n = _pcm_in(pcm)
    out = ffi.new("uint8_t[]", n)
    _check(lib.cvg_alaw_encode(src, n, out))
    return ffi.buffer(out, n)[:]


def ulaw_decode(codes: BytesLike) -> bytes:
    """mu-law -> PCM16, bit-exact with ``audioop.ulaw2lin(codes, 2)``."""
    src, n = _codes_in(codes)
    out = ffi.new("int16_t[]", n)
    _check(lib.cvg_ulaw_decode(src, n, out))
    return ffi.buffer(out, 2 * n)[:]


def alaw_decode(codes: BytesLike) -> bytes:
    """A-law -> PCM16, bit-exact with ``audioop.alaw2lin(codes, 2)``."""
    src, n = _codes_in(codes)
    out = ffi.new("int16_t[]", n)
    _check(lib.cvg_alaw_decode(src, n, out))
    return ffi.buffer(out, 2 * n)[:]


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
    """

    __slots__ = ("in_rate", "out_rate", "_out", "_cap", "_lens")

    def __init__(self, in_rate: int, out_rate: int):
        self._st = None
        self.in_rate = _rate(in_rate, "in_rate")
        self.out_rate = _rate(out_rate, "out_rate")
        self._st = _new(lib.cvg_resampler_new, lib.cvg_resampler_free, self.in_rate, self.out_rate)
        self._lens = ffi.new("size_t[2]")
        self._grow(2 * self.out_rate // 10)  # room for 100 ms: one call per 20 ms frame

    def _grow(self, cap: int) -> None:
        self._cap = cap
        self._out = ffi.new("int16_t[]", cap)

    def process(self, pcm: BytesLike) -> bytes:
        st = self._state()
        src, n = _pcm_in(pcm)
        lens = self._lens
        lens[0] = n
        lens[1] = self._cap
        _check(lib.cvg_resampler_process(st, src, lens, self._out, lens + 1))
        if lens[0] == n:
            return ffi.buffer(self._out, 2 * lens[1])[:]
        return self._process_rest(st, src, n, ffi.buffer(self._out, 2 * lens[1])[:], lens[0])

    def _process_rest(self, st, src, n, head: bytes, used: int) -> bytes:
        """The input made more than the buffer holds: grow it and finish."""
        self._grow(int(lib.cvg_resampler_max_out(st, n - used)) + 16)
        lens = self._lens
        lens[0] = n - used
        lens[1] = self._cap
        _check(lib.cvg_resampler_process(st, src + used, lens, self._out, lens + 1))
        return head + ffi.buffer(self._out, 2 * lens[1])[:]

    def flush(self) -> bytes:
        st = self._state()
        need = int(lib.cvg_resampler_flush_len(st))
        if need > self._cap:
            self._grow(need)
        lens = self._lens
        lens[1] = self._cap
        _check(lib.cvg_resampler_flush(st, self._out, lens + 1))
        return ffi.buffer(self._out, 2 * lens[1])[:]

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
    output codec, ``reset()`` starts over.
    """

    __slots__ = ("in_codec", "in_rate", "out_codec", "out_rate", "_in_bps", "_out_bps", "_num", "_den",
                 "_out", "_cap", "_len")

    def __init__(self, in_codec: str, in_rate: int, out_codec: str, out_rate: int):
        self._st = None
        in_id, out_id = _codec(in_codec, "in_codec"), _codec(out_codec, "out_codec")
        self.in_codec, self.out_codec = CODECS[in_id], CODECS[out_id]
        self.in_rate, self.out_rate = _rate(in_rate, "in_rate"), _rate(out_rate, "out_rate")
        self._st = _new(lib.cvg_transcoder_new, lib.cvg_transcoder_free,
                        in_id, self.in_rate, out_id, self.out_rate)
        self._in_bps = 2 if in_id == 0 else 1
        self._out_bps = 2 if out_id == 0 else 1
        g = _gcd(self.in_rate, self.out_rate)
        self._num, self._den = self.out_rate // g, self.in_rate // g
        self._len = ffi.new("size_t *")
        self._grow(2 * self.out_rate // 10 * self._out_bps)  # 200 ms of output, base64-expanded

    @classmethod
    def inbound(cls, codec: str = "ulaw", rate: int = 8000, out_rate: int = 16000) -> "Transcoder":
        """Provider -> agent: ``codec`` at ``rate`` in, PCM16 at ``out_rate`` (16 kHz) out."""
        return cls(codec, rate, "l16", out_rate)

    @classmethod
    def outbound(cls, codec: str = "ulaw", rate: int = 8000, in_rate: int = 24000) -> "Transcoder":
        """Agent -> provider: PCM16 at ``in_rate`` (24 kHz) in, ``codec`` at ``rate`` out."""
        return cls("l16", in_rate, codec, rate)

    def _grow(self, cap: int) -> None:
        self._cap = cap
        self._out = ffi.new("uint8_t[]", cap)

    def _room(self, in_bytes: int, b64: bool = False) -> int:
        """Room for what in_bytes of input can make (an upper bound of the C side's exact need)."""
        need = ((in_bytes // self._in_bps) * self._num // self._den + 1) * self._out_bps
        if b64:
            need = (need + 2) // 3 * 4
        if need > self._cap:
            self._grow(need * 2)
        return self._cap

    def _in(self, data, what: str):
        n = _byte_len(data, what)
        if n % self._in_bps:
            raise ValueError(f"{what}: PCM16 needs an even number of bytes, got {n}")
        return (data if type(data) is bytes else ffi.from_buffer("uint8_t[]", data)), n

    def process(self, data: BytesLike) -> bytes:
        st = self._state()
        src, n = self._in(data, "data")
        length = self._len
        length[0] = self._room(n)
        _check(lib.cvg_transcoder_process(st, src, n, self._out, length))
        return ffi.buffer(self._out, length[0])[:]

    def process_b64(self, payload: Union[str, bytes]) -> bytes:
        st = self._state()
        if type(payload) is str:
            try:
                payload = payload.encode("ascii")
            except UnicodeEncodeError:
                raise ValueError("payload: base64 must be ASCII") from None
        elif not isinstance(payload, bytes):
            raise TypeError(f"payload: expected str or bytes, got {type(payload).__name__}")
        n = len(payload)
        length = self._len
        length[0] = self._room(n * 3 // 4 + 2)
        rc = lib.cvg_transcoder_process_b64(st, payload, n, self._out, length)
        if rc == lib.CVG_ERR_ARG:
            raise ValueError("payload: invalid base64")
        if rc == lib.CVG_ERR_LENGTH:
            raise ValueError("payload: decoded PCM16 has an odd number of bytes")
        _check(rc)
        return ffi.buffer(self._out, length[0])[:]

    def process_to_b64(self, data: BytesLike) -> str:
        st = self._state()
        src, n = self._in(data, "data")
        length = self._len
        length[0] = self._room(n, b64=True)
        _check(lib.cvg_transcoder_process_to_b64(st, src, n, ffi.cast("char *", self._out), length))
        return ffi.buffer(self._out, length[0])[:].decode("ascii")

    def flush(self) -> bytes:
        st = self._state()
        need = int(lib.cvg_transcoder_flush_len(st))
        if need > self._cap:
            self._grow(need)
        length = self._len
        length[0] = self._cap
        _check(lib.cvg_transcoder_flush(st, self._out, length))
        return ffi.buffer(self._out, length[0])[:]

    def reset(self) -> None:
        _check(lib.cvg_transcoder_reset(self._state()))

    @property
    def delay_ms(self) -> float:
        return lib.cvg_transcoder_delay(self._state()) * 1000.0 / self.out_rate
