"""The TRE's kernel spec, in a real kernel: shell commands and tre's own errors answer in one
line; other errors keep their tracebacks (tre.hub_config.kernel, loaded through JUPYTER_PATH as
the spawner sets it)."""

from __future__ import annotations

import pytest
from jupyter_client.manager import start_new_kernel

from tre.hub_config.spawner import JUPYTER_DATA_DIR


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("JUPYTER_PATH", str(JUPYTER_DATA_DIR))
        for name in ("TRE_PROJECT", "TRE_PROJECT_DIR", "TRE_EXTRACT"):
            env.delenv(name, raising=False)
        manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path_factory.mktemp("kernel")))
    assert manager.kernel_spec.display_name == "Python 3 (TRE)"
    yield client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def run(client, code: str) -> tuple[list[str], list[str]]:
    """(stdout, the error's traceback lines) of one execution."""
    out, error = [], []
    reply = client.execute(code)
    while True:
        msg = client.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") != reply:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind == "error":
            error = content["traceback"]
        elif kind == "status" and content["execution_state"] == "idle":
            return out, error


@pytest.mark.parametrize("code", ["!ls /", "files = !ls", "%sx ls", "%%bash\nls /", "%%script sh\nls", "%system ls"])
def test_shell_commands_say_they_are_closed_in_one_line(kernel, code):
    out, error = run(kernel, code)
    assert out == [] and len(error) == 1
    assert "Shell commands are closed" in error[0] and "Work in Python" in error[0] and "Traceback" not in error[0]


def test_tres_own_errors_in_one_line_and_others_with_their_traceback(kernel):
    _, error = run(kernel, "import tre.safe as safe\nsafe.session()")
    assert len(error) == 1 and "SafeError" in error[0] and "needs TRE_PROJECT_DIR and TRE_PROJECT" in error[0]
    _, error = run(kernel, "1 / 0")
    assert len(error) > 1 and "ZeroDivisionError" in "".join(error)
    out, error = run(
        kernel,
        "import subprocess\nprint(subprocess.run(['echo', 'python still runs'], capture_output=True, text=True).stdout)",
    )
    assert error == [] and out == ["python still runs\n\n"]
