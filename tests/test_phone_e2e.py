"""Phone calls end to end: the real control plane (Hypercorn subprocess, SQLite) and the real
gateway (``converse gateway`` subprocess) on 127.0.0.1, provider emulators for the REST side,
channels set up
through the API, and ``control.simulate`` playing the provider: signed webhook, TwiML/XML answer,
the provider's media-stream messages in real time, a provider-side player that echoes marks.

The agent is an external WebSocket agent running in the test (canonical protocol), in one of two
modes picked by the caller's number:

* echo: every 20 ms frame is resampled 16 -> 24 kHz and sent straight back, with a mark every
  0.5 s; so what the caller hears must be the input (correlation >= 0.9 after alignment);
* tone: 3 s of a 440 Hz tone and a mark at its end, then a ``clear`` after 1 s of caller audio.

Each test streams ~2-3 s of speech per provider, the three providers concurrently.
"""
from __future__ import annotations

import contextlib
import subprocess
import sys

import httpx
import numpy as np
import pytest
import trio

from conftest import SHARED_AUDIO, require
from control.simulate import CallSpec, read_wav_8k, simulate_call
from fixtures_control import free_port, reserve_port, start_control_server, start_gateway_cli
from gateway import transport
from gateway.audio import Resampler
from gateway.limits import Limits
from gateway.protocols import canonical
from gateway.protocols.canonical import Clear, Dtmf, End, Mark, Start

ECHO_FROM = "+14155550123"
TONE_FROM = "+14155559999"
SPEECH_S = 2.6                     # seconds of en_hello per call: enough speech, short test


# -- the scripted external agent ---------------------------------------------------------------
class ScriptedAgent:
    def __init__(self):
        self.events: dict[str, list] = {}           # call id -> canonical events received

    async def serve(self, port: int, task_status=trio.TASK_STATUS_IGNORED):
        listeners = await transport.open_listeners("127.0.0.1", port)
        await transport.serve(self._handle, listeners, Limits(), task_status=task_status)

    async def _handle(self, hs):
        ws = await hs.accept()
        try:
            start = canonical.decode(await ws.receive())
            assert isinstance(start, Start)
            log = self.events.setdefault(start.variables["call_id"], [start])
            if start.caller and start.caller.number and start.caller.number.endswith("9999"):
                await self._tone(ws, log)
            else:
                await self._echo(ws, log)
        except transport.ConnectionClosed:
            pass

    @staticmethod
    async def _events(ws, log, on_audio):
        while True:
            message = await ws.receive()
            if type(message) is bytes:
                await on_audio(message)
                continue
            event = canonical.decode(message)
            log.append(event)
            if isinstance(event, End):
                return

    async def _echo(self, ws, log):
        rs = Resampler(16000, 24000)
        frames = 0

        async def on_audio(pcm16):
            nonlocal frames
            await ws.send(rs.process(pcm16))
            frames += 1
            if frames % 25 == 0:
                await ws.send_text(canonical.encode(Mark(name=f"m{frames // 25}")))
        await self._events(ws, log, on_audio)

    async def _tone(self, ws, log):
        t = np.arange(3 * 24000) / 24000
        pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()
        for i in range(0, len(pcm), 9600):
            await ws.send(pcm[i:i + 9600])
        await ws.send_text(canonical.encode(Mark(name="tone-end")))
        frames = 0

        async def on_audio(pcm16):
            nonlocal frames
            frames += 1
            if frames == 50:                          # 1 s into the call: barge in
                await ws.send_text(canonical.encode(Clear()))
        await self._events(ws, log, on_audio)


# -- the stack ---------------------------------------------------------------------------------
class Stack:
    def __init__(self, control, gateway_port: int, agent_port: int):
        self.control = control
        self.gateway_port = gateway_port
        self.agent_port = agent_port
        self.channels: dict[str, str] = {}     # name -> channel id
        self.gateway: subprocess.Popen | None = None

    def spec(self, provider: str, channel: str, pcm: bytes, **kw) -> CallSpec:
        tokens = {"twilio": self.control.twilio.auth_token, "plivo": self.control.plivo.auth_token}
        if provider == "exotel":
            from control.api.voice_webhooks import exotel_applet_url
            url = exotel_applet_url(self.control.settings, self.channels[channel])
            token = url.rpartition("key=")[2]
        else:
            token = tokens[provider]
        kw.setdefault("auth_token", token)
        return CallSpec(provider=provider, channel_id=self.channels[channel], pcm8k=pcm,
                        control_url=self.control.base_url,
                        public_url=self.control.settings.public_url, **kw)


