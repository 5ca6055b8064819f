"""A project's notebook run headless (papermill), in the environment the hub gives a kernel.

The example notebooks hold nothing for tests: they find their project the way they do in
JupyterLab, from `TRE_PROJECT` and `TRE_PROJECT_DIR`. `run_notebook` starts the kernel with
those set (and `TRE_EXTRACT` unset, so `tre.connect()` opens the project's own extract), for
the demo, the tests and scheduled reruns.
"""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Dict

# What the kernel must not inherit from the process that runs it.
NOT_INHERITED = ("TRE_EXTRACT", "TRE_OUTPUT_THRESHOLD")


class ProjectKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel with a project's environment."""

    project_env = Dict(help="Variables the kernel gets on top of this process's environment.")

    async def _async_pre_start_kernel(self, **kw):
        env = {k: v for k, v in dict(kw.get("env") or os.environ).items() if k not in NOT_INHERITED}
        kw["env"] = {**env, **self.project_env}
        return await super()._async_pre_start_kernel(**kw)


def kernel_env(project_dir: Path, project: str, threshold: int | None = None) -> dict[str, str]:
    """The variables the hub's spawner gives a project's kernel (see `TRESpawner.get_env`)."""
    env = {"TRE_PROJECT": project, "TRE_PROJECT_DIR": str(project_dir)}
    if threshold is not None:
        env["TRE_OUTPUT_THRESHOLD"] = str(threshold)
    return env


def run_notebook(
    source: Path,
    target: Path,
    *,
    project_dir: Path,
    project: str,
    cwd: Path,
    parameters: dict | None = None,
    threshold: int | None = None,
):
    """Execute `source` into `target` as a researcher of `project` would in JupyterLab."""
    import papermill

    manager = ProjectKernelManager(kernel_name="python3", project_env=kernel_env(project_dir, project, threshold))
    return papermill.execute_notebook(
        str(source),
        str(target),
        parameters=parameters or {},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(cwd),
        km=manager,
    )
