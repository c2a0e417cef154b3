"""WhatsApp (Meta) and SMS (Twilio) end to end through a live control plane (``converse control``
in a subprocess, real Hypercorn, SQLite and PostgreSQL) against the provider emulators: signed
webhooks in, the worker, the agent in text mode, the outbox out. What the API or the emulator's own
state says is the witness; signatures are computed independently of the product code (Python's
hmac via the emulator for Meta, the Twilio SDK's ``compute_signature`` / the emulator's signer for
Twilio). Every wait is bounded (``wait_for``); no wall-clock thresholds.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time

import httpx
import pytest
from twilio.request_validator import RequestValidator

from control.secrets import generate_key
from fixtures_control import create_database, start_control_server

WAIT_S = 60.0          # a bound on waiting for the worker, not a measurement

# Short leases, polls and backoff so retries and reconciliation happen within a test.
FAST_ENV = {"CONVERSE_MESSAGING_POLL_S": "0.2", "CONVERSE_MESSAGING_LEASE_S": "2",
            "CONVERSE_MESSAGING_BACKOFF_BASE_S": "0.1", "CONVERSE_MESSAGING_BACKOFF_MAX_S": "2",
            "CONVERSE_MESSAGING_MAX_ATTEMPTS": "4", "CONVERSE_PROVIDER_DEADLINE_S": "1.5"}


# Provider-side behaviour (retries, timeouts, reconciliation) does not depend on the database:
# those tests run on SQLite only; everything that leans on the store runs on both.
BOTH = pytest.mark.parametrize("server", ["sqlite", "postgres"], indirect=True)
SQLITE = pytest.mark.parametrize("server", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    from emulators import MetaEmulator, TwilioEmulator

    workdir = tmp_path_factory.mktemp(f"messaging-{request.param}")
    if request.param == "postgres":
        url = create_database(request.getfixturevalue("postgres_admin_url"))
    else:
        url = f"sqlite:///{workdir / 'converse.db'}"
    with contextlib.ExitStack() as stack:
        emus = {"twilio": stack.enter_context(TwilioEmulator()),
                "meta": stack.enter_context(MetaEmulator())}
        env = {"TWILIO_API_BASE": emus["twilio"].url, "META_GRAPH_BASE": emus["meta"].base,
               "CONVERSE_SECRET_KEY": generate_key(), **FAST_ENV}
        srv = start_control_server(workdir, url, env, emus)
        stack.callback(srv.stop)
        yield srv


@pytest.fixture
def api(server):
    server.twilio.clear_faults()
    server.meta.clear_faults()
    with server.client() as client:
        yield client
    server.twilio.clear_faults()
    server.meta.clear_faults()


def wait_for(predicate, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _agent(api, kind: str = "echo", config: dict | None = None) -> str:
    r = api.post("/api/v1/agents", json={"name": kind, "kind": kind, "config": config or {}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def messages(api, ch_id: str, **filters) -> list[dict]:
    r = api.get(f"/api/v1/channels/{ch_id}/messages", params={"limit": 500, **filters})
    assert r.status_code == 200, r.text
    return r.json()["items"]


# --------------------------------------------------------------------------------- WhatsApp
@pytest.fixture
def wa(server, api):
    """An active WhatsApp channel (via Meta's verification handshake) answered by echo."""
    meta = server.meta
    r = api.post("/api/v1/channels", json={"type": "whatsapp", "provider": "meta",
                                           "credentials": meta.creds, "agent_id": _agent(api)})
    assert r.status_code == 201, r.text
    ch = r.json()
    assert ch["status"] == "setup"
    path = f"/api/v1/webhooks/meta/{ch['id']}"
    r = httpx.get(server.base_url + path, params=meta.verification_params("wrong"))
    assert r.status_code == 403
    r = httpx.get(server.base_url + path, params=meta.verification_params(challenge="4242"))
    assert r.status_code == 200 and r.text == "4242"
    assert api.get(f"/api/v1/channels/{ch['id']}").json()["status"] == "active"
    yield ch
    api.delete(f"/api/v1/channels/{ch['id']}")


def post_meta(server, ch: dict, payload, *, secret: str | None = None,
              signature: str | None = None) -> httpx.Response:
    body, headers = server.meta.signed(payload)
    if secret is not None:
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(
            secret.encode(), body, hashlib.sha256).hexdigest()
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return httpx.post(f"{server.base_url}/api/v1/webhooks/meta/{ch['id']}", content=body,
                      headers=headers, timeout=30)


def sent_to(meta, to: str) -> list[str]:
    return [text for dest, text in meta.sent_texts() if dest == to]


@BOTH
def test_whatsapp_text_gets_one_reply_and_is_marked_read(server, api, wa):
    meta = server.meta
    payload, wamid = meta.inbound_text("héllo @ there", from_="16505550001")
    # Meta signs its escaped form; the emulator sends exactly those bytes.
    assert b"\\u00e9" in server.meta.signed(payload)[0]
    for _ in range(3):                      # Meta redelivers: acknowledged, stored once
        assert post_meta(server, wa, payload).status_code == 200
    wait_for(lambda: sent_to(meta, "16505550001"), "the reply")
    inbound = messages(api, wa["id"], direction="inbound")
    assert [(m["provider_id"], m["text"]) for m in inbound] == [(wamid, "héllo @ there")]
    wait_for(lambda: messages(api, wa["id"], direction="outbound", status="sent"), "sent mark")
    out = messages(api, wa["id"], direction="outbound")
    assert len(out) == 1 and out[0]["text"] == "You said: héllo @ there"
    assert out[0]["reply_to"] == inbound[0]["id"] and out[0]["provider_id"].startswith("wamid.")
    assert wamid in meta.read
    sent = [m for m in meta.sent if m.get("type") == "text" and m["to"] == "16505550001"]
    assert len(sent) == 1 and sent[0]["biz_opaque_callback_data"] == f"{inbound[0]['id']}.0"
    time.sleep(0.5)                         # a few more worker polls: still exactly one
    assert sent_to(meta, "16505550001") == ["You said: héllo @ there"]


@SQLITE
def test_whatsapp_signature_rejected_before_parsing(server, api, wa):
    payload, _ = server.meta.inbound_text("forged", from_="16505550002")
    assert post_meta(server, wa, payload, secret="not-the-app-secret").status_code == 403
    assert post_meta(server, wa, payload, signature="").status_code == 403
    assert post_meta(server, wa, payload, signature="sha1=abc").status_code == 403
    # Garbage with a bad signature: 403, not a parse error.
    r = httpx.post(f"{server.base_url}/api/v1/webhooks/meta/{wa['id']}", content=b"{not json",
                   headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert r.status_code == 403
    # Independently computed vector accepted (Python's hmac, not the product's code).
    assert post_meta(server, wa, payload, secret=server.meta.app_secret).status_code == 200
    wait_for(lambda: sent_to(server.meta, "16505550002"), "the reply")


@SQLITE
def test_whatsapp_malformed_but_signed_is_acknowledged_and_logged_without_payload(server, api, wa):
    secret_words = "private-words-" + str(time.monotonic_ns())
    for body in (b"{\"object\": \"whatsapp_business_account\", \"entry\": 5, \"x\": \"%s\"}"
                 % secret_words.encode(), b"[" + secret_words.encode(), b"\xff\xfe" * 10):
        assert post_meta(server, wa, body).status_code == 200
    assert messages(api, wa["id"]) == []
    wait_for(lambda: "malformed payload acknowledged" in server.log_text(), "the log line")
    assert secret_words not in server.log_text()


@SQLITE
def test_whatsapp_non_text_gets_the_polite_reply(server, api, wa):
    meta = server.meta
    payload, wamid = meta.inbound_text("x", from_="16505550003")
    msg = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    msg.pop("text")
    msg.update(type="image", image={"id": "1234", "mime_type": "image/jpeg"})
    assert post_meta(server, wa, payload).status_code == 200
    reply = wait_for(lambda: sent_to(meta, "16505550003"), "the reply")
    assert reply == ["Sorry, I can only read text messages. Please type your message."]
    stored = messages(api, wa["id"], direction="inbound")
    assert stored[0]["kind"] == "image" and stored[0]["provider_id"] == wamid


@BOTH
def test_whatsapp_statuses_out_of_order_never_go_backwards(server, api, wa):
    meta = server.meta
    payload, _ = meta.inbound_text("status me", from_="16505550004")
    assert post_meta(server, wa, payload).status_code == 200
    out = wait_for(lambda: messages(api, wa["id"], direction="outbound", status="sent"), "sent")[0]
    key, wamid = f"{out['reply_to']}.0", out["provider_id"]
    for status in ("read", "delivered", "sent", "delivered"):      # late ones must not win
        update = meta.status_update(wamid, status, opaque=key)
        assert post_meta(server, wa, update).status_code == 200
    assert messages(api, wa["id"], direction="outbound")[0]["delivery"] == "read"
    # An unknown wamid's status is acknowledged and changes nothing.
    assert post_meta(server, wa, meta.status_update("wamid.unknown", "read")).status_code == 200


@SQLITE
def test_whatsapp_failed_status_recorded(server, api, wa):
    meta = server.meta
    payload, _ = meta.inbound_text("fail me", from_="16505550005")
    assert post_meta(server, wa, payload).status_code == 200
    out = wait_for(lambda: messages(api, wa["id"], direction="outbound", status="sent"), "sent")[0]
    post_meta(server, wa, meta.status_update(out["provider_id"], "failed"))
    got = messages(api, wa["id"], direction="outbound")[0]
    assert got["delivery"] == "failed" and "131047" in got["last_error"]


@SQLITE
def test_whatsapp_retries_500_and_429_then_sends_once(server, api, wa):
    meta = server.meta
    meta.fail("messages", 500, times=1)
    meta.fail("messages", 429, retry_after=0.3, times=1)
    payload, _ = meta.inbound_text("retry me", from_="16505550006")
    assert post_meta(server, wa, payload).status_code == 200
    wait_for(lambda: sent_to(meta, "16505550006"), "the reply")
    out = wait_for(lambda: messages(api, wa["id"], direction="outbound", status="sent"), "sent")
    assert sent_to(meta, "16505550006") == ["You said: retry me"]
    # The faults consumed the mark-read or the send; every send attempt is counted.
    assert out[0]["attempts"] >= 1


@SQLITE
def test_whatsapp_permanent_error_dead_letter_visible(server, api, wa):
    meta = server.meta
    # 400 (a Graph error that is not a throttle): no retry.
    meta.fail("messages", 400, times=None, body={"error": {"message": "(#131026) Receiver "
                                                           "is incapable", "code": 131026}})
    payload, _ = meta.inbound_text("dead end", from_="16505550007")
    assert post_meta(server, wa, payload).status_code == 200
    dead = wait_for(lambda: messages(api, wa["id"], status="dead"), "the dead letter")
    assert dead[0]["direction"] == "outbound" and "131026" in dead[0]["last_error"]
    assert dead[0]["attempts"] == 1
    assert sent_to(meta, "16505550007") == []


@SQLITE
def test_whatsapp_timeout_is_not_blindly_repeated(server, api, wa):
    """A send that times out may have reached Meta (the emulator records it after the hang): it
    is dead-lettered as unconfirmed, never repeated; a status webhook with its key adopts it."""
    meta = server.meta
    payload, wamid = meta.inbound_text("slow one", from_="16505550008")
    meta.hang("messages", seconds=2.5, times=2)      # mark-read and the send both hang
    assert post_meta(server, wa, payload).status_code == 200
    dead = wait_for(lambda: messages(api, wa["id"], status="dead"), "unconfirmed")[0]
    assert dead["last_error"].startswith("unconfirmed")
    sent = wait_for(lambda: [m for m in meta.sent if m.get("to") == "16505550008"], "emulator")
    assert len(sent) == 1
    time.sleep(1.0)
    assert len([m for m in meta.sent if m.get("to") == "16505550008"]) == 1
    # Meta's status webhook for it carries our key: proof it was sent.
    status = meta.status_update(sent[0]["id"], "delivered",
                                opaque=sent[0]["biz_opaque_callback_data"])
    assert post_meta(server, wa, status).status_code == 200
    got = messages(api, wa["id"], direction="outbound")[0]
    assert (got["status"], got["provider_id"], got["delivery"]) == ("sent", sent[0]["id"],
                                                                    "delivered")


@SQLITE
def test_whatsapp_other_phone_number_ids_ignored(server, api, wa):
    meta = server.meta
    payload, _ = meta.inbound_text("not ours", from_="16505550009")
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    assert post_meta(server, wa, payload).status_code == 200
    assert messages(api, wa["id"]) == []


# -------------------------------------------------------------------------------------- SMS
@pytest.fixture
def sms(server, api):
    r = api.post("/api/v1/channels", json={
        "type": "sms", "provider": "twilio", "credentials": server.twilio.creds,
        "phone_number": "+15005550006", "agent_id": _agent(api)})
    assert r.status_code == 201, r.text
    ch = r.json()
    r = api.post(f"/api/v1/channels/{ch['id']}/activate")
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
    yield ch
    api.delete(f"/api/v1/channels/{ch['id']}")


def post_sms(server, ch: dict, params: dict, headers: dict) -> httpx.Response:
    return httpx.post(f"{server.base_url}/api/v1/webhooks/twilio/{ch['id']}", data=params,
                      headers=headers, timeout=30)


def sms_in(server, ch: dict, body: str, from_: str, sid: str | None = None):
    public = server.settings.webhook_url("twilio", ch["id"])
    return server.twilio.sms_webhook(public, body=body, from_=from_, message_sid=sid)


def twilio_sent_to(twilio, to: str) -> list[str]:
    return [m["body"] for m in twilio.sent() if m["to"] == to]


@SQLITE
def test_sms_signature_vectors_from_the_sdk(server, api, sms):
    public = server.settings.webhook_url("twilio", sms["id"])
    params = {"MessageSid": "SM" + "1" * 32, "From": "+14155550100", "To": "+15005550006",
              "Body": "hi from the sdk", "SmsStatus": "received", "NumMedia": "0",
              "AccountSid": server.twilio.account_sid}
    good = RequestValidator(server.twilio.auth_token).compute_signature(public, params)
    bad = RequestValidator("0" * 32).compute_signature(public, params)
    local = RequestValidator(server.twilio.auth_token).compute_signature(
        server.base_url + f"/api/v1/webhooks/twilio/{sms['id']}", params)
    for signature in (bad, local, ""):      # wrong token; signed over the local URL; none
        r = post_sms(server, sms, params, {"X-Twilio-Signature": signature})
        assert r.status_code == 403, signature
    assert messages(api, sms["id"]) == []
    r = post_sms(server, sms, params, {"X-Twilio-Signature": good})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
    assert "<Response/>" in r.text
    wait_for(lambda: twilio_sent_to(server.twilio, "+14155550100"), "the reply")
    assert twilio_sent_to(server.twilio, "+14155550100") == ["You said: hi from the sdk"]


@BOTH
def test_sms_duplicate_delivery_and_status_callback(server, api, sms):
    params, headers = sms_in(server, sms, "dup", "+14155550101", sid="SM" + "2" * 32)
    for _ in range(3):
        assert post_sms(server, sms, params, headers).status_code == 200
    wait_for(lambda: messages(api, sms["id"], direction="outbound", status="sent"), "sent")
    assert twilio_sent_to(server.twilio, "+14155550101") == ["You said: dup"]
    assert len(messages(api, sms["id"], direction="inbound")) == 1
    sid = messages(api, sms["id"], direction="outbound")[0]["provider_id"]
    # The reply was sent with our webhook as StatusCallback: the emulator builds the signed
    # callback Twilio would post; it lands on the same path and updates the delivery.
    for status in ("delivered", "sent"):
        url, cb_params, cb_headers = server.twilio.message_status(sid, status)
        assert url == server.settings.webhook_url("twilio", sms["id"])
        assert post_sms(server, sms, cb_params, cb_headers).status_code == 200
    assert messages(api, sms["id"], direction="outbound")[0]["delivery"] == "delivered"


@BOTH
def test_sms_order_within_a_conversation(server, api, sms):
    for n in range(6):
        params, headers = sms_in(server, sms, f"m{n}", "+14155550102")
        assert post_sms(server, sms, params, headers).status_code == 200
    wait_for(lambda: len(twilio_sent_to(server.twilio, "+14155550102")) == 6, "six replies")
    assert twilio_sent_to(server.twilio, "+14155550102") == [f"You said: m{n}" for n in range(6)]


@SQLITE
def test_whatsapp_via_twilio_replies_with_prefixed_addresses(server, api, sms):
    """protocols.md 6: the same Twilio webhook with ``whatsapp:`` addresses; the reply must go
    from ``whatsapp:`` + the channel's number."""
    params, headers = sms_in(server, sms, "via twilio", "whatsapp:+14155550110")
    assert post_sms(server, sms, params, headers).status_code == 200
    wait_for(lambda: twilio_sent_to(server.twilio, "whatsapp:+14155550110"), "the reply")
    sent = [m for m in server.twilio.sent() if m["to"] == "whatsapp:+14155550110"]
    assert [(m["from"], m["body"]) for m in sent] == [("whatsapp:+15005550006",
                                                       "You said: via twilio")]


@SQLITE
def test_long_reply_split_for_sms(server, api, sms):
    words = " ".join(f"w{n:03d}" for n in range(400))          # 1999 characters
    params, headers = sms_in(server, sms, words, "+14155550111")
    assert post_sms(server, sms, params, headers).status_code == 200
    parts = wait_for(lambda: (lambda got: got if len(got) == 2 else None)(
        twilio_sent_to(server.twilio, "+14155550111")), "two parts")
    assert all(len(p) <= 1600 for p in parts)
    assert " ".join(parts) == f"You said: {words}"


@SQLITE
def test_sms_timeout_reconciled_by_lookup_not_repeated(server, api, sms):
    """The send hangs past the deadline, then the emulator creates the message anyway: the outbox
    finds it by listing messages and records it instead of sending it again."""
    twilio = server.twilio
    twilio.hang("messages.create", seconds=2.0, times=1)
    params, headers = sms_in(server, sms, "hung", "+14155550103")
    assert post_sms(server, sms, params, headers).status_code == 200
    wait_for(lambda: messages(api, sms["id"], direction="outbound", status="sent"), "sent")
    time.sleep(1.0)
    assert twilio_sent_to(twilio, "+14155550103") == ["You said: hung"]
    assert len(twilio.calls("messages.list")) >= 1


@SQLITE
def test_sms_dropped_connection_lookup_then_resend_once(server, api, sms):
    """A dropped connection (no answer; the emulator did not create it): lookup finds nothing,
    the reply is sent again, once."""
    twilio = server.twilio
    twilio.drop("messages.create", times=1)
    params, headers = sms_in(server, sms, "dropped", "+14155550104")
    assert post_sms(server, sms, params, headers).status_code == 200
    wait_for(lambda: twilio_sent_to(twilio, "+14155550104"), "the reply")
    time.sleep(1.0)
    assert twilio_sent_to(twilio, "+14155550104") == ["You said: dropped"]


@SQLITE
def test_sms_retries_exhausted_dead_letter(server, api, sms):
    server.twilio.fail("messages.create", 503, times=None)
    params, headers = sms_in(server, sms, "never", "+14155550105")
    assert post_sms(server, sms, params, headers).status_code == 200
    dead = wait_for(lambda: messages(api, sms["id"], status="dead"), "dead letter")[0]
    assert dead["attempts"] == 4 and "gave up after 4 attempts" in dead["last_error"]
    server.twilio.clear_faults()
    assert twilio_sent_to(server.twilio, "+14155550105") == []
    # The operator retries the dead letter once the provider is back.
    retry = f"/api/v1/channels/{sms['id']}/messages/{dead['id']}/retry"
    r = api.post(retry)
    assert r.status_code == 200 and r.json()["status"] in ("pending", "sending", "sent")
    wait_for(lambda: twilio_sent_to(server.twilio, "+14155550105"), "the retried reply")
    assert twilio_sent_to(server.twilio, "+14155550105") == ["You said: never"]
    assert api.post(retry).status_code == 409                  # not dead any more
    inbound_id = dead["reply_to"]
    assert api.post(f"/api/v1/channels/{sms['id']}/messages/{inbound_id}/retry").status_code == 409
    assert api.post(f"/api/v1/channels/{sms['id']}/messages/msg_nope/retry").status_code == 404


@BOTH
def test_inactive_channel_stores_but_never_answers(server, api, sms):
    r = api.post(f"/api/v1/channels/{sms['id']}/deactivate")
    assert r.status_code == 200 and r.json()["status"] == "inactive"
    for n in range(3):
        params, headers = sms_in(server, sms, f"while away {n}", "+14155550106")
        assert post_sms(server, sms, params, headers).status_code == 200
    stored = messages(api, sms["id"], direction="inbound")
    assert len(stored) == 3 and {m["status"] for m in stored} == {"skipped"}
    r = api.post(f"/api/v1/channels/{sms['id']}/activate")
    assert r.status_code == 200 and r.json()["status"] == "active"
    params, headers = sms_in(server, sms, "back", "+14155550106")
    assert post_sms(server, sms, params, headers).status_code == 200
    wait_for(lambda: twilio_sent_to(server.twilio, "+14155550106"), "the reply")
    time.sleep(0.5)
    assert twilio_sent_to(server.twilio, "+14155550106") == ["You said: back"]


@SQLITE
def test_sms_http_agent_failure_retried_then_failed(server, api, sms):
    r = api.post("/api/v1/agents", json={"name": "down", "kind": "http",
                                         "config": {"url": "http://127.0.0.1:9/", "timeout_s": 1}})
    agent = r.json()["id"]
    assert api.patch(f"/api/v1/channels/{sms['id']}", json={"agent_id": agent}).status_code == 200
    params, headers = sms_in(server, sms, "anyone?", "+14155550107")
    assert post_sms(server, sms, params, headers).status_code == 200
    failed = wait_for(lambda: messages(api, sms["id"], status="failed"), "failed")[0]
    assert failed["attempts"] == 3 and "agent_unavailable" in failed["last_error"]
    assert twilio_sent_to(server.twilio, "+14155550107") == []


@BOTH
def test_two_hundred_concurrent_conversations(server, api, sms):
    import trio

    numbers = [f"+1415556{n:04d}" for n in range(200)]

    async def post_all():
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            async def one(number):
                params, headers = sms_in(server, sms, f"hello {number}", number)
                r = await client.post(f"{server.base_url}/api/v1/webhooks/twilio/{sms['id']}",
                                      data=params, headers=headers)
                assert r.status_code == 200
            async with trio.open_nursery() as nursery:
                for number in numbers:
                    nursery.start_soon(one, number)

    trio.run(post_all)
    assert len(messages(api, sms["id"], direction="inbound")) == 200
    wanted = set(numbers)
    wait_for(lambda: wanted <= {m["to"] for m in server.twilio.sent()}, "200 replies", 120)
    replies = [m for m in server.twilio.sent() if m["to"] in wanted]
    assert sorted((m["to"], m["body"]) for m in replies) == sorted(
        (n, f"You said: hello {n}") for n in numbers)


@SQLITE
def test_flow_target_menu_then_hand_off_to_the_agent(server, api, sms):
    """A flow on an SMS channel: the first message starts it (greeting + menu), a typed key picks
    an option, the agent node hands the conversation over to the agent for good; a finished
    flow starts over on the next message."""
    agent = _agent(api)
    definition = {"start": "entry", "nodes": {
        "entry": {"type": "entry", "next": "greeting"},
        "greeting": {"type": "speak", "text": "Welcome to Acme.", "next": "menu"},
        "menu": {"type": "dtmf_menu", "prompt": "Reply 1 for opening hours, 2 for our assistant.",
                 "options": {"1": "hours", "2": "assistant"}, "invalid": "hours"},
        "hours": {"type": "end", "message": "We are open 9 to 5."},
        "assistant": {"type": "agent", "agent_id": agent}}}
    r = api.post("/api/v1/flows", json={"name": "sms menu", "definition": definition})
    assert r.status_code == 201, r.text
    r = api.patch(f"/api/v1/channels/{sms['id']}",
                  json={"agent_id": None, "flow_id": r.json()["id"]})
    assert r.status_code == 200, r.text

    def say(number, text, replies):
        before = len(twilio_sent_to(server.twilio, number))
        params, headers = sms_in(server, sms, text, number)
        assert post_sms(server, sms, params, headers).status_code == 200
        wait_for(lambda: len(twilio_sent_to(server.twilio, number)) >= before + replies, text)
        return twilio_sent_to(server.twilio, number)[before:]

    menu = ["Welcome to Acme.", "Reply 1 for opening hours, 2 for our assistant."]
    assert say("+14155550120", "hi", 2) == menu
    assert say("+14155550120", "2", 1) == ["You said: 2"]
    assert say("+14155550120", "thanks", 1) == ["You said: thanks"]
    assert say("+14155550121", "hello", 2) == menu
    assert say("+14155550121", "one", 1) == ["We are open 9 to 5."]
    assert say("+14155550121", "again", 2) == menu


@pytest.mark.parametrize("server", ["postgres"], indirect=True)
def test_two_control_nodes_share_the_work_without_double_replies(server, api, sms, tmp_path):
    """Two `converse control` processes on one PostgreSQL database, webhooks spread over both:
    every message answered once, each conversation's replies in order (conversation leases)."""
    from fixtures_control import ControlServer

    with counting_agent() as (agent_url, seen):
        r = api.post("/api/v1/agents", json={"name": "counted", "kind": "http",
                                             "config": {"url": agent_url}})
        assert api.patch(f"/api/v1/channels/{sms['id']}",
                         json={"agent_id": r.json()["id"]}).status_code == 200
        second = ControlServer(tmp_path, dict(server.env), server.emulators)
        second.start()
        try:
            _two_nodes(server, second, sms)
        finally:
            second.stop()
        # The lease keeps the other node off a conversation: the agent saw each message once.
        assert sorted(seen) == sorted(set(seen)) and len(seen) == 26


def _two_nodes(server, second, sms):
    numbers = [f"+1415558{n:04d}" for n in range(8)]
    for k in range(3):
        for i, number in enumerate(numbers):
            node = (server, second)[(i + k) % 2]
            params, headers = sms_in(server, sms, f"{k}", number)
            r = httpx.post(f"{node.base_url}/api/v1/webhooks/twilio/{sms['id']}",
                           data=params, headers=headers, timeout=30)
            assert r.status_code == 200
    # A turn longer than the lease: the worker renews it, so the other node does not start the
    # same message again when the first lease term runs out.
    for node, text in ((server, "slow"), (second, "after")):
        params, headers = sms_in(server, sms, text, "+14155589999")
        r = httpx.post(f"{node.base_url}/api/v1/webhooks/twilio/{sms['id']}", data=params,
                       headers=headers, timeout=30)
        assert r.status_code == 200
    wanted = {n: [f"You said: {k}" for k in range(3)] for n in numbers}
    wanted["+14155589999"] = ["You said: slow", "You said: after"]
    wait_for(lambda: all(len(twilio_sent_to(server.twilio, n)) >= len(wanted[n]) for n in wanted),
             "every reply", 120)
    assert {n: twilio_sent_to(server.twilio, n) for n in wanted} == wanted


@contextlib.contextmanager
def counting_agent():
    """A real HTTP text agent on 127.0.0.1 (stdlib server in a thread) recording every turn."""
    import http.server
    import threading

    seen: list[tuple[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((body["conversation_id"], body["text"]))
            # A little thinking time widens any race; "slow" outlasts the 2 s lease (FAST_ENV).
            time.sleep(2.5 if body["text"] == "slow" else 0.05)
            reply = json.dumps({"text": f"You said: {body['text']}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


# -------------------------------------------------------------------------------------- API
@BOTH
def test_messages_api_filters_and_errors(server, api, sms):
    params, headers = sms_in(server, sms, "api", "+14155550108")
    post_sms(server, sms, params, headers)
    wait_for(lambda: messages(api, sms["id"], direction="outbound", status="sent"), "sent")
    both = messages(api, sms["id"])
    assert [m["direction"] for m in both] == ["outbound", "inbound"]       # newest first
    assert messages(api, sms["id"], before=both[0]["seq"]) == both[1:]
    assert messages(api, sms["id"], conversation_id=both[0]["conversation_id"]) == both
    for bad in ({"direction": "sideways"}, {"status": "x"}, {"limit": "0"}, {"limit": "abc"}):
        r = api.get(f"/api/v1/channels/{sms['id']}/messages", params=bad)
        assert r.status_code == 422 and r.json()["error"] == "validation"
    assert api.get("/api/v1/channels/ch_nope/messages").status_code == 404
    assert httpx.get(f"{server.base_url}/api/v1/channels/{sms['id']}/messages").status_code == 401
    doc = httpx.get(f"{server.base_url}/api/v1/openapi.json").json()
    op = doc["paths"]["/api/v1/channels/{channel_id}/messages"]["get"]
    assert {p["name"] for p in op["parameters"]} >= {"direction", "status", "limit", "before"}
    assert "MessageList" in doc["components"]["schemas"]
    assert json.dumps(both)                                    # plain JSON all the way
