"""The messaging service of one control process: the conversation worker and the outbox sender,
two Trio tasks in the app's nursery (started with the app, cancelled when it stops)."""
from __future__ import annotations

import logging
import os
import secrets

import trio

from control.messaging.config import MessagingSettings
from control.messaging.outbox import Outbox
from control.messaging.worker import Inbox
from control.providers import get_provider

log = logging.getLogger("converse.messaging")


class MessagingService:
    def __init__(self, store, settings, msettings: MessagingSettings | None = None):
        self.ms = msettings or MessagingSettings.from_env()
        # Lease owner id: unique per process start, so a restarted node never mistakes a lease
        # of its previous life for its own.
        self.owner = f"{os.getpid()}-{secrets.token_hex(6)}"
        providers = {name: get_provider(name, settings.providers,
                                        deadline=settings.provider_deadline_s)
                     for name in ("meta", "twilio")}
        self.outbox = Outbox(store, settings, self.ms, providers)
        self.inbox = Inbox(store, settings, self.ms, self.owner, providers, self.outbox.poke)

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.inbox.run)
            await nursery.start(self.outbox.run)
            log.info("messaging worker and outbox running (owner %s)", self.owner)
            task_status.started()
