"""A small energy endpointer (voice activity by frame energy), sans-IO: feed PCM16, get events.

Good enough for the echo agent, which must hear when the caller stopped talking: a 20 ms frame is
speech when its RMS is above ``threshold_dbfs``; an utterance starts after ``start_ms`` of speech and
ends after ``silence_ms`` of non-speech. The emitted utterance is everything since the previous one
ended (leading silence capped at ``preroll_ms``), so played back-to-back the utterances reproduce
the input with at most the long pauses shortened. Bounded: an utterance is cut at ``max_ms``.
"""
from __future__ import annotations

import math

import numpy as np


class Endpointer:
    def __init__(self, rate: int = 16000, *, threshold_dbfs: float = -45.0, start_ms: int = 60,
                 silence_ms: int = 600, preroll_ms: int = 1000, max_ms: int = 30_000):
        self.rate = rate
        self.frame_bytes = rate // 50 * 2                  # 20 ms of PCM16
        # Compare mean square with a threshold instead of taking a log per frame.
        self._threshold_ms = (32768.0 * 10 ** (threshold_dbfs / 20)) ** 2
        self._start_frames = max(1, start_ms // 20)
        self._silence_frames = max(1, silence_ms // 20)
        self._preroll_bytes = preroll_ms * rate // 1000 * 2
        self._max_bytes = max_ms * rate // 1000 * 2
        self._buf = bytearray()       # audio since the last utterance ended
        self._pending = bytearray()   # partial frame
        self._speech_run = 0
        self._silence_run = 0
        self.in_speech = False

    def feed(self, pcm: bytes) -> list[bytes]:
        """Feed PCM16LE audio; return the utterances that ended with it (usually none)."""
        self._pending += pcm
        done = []
        fb = self.frame_bytes
        n = len(self._pending) // fb * fb
        if not n:
            return done
        chunk = bytes(self._pending[:n])
        del self._pending[:n]
        frames = np.frombuffer(chunk, dtype="<i2").reshape(-1, fb // 2).astype(np.float32)
        energies = np.einsum("ij,ij->i", frames, frames)
        limit = self._threshold_ms * (fb // 2)
        for i, energy in enumerate(energies.tolist()):
            utterance = self._frame(chunk[i * fb:(i + 1) * fb], energy > limit)
            if utterance is not None:
                done.append(utterance)
        return done

    def _frame(self, frame: bytes, loud: bool) -> bytes | None:
        self._buf += frame
        if not self.in_speech:
            self._speech_run = self._speech_run + 1 if loud else 0
            if self._speech_run >= self._start_frames:
                self.in_speech = True
                self._silence_run = 0
                keep = self._preroll_bytes + self._speech_run * self.frame_bytes
                if len(self._buf) > keep:
                    del self._buf[:len(self._buf) - keep]
            elif len(self._buf) > self._preroll_bytes + self._start_frames * self.frame_bytes:
                del self._buf[:len(self._buf) - self._preroll_bytes]
            return None
        self._silence_run = 0 if loud else self._silence_run + 1
        if self._silence_run >= self._silence_frames or len(self._buf) >= self._max_bytes:
            return self._finish()
        return None

    def _finish(self) -> bytes:
        utterance = bytes(self._buf)
        self._buf.clear()
        self.in_speech = False
        self._speech_run = 0
        self._silence_run = 0
        return utterance

    def flush(self) -> bytes | None:
        """The utterance in progress, if any (call when the caller hangs up)."""
        return self._finish() if self.in_speech else None


def duration_s(pcm: bytes, rate: int) -> float:
    return len(pcm) / 2 / rate


def dbfs(pcm: bytes) -> float:
    a = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return 10 * math.log10(float(np.mean(a * a)) / 32768.0 ** 2 + 1e-12) if len(a) else -120.0
