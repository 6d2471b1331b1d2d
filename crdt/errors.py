"""Errors of the pure document layer."""

from __future__ import annotations


class DocumentError(Exception):
    """A document could not be loaded from or exported to bytes."""


class LoadError(DocumentError):
    """The stored bytes are not a valid document of the requested kind."""


class ExportError(DocumentError):
    """The live document does not export to a valid file (e.g. fails nbformat validation)."""
