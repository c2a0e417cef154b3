"""The outbox sender: ``pending`` replies -> the provider, exactly once where the provider allows.

State machine per outbound message (compare-and-set in :mod:`control.messaging.repo`)::

    pending --claim--> sending --answer--> sent
       ^                  |--429/5xx (a definite no)--> pending (backoff) | dead (N tries)
       |                  |--other 4xx--> dead
       +--- not found ----|--uncertain (timeout, connection lost, crash)--> reconcile

Replies of one conversation go out in order: only the oldest open message of a conversation is
sent; a later one waits while an earlier one is backing off. A claim holds a lease
(``lease_s``, longer than the provider deadline): a ``sending`` row whose lease expired belongs to a
sender that crashed or hung, and is *reconciled*, never blindly re-sent:

* Twilio (no idempotency key in the Messages API): after a grace of one lease (the request may
  still be in flight inside Twilio), list the messages sent from the channel's number to the
  recipient and look for one with the same body whose SM sid is not already
  recorded on another of our messages. Found: it was sent, record the sid. Not found: it was not
  sent, retry. Residual risk, documented: a request still unprocessed inside Twilio after the
  grace (``lease_s``, 60 s by default), or an identical text to the same number sent
  by something else on the account in that window.
* Meta (no idempotency key, no lookup API): our idempotency key travels in
  ``biz_opaque_callback_data`` and comes back on every status webhook. A send whose outcome is
  unknown is NOT repeated: it is dead-lettered as ``unconfirmed`` (visible in the API) -- unless
  a status webhook carrying its key arrives, which proves the send and turns it ``sent`` with the
  wamid (also after the dead-lettering). So WhatsApp replies are at-most-once under crashes and
  timeouts, exactly-once otherwise.
"""
from __future__ import annotations

import logging
import random

import trio

from control.messaging import repo as mrepo
from control.messaging.config import MessagingSettings
from control.providers import ProviderRateLimited, ProviderRejected, ProviderTimeout
from control.providers.base import ProviderError, ProviderUnavailable
from control.store import channel_aad
from control.store import repo as srepo

log = logging.getLogger("converse.messaging.outbox")

UNCONFIRMED = ("unconfirmed: the send may have reached Meta ({why}); not repeated to avoid a "
               "duplicate (a status webhook with its key would confirm it)")


def backoff_s(attempt: int, ms: MessagingSettings, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:
    """Delay before attempt ``attempt + 1``: exponential with up to 50 % jitter, at least the
    provider's Retry-After, at most ``backoff_max_s``."""
    base = min(ms.backoff_max_s, ms.backoff_base_s * 2 ** max(0, attempt - 1))
    delay = base * (1 + 0.5 * (rng or random).random())
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, max(ms.backoff_max_s, retry_after or 0.0))


def is_uncertain(exc: ProviderError) -> bool:
    """Did the request perhaps reach the provider? A timeout or a transport failure without an
    HTTP answer: yes, perhaps. An HTTP error answer (429, 5xx, 4xx): the provider said no."""
    return isinstance(exc, ProviderTimeout) or (isinstance(exc, ProviderUnavailable)
                                                and exc.status is None)


