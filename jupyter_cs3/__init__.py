"""JupyterLab on CS3: a Jupyter server extension (contents over storage_bridge, collaboration
relay to the cs3collab hub, shares/users REST). See ARCHITECTURE §1 and §6."""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from jupyter_cs3.extension import CS3Extension

    return [{"module": "jupyter_cs3", "app": CS3Extension}]
