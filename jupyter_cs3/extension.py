"""The Jupyter server extension: wires contents, collaboration relay and shares REST.

Enabled by ``etc/jupyter/jupyter_server_config.d/jupyter_cs3.json`` (installed with the
package), which also disables ``jupyter_server_ydoc``: its routes are the same as ours.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from jupyter_server.auth.identity import PasswordIdentityProvider
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp
from tornado.ioloop import IOLoop

from jupyter_cs3 import ocm_rest, roomops, shares
from jupyter_cs3.backend import Backend
from jupyter_cs3.collab import HubClient, LocalAwareness, RoomHandler, SessionHandler
from jupyter_cs3.config import CS3Config
from jupyter_cs3.contents import CS3ContentsManager
from jupyter_cs3.identity import CS3IdentityProvider
from jupyter_cs3.kernels import CS3KernelManager, KernelWiring

PageConfigHook = Callable[[Any, dict[str, Any]], dict[str, Any]]


class CS3Extension(ExtensionApp):
    name = "jupyter_cs3"
    description = "JupyterLab on CS3 storage, co-editing through the cs3collab hub"
    classes = [CS3Config]

    def _link_jupyter_server_extension(self, serverapp: ServerApp) -> None:
        super()._link_jupyter_server_extension(serverapp)
        # Runs before the ServerApp builds its contents and kernel managers.
        config = CS3Config(config=serverapp.config)
        if config.manage_contents:
            serverapp.contents_manager_class = CS3ContentsManager
        if config.kernel_env:
            # The default kernel manager (its trait default cannot be read yet: it depends on
            # the gateway config, which does not exist at link time).
            chosen = serverapp.trait_has_value("kernel_manager_class") or (
                "kernel_manager_class" in serverapp.config.get("ServerApp", {})
            )
            gateway = serverapp.config.get("GatewayClient", {}).get("url") or os.environ.get(
                "JUPYTER_GATEWAY_URL"
            )
            if not chosen and not gateway:
                serverapp.kernel_manager_class = CS3KernelManager
            else:
                self.log.warning(
                    "jupyter_cs3: a kernel manager or a kernel gateway is configured: kernels "
                    "get no cs3:// settings unless it derives from CS3KernelManager"
                )
        if serverapp.identity_provider_class is PasswordIdentityProvider:  # the default
            serverapp.identity_provider_class = CS3IdentityProvider

    def initialize_settings(self) -> None:
        assert self.serverapp is not None
        cm = self.serverapp.contents_manager
        backend: Backend
        if isinstance(cm, CS3ContentsManager) and cm.backend is not None:
            backend = cm.backend
        else:
            backend = Backend(
                CS3Config(config=self.serverapp.config), local_root=self.serverapp.root_dir
            )
        self.backend = backend
        self.hub_client = HubClient(backend)
        self.kernel_wiring = KernelWiring(backend)
        km = self.serverapp.kernel_manager
        if isinstance(km, CS3KernelManager) and backend.config.kernel_env:
            km.wiring = self.kernel_wiring
        # Global settings: handlers of other extensions see them too (ours need them).
        self.serverapp.web_app.settings.update(cs3_backend=backend, cs3_hub_client=self.hub_client)
        self._keep_token_out_of_pages()
        IOLoop.current().add_callback(self._warm_up)
        self.log.info(
            "jupyter_cs3: %s storage%s, hub %s",
            backend.kind,
            f" at {backend.config.gateway}" if backend.kind == "cs3" else "",
            backend.config.hub_url,
        )

    def _keep_token_out_of_pages(self) -> None:
        """JupyterLab writes the server's login token into every page's config; the browser does
        not need it (the login sets a cookie, API calls send it and the XSRF token), and a page
        that is saved, printed or screenshotted must not carry it. Blank it, keeping any other
        hook (like JupyterLab itself does under JupyterHub)."""
        settings = self.serverapp.web_app.settings  # type: ignore[union-attr]
        previous: PageConfigHook | None = settings.get("page_config_hook")

        def hook(handler: Any, page_config: dict[str, Any]) -> dict[str, Any]:
            if previous is not None:
                page_config = previous(handler, page_config)
            page_config["token"] = ""
            return page_config

        settings["page_config_hook"] = hook

    async def _warm_up(self) -> None:
        """Log in and learn the user's name early (for the identity shown in JupyterLab)."""
        try:
            user = await self.backend.user()
        except Exception as exc:  # storage down at start: contents calls will report it
            self.log.warning("jupyter_cs3: could not reach storage yet: %r", exc)
        else:
            self.log.info("jupyter_cs3: acting as %s (%s)", user.username, user.id)

    def initialize_handlers(self) -> None:
        # Patterns get the server's base_url prepended (no extension namespace), so the URLs
        # are exactly the ones JupyterLab's docprovider calls.
        awareness = LocalAwareness()
        self.handlers.extend(
            [
                (r"/api/collaboration/session/(.*)", SessionHandler),
                (
                    r"/api/collaboration/room/(.*)",
                    RoomHandler,
                    {"backend": self.backend, "awareness": awareness},
                ),
                *shares.handlers("/api/cs3"),
                *ocm_rest.handlers("/api/cs3"),
                *roomops.handlers("/api/cs3"),  # issue 14
            ]
        )

    async def stop_extension(self) -> None:
        await self.hub_client.aclose()
        await self.kernel_wiring.aclose()
        await self.backend.aclose()
