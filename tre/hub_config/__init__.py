"""JupyterHub glue: configuration, spawner, authenticator and hub services."""
