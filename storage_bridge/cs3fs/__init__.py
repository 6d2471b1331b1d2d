"""``cs3://`` for fsspec (pandas, xarray, zarr, dask ...): files in CS3 storage (Reva).

Registered through fsspec's ``fsspec.specs`` entry point, so no import is needed::

    import pandas as pd
    pd.read_csv("cs3://Shares/data.csv")        # home-relative, names as in JupyterLab
    pd.read_csv("cs3://./data.csv")             # beside the notebook (jupyter_cs3 kernels)
    pd.read_csv(here("data.csv"))               # the same, as an absolute cs3:/// URL

Settings come from the environment that jupyter_cs3 gives every kernel (``env``), or from
``storage_options`` / constructor arguments.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

from storage_bridge.cs3fs import env
from storage_bridge.cs3fs.errors import LockedError
from storage_bridge.cs3fs.fs import CS3FileSystem


def here(name: str = "") -> str:
    """The ``cs3://`` URL of ``name`` in the notebook's folder (``CS3_CWD``).

    Absolute (``cs3:///users/<id>/folder/name``) when the folder is known, so the URL works
    anywhere (other processes, dask workers with the same token); ``cs3://./name`` otherwise.
    """
    cwd = os.environ.get(env.CWD, "")
    if cwd.startswith("/"):
        path = posixpath.normpath(posixpath.join(cwd, name)) if name else cwd
        return f"cs3://{path}"
    return "cs3://./" + name.lstrip("/")


def filesystem(**options: Any) -> CS3FileSystem:
    """A ``CS3FileSystem`` (settings from ``options``, else the environment)."""
    return CS3FileSystem(**options)


__all__ = ["CS3FileSystem", "LockedError", "filesystem", "here"]
