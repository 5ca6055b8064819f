"""Hub sessions: a login starts a new one, a logout ends every one of the user's.

JupyterHub's own logout clears the browser's cookies, but the hub cookie names the user by a
`cookie_id` that never changes, so a copy of the cookie kept from before the logout logs in
again for its 30 days; the tokens it issued to the user's servers and to the review service
live on (the servers trust their last answer about a token for 5 minutes). And at login it
keeps a session id it finds in the browser, so one planted there before the login is the
session's id afterwards. Here:

- `post_auth_hook` (every successful login, form or OIDC): a fresh session id;
- `EndSessions` (the logout handler of both authenticators): a new `cookie_id` (every hub
  cookie of the user stops working, on every browser), and every OAuth token of the user
  revoked (the servers' and the review service's cookies hold these). Servers and the review
  service ask the hub again after at most `TOKEN_CACHE_SECONDS`. Audited as `hub.logout`.

The user's own API tokens (made with a password and code at `POST /hub/api/users/NAME/tokens`)
and the servers' own tokens are not session tokens; they stay.
"""

from __future__ import annotations

import uuid

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.login import LogoutHandler

HUB_CLIENT = "jupyterhub"  # the OAuth client of the hub itself: API tokens, servers' own tokens
TOKEN_CACHE_SECONDS = 5  # how long a server or service trusts the hub's word on a token


def new_session(authenticator, handler, auth_model):
    """`Authenticator.post_auth_hook`: never keep a session id found in the browser at login."""
    if handler is not None and not isinstance(handler, APIHandler):
        handler._session_id = uuid.uuid4().hex
        handler.set_session_cookie()
    return auth_model


def revoke_tokens(db, user) -> int:
    """Revoke the OAuth tokens of `user` (servers', services', this and other sessions')."""
    revoked = 0
    for token in db.query(orm.APIToken).filter(orm.APIToken.user_id == user.id):
        if token.client_id != HUB_CLIENT or token.session_id:
            db.delete(token)
            revoked += 1
    db.commit()
    return revoked


def forget_cookies(db, user) -> None:
    """Every hub cookie ever issued to `user` names them by this id: a new one voids them all."""
    user.orm_user.cookie_id = orm.new_token()
    db.commit()


class EndSessions:
    """Mixed into the authenticators' logout handlers (before LogoutHandler in the bases)."""

    async def default_handle_logout(self):
        user = self.current_user
        revoked = revoke_tokens(self.db, user) if user is not None else 0
        await super().default_handle_logout()  # clears the browser's cookies (finds the user by them)
        if user is None:
            return
        forget_cookies(self.db, user)
        store = getattr(self.authenticator, "store", None)
        if store is not None:
            await store.record(actor=user.name, action="hub.logout", details={"tokens_revoked": revoked})


class TRELogoutHandler(EndSessions, LogoutHandler):
    """The native authenticator's /hub/logout."""
