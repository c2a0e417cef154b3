"""One module per provider behind the small interface in :mod:`control.providers.base`."""