def _channel(api, provider: str, creds: dict, number: str, agent: str, activate=True) -> str:
    r = api.post("/api/v1/channels", json={"type": "voice", "provider": provider,
                                           "credentials": creds})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    r = api.patch(f"/api/v1/channels/{cid}", json={"phone_number": number, "agent_id": agent})
    assert r.status_code == 200, r.text
    if activate:
        r = api.post(f"/api/v1/channels/{cid}/activate")
        assert r.status_code == 200, r.text
    return cid


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require(SHARED_AUDIO.is_dir(), f"speech fixtures not found at {SHARED_AUDIO}")
    from emulators import ExotelEmulator, PlivoEmulator, TwilioEmulator
    from control.secrets import generate_key

    workdir = tmp_path_factory.mktemp("phone")
    reserved = reserve_port()
    gateway_port, agent_port = reserved.getsockname()[1], free_port()
    with contextlib.ExitStack() as es:
        emus = {"twilio": es.enter_context(TwilioEmulator()),
                "plivo": es.enter_context(PlivoEmulator()),
                "exotel": es.enter_context(ExotelEmulator())}
        env = {"TWILIO_API_BASE": emus["twilio"].url, "PLIVO_API_BASE": emus["plivo"].url,
               "EXOTEL_API_BASE": emus["exotel"].url, "CONVERSE_SECRET_KEY": generate_key(),
               "GATEWAY_PUBLIC_URL": f"ws://127.0.0.1:{gateway_port}",
               "CONVERSE_LOG_LEVEL": "INFO"}
        control = start_control_server(workdir, f"sqlite:///{workdir / 'converse.db'}", env, emus)
        es.callback(control.stop)
        st = Stack(control, gateway_port, agent_port)
        with control.client() as api:
            config = {"url": f"ws://127.0.0.1:{agent_port}/"}
            r = api.post("/api/v1/agents", json={"name": "scripted", "kind": "websocket",
                                                 "config": config})
            assert r.status_code == 201, r.text
            agent = r.json()["id"]
            tw, pl, ex = emus["twilio"], emus["plivo"], emus["exotel"]
            st.channels["twilio"] = _channel(api, "twilio", tw.creds, "+15005550006", agent)
            st.channels["twilio-off"] = _channel(api, "twilio", tw.creds, "+15005550007", agent,
                                                 activate=False)
            st.channels["plivo"] = _channel(api, "plivo", pl.creds, "+14155550100", agent)
            st.channels["plivo-off"] = _channel(api, "plivo", pl.creds, "+14155550101", agent,
                                                activate=False)
            st.channels["exotel"] = _channel(api, "exotel", ex.creds, "+918047112233", agent)
        st.gateway = start_gateway_cli(workdir, control.env, reserved)
        es.callback(_stop, st.gateway)
        st.log_path = workdir / "gateway.log"
        yield st


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def speech():
    return read_wav_8k(str(SHARED_AUDIO / "en_hello_8k_ulaw.wav"))[:int(SPEECH_S * 16000)]


def _pcm(data) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype="<i2").astype(np.float64)


def best_correlation(sent: bytes, heard: bytes, max_lag: int = 4800) -> tuple[float, int]:
    """Normalised cross-correlation of ``heard`` against ``sent`` at the best lag (samples)."""
    x, y = _pcm(sent), _pcm(heard)
    best, best_lag = -1.0, 0
    n = len(x)
    for lag in range(0, max_lag, 4):
        seg = y[lag:lag + n]
        if len(seg) < n * 0.9:
            break
        a = x[:len(seg)]
        c = float(np.dot(a, seg) / (np.linalg.norm(a) * np.linalg.norm(seg) + 1e-9))
        if c > best:
            best, best_lag = c, lag
    # refine around the coarse best
    for lag in range(max(0, best_lag - 4), best_lag + 5):
        seg = y[lag:lag + n]
        a = x[:len(seg)]
        c = float(np.dot(a, seg) / (np.linalg.norm(a) * np.linalg.norm(seg) + 1e-9))
        if c > best:
            best, best_lag = c, lag
    return best, best_lag


