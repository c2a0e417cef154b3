"""What a gateway needs from the control side to run flows in live calls (``converse up`` and
``converse gateway`` call :func:`install`):

* text-to-speech from ``CONVERSE_TTS_*`` (:class:`gateway.tts.TtsConfig`; espeak-ng by default,
  with a startup warning when it is missing);
* ``send_sms``: a flow's ``sms`` node becomes a row in the durable messaging outbox (same store,
  same sender and retries as conversation replies; the control plane's outbox loop sends it);
* ``transfer``: the channel's provider moves the live call (``Provider.transfer_call``: Twilio
  updates the call with ``<Dial>`` TwiML through the Calls REST resource; Plivo's Transfer Call
  API is given a token-bound URL of ours, control/api/transfer.py, that answers the ``<Dial>``).
  When it fails the flow apologises and ends the call ("transfer_failed").

The gateway never imports this module: the dependency stays control -> gateway.
"""
from __future__ import annotations

import logging
import secrets

from gateway import tts as tts_mod
from gateway.flows import runner

log = logging.getLogger("converse.flows")


def sms_sender(store):
    """``send_sms(channel_id, to, text)`` for the runner: one outbox row (pending), committed."""
    from control.messaging import repo as mrepo
    from control.store import repo

    def enqueue(tx, channel_id: str, to: str, text: str) -> str:
        channel = repo.get_channel(tx, channel_id)
        if channel is None or channel.type != "sms":
            raise LookupError(f"no SMS channel {channel_id}")
        conversation = mrepo.conversation_for(tx, channel_id, to)
        return mrepo.insert_outbound(tx, channel_id=channel_id, conversation_id=conversation.id,
                                     text=text, idempotency_key="flow." + secrets.token_hex(12),
                                     reply_to=None)

    async def send_sms(channel_id: str, to: str, text: str) -> None:
        await store.run(enqueue, channel_id, to, text)
        log.info("flow sms queued on %s", channel_id)

    return send_sms


def call_transferrer(store, endpoints, deadline_s: float, settings=None):
    """``transfer(start, number)`` for the runner: the channel's credentials from the store, the
    call id from the session's start; raises (ProviderError, LookupError, ValueError) when it
    cannot. ``settings`` (PUBLIC_URL, token secret) mint the URL a Plivo transfer fetches;
    without them Plivo transfers are refused."""
    from control.api.transfer import transfer_url
    from control.providers import get_provider
    from control.store import channel_aad, repo

    async def transfer(start, number: str) -> None:
        channel = await store.read(repo.get_channel, start.channel_id)
        call_id = start.variables.get("call_id")
        if channel is None or channel.type != "voice" or not channel.credentials or not call_id:
            raise LookupError("no live voice call to transfer")
        creds = store.box.decrypt_json(channel.credentials, channel_aad(channel.id))
        provider = get_provider(channel.provider, endpoints, deadline=deadline_s)
        url = (transfer_url(settings, channel.id, number)
               if settings is not None and channel.provider == "plivo" else None)
        await provider.transfer_call(creds, str(call_id), number, transfer_url=url)
        log.info("flow transferred call on %s", channel.id)

    return transfer


def _env_settings():
    """Settings from the environment (``converse gateway`` passes none), or None with a warning:
    then Plivo transfers are refused, everything else works."""
    from control.config import ConfigError, Settings
    try:
        return Settings.from_env(create_key=False)
    except ConfigError as exc:
        log.warning("no settings for Plivo call transfers (%s): they will be refused", exc)
        return None


def install(server, store=None, tts_config: tts_mod.TtsConfig | None = None,
            settings=None) -> None:
    """Let ``server`` run flows with the configured TTS and, given the ``store``, the outbox and
    call transfers (provider endpoints from ``settings``, else the environment)."""
    config = tts_config or tts_mod.TtsConfig.from_env()
    backend = tts_mod.make_tts(config)
    transfer = None
    if store is not None:
        from control.config import ProviderEndpoints
        endpoints = settings.providers if settings is not None else ProviderEndpoints.from_env()
        deadline = settings.provider_deadline_s if settings is not None else 10.0
        transfer = call_transferrer(store, endpoints, deadline, settings or _env_settings())
    runner.install(server, tts=backend, voice=None, transfer=transfer,
                   send_sms=sms_sender(store) if store is not None else None)
