"""Messaging parts in isolation: webhook parsing and signatures (sans-IO), the backoff policy, the
repositories' state machine on a real SQLite store, and the text-mode agent turn."""
from __future__ import annotations

import hashlib
import hmac
import json
import random

import pytest
import trio
from hypothesis import HealthCheck, given, settings, strategies as st

from control.messaging import repo as mrepo
from control.messaging.config import MessagingSettings
from control.messaging.outbox import backoff_s, is_uncertain
from control.messaging.wire import (Delivery, Inbound, Malformed, meta_signature_ok, parse_meta,
                                    parse_twilio)
from control.providers import ProviderRateLimited, ProviderRejected, ProviderTimeout
from control.providers.base import ProviderUnavailable

PNID = "106540352242922"


def envelope(value: dict, pnid: str = PNID) -> bytes:
    value = dict({"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550783881", "phone_number_id": pnid}},
                 **value)
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]}
                      ).encode()


# ----------------------------------------------------------------------------- signatures
def test_meta_signature_vectors_from_protocols_md():
    assert meta_signature_ok("secret", b"test", "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a"
                                                "876fce9a881ebb488c0914")
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    good = "sha256=56a21e195072d3c07ec2bbf608e0dfeaf322e1917ec30f0cb399c2a43588216e"
    assert meta_signature_ok("secret", body, good)
    assert meta_signature_ok("secret", body, good.upper().replace("SHA256=", "sha256="))
    assert not meta_signature_ok("secret", body + b" ", good)          # raw bytes, not JSON
    assert not meta_signature_ok("other", body, good)
    assert not meta_signature_ok("", body, good)
    for header in (None, "", "sha1=" + good[7:], good[7:], "sha256="):
        assert not meta_signature_ok("secret", body, header)


@given(st.binary(max_size=300), st.text(min_size=1, max_size=40))
@settings(max_examples=100, derandomize=True, database=None)
def test_meta_signature_matches_independent_hmac(body, secret):
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert meta_signature_ok(secret, body, "sha256=" + digest)
    flipped = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    assert not meta_signature_ok(secret, body, "sha256=" + flipped)


# ----------------------------------------------------------------------------- Meta parsing
def test_parse_meta_batch_of_messages_and_statuses():
    body = envelope({
        "contacts": [{"profile": {"name": "A"}, "wa_id": "16505551234"}],
        "messages": [
            {"from": "16505551234", "id": "wamid.1", "timestamp": "1", "type": "text",
             "text": {"body": "hi"}},
            {"from": "16505551234", "id": "wamid.2", "timestamp": "2", "type": "image",
             "image": {"id": "9"}},
            {"from": "16505551234", "id": "wamid.3", "timestamp": "3", "type": "reaction",
             "context": {"from": "x", "id": "wamid.0"}}],
        "statuses": [
            {"id": "wamid.out", "status": "read", "timestamp": "4", "recipient_id": "1",
             "biz_opaque_callback_data": "msg_1.0"},
            {"id": "wamid.out2", "status": "failed", "timestamp": "5", "recipient_id": "1",
             "errors": [{"code": 131047, "title": "Re-engagement message"}]}]})
    inbound, deliveries, ignored = parse_meta(body, PNID)
    assert inbound == [Inbound("wamid.1", "16505551234", "text", "hi"),
                       Inbound("wamid.2", "16505551234", "image"),
                       Inbound("wamid.3", "16505551234", "reaction")]
    assert deliveries == [Delivery("wamid.out", "read", "msg_1.0", ""),
                          Delivery("wamid.out2", "failed", None, "131047: Re-engagement message")]
    assert ignored == 0


def test_parse_meta_other_numbers_and_fields_ignored():
    body = envelope({"messages": [{"from": "1", "id": "wamid.x", "type": "text",
                                   "text": {"body": "x"}}]}, pnid="42")
    assert parse_meta(body, PNID) == ([], [], 1)
    calls = json.dumps({"object": "whatsapp_business_account", "entry": [
        {"changes": [{"field": "calls", "value": {"calls": [{"id": "c"}]}}]}]}).encode()
    assert parse_meta(calls, PNID) == ([], [], 0)


@pytest.mark.parametrize("body", [
    b"", b"null", b"[]", b"{", b'{"object":"page","entry":[]}',
    b'{"object":"whatsapp_business_account","entry":5}',
    b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages",'
    b'"value":{"messages":[{"from":"1","type":"text"}]}}]}]}',
    b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages",'
    b'"value":{"messages":[{"id":"w","from":"","type":"text"}]}}]}]}',
])
def test_parse_meta_malformed(body):
    with pytest.raises(Malformed) as info:
        parse_meta(body, PNID)
    assert b"whatsapp" not in info.value.reason.encode() or "object" in info.value.reason


@given(st.binary(max_size=400))
@settings(max_examples=500, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
def test_parse_meta_fuzz_never_crashes(body):
    try:
        parse_meta(body, PNID)
    except Malformed:
        pass


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                       lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.sampled_from(["id", "from", "type", "text", "body",
                                                          "messages", "statuses", "status",
                                                          "metadata", "value", "changes",
                                                          "entry", "field"]), inner, max_size=4),
                       max_leaves=20)