def windowed_correlation(sent: bytes, heard: bytes, window_s: float = 0.5):
    """Median over 0.5 s windows of the input (speech only) of the best normalised correlation
    with what was heard, and the first window's lag: a scheduling gap on a busy box shifts what
    follows it, which whole-signal correlation would count as wrong audio."""
    w = int(window_s * 8000) * 2
    scores, lags = [], []
    for start in range(0, len(sent) - w + 1, w):
        piece = sent[start:start + w]
        if np.abs(_pcm(piece)).mean() < 300:                  # a pause: nothing to compare
            continue
        corr, lag = best_correlation(piece, heard[start:start + w + 2 * 4800])
        scores.append(corr)
        lags.append(lag)
    return (float(np.median(scores)), lags[0]) if scores else (0.0, 0)


# -- tests -------------------------------------------------------------------------------------
async def test_echo_marks_and_dtmf_all_providers(stack, speech):
    """Speech in as each provider sends it comes back as what the caller hears; marks are
    acknowledged when played; DTMF reaches the agent; the provider's hang-up ends the session."""
    agent = ScriptedAgent()
    results = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(agent.serve, stack.agent_port)

        async def call(provider):
            spec = stack.spec(provider, provider, speech, from_number=ECHO_FROM,
                              dtmf=[("5", 1.0)], tail_s=0.6)
            results[provider] = await simulate_call(spec)

        async with trio.open_nursery() as calls:
            for provider in ("twilio", "plivo", "exotel"):
                calls.start_soon(call, provider)
        await trio.sleep(0.5)                 # let the agent see the end of every session
        nursery.cancel_scope.cancel()

    for provider, result in results.items():
        assert result.refused is None, (provider, result.answer)
        corr, lag = windowed_correlation(speech, result.heard)
        assert corr >= 0.9, (provider, corr, lag)
        # the echo is not late by whole chunks (Exotel: one 200 ms minimum chunk is inherent)
        assert lag < (0.45 if provider == "exotel" else 0.2) * 8000, (provider, lag)
        events = agent.events[result.call_id]
        start = events[0]
        assert start.channel_type == "voice" and start.variables["provider"] == provider
        assert start.caller.number.endswith("4155550123")
        assert any(isinstance(e, Dtmf) and e.digit == "5" for e in events), provider
        acked = [e for e in events if isinstance(e, Mark)]
        played = {name for name, _ in result.marks}
        assert acked and all(not e.cleared for e in acked), (provider, acked)
        assert {e.name for e in acked} <= played, provider
        assert any(isinstance(e, End) for e in events), provider
        if provider == "exotel":
            sizes = [n for _, n in result.media_messages]
            assert sizes and all(n % 320 == 0 and 3200 <= n <= 100_000 for n in sizes), sizes


async def test_clear_mid_utterance_stops_audio(stack, speech):
    """The agent's clear reaches every provider and the caller hears nothing after it; the mark
    behind the dropped audio comes back to the agent with ``cleared: true``."""
    agent = ScriptedAgent()
    results = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(agent.serve, stack.agent_port)

        async def call(provider):
            spec = stack.spec(provider, provider, speech[:int(1.8 * 16000)],
                              from_number=TONE_FROM, tail_s=0.4)
            results[provider] = await simulate_call(spec)

        async with trio.open_nursery() as calls:
            for provider in ("twilio", "plivo", "exotel"):
                calls.start_soon(call, provider)
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()

    for provider, result in results.items():
        assert result.refused is None, (provider, result.answer)
        assert len(result.clears) == 1, (provider, result.clears)
        # How far ahead of real time the audio ran when the clear came is a wall-clock figure on
        # a shared machine, so it is printed, not asserted here: the pacer's bound (at most the
        # lead ahead) is asserted on Trio's virtual clock in tests/test_session.py
        # (test_pacing_barge_in_and_marks, test_lead_stays_bounded_when_the_agent_is_bursty).
        print(provider, "ahead of real time at clear:", result.ahead_at_clear)
        heard = _pcm(result.heard)
        clear_at = int(result.clears[0] * 8000)
        assert np.abs(heard[:clear_at - 800]).mean() > 1000, provider   # the tone played...
        assert not np.any(heard[clear_at + 80:]), provider               # ...and then stopped
        marks = [e for e in agent.events[result.call_id] if isinstance(e, Mark)]
        assert [(m.name, m.cleared) for m in marks] == [("tone-end", True)], (provider, marks)
        assert "tone-end" not in {n for n, _ in result.marks}


