"""Caller legs: the caller's side of a session (the web widget now; a phone media stream later).

A leg turns one caller connection into the session's vocabulary (``CallerLeg`` in ``base``): PCM16
16 kHz frames and canonical events up, PCM16 24 kHz frames and events down. Adding a channel means
adding a module here, not changing the session.
"""
from gateway.legs.base import CallerLeg
from gateway.legs.widget import WidgetLeg

__all__ = ["CallerLeg", "WidgetLeg"]
