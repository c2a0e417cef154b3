"""Local HTTP emulators of the providers' documented REST APIs (see ``_server`` for the common
fault-injection API). Start one with ``with TwilioEmulator() as emu: ...`` or use the pytest
fixtures in ``tests/fixtures_emulators.py``."""
from ._server import Emulator, HttpError, Reply, Request
from .exotel import ExotelEmulator
from .meta import MetaEmulator
from .plivo import PlivoEmulator
from .twilio import TwilioEmulator

__all__ = ["Emulator", "HttpError", "Reply", "Request", "ExotelEmulator", "MetaEmulator",
           "PlivoEmulator", "TwilioEmulator"]
