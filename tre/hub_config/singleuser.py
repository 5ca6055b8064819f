"""A Jupyter server extension for researchers' servers: no file downloads, no nbconvert export.

Loaded through the read-only Jupyter configuration the spawner points JUPYTER_CONFIG_DIR at
(`tre/hub_config/jupyter/`), together with `terminals_enabled = false` and JupyterLab's
download and export commands disabled. These are interface measures: they make leaving with
data awkward, not impossible (anything shown on screen can be copied). The controls that hold
are the sandbox (one project's folders, its own OS account), the network namespace (no
egress) and output review.

Every refusal is reported to the hub (`POST /hub/api/tre/denials` with the server's token),
which audits it as `access.denied` with the user, the project and the path.
"""

from __future__ import annotations

import contextlib
import json
import os

from jupyter_server.base.handlers import JupyterHandler
from tornado import httpclient, web

REFUSAL = "downloads are disabled in this TRE: submit outputs for review with tre.safe"
TERMINALS_OFF = "terminals are disabled in this TRE"
REPORT_TIMEOUT = 5


async def report_denial(what: str, path: str) -> None:
    """Tell the hub what was refused (it audits it); a hub that does not answer loses nothing else."""
    api, token = os.environ.get("JUPYTERHUB_API_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
    if not (api and token):
        return
    with contextlib.suppress(OSError):
        await httpclient.AsyncHTTPClient().fetch(
            f"{api.rstrip('/')}/tre/denials",
            method="POST",
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            body=json.dumps({"what": what, "path": path}),
            request_timeout=REPORT_TIMEOUT,
            raise_error=False,
        )


class ForbiddenFilesHandler(JupyterHandler):
    """/files/..., nbconvert: 403 for every method (replaces jupyter_server's handlers), as a TRE
    page that says what to do instead (`tre.hub_config.lab.closed_page`)."""

    what = "download"  # as the hub audits it
    page = "download"  # which TRE page answers

    def initialize(self, **kwargs):
        pass

    async def prepare(self):
        from tre.hub_config.lab import closed_page, project_name

        await super().prepare()  # who is asking (the server's owner, or no one)
        if self.request.method == "GET" and self.request.path.rstrip("/").endswith("/api/nbconvert"):
            # JupyterLab asks which export formats there are: none (an error page would be an error in the page).
            self.set_header("Content-Type", "application/json")
            self.finish("{}")
            raise web.Finish()
        if self.current_user:
            await report_denial(self.what, self.request.path)
        base = self.settings.get("base_url", "/")
        asked = self.request.path.removeprefix(base.rstrip("/")).split("/", 2)[-1]
        self.set_status(403)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(closed_page(self.page, project=project_name(), back=f"{base}lab", path=asked))
        raise web.Finish()


class ForbiddenExportHandler(ForbiddenFilesHandler):
    what = "export"
    page = "nbconvert"


class ForbiddenTerminalHandler(JupyterHandler):
    """/terminals/..., /api/terminals: 403 (terminals are off; this answers if one is asked for)."""

    def initialize(self, **kwargs):
        pass

    async def prepare(self):
        await super().prepare()
        if self.current_user:
            await report_denial("terminal", self.request.path)
        raise web.HTTPError(403, TERMINALS_OFF)


def _jupyter_server_extension_points():
    return [{"module": "tre.hub_config.singleuser"}]


def _load_jupyter_server_extension(serverapp):
    base = serverapp.web_app.settings["base_url"].rstrip("/")
    # Handlers added by an extension match before the server's own.
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (rf"{base}/files/.*", ForbiddenFilesHandler),
            (rf"{base}/nbconvert/.*", ForbiddenExportHandler),
            (rf"{base}/api/nbconvert.*", ForbiddenExportHandler),
            (rf"{base}/terminals/.*", ForbiddenTerminalHandler),
            (rf"{base}/api/terminals.*", ForbiddenTerminalHandler),
        ],
    )
    serverapp.log.info("tre: /files/ and nbconvert downloads are disabled")
