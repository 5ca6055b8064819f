"""Running a tornado page of the TRE: standalone on an address, or as a JupyterHub service.

The review page and the statistics site share this: where to listen (the hub tells its
services in the environment), and running until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import os
import signal
import urllib.parse

from tornado import web

from tre.errors import ConfigError

LOCAL = ("127.0.0.1", "::1", "localhost")


def service_address(service: str, command: str) -> tuple[str, int, str]:
    """(ip, port, URL prefix) the hub gave its service `service`."""
    service_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
    if not service_url:
        raise ConfigError(f"`{command} --hub` runs as the hub's service: start the hub with `tre hub`")
    parsed = urllib.parse.urlparse(service_url)
    return parsed.hostname, parsed.port, os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{service}/")


def run_until_stopped(app: web.Application, ip: str, port: int, *, hub: bool, setting: str, started: str, info) -> None:
    """Listen on ip:port and serve `app` until SIGTERM or SIGINT; `started` is said once listening."""
    if not hub and ip not in LOCAL:
        info(f"WARNING: the page on {ip} speaks plain HTTP: put a TLS-terminating proxy in front of it")

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            server = app.listen(port, address=ip, xheaders=hub)
        except OSError as e:
            raise ConfigError(f"cannot listen on {ip}:{port} ({e.strerror}): set {setting} to a free port") from None
        info(started)
        await stop.wait()
        server.stop()

    asyncio.run(main())
