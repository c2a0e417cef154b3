"""The conversation worker: stored inbound messages -> the target -> replies in the outbox.

Order and concurrency: conversations run in parallel (``concurrency`` at once); within one
conversation messages are taken strictly in arrival order, one at a time, under a lease in the
database (``conversations.lease_owner/lease_until_ms``) so two control nodes never interleave one
conversation. A crashed node's lease expires after ``lease_s`` and another node takes over.

Exactly-once out: the inbound message's ``received -> processed`` compare-and-set and the reply
rows (``pending`` in the outbox, idempotency key ``<inbound id>.<n>``, unique) are committed in one
transaction. A crash before that commit leaves the message ``received``: the agent runs again for
it (at-least-once towards the agent) but only one set of replies is ever written.
"""
from __future__ import annotations

import logging

import trio

from control.messaging import repo as mrepo
from control.messaging.config import MessagingSettings
from control.messaging.outbox import backoff_s
from control.messaging.targets import NOT_TEXT_REPLY, Turn, run_turn
from control.store import channel_aad
from control.store import repo as srepo
from gateway.agents.text import AgentTurnError

log = logging.getLogger("converse.messaging")


# What one provider message may carry: longer replies go out as several messages, in order.
MAX_CHARS = {"meta": 4096, "twilio": 1600}


