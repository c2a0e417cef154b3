"""The console's Quart blueprint object, alone: :mod:`.views` adds the routes to it. Kept apart so
that importing the views first (they import ``control.api``, which asks for ``bp``) is no cycle."""
from __future__ import annotations

import pathlib

from quart import Blueprint

ROOT = pathlib.Path(__file__).resolve().parent.parent
bp = Blueprint("console", __name__, url_prefix="/console",
               template_folder=str(ROOT / "templates"),
               static_folder=str(ROOT / "static" / "console"), static_url_path="/static")
