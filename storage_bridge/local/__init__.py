"""The ``local`` backend: notebooks in a folder on this machine (ARCHITECTURE §8).

It keeps the CS3 contract so the hub cannot tell the difference:

- resource id = a uuid kept in a sidecar SQLite index (``<data_dir>/local-index.sqlite``), assigned
  on first sight of a path, carried along by ``move``, dropped by ``delete`` (``index``);
- etag = hex sha256 of the bytes, so an external edit is always visible as a new etag
  (``digests``);
- write locks live in the same database, expire, and are enforced on this backend's own write,
  move and delete paths (``locks``).

Concurrency: every operation runs as ONE call on a single dedicated worker thread (the shared
``storage_bridge.sqlite_executor``), and every call that reads or changes state it later relies
on runs inside ``BEGIN IMMEDIATE``. The single worker serialises operations of this instance (so
the compare-and-swap in ``write`` cannot interleave with another write, and no per-file asyncio
lock is needed); the SQLite write lock serialises them against other ``LocalStorage`` instances
or processes on the same data dir (the hub and a Jupyter server can share one folder).

Paths (``paths``): user paths are relative to the root; ``..`` and escapes through symlinks are
refused, and the data dir is invisible. Writes replace files atomically (``atomic``).

Modules: ``storage`` (the operations), ``paths``, ``index``, ``locks``, ``digests``, ``atomic``.
"""

from storage_bridge.local.atomic import TMP_PREFIX
from storage_bridge.local.digests import DigestCache
from storage_bridge.local.index import INDEX_NAME
from storage_bridge.local.locks import LOCAL_USER_ID
from storage_bridge.local.storage import DEFAULT_DATA_DIR_NAME, STORAGE_ID, LocalStorage

# The name tests/storage_bridge/test_local.py imports (the class was private to local.py).
_DigestCache = DigestCache

__all__ = [
    "DEFAULT_DATA_DIR_NAME",
    "INDEX_NAME",
    "LOCAL_USER_ID",
    "STORAGE_ID",
    "TMP_PREFIX",
    "DigestCache",
    "LocalStorage",
    "_DigestCache",
]
