"""RELIABILITY 7 (and 15's "never in logs"), across every plane at once: the real control plane and
the real gateway (subprocesses, 127.0.0.1, logging at DEBUG) carry a widget session opened with a
session-URL token, a Twilio, a Plivo and an Exotel call (signed voice webhook or media key, stream
token, media, DTMF) and an inbound SMS; then neither process's log holds a token, an API key, a
provider secret, a caller's words (the text, SMS body and the bad frame are canaries), the
caller's number or the audio's base64. Bounded: short calls, a few messages, every wait under a
deadline."""
from __future__ import annotations

import base64
import contextlib
import subprocess
import urllib.parse

import httpx
import numpy as np
import pytest
import trio

from control.secrets import generate_key
from control.simulate import CallSpec, parse_answer, simulate_call
from fixtures_control import reserve_port, start_control_server, start_gateway_cli
from gateway import transport
from gateway.protocols import canonical
from gateway.protocols.canonical import Text

CANARY = "canary-7f3a9c"
ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def planes(tmp_path_factory):
    from emulators import ExotelEmulator, PlivoEmulator, TwilioEmulator

    workdir = tmp_path_factory.mktemp("logs")
    reserved = reserve_port()
    gateway_port = reserved.getsockname()[1]
    with contextlib.ExitStack() as es:
        emus = {"twilio": es.enter_context(TwilioEmulator()),
                "plivo": es.enter_context(PlivoEmulator()),
                "exotel": es.enter_context(ExotelEmulator())}
        env = {"TWILIO_API_BASE": emus["twilio"].url, "PLIVO_API_BASE": emus["plivo"].url,
               "EXOTEL_API_BASE": emus["exotel"].url, "CONVERSE_SECRET_KEY": generate_key(),
               "GATEWAY_PUBLIC_URL": f"ws://127.0.0.1:{gateway_port}",
               "CONVERSE_LOG_LEVEL": "DEBUG", "CONVERSE_MESSAGING_POLL_S": "0.2"}
        control = start_control_server(workdir, f"sqlite:///{workdir / 'converse.db'}", env,
                                       emus)
        es.callback(control.stop)
        es.callback(_stop, start_gateway_cli(workdir, control.env, reserved))
        control.gateway_port = gateway_port
        control.gateway_log = workdir / "gateway.log"
        yield control


def _stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(15)


def _post(api, path, body) -> dict:
    r = api.post(path, json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


def _voice(api, provider: str, creds: dict, number: str, agent: str) -> str:
    channel = _post(api, "/api/v1/channels", {"type": "voice", "provider": provider,
                                               "credentials": creds})["id"]
    r = api.patch(f"/api/v1/channels/{channel}", json={"phone_number": number, "agent_id": agent})
    assert r.status_code == 200, r.text
    _post(api, f"/api/v1/channels/{channel}/activate", {})
    return channel


async def _call(planes, provider: str, channel: str, tone: bytes) -> list[str]:
    """One short simulated call (signed webhook, stream, media, a DTMF digit); the secrets it
    used: the provider's auth token or Exotel's media key, and every stream token in the answer."""
    if provider == "exotel":
        from control.api.voice_webhooks import exotel_applet_url
        token = exotel_applet_url(planes.settings, channel).rpartition("key=")[2]
        token = urllib.parse.unquote(token)
    else:
        token = getattr(planes, provider).auth_token
    spec = CallSpec(provider=provider, channel_id=channel, pcm8k=tone,
                    control_url=planes.base_url, public_url=planes.settings.public_url,
                    auth_token=token, dtmf=[("7", 0.2)], tail_s=0.5)
    with trio.fail_after(60):
        result = await simulate_call(spec)
    assert result.stream_url, (provider, result.refused)
    _, params, _ = parse_answer(provider, result.answer)
    found = [v for v in params.values() if len(v) >= 16]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(result.stream_url).query)
    found += [v[0] for v in query.values() if len(v[0]) >= 16]
    found += [p for p in urllib.parse.urlsplit(result.stream_url).path.split("/") if len(p) >= 40]
    assert found or provider == "exotel", f"no stream token found in the {provider} answer"
    return [token, *found]


async def _widget(url: str, secrets: list[str]) -> None:
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["token"][0]
    secrets += [token, *token.split(".")]
    with trio.fail_after(30):
        ws = await transport.connect(url, {"Origin": ORIGIN})
        await ws.send_text(canonical.encode(Text(text=f"my card is {CANARY}-web")))
        await ws.send_text(f'{{"type":"text","text":"{CANARY}-bad'.encode())   # malformed JSON
        seen = set()
        while seen != {canonical.Transcript, canonical.Error}:
            message = await ws.receive()
            if type(message) is str:
                seen.add(type(canonical.decode(message)))
        await ws.aclose()


async def test_no_token_secret_or_payload_reaches_any_log(planes):
    twilio = planes.twilio
    secrets = [planes.api_key, twilio.auth_token]
    with planes.client() as api:
        agent = _post(api, "/api/v1/agents", {"name": "echo", "kind": "echo"})["id"]
        web = _post(api, "/api/v1/channels", {"type": "web", "agent_id": agent,
                                               "allowed_origins": [ORIGIN]})["id"]
        session_url = _post(api, f"/api/v1/channels/{web}/session-url", {})["url"]
        voices = {"twilio": _voice(api, "twilio", twilio.creds, "+15005550006", agent),
                  "plivo": _voice(api, "plivo", planes.plivo.creds, "+14155550100", agent),
                  "exotel": _voice(api, "exotel", planes.exotel.creds, "+918047112233", agent)}
        twilio.add_number(twilio.account_sid, "+15005550008")
        sms = _post(api, "/api/v1/channels", {"type": "sms", "provider": "twilio",
                                               "credentials": twilio.creds,
                                               "phone_number": "+15005550008",
                                               "agent_id": agent})["id"]
        _post(api, f"/api/v1/channels/{sms}/activate", {})

    await _widget(session_url, secrets)

    tone = (np.sin(np.arange(8000 // 2) / 2.0) * 6000).astype("<i2").tobytes()    # 0.5 s
    audio_b64 = base64.b64encode(tone[:160]).decode()[:40]
    for provider, channel in voices.items():
        secrets += await _call(planes, provider, channel, tone)
    public = planes.settings.webhook_url("twilio", sms)
    form, headers = twilio.sms_webhook(public, body=f"{CANARY}-sms pin 4321", to="+15005550008")
    with trio.fail_after(30):
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.post(f"{planes.base_url}/api/v1/webhooks/twilio/{sms}", data=form,
                                  headers=headers)
        assert r.status_code == 200, r.text
        while not [m for m in twilio.sent() if m["to"] == "+14155550123"]:   # the reply went out
            await trio.sleep(0.1)

    logs = {"control": planes.log_text(),
            "gateway": planes.gateway_log.read_text("utf-8", "replace")}
    assert logs["control"] and logs["gateway"], "a plane logged nothing: the check would be vacuous"
    for plane, text in logs.items():
        for secret in secrets:
            assert secret not in text, (plane, secret[:6] + "...")
        assert CANARY not in text, (plane, text[text.find(CANARY) - 200:text.find(CANARY) + 50])
        assert audio_b64 not in text, plane
        assert "4155550123" not in text, plane              # the caller's number (call and SMS)