class Outbox:
    def __init__(self, store, settings, msettings: MessagingSettings, providers):
        self.store = store
        self.settings = settings
        self.ms = msettings
        self.providers = providers          # name -> Provider
        self.wake = trio.Event()
        self.busy: set[str] = set()         # conversations with a delivery in progress here
        self.limiter = trio.CapacityLimiter(msettings.concurrency)

    def poke(self) -> None:
        self.wake.set()

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            wait = 0.0
            while True:
                with trio.move_on_after(wait):
                    await self.wake.wait()
                self.wake = trio.Event()
                try:
                    wait = await self._round(nursery)
                except Exception:
                    log.exception("outbox: cannot read pending messages; retrying at the next poll")
                    wait = self.ms.poll_s

    async def _round(self, nursery) -> float:
        """Start every due delivery; return how long to sleep (next due time or the poll)."""
        rows = await self.store.read(mrepo.open_outbound, self.ms.batch)
        now = mrepo.now_ms()
        heads: dict[str, mrepo.Message] = {}
        for m in rows:
            heads.setdefault(m.conversation_id, m)
        wait = self.ms.poll_s
        for m in heads.values():
            if m.conversation_id in self.busy:
                continue
            due_at = m.next_attempt_ms if m.status == "pending" else m.lease_until_ms + 1
            if due_at <= now:
                self.busy.add(m.conversation_id)
                nursery.start_soon(self._deliver, m)
            else:
                wait = min(wait, (due_at - now) / 1000)
        return max(wait, 0.01)

    def _lease(self) -> tuple[int, int]:
        now = mrepo.now_ms()
        # Longer than one provider call can take: while it holds, nobody reconciles our send.
        return now, now + int((self.ms.lease_s + self.settings.provider_deadline_s) * 1000)

    async def _deliver(self, m: mrepo.Message) -> None:
        try:
            async with self.limiter:
                now, until = self._lease()
                if m.status == "pending":
                    if await self.store.run(mrepo.claim_send, m.id, now, until):
                        await self._send(m)
                elif await self.store.run(mrepo.claim_reconcile, m.id, now, until):
                    log.warning("outbox: %s was left sending (crash or hang); reconciling", m.id)
                    await self._uncertain(m, "the sender stopped mid-send")
        except Exception:
            log.exception("outbox: delivery of %s failed unexpectedly", m.id)
        finally:
            self.busy.discard(m.conversation_id)
            self.poke()                     # the conversation's next reply may go now

    async def _context(self, m: mrepo.Message):
        channel = await self.store.read(srepo.get_channel, m.channel_id)
        conv = await self.store.read(mrepo.get_conversation, m.conversation_id)
        if channel is None or channel.provider not in self.providers or conv is None:
            return None
        creds = self.store.box.decrypt_json(channel.credentials, channel_aad(channel.id))
        return channel, conv, creds

    async def _send(self, m: mrepo.Message) -> None:
        ctx = await self._context(m)
        if ctx is None:
            await self.store.run(mrepo.mark_dead, m.id, "the channel no longer exists")
            return
        channel, conv, creds = ctx
        provider = self.providers[channel.provider]
        sender = _sender(channel, conv)
        extra = {}
        if channel.provider == "twilio":
            extra["status_callback"] = self.settings.webhook_url("twilio", channel.id)
        try:
            sid = await provider.send_message(creds, sender, conv.remote,
                                              m.text or "", m.idempotency_key or m.id, **extra)
        except ProviderRejected as exc:
            log.warning("outbox: %s rejected by %s: %s", m.id, channel.provider, exc.message)
            await self.store.run(mrepo.mark_dead, m.id, f"rejected: {exc.message}"[:500])
        except ProviderError as exc:
            if is_uncertain(exc) and channel.provider == "meta":
                await self._uncertain(m, type(exc).__name__, ctx)
            elif is_uncertain(exc):
                # Look only once the request cannot still be in flight at Twilio: after a grace
                # of one lease, reconciliation (lease expiry) does the lookup.
                until = mrepo.now_ms() + int(self.ms.lease_s * 1000)
                await self.store.run(mrepo.defer_reconcile, m.id, until,
                                     f"outcome unknown ({type(exc).__name__}); will look it up")
            else:
                await self._retry(m, exc)
        else:
            await self.store.run(mrepo.mark_sent, m.id, sid)

    async def _retry(self, m: mrepo.Message, exc: ProviderError) -> None:
        current = await self.store.read(mrepo.get_message, m.id)
        attempts = current.attempts if current else m.attempts + 1
        words = f"{type(exc).__name__}: {exc.message}"[:500]
        if attempts >= self.ms.max_attempts:
            log.warning("outbox: %s dead after %d attempts (%s)", m.id, attempts, words)
            await self.store.run(mrepo.mark_dead, m.id,
                                 f"gave up after {attempts} attempts: {words}")
            return
        retry_after = exc.retry_after if isinstance(exc, ProviderRateLimited) else None
        delay = backoff_s(attempts, self.ms, retry_after)
        await self.store.run(mrepo.retry_later, m.id, mrepo.now_ms() + int(delay * 1000), words)

    async def _uncertain(self, m: mrepo.Message, why: str, ctx=None) -> None:
        ctx = ctx or await self._context(m)
        if ctx is None:
            await self.store.run(mrepo.mark_dead, m.id, "the channel no longer exists")
            return
        channel, conv, creds = ctx
        if channel.provider == "meta":
            await self.store.run(mrepo.mark_dead, m.id, UNCONFIRMED.format(why=why))
            return
        # Twilio: was it created? Look before sending again.
        try:
            sids = await self.providers["twilio"].find_sent(creds, _sender(channel, conv),
                                                            conv.remote, m.text or "")
        except ProviderError as exc:
            # Cannot tell yet: leave it `sending`; the lease expiry brings it back here.
            log.warning("outbox: cannot reconcile %s yet: %s", m.id, exc)
            return
        known = await self.store.read(mrepo.known_provider_ids, channel.id, sids)
        mine = [s for s in sids if s not in known]
        if mine:
            log.info("outbox: %s was sent before all (%s); recorded, not repeated", m.id, mine[0])
            await self.store.run(mrepo.mark_sent, m.id, mine[0])
        else:
            await self._retry(m, ProviderUnavailable(channel.provider, f"not sent ({why})"))


def _sender(channel, conv) -> str:
    """The From of a reply: the channel's number; WhatsApp through Twilio (protocols.md 6) needs
    the ``whatsapp:`` prefix on both addresses, and the sender's has it."""
    number = channel.phone_number or ""
    if conv.remote.startswith("whatsapp:") and not number.startswith("whatsapp:"):
        return "whatsapp:" + number
    return number
