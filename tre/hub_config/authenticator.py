"""Hub login against the TRE: accounts from `tre user add`, passwords and TOTP from the store.

`TREAuthenticator` is NativeAuthenticator (its login form with the 2FA field, its lock-out
after repeated failures, its change-password page) with the accounts and credentials moved
into the TRE metadata store, self-signup removed, and every login and failed login audited.
`TREOAuthenticator` is GenericOAuthenticator for an institution's OpenID Connect provider,
refusing logins whose ID token does not assert multi-factor authentication.
Either way, only active TRE users get in, and hub admins are exactly the TRE's admins.
"""

from __future__ import annotations

import os

import bcrypt
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.handlers import ChangePasswordHandler
from nativeauthenticator.handlers import LoginHandler as NativeLoginHandler
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthLogoutHandler
from sqlalchemy import select
from traitlets import Bool, List, Unicode, default

from tre import credentials
from tre.config import load_settings
from tre.db import utc_now
from tre.enums import Role
from tre.errors import UserError
from tre.hub_config.sessions import EndSessions, TRELogoutHandler
from tre.hub_config.store import hub_store
from tre.models import LoginCredential, User
from tre.sealed import login_box
from tre.users import NAME_PATTERN, find_user


def _audit_actor(name: str) -> str:
    # A typed-in name is audited only if it could be a TRE user name (never, say, an ID number).
    return name if NAME_PATTERN.fullmatch(name or "") else "(invalid name)"


def _tre_user_state(session, name: str) -> tuple[bool, bool]:
    """(may log in, is admin) for a TRE user name."""
    user = find_user(session, name)
    if user is None or not user.active or not user.roles:
        return False, False
    return True, user.has_role(Role.ADMIN)


class _Credential:
    """What NativeAuthenticator's pages ask of a user record, answered from the TRE store."""

    def __init__(self, authenticator: TREAuthenticator, name: str):
        self.authenticator, self.name = authenticator, name

    def is_valid_password(self, password: str) -> bool:
        def check(session):
            user = session.execute(select(User).where(User.name == self.name)).scalar_one_or_none()
            cred = (
                user
                and session.execute(
                    select(LoginCredential).where(LoginCredential.user_id == user.id)
                ).scalar_one_or_none()
            )
            if not cred or not cred.password_hash:
                return False
            return bcrypt.checkpw(password.encode("utf-8"), cred.password_hash.encode("ascii"))

        return self.authenticator.store.run(check)

    @property
    def is_authorized(self) -> bool:
        return self.authenticator.store.run(lambda s: _tre_user_state(s, self.name)[0])


class TRELoginHandler(NativeLoginHandler):
    """NativeAuthenticator's login form; its POST rewritten for JupyterHub 6 (no statsd)."""

    async def post(self):
        data = {arg: self.get_argument(arg, strip=False) for arg in self.request.arguments}
        user = await self.login_user(data)
        if user:
            self._jupyterhub_user = user
            self.redirect(self.get_next_url(user))
            return
        # One message for every failure: it does not tell which of name, password or code was wrong.
        html = await self._render(login_error="Invalid user name, password or code.", username=data.get("username"))
        self.finish(html)