@given(JSONISH)
@settings(max_examples=300, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
def test_parse_meta_fuzz_structured(value):
    body = json.dumps({"object": "whatsapp_business_account", "entry": [
        {"changes": [{"field": "messages", "value": value}]}]}).encode()
    try:
        parse_meta(body, PNID)
    except Malformed:
        pass


# ---------------------------------------------------------------------------- Twilio parsing
def test_parse_twilio_inbound_media_and_status():
    sms = {"MessageSid": "SM1", "From": "+1415", "Body": "hi", "SmsStatus": "received",
           "NumMedia": "0"}
    assert parse_twilio(sms) == Inbound("SM1", "+1415", "text", "hi")
    assert parse_twilio(dict(sms, Body="", NumMedia="1")) == Inbound("SM1", "+1415", "media")
    assert parse_twilio(dict(sms, Body="", NumMedia="x")) == Inbound("SM1", "+1415", "text", "")
    status = {"MessageSid": "SM2", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert parse_twilio(status) == Delivery("SM2", "undelivered", None, "error 30003")
    for bad in ({}, {"MessageSid": "SM3"}, {"MessageSid": "SM4", "MessageStatus": "weird"}):
        with pytest.raises(Malformed):
            parse_twilio(bad)


# ----------------------------------------------------------------------------------- backoff
def test_backoff_grows_with_jitter_and_honours_retry_after():
    ms = MessagingSettings(backoff_base_s=1.0, backoff_max_s=60.0)
    rng = random.Random(7)
    delays = [backoff_s(n, ms, rng=rng) for n in range(1, 9)]
    for n, d in enumerate(delays, start=1):
        base = min(60.0, 2 ** (n - 1))
        assert base <= d <= min(60.0, base * 1.5)
    assert backoff_s(1, ms, retry_after=7.0, rng=rng) >= 7.0
    assert backoff_s(1, ms, retry_after=600.0, rng=rng) == 600.0      # the provider's word wins
    assert len({backoff_s(3, ms, rng=rng) for _ in range(20)}) > 1     # jitter spreads retries


def test_uncertainty_classification():
    assert is_uncertain(ProviderTimeout("meta", "slow"))
    assert is_uncertain(ProviderUnavailable("twilio", "cannot reach the API: ReadError"))
    assert not is_uncertain(ProviderUnavailable("twilio", "HTTP 503", status=503))
    assert not is_uncertain(ProviderRateLimited("meta", "slow down", retry_after=2))
    assert not is_uncertain(ProviderRejected("meta", "no", status=400))


# -------------------------------------------------------------------------------------- repo
@pytest.fixture
def store(tmp_path):
    from control.config import Settings
    from control.secrets import generate_key
    from control.store import open_store
    s = open_store(Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
                                      "CONVERSE_SECRET_KEY": generate_key()}))
    yield s
    s.close()


def test_inbound_dedup_and_one_conversation_per_party(store):
    def put(tx, pid, remote):
        conv = mrepo.conversation_for(tx, "ch1", remote)
        return conv.id, mrepo.insert_inbound(tx, channel_id="ch1", conversation_id=conv.id,
                                             provider_id=pid, kind="text", text=pid)
    c1, new1 = store.run_sync(put, "wamid.1", "A")
    c2, new2 = store.run_sync(put, "wamid.1", "A")
    c3, new3 = store.run_sync(put, "wamid.2", "A")
    c4, _ = store.run_sync(put, "wamid.3", "B")
    assert (new1, new2, new3) == (True, False, True)
    assert c1 == c2 == c3 != c4
    assert store.run_sync(mrepo.next_inbound, c1).provider_id == "wamid.1"     # arrival order


def test_outbound_state_machine_and_delivery_ranks(store):
    def setup(tx):
        conv = mrepo.conversation_for(tx, "ch1", "A")
        return mrepo.insert_outbound(tx, channel_id="ch1", conversation_id=conv.id, text="x",
                                     idempotency_key="in.0", reply_to="in")
    mid = store.run_sync(setup)
    now = mrepo.now_ms()
    assert store.run_sync(mrepo.claim_send, mid, now, now + 1000)
    assert not store.run_sync(mrepo.claim_send, mid, now, now + 1000)          # once only
    assert not store.run_sync(mrepo.claim_reconcile, mid, now, now + 1000)     # lease holds
    assert store.run_sync(mrepo.claim_reconcile, mid, now + 2000, now + 3000)  # expired
    assert store.run_sync(mrepo.retry_later, mid, now + 50, "HTTP 503")
    assert not store.run_sync(mrepo.claim_send, mid, now, now + 1000)          # not due yet
    assert store.run_sync(mrepo.claim_send, mid, now + 60, now + 1000)
    assert store.run_sync(mrepo.mark_sent, mid, "SM1")
    ranks = [store.run_sync(lambda tx, s=s: mrepo.apply_delivery(tx, "ch1", "SM1", s))
             for s in ("read", "delivered", "sent", "failed", "delivered")]
    assert ranks == ["read"] * 5
    assert store.run_sync(mrepo.apply_delivery, "ch1", "SM-unknown", "read") is None
    assert store.run_sync(mrepo.get_message, mid).attempts == 2


