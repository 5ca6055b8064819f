"""Hub credentials: `tre user password`, `tre user totp`, and the checks the hub makes."""

import time

import pytest
from sqlalchemy import select

from tre.credentials import check_login, current_totp
from tre.hub_config.authenticator import TREOAuthenticator
from tre.models import LoginCredential


def test_password_from_stdin_is_checked_and_stored_hashed(initialised, store):
    cli = initialised
    cli.ok("user", "add", "rita", "--role", "researcher", as_user="ada")
    weak = cli.subprocess("user", "password", "rita", "--stdin", "--as", "ada", input="short\n")
    assert weak.code == 1 and "shorter than 12 characters" in weak.err and len(weak.err.splitlines()) == 1
    common = cli.subprocess("user", "password", "rita", "--stdin", "--as", "ada", input="1qaz2wsx3edc\n")
    assert common.code == 1 and "commonly used" in common.err
    ok = cli.subprocess("user", "password", "rita", "--stdin", "--as", "ada", input="a long passphrase 42\n")
    assert ok.code == 0, ok.err
    with store.transaction() as session:
        stored = session.execute(select(LoginCredential)).scalar_one()
        assert stored.password_hash.startswith("$2b$") and "passphrase" not in stored.password_hash
        assert check_login(session, "rita", "a long passphrase 42", None, two_factor=False).ok
        assert check_login(session, "rita", "a long passphrase 43", None, two_factor=False).reason == "wrong password"
        assert check_login(session, "rita", "a long passphrase 42", None, two_factor=True).reason == (
            "second factor not enrolled"
        )
    log = cli.ok("audit", "log", "--action", "login.*", "--json", as_user="ada").json()
    assert [e["action"] for e in log] == ["login.password_set"]
    assert "passphrase" not in str(log)


def test_totp_enrolment_and_codes(initialised, store):
    cli = initialised
    cli.ok("user", "add", "rita", "--role", "researcher", as_user="ada")
    cli.ok("user", "password", "rita", "--generate", as_user="ada")
    enrolled = cli.ok("user", "totp", "rita", "--json", as_user="ada").json()
    secret = enrolled["secret"]
    assert enrolled["uri"].startswith("otpauth://totp/TRE%3Arita?secret=" + secret)
    before = time.time()
    code = cli.subprocess("user", "totp-code", input=secret + "\n").out.strip()
    # The child may have run in the next 30-second window.
    assert len(code) == 6 and code in {current_totp(secret, at=before), current_totp(secret)}
    password = None
    with store.transaction() as session:
        from tre import credentials

        credentials.set_password(
            session, "rita", "another long passphrase", actor="ada", now=__import__("tre.db").db.utc_now()
        )
        password = "another long passphrase"
        assert check_login(session, "rita", password, current_totp(secret), two_factor=True).ok
        stale = current_totp(secret, at=time.time() - 300)
        assert check_login(session, "rita", password, stale, two_factor=True).reason == "wrong second-factor code"
        assert check_login(session, "nobody", password, None, two_factor=True).reason == "unknown user"


def test_deactivated_user_cannot_log_in(initialised, store):
    cli = initialised
    cli.ok("user", "add", "rita", "--role", "researcher", as_user="ada")
    cli.subprocess("user", "password", "rita", "--stdin", "--as", "ada", input="a long passphrase 42\n")
    cli.ok("user", "revoke", "rita", "--role", "researcher", as_user="ada")
    with store.transaction() as session:
        assert check_login(session, "rita", "a long passphrase 42", None, two_factor=False).reason == "inactive"


@pytest.mark.parametrize(
    "claims, allowed",
    [
        ({"amr": ["pwd", "mfa"]}, True),
        ({"amr": ["pwd", "otp"]}, True),
        ({"amr": ["pwd"]}, False),
        ({"amr": "pwd"}, False),
        ({}, False),
    ],
)
def test_oidc_login_must_assert_multi_factor(claims, allowed):
    assert TREOAuthenticator(db_url="sqlite://").has_mfa(claims) is allowed
