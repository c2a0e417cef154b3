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
