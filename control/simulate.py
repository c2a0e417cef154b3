"""``converse simulate call``: play a WAV into a phone channel exactly as Twilio, Plivo or Exotel
would.

1. The voice webhook, signed as the provider signs it (the SDKs compute the signatures: twilio's
   ``RequestValidator.compute_signature``, plivo's ``get_signature_v3``), over the PUBLIC url the
   provider would call, posted to wherever the control plane really listens (``--control``).
2. The answer parsed: TwiML ``<Connect><Stream url>`` + ``<Parameter>``s, Plivo XML ``<Stream>`` +
   ``extraHeaders``, or Exotel's ``{"url": ...}``. A ``<Say>``/``<Speak>`` + ``<Hangup>`` answer is
   reported as a refusal.
3. The media stream in the provider's exact messages: Twilio ``connected``/``start``/``media``
   (string counters) /``dtmf``/``stop``; Plivo ``start`` with ``extra_headers``, numeric counters,
   epoch-ms timestamps, then a socket close; Exotel snake_case with PCM16LE in 100 ms chunks. Audio
   is sent in real time (20 ms frames; Exotel 100 ms), DTMF at the given times.
4. A provider-side player: audio the gateway sends is queued and "played" in real time into the
   caller's ear (``heard``, PCM16 8 kHz); marks are echoed when everything before them has played
   (Twilio ``mark``, Plivo ``playedStream``, Exotel ``mark``); a clear drops what is queued
   (Twilio echoes pending marks at once; Plivo answers ``clearedAudio`` and drops its checkpoints).

Library use: ``await simulate_call(CallSpec(...))`` returns a :class:`CallResult`.
"""
from __future__ import annotations

import base64
import json
import secrets
import struct
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import httpx
import trio

from gateway import audio, transport

PROVIDERS = ("twilio", "plivo", "exotel")
FRAME_S = 0.020
EXOTEL_CHUNK_S = 0.100
PLAYOUT_DELAY_S = 0.060          # the provider's playout buffer after an underrun
EXOTEL_PLAYOUT_DELAY_S = 0.200   # Exotel plays >= 3.2 KB chunks: model one chunk of buffering


