"""The hub as researchers meet it: login, project servers, isolation, no egress, enforcement.

A real JupyterHub with its proxy, real OS accounts, real namespaces; code runs in real kernels
over the kernel websocket protocol.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from tre.models import Approval

from .hubclient import Researcher, login_token, request

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def rita(hub):
    return hub.researcher("rita")


@pytest.fixture(scope="module")
def alpha(hub, rita):
    """rita's server on project alpha, running for the whole module."""
    response = rita.spawn("alpha")
    assert response.status in (201, 202), response
    rita.wait_ready("alpha")
    return rita


def test_rest_login_needs_password_and_second_factor(hub):
    login = hub.logins["rita"]
    assert login_token(hub.url, "rita", login.password, "000000").status == 403
    assert login_token(hub.url, "rita", "not-the-password-at-all", hub.code_for("rita", use=False)).status == 403
    assert login_token(hub.url, "mallory", "whatever-password", "123456").status == 403
    code = hub.code_for("rita")
    ok = login_token(hub.url, "rita", login.password, code)
    assert ok.status == 201 and ok.body["token"]
    assert login_token(hub.url, "rita", login.password, code).status == 403  # a code is good once
    hub.researchers["rita"] = Researcher(hub.url, "rita", ok.body["token"])
    failed = {(e["actor"], e["details"]["reason"]) for e in hub.audit("hub.login_failed")}
    assert {
        ("rita", "wrong second-factor code"),
        ("rita", "wrong password"),
        ("mallory", "unknown user"),
        ("rita", "second-factor code already used"),
    } <= failed
    assert any(e["actor"] == "rita" for e in hub.audit("hub.login"))


def test_kernel_reads_its_own_extract_as_its_own_account(hub, alpha):
    result = alpha.run(
        "alpha",
        textwrap.dedent(
            """
            import os, pwd, duckdb, tre
            con = duckdb.connect(os.environ["TRE_EXTRACT"], read_only=True)
            print(con.execute("select count(*), min(project) from contacts").fetchone())
            print(os.environ["TRE_PROJECT"], os.environ["TRE_PROJECT_DIR"])
            print(pwd.getpwuid(os.getuid()).pw_name, os.getgroups())
            print(sorted(os.listdir(os.environ["TRE_PROJECT_DIR"])))
            print(sorted(os.listdir(os.environ["TRE_PROJECT_DIR"] + "/work")))
            print(tre.__name__)
            """
        ),
    )
    assert result.error is None, result
    lines = result.stdout.splitlines()
    assert lines[0] == "(42, 'alpha')"
    assert lines[1] == "alpha /projects/alpha"
    account = hub.cli("project", "status", "alpha", "--json")[1]
    expected = next(m["os_account"] for m in json.loads(account)[0]["members"] if m["user"] == "rita")
    assert lines[2].startswith(expected + " [")
    assert lines[3] == "['data', 'released', 'requests', 'work']"
    assert "example.ipynb" in lines[4]  # the example notebooks, copied at the first start
    assert lines[5] == "tre"


