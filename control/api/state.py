"""What every request handler needs, hung on the app: settings, store, directory, locks."""
from __future__ import annotations

import collections

import trio
from quart import current_app

from control.config import Settings
from control.store import Store
from control.store.directory import StoreDirectory

STATE_KEY = "CONVERSE_STATE"


class AppState:
    def __init__(self, settings: Settings, store: Store, directory: StoreDirectory):
        self.settings = settings
        self.store = store
        self.directory = directory
        # Serializes PATCH/activate/deactivate/delete of one channel inside this process; across
        # processes the row's version column (compare-and-set) does the same job.
        self.channel_locks: dict[str, trio.Lock] = collections.defaultdict(trio.Lock)


def state() -> AppState:
    return current_app.config[STATE_KEY]
