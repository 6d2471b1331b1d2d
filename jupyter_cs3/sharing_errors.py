"""The refusals of sharing, local and across sites (``sharing.py``, ``federation.py``).

A module of their own so that ``federation`` (which ``sharing`` builds) need not import
``sharing``.
"""

from __future__ import annotations


class SharingUnavailable(Exception):
    """This storage cannot share (HTTP 501); the message says so in plain words."""


class SharingRefused(Exception):
    """A sharing request that cannot be done as asked; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