# -- WAV input/output ----------------------------------------------------------------------------
def read_wav_8k(path: str) -> bytes:
    """PCM16LE 8 kHz mono from a WAV: G.711 µ-law/A-law (format 7/6: the data chunk read directly)
    or PCM16 at 8/16/24/48 kHz (resampled)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file")
    pos, fmt, payload = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
        elif cid == b"data":
            payload = body
        pos += 8 + size + (size & 1)
    if fmt is None or payload is None:
        raise ValueError(f"{path}: no fmt or data chunk")
    tag, channels, rate, _, _, bits = fmt
    if channels != 1:
        raise ValueError(f"{path}: mono WAVs only")
    if tag == 7 and rate == 8000:
        return audio.ulaw_decode(payload)
    if tag == 6 and rate == 8000:
        return audio.alaw_decode(payload)
    if tag in (1, 0xFFFE) and bits == 16:
        pcm = payload[:len(payload) // 2 * 2]
        if rate == 8000:
            return pcm
        rs = audio.Resampler(rate, 8000)
        return rs.process(pcm) + rs.flush()
    raise ValueError(f"{path}: unsupported WAV (format {tag}, {rate} Hz, {bits} bits)")


def write_wav_8k(path: str, pcm: bytes) -> None:
    import wave
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm)


# -- the call ------------------------------------------------------------------------------------
@dataclass
class CallSpec:
    provider: str
    channel_id: str
    pcm8k: bytes                        # what the caller says (PCM16LE 8 kHz)
    control_url: str                    # where the control plane listens
    public_url: str | None = None       # what the provider signs (PUBLIC_URL); default control_url
    auth_token: str = ""                # Twilio/Plivo auth token; Exotel: the channel media key
    gateway_url: str | None = None      # replace the answer's ws(s)://host:port (local runs)
    dtmf: list[tuple[str, float]] = field(default_factory=list)    # (digit, seconds into call)
    tail_s: float = 1.5                 # keep listening this long after the audio ends
    hangup: bool = True                 # send stop / close after the tail
    from_number: str = "+14155550123"
    to_number: str = "+14155550100"
    on_event: object = None             # callable(str) for printed events


@dataclass
class CallResult:
    answer: str = ""                    # the webhook's body
    status: int = 0                     # the webhook's HTTP status
    refused: str | None = None          # <Say>/<Speak> text or Exotel error when not connected
    stream_url: str = ""
    heard: bytearray = field(default_factory=bytearray)    # PCM16 8 kHz, on the call's timeline
    marks: list[tuple[str, float]] = field(default_factory=list)   # echoed (name, time)
    clears: list[float] = field(default_factory=list)
    media_messages: list[tuple[float, int]] = field(default_factory=list)  # (arrival, raw bytes)
    dropped_marks: list[str] = field(default_factory=list)   # pending at a clear, not echoed
    close_code: int | None = None
    close_reason: str = ""
    bad_messages: list[str] = field(default_factory=list)
    t0: float = 0.0                     # trio time when the first audio frame was sent
    call_id: str = ""
    # at each clear: seconds of audio the gateway had sent ahead of real time (what it dropped
    # beyond the provider's own playout delay)
    ahead_at_clear: list[float] = field(default_factory=list)


def _emit(spec: CallSpec, text: str) -> None:
    if spec.on_event is not None:
        spec.on_event(text)


def _rand(prefix: str, n: int = 32) -> str:
    return prefix + secrets.token_hex(n // 2)


def _uuid() -> str:
    h = secrets.token_hex(16)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


async def post_webhook(spec: CallSpec, call_id: str, client: httpx.AsyncClient) -> httpx.Response:
    path = f"/api/v1/webhooks/{spec.provider}/{spec.channel_id}"
    public = (spec.public_url or spec.control_url).rstrip("/") + path
    real = spec.control_url.rstrip("/") + path
    if spec.provider == "twilio":
        from twilio.request_validator import RequestValidator
        params = {"CallSid": call_id, "AccountSid": _rand("AC"), "From": spec.from_number,
                  "To": spec.to_number, "Caller": spec.from_number, "Called": spec.to_number,
                  "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}
        sig = RequestValidator(spec.auth_token).compute_signature(public, params)
        return await client.post(real, data=params, headers={"X-Twilio-Signature": sig})
    if spec.provider == "plivo":
        from plivo.utils.signature_v3 import construct_post_url, get_signature_v3
        params = {"CallUUID": call_id, "From": spec.from_number.lstrip("+"),
                  "To": spec.to_number.lstrip("+"), "CallStatus": "ringing",
                  "Direction": "inbound", "Event": "StartApp"}
        nonce = str(secrets.randbelow(10**20))
        sig = get_signature_v3(spec.auth_token.encode(), construct_post_url(public, dict(params)),
                               nonce.encode()).decode()
        return await client.post(real, data=params, headers={
            "X-Plivo-Signature-V3": sig, "X-Plivo-Signature-Ma-V3": sig,
            "X-Plivo-Signature-V3-Nonce": nonce})
    query = {"key": spec.auth_token, "CallSid": call_id, "From": spec.from_number,
             "To": spec.to_number}
    return await client.get(real + "?" + urllib.parse.urlencode(query))


def parse_answer(provider: str, body: str) -> tuple[str | None, dict[str, str], str | None]:
    """(stream url, per-call parameters, refusal text) from the webhook's answer."""
    if provider == "exotel":
        try:
            doc = json.loads(body)
        except ValueError:
            return None, {}, "answer is not JSON"
        url = doc.get("url") if isinstance(doc, dict) else None
        return (url, {}, None) if url else (None, {}, str(doc.get("message") or doc))
    root = ET.fromstring(body)
    if provider == "twilio":
        stream = root.find("./Connect/Stream")
        if stream is None:
            say = root.find("./Say")
            return None, {}, (say.text if say is not None else "no <Connect><Stream>")
        params = {p.get("name"): p.get("value") for p in stream.findall("./Parameter")}
        return stream.get("url"), params, None
    stream = root.find("./Stream")
    if stream is None:
        speak = root.find("./Speak")
        return None, {}, (speak.text if speak is not None else "no <Stream>")
    headers = {}
    for item in (stream.get("extraHeaders") or "").split(","):
        k, _, v = item.partition("=")
        if k:
            headers[k] = v
    return (stream.text or "").strip(), headers, None


