"""Zero-to-JupyterHub values: the same hub on Kubernetes (`tre hub helm-values`).

What changes from one machine: KubeSpawner instead of the local spawner (one pod per
(researcher, project) server instead of a sandboxed process), the project's workspace a
PersistentVolumeClaim per project mounted by the TRE's pre-spawn hook only after the same
authorization check (`data/` and `released/` read-only), a NetworkPolicy instead of the
network namespace (no egress at all: neither private nor public addresses, no DNS, cloud
metadata blocked), PostgreSQL instead of SQLite for both the hub and the TRE, and the idle
culler. What stays: the authenticator, the authorization rule, the audit chain, the
enforcer service.
"""

from __future__ import annotations

import yaml

from tre.config import Settings
from tre.hub_config import enforcer
from tre.workspace import EXTRACT_FILE

SECRET = "tre-secrets"  # a Kubernetes Secret the operator creates (database URLs, tokens)
PROJECT_MOUNT = "/projects"


def project_claim(project_id: str) -> str:
    """The PersistentVolumeClaim that holds one project's workspace."""
    return f"tre-project-{project_id.lower().replace('_', '-')}"


def project_volumes(project_id: str) -> tuple[list[dict], list[dict]]:
    """(volumes, volumeMounts) of one project's server pod: its workspace and nothing else."""
    claim = project_claim(project_id)
    inside = f"{PROJECT_MOUNT}/{project_id}"
    volumes = [{"name": "project", "persistentVolumeClaim": {"claimName": claim}}]
    mounts = [
        {"name": "project", "mountPath": f"{inside}/{sub}", "subPath": sub, "readOnly": sub in ("data", "released")}
        for sub in ("data", "work", "requests", "released")
    ]
    return volumes, mounts


def project_environment(project_id: str, threshold: int | None = None) -> dict[str, str]:
    """The server's environment for a project; `threshold` is the project's output threshold
    as decided centrally (`tre.workspace.disclosure_threshold`)."""
    inside = f"{PROJECT_MOUNT}/{project_id}"
    env = {"TRE_PROJECT": project_id, "TRE_PROJECT_DIR": inside, "TRE_EXTRACT": f"{inside}/{EXTRACT_FILE}"}
    if threshold is not None:
        env["TRE_OUTPUT_THRESHOLD"] = str(threshold)
    return env


def _secret_env(name: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}


# Runs in the hub pod: the same rule as on one machine, then the project's volume and environment.
EXTRA_CONFIG = """\
from tre.hub_config.kube import tre_pre_spawn_hook
c.KubeSpawner.pre_spawn_hook = tre_pre_spawn_hook
c.KubeSpawner.storage_pvc_ensure = False
c.KubeSpawner.notebook_dir = "/projects/{servername}"
c.KubeSpawner.default_url = "/lab/tree/work"
c.KubeSpawner.args = ["--ServerApp.terminals_enabled=False"]
c.KubeSpawner.environment = {"JUPYTER_CONFIG_DIR": "/opt/tre/jupyter"}
"""


def build_helm_values(settings: Settings, *, hub_db_url: str, tre_db_url: str, image: str, domain: str) -> dict:
    """The values file as a dict (see the module docstring)."""
    name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
    hub_db = {"type": "postgres", "url": hub_db_url} if hub_db_url else {"type": "postgres"}
    hub_env = (
        [_secret_env("TRE_DB_URL", "tre-db-url")] if not tre_db_url else [{"name": "TRE_DB_URL", "value": tre_db_url}]
    )
    if not hub_db_url:
        hub_env.append(_secret_env("PGPASSWORD", "hub-db-password"))
    authenticator = {
        "native": "tre.hub_config.authenticator.TREAuthenticator",
        "oidc": "tre.hub_config.authenticator.TREOAuthenticator",
    }.get(settings.hub_authenticator, "tre.hub_config.authenticator.TREAuthenticator")
    return {
        "hub": {
            "db": hub_db,
            "config": {
                "JupyterHub": {
                    "authenticator_class": authenticator,
                    "allow_named_servers": True,
                    "named_server_limit_per_user": 0,
                    "redirect_to_server": False,
                    "admin_access": False,
                },
                "Authenticator": {"refresh_pre_spawn": True, "auth_refresh_age": 60},
                "TREAuthenticator": {"two_factor": settings.hub_two_factor},
            },
            "extraConfig": {"tre": EXTRA_CONFIG},
            "extraEnv": hub_env,
            "services": {
                enforcer.SERVICE_NAME: {
                    "command": ["tre", "hub", "enforce", "--every", str(settings.hub_enforce_interval)],
                }
            },
            "loadRoles": {
                enforcer.SERVICE_NAME: {"scopes": enforcer.SERVICE_SCOPES, "services": [enforcer.SERVICE_NAME]}
            },
            "networkPolicy": {"enabled": True},
        },
        "proxy": {
            "https": {"enabled": True, "hosts": [domain], "type": "letsencrypt"},
            "chp": {"networkPolicy": {"enabled": True}},
        },
        "singleuser": {
            "image": {"name": name, "tag": tag or "latest"},
            "cmd": "jupyterhub-singleuser",
            "defaultUrl": "/lab/tree/work",
            "storage": {"type": "none"},  # the project volume comes from the TRE's pre-spawn hook
            "allowPrivilegeEscalation": False,
            "uid": 1000,
            "fsGid": 100,
            "networkPolicy": {
                "enabled": True,
                "egress": [],
                "egressAllowRules": {
                    "cloudMetadataServer": False,
                    "dnsPortsCloudMetadataServer": False,
                    "dnsPortsKubeSystemNamespace": False,
                    "dnsPortsPrivateIPs": False,
                    "nonPrivateIPs": False,
                    "privateIPs": False,
                },
            },
            "cloudMetadata": {"blockWithIptables": True, "ip": "169.254.169.254"},
            "extraEnv": {"PYTHONNOUSERSITE": "1"},
        },
        "cull": {
            "enabled": True,
            "timeout": 3600,
            "every": 300,
            "users": False,
            "removeNamedServers": False,
            "maxAge": 0,
        },
        "scheduling": {"userScheduler": {"enabled": True}},
    }


def dump_yaml(values: dict) -> str:
    header = (
        "# Zero-to-JupyterHub values for the TRE (generated by `tre hub helm-values`).\n"
        f"# Create the Secret {SECRET!r} with keys tre-db-url (and hub-db-password) first; see docs/hub.md.\n"
    )
    return header + yaml.safe_dump(values, sort_keys=False, default_flow_style=False)
