"""`runtime serve`: the same app as `--stdio` (engine thread, scheduler, registry, limits), with
the HTTP front door (transport/http) as its host instead of a parent process on pipes.

uvicorn runs in a thread of its own with its own event loop; the process's main thread keeps
waiting for the exit signal as under --stdio, and SIGTERM/SIGINT shut down in the same order:
stop admitting, end streams, unload, then stop the server. Protocol notifications that are not a
tapped HTTP stream's (model.progress, runtime/breaker) have no reader here: they go to /dev/null.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from runtime.catalog import Catalog
from runtime.config import Limits
from runtime.server.app import App
from runtime.server.blas import BlasStatus
from runtime.server.distributed import Group
from runtime.transport.stdio import ProtocolFds

log = logging.getLogger(__name__)
FALLBACK_MODEL = "tiny-chat"  # the embedded model, served when no default model is configured
SERVING_LINE = "MLX Runtime serving HTTP on"
STARTUP_S = 30.0


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    api_key: str | None = None
    allow_remote: bool = False


class RemoteRefused(ValueError):
    pass


def is_loopback(host: str) -> bool:
    """A loopback address (127.0.0.0/8, ::1, or IPv4-mapped 127/8) or the name localhost. Any other
    name is not: "127.evil.example" resolves wherever its owner likes."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback  # Python < 3.13 calls ::ffff:127.0.0.1 not loopback
    return address.is_loopback


def check_exposure(options: ServeOptions) -> None:
    """Another address than loopback needs an API key or an explicit --allow-remote."""
    if not is_loopback(options.host) and options.api_key is None and not options.allow_remote:
        raise RemoteRefused(
            f"binding {options.host} exposes the runtime beyond this machine: give --api-key, or --allow-remote"
        )


def serve_http(
    options: ServeOptions,
    limits: Limits,
    blas: BlasStatus,
    disable_compile: bool,
    catalog: Catalog,
    group: Group | None = None,
) -> int:
    check_exposure(options)
    if catalog.default_model is None:  # started with no models file: the embedded model
        catalog = replace(catalog, default_model=FALLBACK_MODEL)
    sink = os.open(os.devnull, os.O_WRONLY)
    fds = ProtocolFds(input_fd=-1, output_fd=sink)
    app = App(fds, limits, blas, disable_compile=disable_compile, catalog=catalog, group=group)
    return app.run(HttpHost(options))


class HttpHost:
    """uvicorn in a thread of its own, serving the Starlette app over the app's dispatcher."""

    name = "the HTTP server"

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, app: App) -> None:
        import uvicorn

        from runtime.transport.http.app import HttpOptions, build_app
        from runtime.transport.http.bridge import Bridge

        services = app.services
        default = services.catalog.default_model or FALLBACK_MODEL
        http_options = HttpOptions(
            api_key=self.options.api_key,
            max_body_bytes=services.limits.max_line_bytes,
            default_model=lambda: services.catalog.canonical(default),
            ready=lambda: services.store.get(services.catalog.canonical(default)) is not None,
        )
        asgi = build_app(Bridge(app.dispatcher.handle_object, app.writer), http_options)
        config = uvicorn.Config(
            asgi, host=self.options.host, port=self.options.port, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_S
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._server.started:
            url = f"http://{_url_host(self.options.host)}:{self._port()}"
            print(f"{SERVING_LINE} {url}", file=sys.stderr, flush=True)

    def _port(self) -> int:
        """The bound port (what --port 0 picked)."""
        for server in getattr(self._server, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self.options.port

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and bool(self._server and self._server.started)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