def _rebase(url: str, gateway_url: str | None) -> str:
    if not gateway_url:
        return url
    u, g = urllib.parse.urlsplit(url), urllib.parse.urlsplit(gateway_url)
    return urllib.parse.urlunsplit((g.scheme, g.netloc, u.path, u.query, ""))


class Wire:
    """The provider's inbound messages for one stream (pure: no I/O)."""

    def __init__(self, provider: str, call_id: str, params: dict[str, str], spec: CallSpec,
                 url_query: dict[str, str]):
        self.provider = provider
        self.call_id = call_id
        self.stream_id = _uuid() if provider == "plivo" else _rand("MZ")
        self.params = params
        self.spec = spec
        self.url_query = url_query
        self.seq = 0
        self.chunk = 0
        self.epoch_ms = int(time.time() * 1000)

    def _n(self, value: int):
        return value if self.provider == "plivo" else str(value)

    def opening(self) -> list[str]:
        p, spec = self.provider, self.spec
        if p == "twilio":
            self.seq = 1
            return [json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
                    json.dumps({"event": "start", "sequenceNumber": "1",
                                "streamSid": self.stream_id,
                                "start": {"accountSid": _rand("AC"), "streamSid": self.stream_id,
                                          "callSid": self.call_id, "tracks": ["inbound"],
                                          "mediaFormat": {"encoding": "audio/x-mulaw",
                                                          "sampleRate": 8000, "channels": 1},
                                          "customParameters": self.params}})]
        if p == "plivo":
            self.seq = 1
            extra = ";".join(f"{k}={v}" for k, v in self.params.items())
            return [json.dumps({"event": "start", "sequenceNumber": 1, "start": {
                "callId": self.call_id, "streamId": self.stream_id, "accountId": _rand("MA", 18),
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000}},
                "extra_headers": extra})]
        self.seq = 1
        custom = {k: v for k, v in self.url_query.items() if k != "token"}
        return [json.dumps({"event": "connected"}),
                json.dumps({"event": "start", "sequence_number": "1", "stream_sid": self.stream_id,
                            "start": {"stream_sid": self.stream_id, "call_sid": self.call_id,
                                      "account_sid": "exotel" + secrets.token_hex(4),
                                      "from": spec.from_number, "to": spec.to_number,
                                      "custom_parameters": custom,
                                      "media_format": {"encoding": "audio/x-raw",
                                                       "sample_rate": "8000", "bit_rate": "16"}}})]

    def media(self, pcm8k: bytes, t_ms: int) -> str:
        """One media message for a frame of caller audio starting ``t_ms`` into the stream."""
        self.seq += 1
        self.chunk += 1
        p = self.provider
        if p == "exotel":
            payload = base64.b64encode(pcm8k).decode()
            return json.dumps({"event": "media", "sequence_number": str(self.seq),
                               "stream_sid": self.stream_id,
                               "media": {"chunk": str(self.chunk), "timestamp": str(t_ms),
                                         "payload": payload}})
        payload = base64.b64encode(audio.ulaw_encode(pcm8k)).decode()
        if p == "twilio":
            return json.dumps({"event": "media", "sequenceNumber": str(self.seq),
                               "streamSid": self.stream_id,
                               "media": {"track": "inbound", "chunk": str(self.chunk),
                                         "timestamp": str(t_ms), "payload": payload}})
        return json.dumps({"event": "media", "sequenceNumber": self.seq, "streamId": self.stream_id,
                           "media": {"track": "inbound", "timestamp": str(self.epoch_ms + t_ms),
                                     "chunk": self.chunk, "payload": payload},
                           "extra_headers": ""})

    def dtmf(self, digit: str) -> str:
        self.seq += 1
        if self.provider == "twilio":
            return json.dumps({"event": "dtmf", "streamSid": self.stream_id,
                               "sequenceNumber": str(self.seq),
                               "dtmf": {"track": "inbound_track", "digit": digit}})
        if self.provider == "plivo":
            return json.dumps({"event": "dtmf", "streamId": self.stream_id,
                               "dtmf": {"digit": digit, "track": "inbound"}})
        return json.dumps({"event": "dtmf", "sequence_number": str(self.seq),
                           "stream_sid": self.stream_id,
                           "dtmf": {"digit": digit, "duration": "100"}})

    def mark(self, name: str) -> str:
        self.seq += 1
        if self.provider == "twilio":
            return json.dumps({"event": "mark", "sequenceNumber": str(self.seq),
                               "streamSid": self.stream_id, "mark": {"name": name}})
        if self.provider == "plivo":
            return json.dumps({"event": "playedStream", "streamId": self.stream_id, "name": name})
        return json.dumps({"event": "mark", "sequence_number": str(self.seq),
                           "stream_sid": self.stream_id, "mark": {"name": name}})

    def cleared(self) -> str | None:
        if self.provider == "plivo":
            return json.dumps({"event": "clearedAudio", "sequenceNumber": 0,
                               "streamId": self.stream_id})
        return None

    def stop(self) -> str | None:
        self.seq += 1
        if self.provider == "twilio":
            return json.dumps({"event": "stop", "sequenceNumber": str(self.seq),
                               "streamSid": self.stream_id,
                               "stop": {"accountSid": "AC", "callSid": self.call_id}})
        if self.provider == "exotel":
            return json.dumps({"event": "stop", "sequence_number": str(self.seq),
                               "stream_sid": self.stream_id,
                               "stop": {"call_sid": self.call_id, "reason": "callended"}})
        return None          # Plivo just closes the socket


