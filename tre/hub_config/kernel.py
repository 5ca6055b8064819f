"""An IPython extension for researchers' kernels: closed actions say so in one line.

The TRE's kernel spec (`jupyter/data/kernels/python3/kernel.json`, found through the
`JUPYTER_PATH` the spawner sets) loads it with `--ext=tre.hub_config.kernel`. Shell commands
(`!ls`, `x = !ls`, `%sx`, `%system`, `%%bash`, `%%sh`, `%%script`) answer with what to do
instead, not with "OSError: out of pty devices" and a traceback; and an error `tre` raises on
purpose (`tre.errors.UserError`: a refused `tre.safe` call, an extract that is not there) is
shown as its one-line message, as the CLI shows it. Other errors keep their tracebacks.

Like the closed terminal, this is an interface measure: the controls that hold are the sandbox,
the network namespace and output review.
"""

from __future__ import annotations

from tre.errors import UserError

SHELL_CLOSED = (
    "Shell commands are not available in the TRE (no terminal, no network, nothing to install). Work in "
    "Python: pathlib and os for files, pandas and duckdb (tre.connect()) for data; outputs leave through "
    "tre.safe and review."
)
SHELL_MAGICS = {"line": ("sx", "system"), "cell": ("bash", "sh", "script", "system")}


class ShellClosed(RuntimeError):
    """A shell command in a researcher's kernel."""


def _closed(*args, **kwargs):
    raise ShellClosed(SHELL_CLOSED)


def _one_line(shell, etype, value, tb, tb_offset=None):
    """Show the error as one line (its class and message), as an error output of the cell."""
    name = "Shell commands are closed" if issubclass(etype, ShellClosed) else etype.__name__
    stb = [f"\x1b[0;31m{name}\x1b[0m: {value}"]
    shell._showtraceback(etype, value, stb)  # IPython shows nothing of a custom handler's result itself
    return stb


def load_ipython_extension(shell) -> None:
    # `!cmd` is shell.system(...), `x = !cmd` shell.getoutput(...).
    shell.system = shell.system_piped = shell.system_raw = _closed
    shell.getoutput = _closed
    for kind, names in SHELL_MAGICS.items():
        for name in names:
            shell.register_magic_function(_closed, magic_kind=kind, magic_name=name)
    shell.set_custom_exc((ShellClosed, UserError), _one_line)
