"""Plivo call transfer for flow ``transfer`` nodes.

* Provider level, against the Plivo REST emulator through the real SDK: the Transfer Call request
  (legs=aleg, aleg_url, POST), an unknown call (422 class), the API down (502 class), and the
  checks made before anything is sent (E.164 target, a transfer URL).
* The ``<Dial>`` route on a live control plane (``converse control`` on 127.0.0.1): signature V3
  (signed here with the emulator's independent implementation), token (expired, forged, other
  channel, other audience), E.164 (422), the XML; and the emulator fetching the aleg_url itself.
* End to end: a flow whose entry transfers the call, on a Plivo call played by
  ``control.simulate`` into ``converse gateway``; the emulator records the transfer and the
  ``<Dial>`` it fetched, and the gateway ends the stream. Every wait is bounded.
"""
from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET

import httpx
import pytest
import trio

from conftest import require
from control.config import ProviderEndpoints
from control.providers import ProviderRejected, ProviderUnavailable, get_provider
from emulators.signing import plivo_v3_signature
from fixtures_control import free_port, start_control_server
from gateway import tokens

TARGET = "+14155550199"
WAIT_S = 60.0                      # bounds on waiting, not measurements


# -- provider level -------------------------------------------------------------------------------
@pytest.fixture
def plivo(plivo_emulator):
    return get_provider("plivo", ProviderEndpoints(plivo=plivo_emulator.url), deadline=5.0)


UNREACHABLE = "http://127.0.0.1:9/nothing-listens-here"


async def test_transfer_sends_the_aleg_url(plivo, plivo_emulator):
    call = plivo_emulator.add_call()
    await plivo.transfer_call(plivo_emulator.creds, call, TARGET, transfer_url=UNREACHABLE)
    [request] = plivo_emulator.calls("calls.transfer")
    body = request.json()        # the SDK also repeats call_uuid in the body
    assert {k: body.get(k) for k in ("legs", "aleg_url", "aleg_method")} == {
        "legs": "aleg", "aleg_url": UNREACHABLE, "aleg_method": "POST"}
    [done] = plivo_emulator.transfers
    assert (done["call_uuid"], done["aleg_url"], done["status"]) == (call, UNREACHABLE, None)


async def test_unknown_call_is_rejected(plivo, plivo_emulator):
    with pytest.raises(ProviderRejected) as err:
        await plivo.transfer_call(plivo_emulator.creds, "0c5e9c7e-0000-4000-8000-000000000000",
                                  TARGET, transfer_url=UNREACHABLE)
    assert err.value.status == 404 and plivo_emulator.transfers == []


async def test_call_of_another_account_is_rejected(plivo, plivo_emulator):
    other_id, _ = plivo_emulator.add_account("other")
    call = plivo_emulator.add_call(auth_id=other_id)
    with pytest.raises(ProviderRejected):
        await plivo.transfer_call(plivo_emulator.creds, call, TARGET, transfer_url=UNREACHABLE)


async def test_api_down_is_unavailable(plivo_emulator):
    creds = plivo_emulator.creds
    with socket.socket() as s:                 # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    provider = get_provider("plivo", ProviderEndpoints(plivo=dead), deadline=5.0)
    with pytest.raises(ProviderUnavailable):
        await provider.transfer_call(creds, "0c5e9c7e-0000-4000-8000-000000000000", TARGET,
                                     transfer_url=UNREACHABLE)


async def test_api_5xx_is_unavailable(plivo, plivo_emulator):
    call = plivo_emulator.add_call()
    plivo_emulator.fail("calls.transfer", 503, times=None)     # the SDK retries 5xx twice
    with pytest.raises(ProviderUnavailable):
        await plivo.transfer_call(plivo_emulator.creds, call, TARGET, transfer_url=UNREACHABLE)


@pytest.mark.parametrize("number", ["14155550199", "+0123", "sip:op@example.com", "+1 415",
                                    "", "+1234567890123456"])
async def test_non_e164_target_is_refused_before_anything_is_sent(plivo, plivo_emulator, number):
    call = plivo_emulator.add_call()
    with pytest.raises(ProviderRejected, match="E.164"):
        await plivo.transfer_call(plivo_emulator.creds, call, number, transfer_url=UNREACHABLE)
    assert plivo_emulator.calls() == []


async def test_missing_transfer_url_is_refused_before_anything_is_sent(plivo, plivo_emulator):
    with pytest.raises(ProviderRejected, match="transfer URL"):
        await plivo.transfer_call(plivo_emulator.creds, plivo_emulator.add_call(), TARGET)
    assert plivo_emulator.calls() == []


async def test_twilio_transfer_takes_the_new_keyword_and_ignores_it(twilio_emulator):
    twilio = get_provider("twilio", ProviderEndpoints(twilio=twilio_emulator.url))
    sid = "CA" + secrets.token_hex(16)
    await twilio.transfer_call(twilio_emulator.creds, sid, TARGET, transfer_url=UNREACHABLE)
    [update] = twilio_emulator.call_updates
    assert update["sid"] == sid and f"<Number>{TARGET}</Number>" in update["twiml"]


