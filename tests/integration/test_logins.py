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


def _box(cli, session):
    from tre.config import load_settings
    from tre.db import utc_now
    from tre.sealed import login_box

    return login_box(load_settings(cli.environ), cli.environ, session, now=utc_now())


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
    with store.transaction() as session:
        from tre import credentials

        credentials.set_password(
            session, "rita", "another long passphrase", actor="ada", now=__import__("tre.db").db.utc_now()
        )
    password, box = "another long passphrase", None
    with store.transaction() as session:
        box = _box(cli, session)
        stale = current_totp(secret, at=time.time() - 300)
        assert check_login(session, "rita", password, stale, two_factor=True, box=box).reason == (
            "wrong second-factor code"
        )
        assert check_login(session, "nobody", password, None, two_factor=True, box=box).reason == "unknown user"
        assert check_login(session, "rita", password, current_totp(secret), two_factor=True, box=box).ok


def test_a_totp_code_is_good_for_one_login_only(initialised, store):
    """Replayed inside its 30-second window (seen over a shoulder, in a proxy's log), a code is
    refused; so is an earlier one; the next step's code still works."""
    cli = initialised
    cli.ok("user", "add", "rita", "--role", "researcher", as_user="ada")
    cli.subprocess("user", "password", "rita", "--stdin", "--as", "ada", input="a long passphrase 42\n")
    secret = cli.ok("user", "totp", "rita", "--json", as_user="ada").json()["secret"]
    now = time.time()
    code, earlier, later = (current_totp(secret, at=now + d) for d in (0, -30, 30))

    def login(code):
        with store.transaction() as session:
            box = _box(cli, session)
            return check_login(session, "rita", "a long passphrase 42", code, two_factor=True, box=box, at=now)

    assert login(code).ok
    assert login(code).reason == "second-factor code already used"
    assert login(earlier).reason == "second-factor code already used"
    assert login(later).ok


def test_totp_secrets_are_sealed_at_rest_and_old_ones_sealed_by_init(initialised, store):
    cli = initialised
    cli.ok("user", "add", "rita", "--role", "researcher", as_user="ada")
    secret = cli.ok("user", "totp", "rita", "--json", as_user="ada").json()["secret"]
    files = [p for p in store.sqlite_path.parent.iterdir() if p.name.startswith(store.sqlite_path.name)]
    assert files and not any(secret.encode() in p.read_bytes() for p in files)
    with store.transaction() as session:
        stored = session.execute(select(LoginCredential)).scalar_one()
        assert stored.totp_secret.startswith("sealed:v1:")
        # What an older version stored: the secret in the clear.
        stored.totp_secret = secret
    init = cli.ok("init", "--json").json()
    assert init["totp_secrets_sealed"] == 1
    with store.transaction() as session:
        stored = session.execute(select(LoginCredential)).scalar_one()
        assert stored.totp_secret.startswith("sealed:v1:")
        assert _box(cli, session).open(stored.totp_secret, "totp:rita") == secret
        # Moved onto another user's row, a sealed secret does not open.
        from tre.errors import IntegrityError

        with pytest.raises(IntegrityError):
            _box(cli, session).open(stored.totp_secret, "totp:ada")


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
