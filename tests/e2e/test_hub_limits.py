"""A hostile kernel against the hub's process, resource and system-call limits.

One hub with small limits (200 processes, 768 MiB, half a CPU, 256 MiB of disk per project).
Each test performs the attack from a real kernel in a real isolated server and shows it ends
where the limit says, and that the machine and the hub stay healthy:

- processes that detach from the server (a double fork with setsid, nohup, a new process
  group), ignoring SIGTERM and SIGHUP and holding the extract open, die with a stop, a
  `tre project lock` and an approval's expiry (the enforcer);
- 3 000 processes, 2 GiB of memory, four busy processes, 2 GiB written to work/;
- `unshare -Ur` (a user namespace, uid 0 inside it) and the other refused system calls.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import textwrap
import time
from pathlib import Path

import pytest

from tre.hub_config import cgroups
from tre.models import Approval

from .conftest import _tools_missing, running_hub

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LIMITS = {
    "TRE_HUB_SERVER_PIDS_MAX": "200",
    "TRE_HUB_SERVER_MEMORY_MAX": "768M",
    "TRE_HUB_SERVER_CPUS": "0.5",
    "TRE_PROJECT_DISK_QUOTA": "256M",
}
PROJECTS = {"alpha": (["rita"], 365), "beta": (["rita"], 365), "delta": (["rita"], 365), "epsilon": (["rita"], 365)}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    missing = _tools_missing()
    if missing:
        pytest.skip(missing)
    with running_hub(tmp_path_factory, isolation="on", projects=PROJECTS, settings_env=LIMITS) as hub:
        yield hub


@pytest.fixture(scope="module")
def rita(hub):
    return hub.researcher("rita")


def _started(rita, project: str):
    if (rita.server(project) or {}).get("ready"):
        return rita
    response = rita.spawn(project)
    assert response.status in (201, 202), response
    rita.wait_ready(project)
    return rita


# Each escapee ignores TERM and HUP, keeps the extract open and writes a heartbeat into work/.
BEAT = textwrap.dedent(
    """
    import os, signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    extract = open(os.environ["TRE_EXTRACT"], "rb") if os.path.exists(os.environ["TRE_EXTRACT"]) else None
    while True:
        if extract:
            extract.seek(0); extract.read(4096)
        with open(sys.argv[1], "w") as f:
            f.write(str(time.time()))
        time.sleep(0.2)
    """
)
ESCAPE = textwrap.dedent(
    f"""
    import os, subprocess, sys
    work, py = os.environ["TRE_PROJECT_DIR"] + "/work", sys.executable
    script = work + "/.beat.py"
    with open(script, "w") as f:
        f.write({BEAT!r})
    quiet = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # A double fork with setsid: the grandchild is orphaned into a session of its own.
    detach = "import os, sys; os.setsid(); os.fork() == 0 and os.execv(sys.argv[1], sys.argv[1:]); os._exit(0)"
    subprocess.run([py, "-c", detach, py, script, work + "/.beat-setsid"], **quiet)
    # nohup in the background, as a notebook's `!` runs it (IPython gives it a terminal of its own;
    # the subshell ignores the hangup its closing sends before nohup has set up).
    get_ipython().system(f"(trap '' HUP; nohup {{py}} {{script}} {{work}}/.beat-nohup > /dev/null 2>&1 &)")
    # A process group of its own: out of reach of the kernel's clean-up of its children.
    subprocess.Popen([py, script, work + "/.beat-pgroup"], process_group=0, **quiet)
    print("started")
    """
)
BEATS = (".beat-setsid", ".beat-nohup", ".beat-pgroup")


def _plant_escapees(hub, rita, project: str) -> int:
    """Start the three escapees in the project's server; returns the account's uid."""
    result = rita.run(project, ESCAPE)
    assert result.error is None and "started" in result.stdout, result
    work = hub.workspace(project).work
    deadline = time.monotonic() + 60
    while not all((work / b).exists() for b in BEATS):
        assert time.monotonic() < deadline, f"the escapees did not start: {sorted(os.listdir(work))}"
        time.sleep(0.2)
    code, out, _ = hub.cli("project", "status", project, "--json")
    account = next(m["os_account"] for m in json.loads(out)[0]["members"] if m["user"] == "rita")
    uid = pwd.getpwnam(account).pw_uid
    assert len(_processes_of(uid)) >= 3
    return uid


def _processes_of(uid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found.append(int(entry))
            except FileNotFoundError:
                pass
    return found


def _assert_all_gone(hub, project: str, uid: int) -> None:
    deadline = time.monotonic() + 10
    while _processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_of(uid) == [], "processes of the project's account outlived the server"
    work = hub.workspace(project).work
    before = {b: (work / b).read_text() for b in BEATS}
    time.sleep(1.0)
    assert before == {b: (work / b).read_text() for b in BEATS}, "a heartbeat went on after the stop"
    groups = cgroups.existing(cgroups.Layout.discover(), cgroups.hub_id(hub.settings.hub_dir))
    assert [g.name for g in groups if g.name != cgroups.HUB_GROUP] == []  # the hub's own runs on


def test_a_stop_kills_what_detached_from_the_server(hub, rita):
    _started(rita, "alpha")
    uid = _plant_escapees(hub, rita, "alpha")
    rita.stop("alpha")
    _assert_all_gone(hub, "alpha", uid)


def test_a_lock_kills_what_detached_from_the_server(hub, rita):
    _started(rita, "epsilon")
    uid = _plant_escapees(hub, rita, "epsilon")
    code, out, err = hub.cli("project", "lock", "epsilon", "--reason", "security incident", "--json")
    assert code == 0 and json.loads(out)["stopped"] == ["rita/epsilon"], err
    _assert_all_gone(hub, "epsilon", uid)


def test_an_expiry_kills_what_detached_from_the_server(hub, rita):
    _started(rita, "delta")
    uid = _plant_escapees(hub, rita, "delta")
    with hub.store.transaction() as session:
        session.get(Approval, "approval-delta").valid_until = dt.date.today() - dt.timedelta(days=1)
    rita.wait_stopped("delta", timeout=30)  # the enforcer checks every 2 s
    _assert_all_gone(hub, "delta", uid)


def _healthy(hub, rita, project: str) -> None:
    """The hub answers, the server runs a kernel, the machine has memory and disk to spare."""
    from .hubclient import request

    assert request(f"{hub.url}/hub/api/").status == 200
    assert rita.run(project, "print(6 * 7)").stdout.strip() == "42"
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    assert int(meminfo["MemAvailable"].split()[0]) > 1 << 20  # more than 1 GiB (in KiB)


def test_three_thousand_processes_stop_at_the_servers_limit(hub, rita):
    _started(rita, "beta")
    result = rita.run(
        "beta",
        textwrap.dedent(
            """
            import subprocess
            children, refused = [], None
            for _ in range(3000):
                try:
                    children.append(subprocess.Popen(["sleep", "60"]))
                except OSError as e:
                    refused = e.strerror
                    break
            print(len(children), refused)
            for child in children:
                child.kill(); child.wait()
            """
        ),
        timeout=120,
    )
    assert result.error is None, result
    started, refused = result.stdout.split(maxsplit=1)
    assert int(started) < 200 and "Resource temporarily unavailable" in refused
    _healthy(hub, rita, "beta")


def test_two_gib_of_memory_end_in_the_oom_killer_of_that_server_only(hub, rita):
    _started(rita, "beta")
    result = rita.run(
        "beta",
        textwrap.dedent(
            """
            import subprocess, sys
            hog = "b = []\\nfor _ in range(2048): b.append(bytearray(1 << 20))\\nprint('allocated 2 GiB')"
            done = subprocess.run([sys.executable, "-c", hog], capture_output=True, text=True)
            print(done.returncode, done.stdout.strip() or "-")
            """
        ),
        timeout=120,
    )
    assert result.error is None, result
    assert result.stdout.split() == ["-9", "-"]  # SIGKILL from the OOM killer, before 2 GiB
    _healthy(hub, rita, "beta")


def test_four_busy_processes_get_half_a_cpu(hub, rita):
    _started(rita, "beta")
    result = rita.run(
        "beta",
        textwrap.dedent(
            """
            import os, subprocess, sys, time
            busy = "import time\\nend = time.time() + 4\\nwhile time.time() < end: pass"
            start = time.monotonic()
            children = [subprocess.Popen([sys.executable, "-c", busy]) for _ in range(4)]
            for child in children:
                child.wait()
            wall = time.monotonic() - start
            cpu = os.times().children_user + os.times().children_system
            print(round(cpu / wall, 2))
            """
        ),
        timeout=120,
    )
    assert result.error is None, result
    # Unbounded, four busy processes take every core of the machine (2 here); bounded, half of one.
    assert float(result.stdout) < 0.5 * 1.3, result.stdout
    _healthy(hub, rita, "beta")


def test_two_gib_written_to_work_fill_the_projects_volume_only(hub, rita):
    _started(rita, "beta")
    free_before = os.statvfs(hub.settings.projects_dir)
    result = rita.run(
        "beta",
        textwrap.dedent(
            """
            import os
            path = os.environ["TRE_PROJECT_DIR"] + "/work/big.bin"
            block, written, error = b"x" * (1 << 20), 0, None
            try:
                with open(path, "wb") as f:
                    for _ in range(2048):
                        f.write(block); written += 1
                    f.flush(); os.fsync(f.fileno())
            except OSError as e:
                error = e.strerror
            print(written, error)
            os.remove(path)
            """
        ),
        timeout=180,
    )
    assert result.error is None, result
    written, error = result.stdout.split(maxsplit=1)
    assert int(written) < 256 and error.strip() == "No space left on device"
    free_after = os.statvfs(hub.settings.projects_dir)
    lost = (free_before.f_bavail - free_after.f_bavail) * free_after.f_frsize
    assert lost < 300 << 20  # the machine's disk lost at most the volume's sparse blocks
    _healthy(hub, rita, "beta")
    rita.stop("beta")


def test_no_user_namespaces_nor_other_refused_system_calls(hub, rita):
    _started(rita, "alpha")
    result = rita.run(
        "alpha",
        textwrap.dedent(
            """
            import ctypes, subprocess
            done = subprocess.run(["unshare", "-Ur", "id", "-u"], capture_output=True, text=True)
            print(done.returncode, done.stdout.strip() or done.stderr.strip())
            libc = ctypes.CDLL(None, use_errno=True)
            for name, call in [
                ("unshare-user", lambda: libc.unshare(0x10000000)),
                ("unshare-net", lambda: libc.unshare(0x40000000)),
                ("keyctl", lambda: libc.syscall(250, 0, 0, 0, 0, 0)),
                ("bpf", lambda: libc.syscall(321, 0, 0, 0)),
                ("io_uring_setup", lambda: libc.syscall(425, 1, 0)),
                ("userfaultfd", lambda: libc.syscall(323, 0)),
                ("ptrace", lambda: libc.syscall(101, 16, 1, 0, 0)),
            ]:
                result = call()
                print(name, result, ctypes.get_errno())
            print("threads", __import__("duckdb").connect().execute("select count(*) from range(100000)").fetchone()[0])
            """
        ),
    )
    assert result.error is None, result
    lines = result.stdout.splitlines()
    assert lines[0].startswith("1 ") and "Operation not permitted" in lines[0], lines[0]
    for line in lines[1:-1]:
        name, code, err = line.split()
        assert (code, err) == ("-1", "1"), line  # EPERM
    assert lines[-1] == "threads 100000"


def test_the_hubs_shutdown_kills_what_detached_from_its_servers(hub, rita):
    # Last in the module: it stops the hub (the fixture's own stop is then a no-op).
    from tre.hub_config.launch import stop_hub

    _started(rita, "alpha")
    uid = _plant_escapees(hub, rita, "alpha")
    stop_hub(hub.running.pid)
    _assert_all_gone(hub, "alpha", uid)
    assert cgroups.existing(cgroups.Layout.discover(), cgroups.hub_id(hub.settings.hub_dir)) == []