async def test_signature_failures_are_403(stack):
    """Wrong token or tampered fields (Twilio), wrong signature or a replayed nonce (Plivo), a
    wrong media key (Exotel): 403 and nothing about the request in the log but the channel."""
    async with httpx.AsyncClient(timeout=10) as client:
        ok = stack.spec("twilio", "twilio", b"")
        bad = stack.spec("twilio", "twilio", b"", auth_token="not-the-token")
        from control.simulate import post_webhook
        assert (await post_webhook(ok, "CA" + "1" * 32, client)).status_code == 200
        assert (await post_webhook(bad, "CA" + "2" * 32, client)).status_code == 403
        wrong_url = stack.spec("twilio", "twilio", b"", )
        wrong_url.public_url = "http://converse.example.test"          # not what was signed
        assert (await post_webhook(wrong_url, "CA" + "3" * 32, client)).status_code == 403

        bad = stack.spec("plivo", "plivo", b"", auth_token="wrong")
        assert (await post_webhook(bad, "a-b", client)).status_code == 403
        ok = stack.spec("plivo", "plivo", b"")
        # replay: the same signed request twice
        sent = []
        orig = client.post

        async def capture(url, **kw):
            sent.append((url, kw))
            return await orig(url, **kw)
        client.post = capture
        assert (await post_webhook(ok, "call-1", client)).status_code == 200
        client.post = orig
        url, kw = sent[0]
        assert (await client.post(url, **kw)).status_code == 403

        bad = stack.spec("exotel", "exotel", b"", auth_token="wrong-key")
        assert (await post_webhook(bad, "CA1", client)).status_code == 403
        r = await client.get(f"{stack.control.base_url}/api/v1/webhooks/exotel/"
                             f"{stack.channels['exotel']}")
        assert r.status_code == 403
    text = stack.control.log_text()
    assert "not-the-token" not in text and "call-1" not in text


async def test_not_in_service_and_stream_auth(stack, speech):
    """A channel not in service answers politely (Say/Speak + Hangup, HTTP 200); a stream without
    a valid token is closed with 1008; a reused token too."""
    for provider in ("twilio", "plivo"):
        result = await simulate_call(stack.spec(provider, provider + "-off", speech))
        assert result.status == 200 and "not in service" in (result.refused or ""), result.answer
        assert "<Hangup" in result.answer
    async with httpx.AsyncClient(timeout=10) as client:     # a channel that does not exist
        base = f"{stack.control.base_url}/api/v1/webhooks"
        r = await client.post(f"{base}/twilio/ch_gone", data={"CallSid": "CA1", "From": "+1"})
        assert r.status_code == 200 and "<Hangup" in r.text and "<Say" in r.text
        r = await client.post(f"{base}/plivo/ch_gone", data={"CallUUID": "u1", "From": "1"})
        assert r.status_code == 200 and "<Hangup" in r.text and "<Speak" in r.text
        r = await client.post(f"{base}/twilio/ch_gone", data={"MessageSid": "SM1"})
        assert r.status_code == 404                           # not a call: the JSON 404
    url = f"ws://127.0.0.1:{stack.gateway_port}/media/twilio/{stack.channels['twilio']}"
    ws = await transport.connect(url)
    from control.simulate import Wire
    wire = Wire("twilio", "CA" + "0" * 32, {"token": "forged.token"},
                stack.spec("twilio", "twilio", b""), {})
    await ws.send_many(wire.opening())
    with pytest.raises(transport.ConnectionClosed) as closed:
        with trio.fail_after(10):
            while True:
                await ws.receive()
    assert closed.value.code == 1008
    # Exotel: wrong credential in the URL is refused before the upgrade
    with pytest.raises(transport.HandshakeError) as refused:
        await transport.connect(f"ws://127.0.0.1:{stack.gateway_port}/media/exotel/"
                                f"{stack.channels['exotel']}?key=nope")
    assert refused.value.status == 403


async def test_simulate_cli(stack, tmp_path):
    """``converse simulate call`` as an operator runs it: prints the call's events, sends the
    DTMF, writes what the caller heard."""
    agent = ScriptedAgent()
    out = tmp_path / "heard.wav"
    async with trio.open_nursery() as nursery:
        await nursery.start(agent.serve, stack.agent_port)
        proc = await trio.run_process(
            [sys.executable, "-m", "control.cli", "simulate", "call", "--provider", "twilio",
             "--channel", stack.channels["twilio"], "--wav",
             str(SHARED_AUDIO / "en_hello_8k_ulaw.wav"), "--seconds", "1.5", "--dtmf", "7@0.5s",
             "--out", str(out), "--control", stack.control.base_url,
             "--auth-token", stack.control.twilio.auth_token, "--tail", "0.8"],
            env=dict(stack.control.env), capture_stdout=True, capture_stderr=True, check=False)
        nursery.cancel_scope.cancel()
    text = proc.stdout.decode()
    assert proc.returncode == 0, (text, proc.stderr.decode()[-2000:])
    assert "webhook: HTTP 200" in text and "sent dtmf 7" in text and "mark played: m1" in text
    import wave
    with wave.open(str(out)) as w:
        assert w.getframerate() == 8000 and w.getnframes() > 1.2 * 8000
    [events] = [e for e in agent.events.values()
                if any(isinstance(x, Dtmf) and x.digit == "7" for x in e)]
    assert events[0].variables["provider"] == "twilio"


