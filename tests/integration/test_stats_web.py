"""`tre stats serve` attacked: the public site serves only the site, the feedback only to the
municipality's own users, whatever the path, the login or a link planted in the folder."""

from __future__ import annotations

import http.client
import urllib.parse

import pytest
from review_page import Client, serving
from stats_world import fresh_cli

from tre.db import Store
from tre.hub_config.launch import set_demo_logins


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("statsweb")
    cli = fresh_cli(base)
    cli.ok("user", "add", "oslo", "--role", "municipality", "--municipality", "0301", as_user="ada")
    cli.ok("user", "add", "rita", "--role", "researcher", as_user="ada")
    settings = cli.settings
    logins = {
        x.user: x
        for x in set_demo_logins(
            Store(settings.db_url), ["ada", "oslo", "rita"], actor="ada", settings=settings, environ=cli.environ
        )
    }
    stats = settings.stats_dir
    (stats / "site-1").mkdir(parents=True)
    (stats / "site-1" / "index.html").write_text("<h1>Statistikk</h1>")
    (stats / "site").symlink_to("site-1")
    (stats / "record.duckdb").write_text("the record: never served")
    for number in ("0301", "4601"):
        (stats / "feedback-1" / number).mkdir(parents=True)
        (stats / "feedback-1" / number / "index.html").write_text(f"<h1>{number}</h1>")
    (stats / "feedback-1" / "0301" / "planted.html").symlink_to("../4601/index.html")
    (stats / "feedback").symlink_to("feedback-1")
    with serving(["stats", "serve"], cli.environ, base / "serve.log", "the statistics site") as url:
        yield cli, url, logins


def raw(url: str, path: str) -> int:
    """The status of a request whose path goes to the server byte for byte (no client normalising)."""
    parsed = urllib.parse.urlparse(url)
    con = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        con.request("GET", path)
        return con.getresponse().status
    finally:
        con.close()


def test_the_public_site_is_served_and_nothing_beside_it(served):
    _, url, _ = served
    page = Client(url).get("/")
    assert page.status == 200 and "Statistikk" in page.text
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    for path in (
        "/../record.duckdb",
        "/%2e%2e/record.duckdb",
        "/..%2frecord.duckdb",
        "/site/../record.duckdb",
        "/index.html%00",
    ):
        assert raw(url, path) in (400, 404), path


def test_feedback_needs_a_login(served):
    _, url, _ = served
    page = Client(url, follow=False).get("/tilbakemelding/0301/")
    assert page.status == 302 and "/login" in page.headers["Location"]


def test_a_municipal_user_sees_their_municipality_only(served):
    cli, url, logins = served
    oslo = Client(url)
    login = logins["oslo"]
    assert oslo.login("oslo", login.password, login.totp_secret).status == 200
    assert oslo.get("/tilbakemelding/0301/").text == "<h1>0301</h1>"
    assert oslo.get("/tilbakemelding/4601/").status == 403
    assert oslo.get("/tilbakemelding/0301/planted.html").status == 404  # a link out of its folder
    for path in ("/tilbakemelding/0301/..%2F4601%2Findex.html", "/tilbakemelding/0301/%2e%2e/4601/index.html"):
        assert oslo.get(path).status in (403, 404), path
    denied = cli.ok("audit", "log", "--action", "access.denied", "--json", as_user="ada").json()
    assert any(e["actor"] == "oslo" and "feedback:4601" in e["object"] for e in denied)


def test_other_roles_see_no_feedback_and_admins_see_all(served):
    _, url, logins = served
    rita = Client(url)
    rita.login("rita", logins["rita"].password, logins["rita"].totp_secret)
    assert rita.get("/tilbakemelding/").status == 403 and rita.get("/tilbakemelding/0301/").status == 403
    ada = Client(url)
    ada.login("ada", logins["ada"].password, logins["ada"].totp_secret)
    assert ada.get("/tilbakemelding/4601/").status == 200


def test_wrong_logins_lock_the_name_out(served):
    _, url, logins = served
    client = Client(url)
    for _ in range(5):
        assert client.post("/login", {"username": "oslo", "password": "wrong", "code": "000000"}).status == 403
    right = client.login("oslo", logins["oslo"].password, logins["oslo"].totp_secret)
    assert right.status == 403 and "mislyktes" in right.text
