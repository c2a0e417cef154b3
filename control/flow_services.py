"""What a gateway needs from the control side to run flows in live calls (``converse up`` and
``converse gateway`` call :func:`install`):

* text-to-speech from ``CONVERSE_TTS_*`` (:class:`gateway.tts.TtsConfig`; espeak-ng by default,
  with a startup warning when it is missing);
* ``send_sms``: a flow's ``sms`` node becomes a row in the durable messaging outbox (same store,
  same sender and retries as conversation replies; the control plane's outbox loop sends it);
* ``transfer``: not wired yet — no provider module exposes a live-call update (Twilio ``<Dial>``
  via the Calls REST resource, Plivo's transfer API), so a flow's transfer ends the call with
  "transfer_failed" and an apology (see the README's Flows section).

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


def install(server, store=None, tts_config: tts_mod.TtsConfig | None = None) -> None:
    """Let ``server`` run flows with the configured TTS and, given the ``store``, the outbox."""
    config = tts_config or tts_mod.TtsConfig.from_env()
    backend = tts_mod.make_tts(config)
    runner.install(server, tts=backend, voice=None,
                   send_sms=sms_sender(store) if store is not None else None)