class Player:
    """The provider's playback queue, in real time: what the caller hears and when marks are due."""

    def __init__(self, spec: CallSpec, result: CallResult):
        self.spec = spec
        self.provider = spec.provider
        self.result = result
        self.play_end = 0.0                  # when everything queued will have played
        self.spurt_at = 0.0                  # first arrival of the current talk spurt
        self.spurt_s = 0.0                   # seconds of audio received in it
        self.marks: list[tuple[float, str]] = []
        self.wakeup = trio.Event()
        self.delay = EXOTEL_PLAYOUT_DELAY_S if spec.provider == "exotel" else PLAYOUT_DELAY_S

    def _pos(self, t: float) -> int:
        return max(0, int(round((t - self.result.t0) * 8000))) * 2

    def audio(self, pcm8k: bytes, now: float) -> None:
        # A provider plays through a small jitter buffer: after an underrun, playback resumes
        # a playout delay after the audio arrives, so arrival jitter does not chop the audio.
        start = self.play_end if self.play_end >= now else now + self.delay
        if start != self.play_end:                  # a new talk spurt: restart its clock
            self.spurt_at, self.spurt_s = now, 0.0
        self.spurt_s += len(pcm8k) / 16000.0
        pos = self._pos(start)
        heard = self.result.heard
        if len(heard) < pos:
            heard.extend(bytes(pos - len(heard)))
        heard[pos:pos + len(pcm8k)] = pcm8k
        self.play_end = start + len(pcm8k) / 16000.0

    def mark(self, name: str, now: float) -> None:
        self.marks.append((max(now, self.play_end), name))
        self.wakeup.set()

    def clear(self, now: float) -> list[str]:
        """Drop what has not played; returns the marks that were pending."""
        if self.play_end > now:
            self.result.ahead_at_clear.append(self.spurt_s - (now - self.spurt_at))
        else:
            self.result.ahead_at_clear.append(0.0)
        if self.play_end > now:
            del self.result.heard[self._pos(now):]
            self.play_end = now
        pending = [name for _, name in self.marks]
        self.marks.clear()
        return pending

    def due(self, now: float) -> list[str]:
        due = [name for t, name in self.marks if t <= now]
        self.marks = [(t, name) for t, name in self.marks if t > now]
        return due


