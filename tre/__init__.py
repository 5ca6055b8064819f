"""tre: a trusted research environment for Norwegian health-register data (KPR).

In a project's kernel: `con = tre.connect()` opens the project's extract read-only, and
`import tre.safe as safe` gives the checked analysis calls.
"""


def connect(path=None):
    """A read-only DuckDB connection to this project's extract (see `tre.workspace.connect`)."""
    from tre.workspace import connect as _connect

    return _connect(path)