class TREAuthenticator(NativeAuthenticator):
    """NativeAuthenticator whose accounts are the TRE's users; no signup; TOTP on by default."""

    db_url = Unicode(help="SQLAlchemy URL of the TRE metadata store (users, credentials, audit).").tag(config=True)
    two_factor = Bool(
        True, help="Require the TOTP code enrolled with `tre user totp` at every login (hub_two_factor)."
    ).tag(config=True)

    @default("enable_signup")
    def _no_signup(self):
        return False

    @default("allow_2fa")
    def _show_2fa_field(self):
        return self.two_factor

    @default("allowed_failed_logins")
    def _lock_out_after(self):
        return 5

    @default("seconds_before_next_try")
    def _lock_out_for(self):
        return 300

    @default("minimum_password_length")
    def _min_length(self):
        return credentials.MIN_PASSWORD_LENGTH

    @property
    def store(self):
        return hub_store(self.db_url)

    async def authenticate(self, handler, data):
        name = self.normalize_username((data or {}).get("username", ""))
        actor = _audit_actor(name)
        if self.allowed_failed_logins and self.is_blocked(name):
            await self.store.record(actor=actor, action="hub.login_failed", details={"reason": "locked out"})
            return None

        def check(session):
            box = login_box(load_settings(), os.environ, session, now=utc_now()) if self.two_factor else None
            result = credentials.check_login(
                session, name, data.get("password", ""), data.get("2fa"), two_factor=self.two_factor, box=box
            )
            return result, _tre_user_state(session, name)[1]

        result, admin = await self.store.call(check)
        if not result.ok:
            self.add_login_attempt(name)
            await self.store.record(actor=actor, action="hub.login_failed", details={"reason": result.reason})
            return None
        self.successful_login(name)
        if handler is not None:
            # A first login through the REST API (POST /hub/api/users/NAME/tokens with `auth`)
            # finds no hub user to issue the token to; make it, as the login form would.
            handler.user_from_username(name)
        await self.store.record(
            actor=name, action="hub.login", details={"admin": admin, "second_factor": self.two_factor}
        )
        return {"name": name, "admin": admin}

    async def check_allowed(self, username, authentication=None):
        return await self.store.call(lambda s: _tre_user_state(s, username)[0])

    async def refresh_user(self, user, handler=None, **kwargs):
        # A user deactivated in the TRE loses their hub session at the next request.
        allowed, admin = await self.store.call(lambda s: _tre_user_state(s, user.name))
        if not allowed:
            return False
        return {"name": user.name, "admin": admin}

    def get_user(self, username):
        return _Credential(self, self.normalize_username(username))

    def create_user(self, username, password, **kwargs):
        return None  # accounts come from `tre user add`

    def change_password(self, username, new_password):
        try:
            self.store.run(lambda s: credentials.set_password(s, username, new_password, actor=username, now=utc_now()))
        except UserError as e:
            self.log.info("password change for %s refused: %s", username, e)
            return None
        return True

    def get_handlers(self, app):
        # No signup, no self-approval, no admin authorization area: accounts come from the TRE.
        return [
            (r"/login", TRELoginHandler),
            (r"/change-password", ChangePasswordHandler),
            (r"/logout", TRELogoutHandler),
        ]


class TREOAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator for an institution's OIDC login, with MFA required and TRE users only.

    The provider must put an authentication-methods claim in its ID token or userinfo (OIDC
    `amr`, RFC 8176); a login without one of `mfa_values` in it is refused.
    """

    logout_handler = type("TREOAuthLogoutHandler", (EndSessions, OAuthLogoutHandler), {})
    db_url = Unicode(help="SQLAlchemy URL of the TRE metadata store.").tag(config=True)
    mfa_claim = Unicode("amr", help="The claim that lists the authentication methods used (OIDC `amr`).").tag(
        config=True
    )
    mfa_values = List(
        Unicode(),
        default_value=["mfa", "otp", "hwk", "swk", "sc"],
        help="Values of `mfa_claim` that count as multi-factor (RFC 8176 method references).",
    ).tag(config=True)

    @property
    def store(self):
        return hub_store(self.db_url)

    def has_mfa(self, claims: dict) -> bool:
        """True if the claims assert a multi-factor login."""
        value = claims.get(self.mfa_claim)
        values = value if isinstance(value, list) else [value] if value else []
        return any(v in self.mfa_values for v in values)

    async def update_auth_model(self, auth_model):
        auth_model = await super().update_auth_model(auth_model)
        # The userinfo response, or the ID token's claims with `userdata_from_id_token`.
        claims = (auth_model.get("auth_state") or {}).get(self.user_auth_state_key) or {}
        name = auth_model["name"]
        if not self.has_mfa(claims):
            await self.store.record(
                actor=_audit_actor(name), action="hub.login_failed", details={"reason": "no multi-factor claim"}
            )
            auth_model["tre_refused"] = True
            return auth_model
        allowed, admin = await self.store.call(lambda s: _tre_user_state(s, name))
        auth_model["admin"] = admin
        auth_model["tre_refused"] = not allowed
        await self.store.record(
            actor=_audit_actor(name),
            action="hub.login" if allowed else "hub.login_failed",
            details={"via": "oidc"} if allowed else {"via": "oidc", "reason": "not an active TRE user"},
        )
        return auth_model

    async def check_allowed(self, username, auth_model):
        if auth_model and auth_model.get("tre_refused"):
            return False
        return await self.store.call(lambda s: _tre_user_state(s, username)[0])