async def simulate_call(spec: CallSpec, *, client: httpx.AsyncClient | None = None) -> CallResult:
    if spec.provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}")
    result = CallResult()
    call_id = _uuid() if spec.provider == "plivo" else _rand("CA")
    result.call_id = call_id
    own = client is None
    client = client or httpx.AsyncClient(timeout=10)
    try:
        response = await post_webhook(spec, call_id, client)
    finally:
        if own:
            await client.aclose()
    result.status, result.answer = response.status_code, response.text
    _emit(spec, f"webhook: HTTP {response.status_code}")
    if response.status_code != 200 and spec.provider != "exotel":
        result.refused = f"HTTP {response.status_code}"
        return result
    url, params, refused = parse_answer(spec.provider, response.text)
    if url is None:
        result.refused = refused
        _emit(spec, f"refused: {refused}")
        return result
    result.stream_url = url = _rebase(url, spec.gateway_url)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    _emit(spec, f"stream: {url.split('?')[0]}")
    ws = await transport.connect(url, timeout=10)
    wire = Wire(spec.provider, call_id, params, spec, query)
    try:
        await _stream(spec, ws, wire, result)
    finally:
        with trio.CancelScope(shield=True):
            await ws.aclose()
    return result


async def _stream(spec: CallSpec, ws, wire: Wire, result: CallResult) -> None:
    player = Player(spec, result)
    await ws.send_many(wire.opening())
    result.t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_listen, spec, ws, wire, player, result, nursery.cancel_scope)
        nursery.start_soon(_ack_marks, ws, wire, player, result)
        try:
            await _talk(spec, ws, wire, result)
            await trio.sleep(spec.tail_s)
            if spec.hangup:
                stop = wire.stop()
                if stop:
                    await ws.send(stop)
                await ws.close(1000, "caller hung up")
                with trio.move_on_after(2):
                    await trio.sleep_forever()
        except transport.ConnectionClosed as closed:
            result.close_code = result.close_code or closed.code
        nursery.cancel_scope.cancel()


async def _talk(spec: CallSpec, ws, wire: Wire, result: CallResult) -> None:
    frame_s = EXOTEL_CHUNK_S if spec.provider == "exotel" else FRAME_S
    step = int(frame_s * 16000)                  # bytes of PCM16 8 kHz per message
    pcm = spec.pcm8k
    dtmf = sorted(spec.dtmf, key=lambda d: d[1])
    t0 = result.t0
    for k, i in enumerate(range(0, len(pcm) - step + 1, step)):
        now_s = k * frame_s
        while dtmf and dtmf[0][1] <= now_s:
            digit, _ = dtmf.pop(0)
            await ws.send(wire.dtmf(digit))
            _emit(spec, f"{trio.current_time() - t0:7.3f}s sent dtmf {digit}")
        await trio.sleep_until(t0 + now_s)
        await ws.send(wire.media(pcm[i:i + step], int(now_s * 1000)))
    for digit, _ in dtmf:
        await ws.send(wire.dtmf(digit))


async def _listen(spec, ws, wire: Wire, player: Player, result: CallResult, scope) -> None:
    try:
        while True:
            message = await ws.receive()
            now = trio.current_time()
            try:
                msg = json.loads(message)
                event = msg["event"]
            except (ValueError, KeyError, TypeError):
                result.bad_messages.append(str(message)[:80])
                continue
            if event in ("media", "playAudio"):
                raw = base64.b64decode(msg["media"]["payload"])
                result.media_messages.append((now, len(raw)))
                player.audio(raw if spec.provider == "exotel" else audio.ulaw_decode(raw), now)
            elif event in ("mark", "checkpoint"):
                name = msg["mark"]["name"] if event == "mark" else msg["name"]
                player.mark(name, now)
            elif event in ("clear", "clearAudio"):
                result.clears.append(now - result.t0)
                pending = player.clear(now)
                _emit(spec, f"{now - result.t0:7.3f}s clear ({len(pending)} marks pending)")
                if spec.provider == "twilio":
                    for name in pending:
                        await ws.send(wire.mark(name))       # Twilio echoes them at once
                else:
                    result.dropped_marks.extend(pending)
                cleared = wire.cleared()
                if cleared:
                    await ws.send(cleared)
            else:
                result.bad_messages.append(event[:40])
    except transport.ConnectionClosed as closed:
        result.close_code, result.close_reason = closed.code, closed.reason
        _emit(spec, f"stream closed by the gateway: {closed.code} {closed.reason}".rstrip())
        scope.cancel()