async def test_get_voice_webhooks_are_signed_over_the_query(stack):
    """Numbers configured with GET: Twilio signs the URL with its query (no params folded in),
    Plivo's V3 GET string sorts the query; both are validated and answered."""
    from plivo.utils.signature_v3 import construct_get_url, get_signature_v3
    from twilio.request_validator import RequestValidator
    import urllib.parse
    async with httpx.AsyncClient(timeout=10) as client:
        path = f"/api/v1/webhooks/twilio/{stack.channels['twilio']}"
        query = urllib.parse.urlencode({"CallSid": "CA" + "7" * 32, "From": "+14155550123",
                                        "To": "+15005550006"})
        public = f"{stack.control.settings.public_url}{path}?{query}"
        sig = RequestValidator(stack.control.twilio.auth_token).compute_signature(public, {})
        r = await client.get(f"{stack.control.base_url}{path}?{query}",
                             headers={"X-Twilio-Signature": sig})
        assert r.status_code == 200 and "<Stream" in r.text and "call_sid" in r.text, r.text
        r = await client.get(f"{stack.control.base_url}{path}?{query}",
                             headers={"X-Twilio-Signature": sig[:-2] + "xx"})
        assert r.status_code == 403

        path = f"/api/v1/webhooks/plivo/{stack.channels['plivo']}"
        query = urllib.parse.urlencode({"CallUUID": "u-get", "From": "14155550123"})
        public = f"{stack.control.settings.public_url}{path}?{query}"
        nonce = "98765"
        sig = get_signature_v3(stack.control.plivo.auth_token.encode(),
                               construct_get_url(public, {}), nonce.encode()).decode()
        r = await client.get(f"{stack.control.base_url}{path}?{query}",
                             headers={"X-Plivo-Signature-V3": sig,
                                      "X-Plivo-Signature-V3-Nonce": nonce})
        assert r.status_code == 200 and "<Stream" in r.text and "from=14155550123" in r.text


async def test_hostile_webhook_requests_never_5xx(stack):
    """Odd bodies, headers and methods on the voice webhooks: 403/4xx, never a 500."""
    base = f"{stack.control.base_url}/api/v1/webhooks"
    cases = [
        ("twilio", {"X-Twilio-Signature": "é" * 10}, {"CallSid": "CA1"}),
        ("twilio", {"X-Twilio-Signature": "x", "Content-Type": "application/json"}, None),
        ("twilio", {"X-Twilio-Signature": "=" * 500}, {"a" * 300: "b" * 3000}),
        ("plivo", {"X-Plivo-Signature-V3": "é,ü", "X-Plivo-Signature-V3-Nonce": "ñ"}, {"x": "1"}),
        ("plivo", {"X-Plivo-Signature-V3": "", "X-Plivo-Signature-V3-Nonce": ""}, None),
        ("plivo", {"X-Plivo-Signature-V3": "a" * 5000, "X-Plivo-Signature-V3-Nonce": "1"},
         {"CallUUID": "\x00\x01"}),
        ("exotel", {"Authorization": "Basic ###"}, {"CallSid": "x"}),
        ("exotel", {"Authorization": "Basic " + "QQ==" * 100}, None),
    ]
    async with httpx.AsyncClient(timeout=10) as client:
        for provider, headers, form in cases:
            url = f"{base}/{provider}/{stack.channels[provider]}"
            kw = {"data": form} if form is not None else {"content": b"\xff\xfe{not json"}
            headers = {k: v.encode() for k, v in headers.items()}    # raw UTF-8 bytes too
            r = await client.post(url, headers=headers, **kw)
            assert r.status_code < 500 and r.status_code in (403, 400, 415, 422), \
                (provider, headers, r.status_code, r.text[:200])
            r = await client.get(url + "?key=%FF%FE&CallSid=%00", headers=headers)
            assert r.status_code < 500, (provider, r.status_code)
