"""Names of conflict copies (ARCHITECTURE §5).

``<name>.<user>.<YYYY-MM-DD_HH_MM_SS>.conflict<ext>``, e.g.
``visualization.ipynb.marcin.2022-01-25_19_35_50.conflict.ipynb``: the full original name stays in
front so the copy sorts next to the original, and the original extension is repeated at the end
so JupyterLab still opens the copy with the right editor.
"""

from __future__ import annotations

import posixpath
import re
from datetime import UTC, datetime

# Who wrote the version that could not be merged, when we do not know (an external writer).
EXTERNAL_USER = "external"

# User names come from the identity provider and may hold anything; keep letters, digits and a
# few harmless marks so the result is one path segment that no shell or URL mangles.
_UNSAFE = re.compile(r"[^\w.@+-]+")
_MAX_USER_CHARS = 64


def _safe_user(user: str) -> str:
    cleaned = _UNSAFE.sub("_", user.strip())
    # Leading dots would make ".." or a hidden-looking segment; they carry no meaning here.
    cleaned = cleaned.lstrip(".")[:_MAX_USER_CHARS]
    return cleaned or EXTERNAL_USER


def conflict_copy_name(name: str, user: str, when: datetime) -> str:
    """The conflict-copy file name for ``name`` (a bare file name, not a path).

    ``when`` is rendered in UTC; a naive datetime is taken to be UTC already.
    An empty ``user`` means an external writer and becomes ``"external"``.
    """
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a file name: {name!r}")
    stamp = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    _, ext = posixpath.splitext(name)
    return f"{name}.{_safe_user(user)}.{stamp:%Y-%m-%d_%H_%M_%S}.conflict{ext}"