def test_kernel_sees_nothing_else_of_the_tre(hub, alpha):
    olav = hub.researcher("olav")
    olav.spawn("alpha")
    olav.wait_ready("alpha")  # olav's home now exists on the host
    olav_home = next(Path(hub.settings.home, "volumes", "alpha", "homes").glob(f"{hub.prefix}-olav-*"))
    beta = hub.workspace("beta")
    probes = {
        "beta extract (host path)": str(beta.extract),
        "beta (sandbox path)": "/projects/beta/data/extract.duckdb",
        "central zone": str(hub.settings.central_dir),
        "TRE home": str(hub.settings.home),
        "metadata store": str(hub.settings.home / "tre.sqlite"),
        "olav's home": str(olav_home),
        "olav's home (sandbox path)": f"/home/{olav_home.name}",
        "projects dir": str(hub.settings.projects_dir),
    }
    code = textwrap.dedent(
        f"""
        import os, json
        probes = {json.dumps(probes)}
        seen = {{}}
        for what, path in probes.items():
            try:
                open(path, "rb").close() if os.path.isfile(path) else os.listdir(path)
                seen[what] = "readable"
            except FileNotFoundError:
                seen[what] = "absent"
            except PermissionError:
                seen[what] = "denied"
        for path in ("/projects/alpha/data/x", "/projects/alpha/released/x", "/usr/x"):
            try:
                open(path, "w").close(); seen[path] = "written"
            except OSError as e:
                seen[path] = e.strerror
        seen["home listing"] = os.listdir("/home")
        seen["other processes"] = len([p for p in os.listdir("/proc") if p.isdigit() and os.stat("/proc/" + p).st_uid != os.getuid()])
        print(json.dumps(seen))
        """
    )
    result = alpha.run("alpha", code)
    assert result.error is None, result
    seen = json.loads(result.stdout)
    for what in probes:
        assert seen[what] == "absent", (what, seen[what])
    assert seen["/projects/alpha/data/x"] == "Read-only file system"
    assert seen["/projects/alpha/released/x"] == "Read-only file system"
    assert seen["/usr/x"] == "Read-only file system"
    assert len(seen["home listing"]) == 1 and seen["home listing"][0] != olav_home.name
    assert seen["other processes"] == 0
    olav.stop("alpha")


def test_no_network_beyond_the_hub(hub, alpha):
    # The server's address is the proxy's route target; the host end of its veth pair is next to it.
    routes = request(
        f"http://127.0.0.1:{hub.settings.hub_proxy_api_port}/api/routes",
        token=(hub.settings.hub_dir / "proxy.token").read_text().strip(),
    ).body
    target = routes["/user/rita/alpha"]["target"]  # http://10.213.x.y:8888
    server_ip = target.split("//")[1].split(":")[0]
    host_ip = server_ip[: server_ip.rindex(".") + 1] + str(int(server_ip.rsplit(".", 1)[1]) - 1)
    listeners = []
    for address in (host_ip, "127.0.0.1"):
        sock = socket.socket()
        sock.bind((address, 0))
        sock.listen()
        listeners.append(sock)
    accepted = []
    threading.Thread(target=lambda: accepted.append(listeners[0].accept()), daemon=True).start()
    try:
        # The listener on the host end of the pair is reachable from the host ...
        with socket.create_connection(listeners[0].getsockname(), timeout=2):
            pass
        hub_api = json.loads((hub.settings.hub_dir / "network.json").read_text())
        from tre.hub_config.network import HubNetwork

        hub_address = HubNetwork(**hub_api).hub_address
        targets = [
            listeners[0].getsockname(),
            listeners[1].getsockname(),
            ("127.0.0.1", hub.settings.hub_port),  # the public proxy, on the host's loopback
            (hub_address, hub.settings.hub_api_port),  # the hub's API: the one way out
        ]
        code = textwrap.dedent(
            f"""
            import socket
            for address, port in {targets!r}:
                s = socket.socket(); s.settimeout(3)
                try:
                    s.connect((address, port)); print("connected")
                except OSError as e:
                    print(type(e).__name__)
                finally:
                    s.close()
            """
        )
        result = hub.researcher("rita").run("alpha", code)
    finally:
        for sock in listeners:
            sock.close()
    assert result.error is None, result
    outcomes = result.stdout.split()
    assert len(outcomes) == 4 and "connected" not in outcomes[:3], outcomes
    assert outcomes[3] == "connected"  # the hub itself stays reachable


def test_downloads_and_terminals_are_closed_and_each_refusal_audited(hub, alpha):
    assert alpha.server_get("alpha", "files/work/example.ipynb").status == 403
    assert alpha.server_get("alpha", "nbconvert/html/work/example.ipynb").status == 403
    assert alpha.server_get("alpha", "api/terminals").status == 403
    lab = alpha.server_get("alpha", "lab")
    assert lab.status == 200
    for plugin in ("@jupyterlab/docmanager-extension:download", "@jupyterlab/filebrowser-extension:download"):
        assert plugin in lab.body
    denied = {
        (e["actor"], e["object"], e["details"]["what"], e["details"]["path"])
        for e in hub.audit("access.denied")
        if e["details"].get("via") == "server"
    }
    assert {
        ("rita", "project:alpha", "download", "/user/rita/alpha/files/work/example.ipynb"),
        ("rita", "project:alpha", "export", "/user/rita/alpha/nbconvert/html/work/example.ipynb"),
        ("rita", "project:alpha", "terminal", "/user/rita/alpha/api/terminals"),
    } <= denied