def test_status_with_key_adopts_an_unconfirmed_send(store):
    def setup(tx):
        conv = mrepo.conversation_for(tx, "ch1", "A")
        return mrepo.insert_outbound(tx, channel_id="ch1", conversation_id=conv.id, text="x",
                                     idempotency_key="in.0", reply_to="in")
    mid = store.run_sync(setup)
    now = mrepo.now_ms()
    store.run_sync(mrepo.claim_send, mid, now, now + 1000)
    assert store.run_sync(mrepo.mark_dead, mid, "unconfirmed: timeout")
    got = store.run_sync(lambda tx: mrepo.apply_delivery(tx, "ch1", "wamid.9", "delivered",
                                                         idempotency_key="in.0"))
    row = store.run_sync(mrepo.get_message, mid)
    assert (got, row.status, row.provider_id, row.delivery) == ("delivered", "sent", "wamid.9",
                                                                "delivered")


def test_conversation_lease_is_exclusive_until_it_expires(store):
    cid = store.run_sync(lambda tx: mrepo.conversation_for(tx, "ch1", "A").id)
    now = mrepo.now_ms()
    assert store.run_sync(mrepo.take_lease, cid, "node1", now + 1000, now)
    assert store.run_sync(mrepo.take_lease, cid, "node1", now + 2000, now)     # renew
    assert not store.run_sync(mrepo.take_lease, cid, "node2", now + 1000, now)
    assert store.run_sync(mrepo.take_lease, cid, "node2", now + 5000, now + 2500)
    assert not store.run_sync(mrepo.holds_lease, cid, "node1")


# ----------------------------------------------------------------------------- text turns
async def test_text_turn_echo_and_failures():
    from gateway.agents.text import AgentTurnError, reply_text
    from gateway.directory import AgentInfo

    echo = AgentInfo(id="a", name="echo", kind="echo")
    assert await reply_text(echo, "cv", "hello", channel_id="c", channel_type="sms",
                            caller="+1415") == ["You said: hello"]
    down = AgentInfo(id="b", name="down", kind="http", config={"url": "http://127.0.0.1:9/"})
    with pytest.raises(AgentTurnError) as info:
        await reply_text(down, "cv", "hello", channel_id="c", channel_type="sms")
    assert info.value.code == "agent_unavailable"
    bad = AgentInfo(id="c", name="bad", kind="websocket", config={"url": "http://nope"})
    with pytest.raises(AgentTurnError) as info:
        await reply_text(bad, "cv", "hello", channel_id="c", channel_type="sms")
    assert info.value.code == "agent_misconfigured"


async def test_text_turn_websocket_agent(autojump_clock):
    """The example agent greets on start, then answers: both come back; a silent agent ends the
    turn at its deadline (virtual clock)."""
    import importlib.util

    from conftest import ROOT
    from gateway import transport
    from gateway.agents.text import AgentTurnError, reply_text
    from gateway.directory import AgentInfo
    from gateway.limits import Limits

    spec = importlib.util.spec_from_file_location("agent_server", ROOT / "examples/agent_server.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    async def silent(handshake):
        ws = await handshake.accept()
        try:
            while True:
                await ws.receive()
        except transport.ConnectionClosed:
            pass

    async with trio.open_nursery() as nursery:
        port = (await nursery.start(example.serve, "127.0.0.1", 0))[0].socket.getsockname()[1]
        agent = AgentInfo(id="w", name="w", kind="websocket",
                          config={"url": f"ws://127.0.0.1:{port}/"})
        replies = await reply_text(agent, "cv", "hello", channel_id="c", channel_type="sms")
        assert replies == ["Hello from the example agent.", "Agent heard: hello"]

        listeners = await transport.open_listeners("127.0.0.1", 0)
        nursery.start_soon(transport.serve, silent, listeners, Limits())
        port = listeners[0].socket.getsockname()[1]
        agent = AgentInfo(id="s", name="s", kind="websocket",
                          config={"url": f"ws://127.0.0.1:{port}/"})
        with pytest.raises(AgentTurnError) as info:
            await reply_text(agent, "cv", "hello", channel_id="c", channel_type="sms", deadline=5)
        assert info.value.code == "timeout"
        nursery.cancel_scope.cancel()


@given(st.text(alphabet=st.sampled_from("ab \n"), max_size=400), st.integers(10, 60))
@settings(max_examples=300, derandomize=True, database=None)
def test_split_text_bounds_and_content(text, limit):
    from control.messaging.worker import split_text
    parts = split_text(text, limit)
    assert all(0 < len(p) <= limit for p in parts)
    assert "".join(parts).replace(" ", "").replace("\n", "") == \
        text.replace(" ", "").replace("\n", "")
    if len(text) <= limit and text.strip():
        assert parts == [text]


def test_split_text_examples():
    from control.messaging.worker import split_text
    assert split_text(" " * 100, 10) == []
    assert split_text("abc def ghi", 7) == ["abc def", "ghi"]
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