# -- the <Dial> route on a live control plane -----------------------------------------------------
class Stack:
    def __init__(self, control, plivo, gateway_port: int):
        self.control = control
        self.plivo = plivo
        self.gateway_port = gateway_port
        self.ids: dict[str, str] = {}
        self.gateway_log = None


def _transfer_flow(api) -> str:
    flow = {"name": "Straight to the operator", "start": "entry", "nodes": {
        "entry": {"type": "entry", "next": "operator"},
        "operator": {"type": "transfer", "number": TARGET,
                     "message": "Connecting you to an operator."}}}
    r = api.post("/api/v1/flows", json={"name": "Operator", "definition": flow})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from control.secrets import generate_key
    from emulators import PlivoEmulator, TwilioEmulator

    workdir = tmp_path_factory.mktemp("plivo_transfer")
    gateway_port = free_port()
    with contextlib.ExitStack() as es:
        emus = {"plivo": es.enter_context(PlivoEmulator()),
                "twilio": es.enter_context(TwilioEmulator())}
        env = {"PLIVO_API_BASE": emus["plivo"].url, "TWILIO_API_BASE": emus["twilio"].url,
               "CONVERSE_SECRET_KEY": generate_key(),
               "GATEWAY_PUBLIC_URL": f"ws://127.0.0.1:{gateway_port}",
               "CONVERSE_LOG_LEVEL": "INFO"}
        control = start_control_server(workdir, f"sqlite:///{workdir / 'converse.db'}", env, emus)
        es.callback(control.stop)
        # Plivo fetches the public URL; here the public base is served by the local control plane.
        emus["plivo"].forward(control.settings.public_url, control.base_url)
        st = Stack(control, emus["plivo"], gateway_port)
        with control.client() as api:
            st.ids["flow"] = _transfer_flow(api)
            r = api.post("/api/v1/channels", json={
                "type": "voice", "provider": "plivo", "credentials": emus["plivo"].creds,
                "phone_number": "+14155550100", "flow_id": st.ids["flow"]})
            assert r.status_code == 201, r.text
            st.ids["plivo"] = r.json()["id"]
            r = api.post(f"/api/v1/channels/{st.ids['plivo']}/activate")
            assert r.status_code == 200, r.text
            r = api.post("/api/v1/channels", json={
                "type": "voice", "provider": "twilio", "credentials": emus["twilio"].creds})
            assert r.status_code == 201, r.text
            st.ids["twilio"] = r.json()["id"]
        st.workdir = workdir
        yield st


def _url(stack, channel_id: str, token: str) -> tuple[str, str]:
    """(public URL Plivo signs, local URL to post to)."""
    path = f"/api/v1/webhooks/plivo/{channel_id}/transfer?" + urllib.parse.urlencode({"t": token})
    return stack.control.settings.public_url + path, stack.control.base_url + path


def _token(stack, channel_id: str, number: str = TARGET, **kw) -> str:
    return tokens.issue(stack.control.settings.token_secret, kw.pop("aud", "transfer"),
                        kw.pop("ttl_s", 120), ch=channel_id, to=number, **kw)


async def _fetch(stack, token: str, *, channel_id: str | None = None, auth_token: str | None = None,
                 nonce: str | None = None, sign: bool = True) -> httpx.Response:
    """POST as Plivo would, V3-signed over the public URL with the given (default: right) token."""
    channel_id = channel_id or stack.ids["plivo"]
    public, local = _url(stack, channel_id, token)
    params = {"CallUUID": "0c5e9c7e-0000-4000-8000-000000000001", "From": "14155550123",
              "To": "14155550100", "CallStatus": "in-progress", "Direction": "inbound"}
    nonce = nonce or secrets.token_hex(10)
    headers = {}
    if sign:
        sig = plivo_v3_signature(auth_token or stack.plivo.auth_token, public, nonce, params)
        headers = {"X-Plivo-Signature-V3": sig, "X-Plivo-Signature-Ma-V3": sig,
                   "X-Plivo-Signature-V3-Nonce": nonce}
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(local, data=params, headers=headers)


def _dialled(xml: str) -> list[str]:
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    return [n.text for n in root.findall("./Dial/Number")]


async def test_route_answers_the_dial_of_the_token(stack):
    r = await _fetch(stack, _token(stack, stack.ids["plivo"]))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/xml")
    assert _dialled(r.text) == [TARGET]


async def test_route_refuses_a_bad_or_missing_signature(stack):
    token = _token(stack, stack.ids["plivo"])
    assert (await _fetch(stack, token, sign=False)).status_code == 403
    assert (await _fetch(stack, token, auth_token="not-the-channel-token")).status_code == 403


async def test_route_refuses_a_replayed_nonce(stack):
    token, nonce = _token(stack, stack.ids["plivo"]), secrets.token_hex(10)
    assert (await _fetch(stack, token, nonce=nonce)).status_code == 200
    assert (await _fetch(stack, token, nonce=nonce)).status_code == 403


@pytest.mark.parametrize("case", ["expired", "forged", "other_channel", "other_audience",
                                  "garbage", "missing"])