def test_from_a_server_the_hub_answers_only_the_api_a_server_needs(hub, alpha):
    """A kernel that knows its user's password and code cannot mint a token, nor see the login
    form or the token page: the hub's address in the servers' network serves a few API paths."""
    import urllib.parse

    login = hub.logins["rita"]
    body = {"auth": {"username": "rita", "password": login.password, "2fa": hub.code_for("rita", use=False)}}
    code = textwrap.dedent(
        f"""
        import json, os, urllib.error, urllib.request
        api = os.environ["JUPYTERHUB_API_URL"]          # http://<hub address>:<port>/hub/api
        hub = api.rsplit("/hub/api", 1)[0]
        def status(url, body=None):
            data = json.dumps(body).encode() if body is not None else None
            try:
                with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code
        print(status(api + "/"))
        print(status(hub + "/hub/login"))
        print(status(hub + "/hub/token"))
        print(status(api + "/users/rita/tokens", {body!r}))
        print(status(hub + "/hub/api/users"))
        """
    )
    result = alpha.run("alpha", code)
    assert result.error is None, result
    assert result.stdout.split() == ["200", "404", "404", "404", "404"]
    assert urllib.parse.urlparse(hub.url).hostname == "127.0.0.1"


def test_a_non_member_cannot_start_a_server(hub):
    nils = hub.researcher("nils")
    refused = nils.spawn("alpha")
    assert refused.status == 403 and "nils is not a member of project alpha" in refused.body["message"]
    assert nils.server("alpha") is None
    default = nils.spawn("")
    assert default.status in (400, 403, 404)
    assert any(e["actor"] == "nils" and e["object"] == "project:alpha" for e in hub.audit("hub.spawn_refused"))


def test_an_expired_approval_cannot_start_and_its_running_server_is_stopped(hub, rita):
    refused = rita.spawn("gamma")
    assert refused.status == 403 and "ended on" in refused.body["message"]

    assert rita.spawn("delta").status in (201, 202)
    rita.wait_ready("delta")
    with hub.store.transaction() as session:
        approval = session.get(Approval, "approval-delta")
        approval.valid_until = dt.date.today() - dt.timedelta(days=1)
    waited = rita.wait_stopped("delta", timeout=30)  # the enforcer checks every 2 s
    assert waited < 30
    revoked = [e for e in hub.audit("hub.server_revoked") if e["object"] == "project:delta"]
    assert revoked and "ended on" in revoked[0]["details"]["reason"]
    assert any(e["object"] == "project:delta" for e in hub.audit("hub.stop"))


def test_locking_a_project_stops_its_servers_at_once(hub, rita):
    assert rita.spawn("epsilon").status in (201, 202)
    rita.wait_ready("epsilon")
    code, out, err = hub.cli("project", "lock", "epsilon", "--reason", "audit finding", "--json")
    assert code == 0, err
    assert json.loads(out)["stopped"] == ["rita/epsilon"]
    assert rita.server("epsilon") is None
    refused = rita.spawn("epsilon")
    assert refused.status == 403 and "locked (audit finding)" in refused.body["message"]


def test_two_projects_two_identities(hub, alpha):
    assert alpha.spawn("beta").status in (201, 202)
    alpha.wait_ready("beta")
    probe = textwrap.dedent(
        """
        import os, duckdb
        print(os.getuid(), os.getgroups())
        print(duckdb.connect(os.environ["TRE_EXTRACT"], read_only=True).execute("select count(*) from contacts").fetchone()[0])
        for other in ("alpha", "beta"):
            if other != os.environ["TRE_PROJECT"]:
                print(os.path.exists(f"/projects/{other}"))
        """
    )
    in_alpha = alpha.run("alpha", probe).stdout.split("\n")
    in_beta = alpha.run("beta", probe).stdout.split("\n")
    assert in_alpha[0] != in_beta[0]  # different uid and group
    assert (in_alpha[1], in_beta[1]) == ("42", "7")
    assert in_alpha[2] == in_beta[2] == "False"
    alpha.stop("beta")