async def _ack_marks(ws, wire: Wire, player: Player, result: CallResult) -> None:
    while True:
        if not player.marks:
            player.wakeup = trio.Event()
            await player.wakeup.wait()
            continue
        await trio.sleep_until(min(t for t, _ in player.marks))
        now = trio.current_time()
        for name in player.due(now):
            result.marks.append((name, now - result.t0))
            _emit(player.spec, f"{now - result.t0:7.3f}s mark played: {name}")
            try:
                await ws.send(wire.mark(name))
            except transport.ConnectionClosed:
                return


# -- command line --------------------------------------------------------------------------------
def parse_dtmf(items: list[str]) -> list[tuple[str, float]]:
    out = []
    for item in items:
        digit, _, at = item.partition("@")
        at = at[:-1] if at.endswith("s") else at
        if len(digit) != 1 or digit.upper() not in "0123456789*#ABCD":
            raise ValueError(f"bad --dtmf {item!r} (use DIGIT@SECONDS, e.g. 1@2.5s)")
        out.append((digit.upper(), float(at or 0)))
    return out


def add_arguments(p) -> None:
    p.add_argument("--provider", required=True, choices=PROVIDERS)
    p.add_argument("--channel", required=True, help="channel id")
    p.add_argument("--wav", required=True, help="what the caller says (µ-law 8 kHz or PCM16 WAV)")
    p.add_argument("--dtmf", action="append", default=[], help="DIGIT@SECONDS, repeatable")
    p.add_argument("--out", help="write what the caller heard to this WAV (PCM16 8 kHz)")
    p.add_argument("--control", default=None,
                   help="control plane base URL (default http://CONTROL_HOST:CONTROL_PORT)")
    p.add_argument("--public-url", default=None, help="URL base the provider signs (PUBLIC_URL)")
    p.add_argument("--gateway", default=None, help="override the stream URL's scheme://host:port")
    p.add_argument("--auth-token", default=None,
                   help="Twilio/Plivo auth token; Exotel: the channel's media key "
                        "(default: derived from this node's settings)")
    p.add_argument("--tail", type=float, default=2.0, help="seconds to listen after the audio")
    p.add_argument("--seconds", type=float, default=None, help="play at most this much of the WAV")


def _cut(pcm: bytes, seconds: float | None) -> bytes:
    return pcm if seconds is None else pcm[:int(seconds * 8000) * 2]


def command(args) -> int:
    import os
    env = os.environ
    control = args.control or (f"http://{env.get('CONTROL_HOST', '127.0.0.1')}:"
                               f"{env.get('CONTROL_PORT', '8000')}")
    token = args.auth_token
    if token is None and args.provider == "exotel":
        from control.config import Settings
        from gateway.streamauth import exotel_media_key
        token = exotel_media_key(Settings.from_env(create_key=False).token_secret, args.channel)
    if token is None:
        print("converse simulate: --auth-token is required for twilio and plivo", file=sys.stderr)
        return 2
    try:
        spec = CallSpec(provider=args.provider, channel_id=args.channel,
                        pcm8k=_cut(read_wav_8k(args.wav), args.seconds), control_url=control,
                        public_url=args.public_url or env.get("PUBLIC_URL") or control,
                        auth_token=token, gateway_url=args.gateway,
                        dtmf=parse_dtmf(args.dtmf), tail_s=args.tail,
                        on_event=lambda text: print(text, flush=True))
    except (ValueError, OSError) as exc:
        print(f"converse simulate: {exc}", file=sys.stderr)
        return 2
    try:
        result = trio.run(simulate_call, spec)
    except (transport.HandshakeError, httpx.HTTPError) as exc:
        print(f"converse simulate: {exc}", file=sys.stderr)
        return 1
    if args.out and result.heard:
        write_wav_8k(args.out, bytes(result.heard))
        print(f"wrote {len(result.heard) / 16000:.2f} s heard to {args.out}")
    print(f"marks played {len(result.marks)}, clears {len(result.clears)}, "
          f"close {result.close_code}")
    return 0 if result.refused is None else 1
