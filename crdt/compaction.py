"""Update-log compaction: a snapshot plus a tail of updates folded into one update."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pycrdt import Doc


def compact(snapshot: bytes | None, updates: Iterable[bytes]) -> bytes:
    """One update equivalent to applying ``snapshot`` then ``updates`` to an empty doc.

    Applying through a Doc (instead of ``merge_updates``) lets yrs garbage-collect deleted
    content, so the result is no larger than the live document's own encoding.
    """
    doc: Doc[Any] = Doc()
    if snapshot:
        doc.apply_update(snapshot)
    for update in updates:
        doc.apply_update(update)
    return doc.get_update()
