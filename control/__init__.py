"""Converse Gateway control plane (Quart on Trio, served by Hypercorn)."""