def split_text(text: str, limit: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters, at a line break or a space
    when there is one in the second half of the piece."""
    parts = []
    while len(text) > limit:
        # a break exactly at ``limit`` still leaves a full piece before it
        window = (limit // 2, limit + 1)
        cut = max(text.rfind("\n", *window), text.rfind(" ", *window))
        cut = cut if cut > 0 else limit
        if text[:cut].strip():
            parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text.strip():
        parts.append(text)
    return parts


class LostLease(Exception):
    """Another node took the conversation over (our lease expired): drop this turn's result."""


class Inbox:
    def __init__(self, store, settings, msettings: MessagingSettings, owner: str, providers,
                 on_replies):
        self.store = store
        self.settings = settings
        self.ms = msettings
        self.owner = owner
        self.providers = providers             # name -> Provider
        self.on_replies = on_replies           # called after replies were committed
        self.wake = trio.Event()
        self.busy: set[str] = set()
        self.limiter = trio.CapacityLimiter(msettings.concurrency)

    def poke(self) -> None:
        self.wake.set()

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                with trio.move_on_after(self.ms.poll_s):
                    await self.wake.wait()
                self.wake = trio.Event()
                try:
                    due = await self.store.read(mrepo.conversations_with_inbox, mrepo.now_ms(),
                                                self.ms.batch)
                except Exception:
                    log.exception("messaging: cannot read the inbox; retrying at the next poll")
                    continue
                for cid in due:
                    if cid not in self.busy:
                        self.busy.add(cid)
                        nursery.start_soon(self._conversation, cid)

    async def _conversation(self, cid: str) -> None:
        try:
            async with self.limiter:
                await self._drain(cid)
        except Exception:
            log.exception("messaging: conversation %s failed; retrying at the next poll", cid)
            self.busy.discard(cid)
        else:
            self.busy.discard(cid)
            # A message that arrived just after our last look was skipped by the round that it
            # woke (we were busy): look again now rather than at the next poll.
            self.poke()

    def _lease(self) -> tuple[int, int]:
        now = mrepo.now_ms()
        return now + int(self.ms.lease_s * 1000), now

    async def _drain(self, cid: str) -> None:
        if not await self.store.run(mrepo.take_lease, cid, self.owner, *self._lease()):
            return
        pause_s = 0.0
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._keep_lease, cid, nursery.cancel_scope)
                while True:
                    message = await self.store.read(mrepo.next_inbound, cid)
                    if message is None:
                        break
                    pause_s = await self._handle(message)
                    if pause_s:
                        break
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                if pause_s > 0:
                    # Keep the lease as a "not before": nobody retries this conversation (and
                    # its later messages wait behind it) until the backoff is over.
                    now = mrepo.now_ms()
                    await self.store.run(mrepo.take_lease, cid, self.owner,
                                         now + int(pause_s * 1000), now)
                else:
                    await self.store.run(mrepo.release_lease, cid, self.owner)

    async def _keep_lease(self, cid: str, scope: trio.CancelScope) -> None:
        """Renew the conversation's lease while we work on it (a slow agent turn must not let
        another node start on the same conversation); stop the work if it was taken over."""
        while True:
            await trio.sleep(self.ms.lease_s / 3)
            if not await self.store.run(mrepo.take_lease, cid, self.owner, *self._lease()):
                log.warning("messaging: lease on %s lost; stopping", cid)
                scope.cancel()
                return

    async def _handle(self, m: mrepo.Message) -> float:
        """Process one inbound message; a positive result pauses the conversation that long
        (the agent failed: retry later), -1 stops it for now (lost the lease)."""
        channel = await self.store.read(srepo.get_channel, m.channel_id)
        if channel is None or channel.status != "active":
            await self.store.run(mrepo.finish_inbound, m.id, "skipped",
                                 "channel gone" if channel is None else f"channel {channel.status}")
            return 0.0
        conv = await self.store.read(mrepo.get_conversation, m.conversation_id)
        await self._mark_read(channel, m)
        state = conv.target_state
        sms: list = []
        if m.kind != "text" or not (m.text or "").strip():
            replies = [NOT_TEXT_REPLY] if m.kind != "text" else []
        else:
            earlier = await self.store.read(mrepo.history, m.conversation_id, m.seq,
                                            self.ms.history)
            turn = Turn(conversation_id=conv.id, channel_id=channel.id, channel_type=channel.type,
                        provider=channel.provider, remote=conv.remote, text=m.text,
                        history=[("user" if h.direction == "inbound" else "assistant", h.text or "")
                                 for h in earlier], state=state)
            try:
                result = await run_turn(self.store.read, channel, turn,
                                        deadline=self.ms.agent_deadline_s)
            except AgentTurnError as exc:
                return await self._agent_failed(m, exc)
            replies, state, sms = result.replies, result.state, result.sms
        limit = MAX_CHARS.get(channel.provider or "", 1600)
        replies = [part for text in replies for part in split_text(text, limit)]
        try:
            done = await self.store.run(self._commit, m, replies, state, sms)
        except LostLease:
            log.warning("messaging: lost the lease on %s; another worker continues",
                        m.conversation_id)
            return -1.0
        if done and (replies or sms):
            self.on_replies()
        return 0.0

    def _commit(self, tx, m: mrepo.Message, replies: list[str], state: dict,
                sms: list = ()) -> bool:
        if not mrepo.holds_lease(tx, m.conversation_id, self.owner):
            raise LostLease(m.conversation_id)
        if not mrepo.finish_inbound(tx, m.id, "processed"):
            return False
        for n, text in enumerate(replies):
            mrepo.insert_outbound(tx, channel_id=m.channel_id, conversation_id=m.conversation_id,
                                  text=text, idempotency_key=f"{m.id}.{n}", reply_to=m.id)
        for n, (channel_id, to, text) in enumerate(sms):      # a flow's sms nodes
            if srepo.get_channel(tx, channel_id) is None:
                log.warning("messaging: flow sms via unknown channel %s dropped", channel_id)
                continue
            conv = mrepo.conversation_for(tx, channel_id, to)
            mrepo.insert_outbound(tx, channel_id=channel_id, conversation_id=conv.id, text=text,
                                  idempotency_key=f"{m.id}.sms{n}", reply_to=None)
        mrepo.set_target_state(tx, m.conversation_id, state)
        return True

    async def _agent_failed(self, m: mrepo.Message, exc: AgentTurnError) -> float:
        attempts = await self.store.run(mrepo.count_attempt, m.id, f"agent: {exc}"[:500])
        if attempts >= self.ms.agent_attempts:
            log.warning("messaging: giving up on message %s after %d agent failures (%s)",
                        m.id, attempts, exc.code,
                        exc_info=exc.__cause__ if exc.code == "agent_crashed" else None)
            await self.store.run(mrepo.finish_inbound, m.id, "failed", f"agent: {exc}"[:500])
            return 0.0
        log.info("messaging: agent failed on %s (%s); will retry", m.id, exc.code,
                 exc_info=exc.__cause__ if exc.code == "agent_crashed" else None)
        return backoff_s(attempts, self.ms)

    async def _mark_read(self, channel, m: mrepo.Message) -> None:
        """WhatsApp: blue ticks and a typing indicator while the agent thinks. Best effort."""
        if channel.provider != "meta" or not m.provider_id:
            return
        try:
            creds = self.store.box.decrypt_json(channel.credentials, channel_aad(channel.id))
            await self.providers["meta"].mark_read(creds, m.provider_id, typing=True)
        except Exception as exc:      # a receipt is not worth failing the turn for
            log.info("messaging: mark-read of %s failed: %s", m.id, type(exc).__name__)