def test_login_form_in_chromium_opens_jupyterlab(hub, alpha):
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("chromium is not installed (make setup installs it)")
    ARTIFACTS.mkdir(exist_ok=True)
    login = hub.logins["rita"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", "rita")
            page.fill("#password_input", login.password)
            page.fill("input[name='2fa']", hub.code_for("rita"))
            page.click("#login_submit")
            page.wait_for_selector("#tre-projects")
            projects = page.inner_text("#tre-projects")
            assert "alpha" in projects
            assert "Closed: the approval of project gamma ended on" in projects
            page.screenshot(path=str(ARTIFACTS / "hub-home.png"))
            page.goto(f"{hub.url}/user/rita/alpha/lab/tree/work")
            page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
            page.wait_for_selector("text=example.ipynb", timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "hub-jupyterlab.png"))
            # A researcher changes their own password on the hub's page.
            page.goto(f"{hub.url}/hub/change-password")
            page.fill("input[name='old_password']", login.password)
            page.fill("input[name='new_password']", "a brand new passphrase 7")
            page.fill("input[name='new_password_confirmation']", "a brand new passphrase 7")
            page.click("#signup_submit")
            page.wait_for_selector("text=Your password has been changed successfully")
        finally:
            browser.close()
    assert (ARTIFACTS / "hub-jupyterlab.png").stat().st_size > 10_000
    assert login_token(hub.url, "rita", login.password, hub.code_for("rita", use=False)).status == 403
    assert login_token(hub.url, "rita", "a brand new passphrase 7", hub.code_for("rita")).status == 201
    hub.logins["rita"] = replace(login, password="a brand new passphrase 7")


def test_the_audit_chain_holds_every_hub_event(hub, alpha):
    login_token(hub.url, "rita", hub.logins["rita"].password, "000000")  # a failed login
    hub.researcher("nils").spawn("beta")  # a refused spawn
    alpha.spawn("beta")
    alpha.wait_ready("beta")
    alpha.stop("beta")  # a spawn and a stop
    actions = {e["action"] for e in json.loads(hub.cli("audit", "log", "--action", "hub.*", "--json")[1])}
    assert {"hub.login", "hub.login_failed", "hub.spawn", "hub.stop", "hub.spawn_refused"} <= actions
    code, out, _ = hub.cli("audit", "verify", "--json")
    assert code == 0 and json.loads(out)["ok"] is True


def test_a_logout_ends_the_session_and_a_planted_session_id_is_not_kept(hub, alpha):
    import time

    from tre.hub_config.sessions import TOKEN_CACHE_SECONDS

    from .hubclient import Browser

    browser = Browser(hub.url)
    browser.plant("jupyterhub-session-id", "planted-by-mallory", "/hub/")
    assert browser.login("rita", hub.logins["rita"].password, hub.code_for("rita")).status == 200
    assert browser.cookies()["jupyterhub-session-id"] != "planted-by-mallory"
    # Into rita's server and the review page, each by the hub's OAuth: cookies of their own.
    assert browser.open("/user/rita/alpha/lab").status == 200
    assert browser.open("/user/rita/alpha/api/contents/work").status == 200
    assert browser.open("/services/tre-review/").status == 200
    copied = browser.cookies()
    assert browser.replay("/hub/home", copied).status == 200
    assert browser.open("/hub/logout").status == 200
    time.sleep(TOKEN_CACHE_SECONDS + 1)
    # Replayed after the logout, every cookie of the session is worth nothing.
    home = browser.replay("/hub/home", copied)
    assert home.status == 302 and "/hub/login" in home.body
    assert browser.replay("/user/rita/alpha/api/contents/work", copied).status in (302, 403)
    review = browser.replay("/services/tre-review/", copied)
    assert review.status == 302 and "oauth2/authorize" in review.body
    logouts = [e for e in hub.audit("hub.logout") if e["actor"] == "rita"]
    assert logouts and logouts[-1]["details"]["tokens_revoked"] >= 2
