"""Converse Gateway media plane (Trio). Depends on nothing in ``control``."""
