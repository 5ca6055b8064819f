"""JupyterHub configuration of the TRE: started by `tre hub`, values from the TRE's settings.

Only assignments here; what they are computed from lives in `tre.hub_config.plan`.
A site's additions (OIDC endpoints and secrets, TLS) go in the file named by hub_config_file.
"""

from tre.hub_config.denials import DenialHandler
from tre.hub_config.plan import TEMPLATES_DIR, HubPlan
from tre.hub_config.sessions import TOKEN_CACHE_SECONDS, new_session

plan = HubPlan.load()
settings = plan.settings
c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

# --- the hub, its proxy and its state (all under $TRE_HUB_DIR) -----------------------------
c.JupyterHub.bind_url = plan.public_url
c.JupyterHub.hub_bind_url = plan.hub_bind_url
c.JupyterHub.db_url = settings.hub_db_url
c.JupyterHub.cookie_secret_file = plan.path("jupyterhub_cookie_secret")
c.JupyterHub.pid_file = plan.path("jupyterhub.pid")
c.JupyterHub.proxy_class = "configurable-http-proxy"
c.ConfigurableHTTPProxy.command = plan.proxy_command
c.ConfigurableHTTPProxy.api_url = plan.proxy_api_url
c.ConfigurableHTTPProxy.auth_token = plan.proxy_token()
c.ConfigurableHTTPProxy.pid_file = plan.path("proxy.pid")
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
c.JupyterHub.template_paths = [str(TEMPLATES_DIR)]
c.JupyterHub.template_vars = plan.template_vars()
c.JupyterHub.services = plan.services()
c.JupyterHub.load_roles = plan.roles()
c.JupyterHub.extra_user_scopes = plan.extra_user_scopes()
c.JupyterHub.extra_handlers = [(r"/api/tre/denials", DenialHandler)]  # servers' refusals, audited

# --- login: TRE users only; hub admins are the TRE's admins, and cannot enter servers -------
c.JupyterHub.authenticator_class = plan.authenticator_class
c.TREAuthenticator.db_url = settings.db_url
c.TREAuthenticator.two_factor = settings.hub_two_factor
c.TREOAuthenticator.db_url = settings.db_url
c.Authenticator.post_auth_hook = new_session  # a login never keeps a session id it finds
c.Authenticator.refresh_pre_spawn = True
c.Authenticator.auth_refresh_age = 60
c.JupyterHub.admin_access = False

# --- servers: one per (researcher, project), named after the project -----------------------
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 0
c.JupyterHub.redirect_to_server = False
c.JupyterHub.spawner_class = "tre.hub_config.spawner.TRESpawner"
c.TRESpawner.db_url = settings.db_url
c.TRESpawner.projects_dir = str(settings.projects_dir)
c.TRESpawner.hub_dir = str(settings.hub_dir)
c.TRESpawner.notebooks_dir = str(settings.hub_notebooks_dir)
c.TRESpawner.isolation = plan.isolation
c.TRESpawner.hub_connect_url = plan.servers_hub_url  # the API gate (`apigate.py`), not the whole hub
c.TRESpawner.pids_max = settings.hub_server_pids_max
c.TRESpawner.memory_max = settings.hub_server_memory_max
c.TRESpawner.cpus = settings.hub_server_cpus
c.TRESpawner.volumes_dir = plan.volumes_dir
c.TRESpawner.disk_quota = plan.disk_quota
c.TRESpawner.start_timeout = 120
c.TRESpawner.http_timeout = 60
c.TRESpawner.interrupt_timeout = 5
c.TRESpawner.term_timeout = 5
c.TRESpawner.args = [
    "--ServerApp.terminals_enabled=False",
    # A token the hub revoked (logout) stops opening the server within seconds.
    f"--HubOAuth.cache_max_age={TOKEN_CACHE_SECONDS}",
]

if settings.hub_config_file:
    load_subconfig(settings.hub_config_file)  # noqa: F821 - provided by JupyterHub