async def test_route_refuses_a_bad_token(stack, case):
    ch = stack.ids["plivo"]
    token = {"expired": lambda: tokens.issue(stack.control.settings.token_secret, "transfer", 120,
                                             now=time.time() - 600, ch=ch, to=TARGET),
             "forged": lambda: tokens.issue(b"another secret", "transfer", 120, ch=ch, to=TARGET),
             "other_channel": lambda: _token(stack, stack.ids["twilio"]),
             "other_audience": lambda: _token(stack, ch, aud="stream"),
             "garbage": lambda: "not.a-token",
             "missing": lambda: ""}[case]()
    r = await _fetch(stack, token)
    assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
    assert "<Dial>" not in r.text


async def test_route_refuses_a_non_e164_number(stack):
    r = await _fetch(stack, _token(stack, stack.ids["plivo"], number="14155550199"))
    assert r.status_code == 422 and r.json()["field"] == "to", r.text


async def test_route_is_for_plivo_voice_channels_only(stack):
    r = await _fetch(stack, _token(stack, stack.ids["twilio"]), channel_id=stack.ids["twilio"])
    assert r.status_code == 404, r.text
    r = await _fetch(stack, _token(stack, "ch_gone"), channel_id="ch_gone")
    assert r.status_code == 404, r.text


def test_route_is_in_the_openapi_document(stack):
    with stack.control.client() as api:
        paths = api.get("/api/v1/openapi.json").json()["paths"]
    op = paths["/api/v1/webhooks/plivo/{channel_id}/transfer"]["post"]
    assert not op.get("security") and [p["name"] for p in op["parameters"]] == ["channel_id", "t"]


async def test_the_emulator_fetches_the_dial_through_the_provider(stack):
    """transfer_url() + PlivoProvider.transfer_call: the emulator, like Plivo, POSTs the signed
    aleg_url request and gets the <Dial> from the control plane."""
    from control.api.transfer import transfer_url
    settings = stack.control.settings
    url = transfer_url(settings, stack.ids["plivo"], TARGET)
    assert url.startswith(settings.public_url + f"/api/v1/webhooks/plivo/{stack.ids['plivo']}/")
    call = stack.plivo.add_call()
    provider = get_provider("plivo", ProviderEndpoints(plivo=stack.plivo.url), deadline=10.0)
    await provider.transfer_call(stack.plivo.creds, call, TARGET, transfer_url=url)
    [done] = [t for t in stack.plivo.transfers if t["call_uuid"] == call]
    assert done["status"] == 200, done
    assert _dialled(done["xml"]) == [TARGET]


def test_transfer_url_refuses_a_non_e164_number(stack):
    from control.api.transfer import transfer_url
    with pytest.raises(ValueError):
        transfer_url(stack.control.settings, stack.ids["plivo"], "sip:op@example.com")


# -- end to end: a flow transfers a simulated Plivo call ------------------------------------------
def _stop(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def gateway(stack):
    require(shutil.which("espeak-ng") is not None, "espeak-ng is not installed (voice flows)")
    log_path = stack.workdir / "gateway.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "control.cli", "gateway", "--port", str(stack.gateway_port)],
        env=dict(stack.control.env), cwd=stack.workdir, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", stack.gateway_port), timeout=1).close()
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("gateway did not start:\n" + log_path.read_text())
        stack.gateway_log = log_path
        yield proc
    finally:
        _stop(proc)


async def test_flow_transfers_a_simulated_plivo_call(stack, gateway):
    """The flow speaks, then Plivo's Transfer Call API is called for this call; the emulator
    fetched our <Dial> (signed, token-bound) and the gateway ended the media stream."""
    from control.simulate import CallSpec, simulate_call
    control, plivo = stack.control, stack.plivo

    async def learn_call(request: httpx.Request) -> None:
        # Plivo knows its calls; the simulator plays Plivo's answer request, so the emulator
        # learns the call uuid from it (what a real call's leg would be).
        if request.url.path.endswith(f"/webhooks/plivo/{stack.ids['plivo']}"):
            form = dict(urllib.parse.parse_qsl(request.content.decode()))
            plivo.add_call(form["CallUUID"], from_=form["From"], to=form["To"])

    spec = CallSpec(provider="plivo", channel_id=stack.ids["plivo"], pcm8k=bytes(2 * 8000 * 8),
                    control_url=control.base_url, public_url=control.settings.public_url,
                    auth_token=plivo.auth_token, tail_s=1.0, hangup=False)
    async with httpx.AsyncClient(timeout=30, event_hooks={"request": [learn_call]}) as client:
        with trio.fail_after(WAIT_S):
            result = await simulate_call(spec, client=client)
    log = stack.gateway_log.read_text()[-3000:]
    assert result.refused is None, result.answer
    done = [t for t in plivo.transfers if t["call_uuid"] == result.call_id]
    assert len(done) == 1, log
    assert done[0]["aleg_method"] == "POST" and done[0]["status"] == 200, (done, log)
    assert _dialled(done[0]["xml"]) == [TARGET]
    assert done[0]["aleg_url"].startswith(control.settings.public_url)
    assert len(result.heard) > 0                         # the message was spoken first
    assert result.close_code is not None                 # the gateway ended the stream
