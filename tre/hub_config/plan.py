"""What `jupyterhub_config.py` assigns, computed from the TRE settings in one place."""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from tre.config import PACKAGE_DIR, Settings, load_settings, setting_fields
from tre.errors import ConfigError, PermissionDenied
from tre.hub_config import enforcer, network
from tre.output_check.web import SERVICE_NAME as REVIEW_SERVICE
from tre.stats.web import SERVICE_NAME as STATS_SERVICE
from tre.workspace import check_server_access, isolation_enabled, project_approval, user_projects

TEMPLATES_DIR = PACKAGE_DIR / "hub_config" / "templates"
CONFIG_FILE = PACKAGE_DIR / "hub_config" / "jupyterhub_config.py"


def settings_environment(settings: Settings) -> dict[str, str]:
    """Every setting as its environment variable, resolved: what the hub's children inherit."""
    return {f.metadata["env"]: str(getattr(settings, f.name)) for f in setting_fields()}


@dataclass(frozen=True)
class HubPlan:
    settings: Settings
    isolation: bool
    network: network.HubNetwork | None

    @classmethod
    def load(cls, environ=None) -> HubPlan:
        settings = load_settings(environ)
        isolation = isolation_enabled(settings)
        net = network.load(settings.hub_dir / "network.json") if isolation else None
        if isolation and net is None:
            raise ConfigError("the hub's network is not set up: start the hub with `tre hub`, not jupyterhub directly")
        return cls(settings, isolation, net)

    @property
    def public_url(self) -> str:
        return f"http://{self.settings.hub_ip}:{self.settings.hub_port}"

    @property
    def hub_bind_url(self) -> str:
        """Where JupyterHub listens: 127.0.0.1 only (with isolation, the API gate faces the servers)."""
        if self.network:
            return f"http://127.0.0.1:{self.network.internal_port}"
        return f"http://127.0.0.1:{self.settings.hub_api_port}"

    @property
    def servers_hub_url(self) -> str | None:
        """The hub as researchers' servers reach it: the API gate on the hub's address."""
        if not self.network:
            return None
        return f"http://{self.network.hub_address}:{self.settings.hub_api_port}"

    @property
    def api_url(self) -> str:
        return f"{self.hub_bind_url}/hub/api"

    @property
    def proxy_api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.hub_proxy_api_port}"

    @property
    def volumes_dir(self) -> str:
        volumes = self.project_volumes
        return str(volumes.root) if volumes else ""

    @property
    def disk_quota(self) -> int:
        volumes = self.project_volumes
        return volumes.size if volumes else 0

    @property
    def project_volumes(self):
        from tre.volumes import volumes

        return volumes(self.settings, isolation=self.isolation)

    def path(self, name: str) -> str:
        return str(self.settings.hub_dir / name)

    def proxy_token(self) -> str:
        path = self.settings.hub_dir / "proxy.token"
        if not path.exists():
            path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
        return path.read_text().strip()

    @property
    def proxy_command(self) -> list[str]:
        command = self.settings.hub_proxy_command
        if not command.exists():
            raise ConfigError(
                f"configurable-http-proxy not found at {command}: run `make node` (or set hub_proxy_command)"
            )
        return [str(command)]

    @property
    def authenticator_class(self) -> str:
        kind = self.settings.hub_authenticator
        classes = {
            "native": "tre.hub_config.authenticator.TREAuthenticator",
            "oidc": "tre.hub_config.authenticator.TREOAuthenticator",
        }
        if kind not in classes:
            raise ConfigError(f"hub_authenticator must be native or oidc, got {kind!r}")
        return classes[kind]

    def services(self) -> list[dict]:
        """Hub-managed services: the enforcer, the review page behind hub OAuth, and the statistics
        site (public pages; the municipalities' feedback behind hub OAuth)."""
        tre = str(Path(sys.executable).parent / "tre")
        return [
            {
                "name": enforcer.SERVICE_NAME,
                "api_token": enforcer.ensure_token(self.settings.hub_dir),
                "command": [
                    tre,
                    "hub",
                    "enforce",
                    "--every",
                    str(self.settings.hub_enforce_interval),
                ],
                "environment": settings_environment(self.settings),
            },
            {
                "name": REVIEW_SERVICE,
                "url": f"http://127.0.0.1:{self.settings.review_port}",
                "command": [tre, "review", "serve", "--hub"],
                "environment": settings_environment(self.settings),
                "oauth_no_confirm": True,  # the TRE's own page: no "authorize access" step
                "display": True,
                "info": {"description": "Review and release of output requests"},
            },
            {
                "name": STATS_SERVICE,
                "url": f"http://127.0.0.1:{self.settings.stats_port}",
                "command": [tre, "stats", "serve", "--hub"],
                "environment": settings_environment(self.settings),
                "oauth_no_confirm": True,
                "display": True,
                "info": {"description": "KPR statistics (§ 4-6) and the municipalities' feedback (§ 3-3)"},
            },
        ]

    def extra_user_scopes(self) -> list[str]:
        """Every hub user may reach the review page and the statistics site; the TRE's roles
        decide what they show them."""
        return [f"access:services!service={REVIEW_SERVICE}", f"access:services!service={STATS_SERVICE}"]

    def roles(self) -> list[dict]:
        return [{"name": enforcer.SERVICE_NAME, "scopes": enforcer.SERVICE_SCOPES, "services": [enforcer.SERVICE_NAME]}]

    def template_vars(self) -> dict:
        from tre.hub_config.store import hub_store
        from tre.project_readme import approval_summary

        store = hub_store(self.settings.db_url)
        isolation = self.isolation

        def projects(user):
            if user is None:
                return []

            def why_not(session, project_id, today) -> str | None:
                try:
                    check_server_access(session, user.name, project_id, today, isolation=isolation)
                except PermissionDenied as refusal:
                    return str(refusal)
                return None

            def rows(session):
                today = store.today()
                found = []
                for p in user_projects(session, user.name):
                    reason = why_not(session, p.id, today)
                    approval = approval_summary(project_approval(session, p.id))
                    found.append(
                        {
                            "id": p.id,
                            "title": p.title,
                            "may_open": reason is None,
                            "reason": reason,
                            "approval": approval,
                        }
                    )
                return found

            found = store.run(rows)
            for row in found:
                spawner = user.spawners.get(row["id"]) if hasattr(user, "spawners") else None
                row["running"] = bool(spawner and spawner.ready)
            return found

        return {"tre_projects": projects, "tre_isolation": isolation}
