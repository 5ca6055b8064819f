"""A Jupyter server extension for researchers' servers: no file downloads, no nbconvert export.

Loaded through the read-only Jupyter configuration the spawner points JUPYTER_CONFIG_DIR at
(`tre/hub_config/jupyter/`), together with `terminals_enabled = false` and JupyterLab's
download and export commands disabled. These are interface measures: they make leaving with
data awkward, not impossible (anything shown on screen can be copied). The controls that hold
are the sandbox (one project's folders, its own OS account), the network namespace (no
egress) and output review.
"""

from __future__ import annotations

from jupyter_server.base.handlers import JupyterHandler
from tornado import web

REFUSAL = "downloads are disabled in this TRE: submit outputs for review with tre.safe"


class ForbiddenFilesHandler(JupyterHandler):
    """/files/...: 403 for every method (replaces jupyter_server's FilesHandler), as a TRE page
    that says what to do instead (`tre.hub_config.lab.closed_page`)."""

    def initialize(self, **kwargs):
        pass

    def prepare(self):
        from tre.hub_config.lab import closed_page, project_name

        if self.request.method == "GET" and self.request.path.rstrip("/").endswith("/api/nbconvert"):
            # JupyterLab asks which export formats there are: none (an error page would be an error in the page).
            self.set_header("Content-Type", "application/json")
            self.finish("{}")
            raise web.Finish()
        what = "nbconvert" if "nbconvert" in self.request.path else "download"
        base = self.settings.get("base_url", "/")
        asked = self.request.path.removeprefix(base.rstrip("/")).split("/", 2)[-1]
        self.set_status(403)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(closed_page(what, project=project_name(), back=f"{base}lab", path=asked))
        raise web.Finish()


def _jupyter_server_extension_points():
    return [{"module": "tre.hub_config.singleuser"}]


def _load_jupyter_server_extension(serverapp):
    base = serverapp.web_app.settings["base_url"].rstrip("/")
    # Handlers added by an extension match before the server's own.
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (rf"{base}/files/.*", ForbiddenFilesHandler),
            (rf"{base}/nbconvert/.*", ForbiddenFilesHandler),
            (rf"{base}/api/nbconvert.*", ForbiddenFilesHandler),
        ],
    )
    serverapp.log.info("tre: /files/ and nbconvert downloads are disabled")
