"""``cs3://`` paths as the user writes them, and the CS3 paths they stand for.

Three forms, kept as written (``ls`` and ``glob`` answer in the form they were asked in):

- ``cs3://data/x.csv``: relative to the home (``CS3_HOME``), with the same names as JupyterLab's
  file browser, including the received shares under ``Shares/``;
- ``cs3:///users/<id>/x.csv``: an absolute CS3 path (note the third slash);
- ``cs3://./x.csv``: relative to the notebook's folder (``CS3_CWD``).
"""

from __future__ import annotations

import posixpath

PROTOCOL = "cs3"


def strip(path: str) -> str:
    """The normal form of a user path, without the protocol and trailing slashes."""
    for prefix in (f"{PROTOCOL}://", f"{PROTOCOL}:"):
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    if "\x00" in path:
        raise ValueError("cs3://: a path must not contain NUL")
    if path.startswith("/"):
        return "/" + posixpath.normpath(path).lstrip("/")
    if path == "." or path.startswith("./"):
        rest = posixpath.normpath(path)
        return "." if rest == "." else "./" + rest
    if not path:
        return ""
    rest = posixpath.normpath(path)
    return "" if rest == "." else rest


def parent(path: str) -> str:
    """The parent in the same form ("" is the home, "." the notebook's folder, "/" the root)."""
    p = strip(path)
    if p in ("", ".", "/"):
        return p
    head = p.rsplit("/", 1)[0] if "/" in p else ""
    if p.startswith("/") and not head:
        return "/"
    return head


def child(path: str, name: str) -> str:
    """``name`` inside ``path`` (a normal form)."""
    if path == "":
        return name
    if path == "/":
        return "/" + name
    return f"{path}/{name}"


def absolute(path: str, *, home: str, cwd: str) -> str:
    """The CS3 path of a normal-form user path; ``home`` and ``cwd`` are absolute CS3 paths."""
    if path.startswith("/"):
        return path
    if path == "." or path.startswith("./"):
        base, rest = cwd, path[2:]
    else:
        base, rest = home, path
    return posixpath.normpath(posixpath.join(base, rest)) if rest else base
