"""OS groups and accounts for project workspaces: the adapter to useradd/groupadd.

Only `tre project provision` (as root) and the tests use it. Accounts it creates have no
password, the shell /usr/sbin/nologin, no home on the host (the hub mounts a private one into
the sandbox) and exactly one group: their project's.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from dataclasses import dataclass

from tre.errors import UserError


class AccountError(UserError):
    """An OS group or account could not be created as the workspace needs it."""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


def is_root() -> bool:
    return os.geteuid() == 0


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise AccountError(f"{argv[0]} {argv[-1]} failed: {result.stderr.strip() or result.returncode}")


class PosixAccounts:
    """Groups and accounts in the machine's /etc/passwd and /etc/group (root only)."""

    def ensure_group(self, name: str) -> int:
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            _run(["groupadd", name])
            return grp.getgrnam(name).gr_gid

    def ensure_account(self, name: str, group: str, comment: str) -> Account:
        gid = self.ensure_group(group)
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            _run(
                [
                    "useradd",
                    "--no-create-home",
                    "--home-dir",
                    f"/home/{name}",
                    "--shell",
                    "/usr/sbin/nologin",
                    "--gid",
                    group,
                    "--no-user-group",
                    "--comment",
                    comment,
                    name,
                ]
            )
            entry = pwd.getpwnam(name)
        if entry.pw_gid != gid:
            raise AccountError(
                f"OS account {name} exists with another primary group than {group}: "
                "it was not made by this TRE; remove it or change os_account_prefix"
            )
        others = [g.gr_name for g in grp.getgrall() if name in g.gr_mem]
        if others:
            raise AccountError(
                f"OS account {name} is also in group(s) {', '.join(others)}: a project account "
                "must be in its project's group only; remove it from the others"
            )
        return Account(name, entry.pw_uid, entry.pw_gid)

    def lock_account(self, name: str) -> None:
        """Make the account unusable (expired, locked) without deleting it (no uid reuse)."""
        try:
            pwd.getpwnam(name)
        except KeyError:
            return
        _run(["usermod", "--lock", "--expiredate", "1", name])

    def lookup(self, name: str) -> Account | None:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        return Account(name, entry.pw_uid, entry.pw_gid)

    def remove(self, accounts: list[str], groups: list[str]) -> None:
        """Delete accounts and groups (used by tests to clean up what they provisioned)."""
        for name in accounts:
            if self.lookup(name):
                _run(["userdel", name])
        for name in groups:
            try:
                grp.getgrnam(name)
            except KeyError:
                continue
            _run(["groupdel", name])
