"""TRE users and their roles, and the checks that an acting user holds a role."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from tre import audit
from tre.enums import Role
from tre.errors import NotFound, PermissionDenied, UserError, did_you_mean
from tre.models import AuditEvent, MunicipalityAccess, User, UserRole

# Lowercase login names that are also valid POSIX account-name parts (the hub derives OS
# accounts from them).
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")


def check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(
            f"invalid user name {name!r}: use 1-31 lowercase letters, digits, '-' or '_', starting with a letter"
        )


def find_user(session: Session, name: str) -> User | None:
    return session.execute(select(User).where(User.name == name).options(selectinload(User.roles))).scalar_one_or_none()


def get_user(session: Session, name: str) -> User:
    user = find_user(session, name)
    if user is None:
        raise NotFound(
            f"unknown user {name!r}{suggest_user(session, name)}: an admin adds users with `tre user add NAME --role ROLE`"
        )
    return user


def suggest_user(session: Session, name: str) -> str:
    """ "; did you mean reidar?" for a mistyped user name, else ""."""
    return did_you_mean(name, session.execute(select(User.name)).scalars())


def count_users(session: Session) -> int:
    return session.execute(select(func.count()).select_from(User)).scalar_one()


def add_user(session: Session, name: str, role: Role, *, actor: str, now: dt.datetime) -> tuple[User, bool]:
    """Add a user with a role, or grant the role to an existing user.

    Returns (user, changed); granting a role the user already holds changes nothing.
    """
    check_name(name)
    user = find_user(session, name)
    if role in SEPARATE_ROLES and not (user is not None and user.has_role(role)):
        check_separation(session, name, role, user, actor=actor)
    created = user is None
    if created:
        user = User(name=name, active=True, created_at=now)
        session.add(user)
        session.flush()
    if user.has_role(role):
        return user, False
    user.roles.append(UserRole(role=role, granted_at=now, granted_by=actor))
    audit.record(
        session,
        at=now,
        actor=actor,
        action="user.add" if created else "user.grant",
        object=f"user:{name}",
        details={"role": role.value},
    )
    return user, True


# § 5-2: the key custodians decrypt ID numbers and approve § 4-5 builds that an admin asks for,
# so the admin may not appoint the people who check them, nor be one of them.
SEPARATE_ROLES = (Role.ADMIN, Role.CUSTODIAN)


def check_separation(session: Session, name: str, role: Role, user: User | None, *, actor: str) -> None:
    """Refuse a grant that would let one person both ask for and approve a decryption: admin and
    key custodian on one person, a custodian appointing themselves, and (once the installation
    has had a key custodian) a custodian appointed by anyone but an active custodian."""
    other = Role.CUSTODIAN if role == Role.ADMIN else Role.ADMIN
    if user is not None and user.has_role(other):
        raise PermissionDenied(
            f"{name!r} holds the {other} role: admin and key custodian are separate people (§ 5-2); use another user"
        )
    if role != Role.CUSTODIAN:
        return
    if name == actor:
        raise PermissionDenied("no one appoints themselves key custodian: another key custodian appoints you")
    if not custodian_ever_appointed(session):
        return  # the installation's first key custodian, appointed by its admin (audited)
    granter = find_user(session, actor)
    if granter is None or not granter.active or not granter.has_role(Role.CUSTODIAN):
        raise PermissionDenied(
            "the key-custodian role is granted by a key custodian (§ 5-2: the admin may not appoint who checks them): "
            "ask an active key custodian to run `tre user add NAME --role custodian`"
        )


def custodian_ever_appointed(session: Session) -> bool:
    """Whether this installation has ever had a key custodian (revoking them all does not make
    the next appointment the first again)."""
    if session.execute(select(func.count()).select_from(UserRole).where(UserRole.role == Role.CUSTODIAN)).scalar_one():
        return True
    grants = session.execute(
        select(AuditEvent.details).where(AuditEvent.action.in_(("user.add", "user.grant")))
    ).scalars()
    return any('"role":"custodian"' in d.replace(" ", "") for d in grants)


def revoke_role(session: Session, name: str, role: Role, *, actor: str, now: dt.datetime) -> None:
    user = get_user(session, name)
    match = [r for r in user.roles if r.role == role]
    if not match:
        raise UserError(f"user {name!r} does not hold the {role} role")
    if role == Role.ADMIN and count_role(session, Role.ADMIN) == 1:
        raise UserError(f"cannot revoke the admin role from {name!r}: they are the last admin")
    user.roles.remove(match[0])
    if role == Role.MUNICIPALITY:
        unbind_municipalities(session, name)
    audit.record(
        session, at=now, actor=actor, action="user.revoke", object=f"user:{name}", details={"role": role.value}
    )


def count_role(session: Session, role: Role) -> int:
    return session.execute(select(func.count()).select_from(UserRole).where(UserRole.role == role)).scalar_one()


def list_users(session: Session) -> list[User]:
    return list(session.execute(select(User).options(selectinload(User.roles)).order_by(User.name)).scalars())


def check_active(user: User, action: str) -> None:
    """Raise PermissionDenied unless `user` is active and holds some role."""
    if not user.active:
        raise PermissionDenied(f"{action} refused: user {user.name!r} is deactivated")
    if not user.roles:
        raise PermissionDenied(f"{action} refused: user {user.name!r} holds no role")


def check_role(user: User, roles: Iterable[str], action: str) -> None:
    """Raise PermissionDenied unless `user` is active and holds one of `roles`."""
    roles = tuple(roles)
    check_active(user, action)
    if any(user.has_role(Role(r)) for r in roles):
        return
    needed = " or ".join(roles)
    held = ", ".join(sorted(r.role.value for r in user.roles)) or "no role"
    raise PermissionDenied(f"{action} needs the {needed} role; {user.name} has {held}")


def bind_municipalities(
    session: Session, name: str, numbers: Iterable[str], *, actor: str, now: dt.datetime
) -> list[str]:
    """Let a user with the municipality role act for these municipality numbers; returns the
    numbers they act for afterwards."""
    from tre.registers import municipality_numbers

    user = get_user(session, name)
    if not user.has_role(Role.MUNICIPALITY):
        raise UserError(f"user {name!r} does not hold the municipality role: grant it with `--role municipality`")
    numbers = sorted(set(numbers))
    unknown = [n for n in numbers if n not in municipality_numbers()]
    if unknown:
        raise UserError(
            f"unknown municipality number(s) {', '.join(repr(n) for n in unknown)}: use the four-digit numbers of 2024 (0301 Oslo)"
        )
    held = set(municipalities_of(session, name))
    for number in numbers:
        if number not in held:
            session.add(MunicipalityAccess(user_id=user.id, municipality=number, granted_at=now, granted_by=actor))
    added = [n for n in numbers if n not in held]
    if added:
        audit.record(
            session, at=now, actor=actor, action="user.municipality", object=f"user:{name}", details={"added": added}
        )
    session.flush()
    return municipalities_of(session, name)


def municipalities_of(session: Session, name: str) -> list[str]:
    """The municipality numbers a user acts for (empty for anyone without the role)."""
    rows = session.execute(
        select(MunicipalityAccess.municipality)
        .join(User, User.id == MunicipalityAccess.user_id)
        .where(User.name == name)
    ).scalars()
    return sorted(rows)


def unbind_municipalities(session: Session, name: str) -> None:
    user = get_user(session, name)
    for access in session.execute(select(MunicipalityAccess).where(MunicipalityAccess.user_id == user.id)).scalars():
        session.delete(access)
