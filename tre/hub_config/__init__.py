"""JupyterHub glue: configuration, spawner, authenticator and hub services.

Public surface:
- `jupyterhub_config.py`: the hub's configuration (assignments only), computed by `plan.HubPlan`;
- `spawner.TRESpawner`, `sandbox` (mount namespace + privilege drop), `network` (namespaces,
  veth pairs, nftables): one isolated server per (researcher, project);
- `authenticator.TREAuthenticator` (password + TOTP from the metadata store) and
  `authenticator.TREOAuthenticator` (OIDC with an MFA claim);
- `enforcer`: stops servers that lost their approval or whose project was locked;
- `launch`: `run_hub`, `start_hub_background`, `stop_hub`, `set_demo_logins`, `format_demo_accounts`;
- `helm.build_helm_values` and `kube.tre_pre_spawn_hook`: the same hub on Kubernetes;
- `singleuser`: the researchers' server extension (no /files/, no nbconvert downloads).
"""
