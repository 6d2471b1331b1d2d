"""Show the CS3 user in JupyterLab (avatar, collaborator list, remote cursors).

A Jupyter server for one CS3 user authenticates the browser with its own token; the default
identity provider then invents "Anonymous <moon>" users. This one names them after the CS3 user
the server acts as. Used only when the server runs with the default identity provider (JupyterHub
brings its own, which already knows the user).
"""

from __future__ import annotations

from jupyter_server.auth.identity import PasswordIdentityProvider, User
from tornado import web

from jupyter_cs3.backend import Backend


class CS3IdentityProvider(PasswordIdentityProvider):
    def generate_anonymous_user(self, handler: web.RequestHandler) -> User:
        backend = handler.settings.get("cs3_backend")
        if not isinstance(backend, Backend):
            return super().generate_anonymous_user(handler)
        known = backend.cached_user
        username = known.username if known else backend.config.username
        if not username:
            return super().generate_anonymous_user(handler)
        display = (known.display_name if known else "") or username
        initials = "".join(part[0] for part in display.split()[:2]).upper() or username[:1]
        return User(username, username, display, initials, None, None)
