"""Server-side settings of the jupyter_cs3 extension (Jupyter config: ``c.CS3Config.*``).

Credentials live here and only here: the browser never sees the CS3 token or password.
"""

from __future__ import annotations

import os

from traitlets import Bool, Dict, Enum, Float, Integer, Unicode, default
from traitlets.config import Configurable

# Environment variables read as defaults (for containers and spawners that pass env, not files).
ENV = {
    "storage": "JUPYTER_CS3_STORAGE",
    "gateway": "JUPYTER_CS3_GATEWAY",
    "username": "JUPYTER_CS3_USERNAME",
    "password": "JUPYTER_CS3_PASSWORD",
    "token": "JUPYTER_CS3_TOKEN",
    "root": "JUPYTER_CS3_ROOT",
    "hub_url": "JUPYTER_CS3_HUB_URL",
    "hub_token": "JUPYTER_CS3_HUB_TOKEN",
}


class CS3Config(Configurable):
    """Where the user's files are and where the collaboration hub is.

    Every setting can come from Jupyter config (``c.CS3Config.gateway = ...``); those in ``ENV``
    fall back to the named environment variable.
    """

    storage = Enum(
        ["cs3", "local"],
        default_value="cs3",
        config=True,
        help="Storage backend: 'cs3' (a Reva gateway over gRPC) or 'local' (a folder).",
    )
    gateway = Unicode(
        "127.0.0.1:19000", config=True, help="CS3 gateway host:port (gRPC), cs3 storage only."
    )
    gateway_tls = Bool(False, config=True, help="Use TLS to reach the gateway.")
    gateway_ca_file = Unicode(
        "", config=True, help="PEM bundle to verify the gateway and data servers (TLS)."
    )
    timeout = Float(10.0, config=True, help="Per gRPC call timeout, seconds.")

    username = Unicode("", config=True, help="CS3 user for basic auth (with password).")
    password = Unicode("", config=True, help="CS3 password for basic auth.")
    token = Unicode(
        "",
        config=True,
        help="A CS3 access token (instead of username/password). With local storage: unused.",
    )

    root = Unicode(
        "",
        config=True,
        help=(
            "cs3: the CS3 path shown as the file browser's top folder (default: the user's "
            "home, /users/<user id>). local: the folder served (default: the server's root_dir)."
        ),
    )
    data_dir = Unicode(
        "",
        config=True,
        help="local storage only: the hub's data dir (file-id index); default <root>/.cs3collab",
    )
    shares_folder = Unicode(
        "Shares",
        config=True,
        help="Name of the top-level folder listing the shares the user received (cs3 only).",
    )
    auto_accept_shares = Bool(
        False,
        config=True,
        help=(
            "Accept pending received shares when the shares folder is listed (cs3 only). "
            "Default: they wait under Pending in the Shares panel until accepted or declined."
        ),
    )

    # OCM (sharing across sites, jupyter_cs3/federation.py)
    ocm_site = Unicode(
        "",
        config=True,
        help=(
            "This site's OCM domain, as the other sites' provider lists name it (e.g. "
            "cernbox.cern.ch); shown with invites so the colleague knows where they come from."
        ),
    )
    ocm_hubs = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        default_value={},
        config=True,
        help=(
            "The cs3collab hub of each other site (OCM domain -> hub URL): a notebook shared "
            "from there is co-edited live in the owner site's room. Without an entry it is not "
            "opened in a room at all (no silent second copy)."
        ),
    )
    federated_folder = Unicode(
        "Other sites",
        config=True,
        help=(
            "Contents folder under which shares received from other sites (OCM) open; its "
            "children are the accepted shares' ids (cs3 only)."
        ),
    )

    public_link_url = Unicode(
        "",
        config=True,
        help=(
            "The address of a public link, with {token} where the link's token goes (and "
            "optionally {name}, the shared file's name), e.g. https://cernbox.example.org/s/{token}"
            " or, to download straight from Reva's ocdav, "
            "https://reva.example.org/remote.php/dav/public-files/{token}/{name}. "
            "Empty: the UI shows the token only."
        ),
    )

    hub_url = Unicode(
        "http://127.0.0.1:8900",
        config=True,
        help="Base URL of the cs3collab hub (http[s]://host:port[/prefix]).",
    )
    hub_token = Unicode(
        "",
        config=True,
        help=(
            "Token for the hub. Default: the user's CS3 token (cs3 storage); with local storage "
            "the hub's static token must be given here."
        ),
    )
    global_awareness = Enum(
        ["hub", "local"],
        default_value="hub",
        config=True,
        help=(
            "Where JupyterLab's global awareness room (Online Collaborators) is served: 'hub' "
            "relays it to the hub, which shows users to each other across Jupyter servers while "
            "they have a document open together; 'local' serves it in this server (its tabs "
            "only), for a hub without /api/collaboration/awareness."
        ),
    )
    hub_timeout = Float(30.0, config=True, help="Timeout of calls to the hub, seconds.")
    max_message_size = Integer(
        64 * 1024 * 1024,
        config=True,
        help="Largest websocket frame relayed between the browser and the hub, bytes.",
    )
    manage_contents = Bool(
        True,
        config=True,
        help="Replace the server's contents manager with the CS3 one (the file browser shows CS3).",
    )

    kernel_env = Bool(
        True,
        config=True,
        help=(
            "Give every kernel the cs3:// settings (gateway, token file, the notebook's CS3 "
            "folder, hub) and, with local storage, start it in the notebook's folder."
        ),
    )
    kernel_token_refresh = Float(
        600.0,
        config=True,
        help=(
            "Longest time between two renewals of the kernels' token file, seconds (it is "
            "renewed at half the token's lifetime when that is shorter; needs a password)."
        ),
    )
    kernel_token_dir = Unicode(
        "",
        config=True,
        help="Where the kernels' token file is kept (mode 0700); default the runtime dir.",
    )

    def _env(self, name: str, fallback: str) -> str:
        return os.environ.get(ENV[name], fallback)

    @default("storage")
    def _storage_default(self) -> str:
        return self._env("storage", "cs3")

    @default("gateway")
    def _gateway_default(self) -> str:
        return self._env("gateway", "127.0.0.1:19000")

    @default("username")
    def _username_default(self) -> str:
        return self._env("username", "")

    @default("password")
    def _password_default(self) -> str:
        return self._env("password", "")

    @default("token")
    def _token_default(self) -> str:
        return self._env("token", "")

    @default("root")
    def _root_default(self) -> str:
        return self._env("root", "")

    @default("hub_url")
    def _hub_url_default(self) -> str:
        return self._env("hub_url", "http://127.0.0.1:8900")

    @default("hub_token")
    def _hub_token_default(self) -> str:
        return self._env("hub_token", "")
