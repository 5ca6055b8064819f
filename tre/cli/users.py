"""`tre user ...`: TRE users and their roles."""

from __future__ import annotations

from tre.cli.framework import arg, command, group, table
from tre.enums import Role
from tre.errors import UserError
from tre.users import add_user, list_users, revoke_role

group("user", "add users, grant and revoke roles, list users")

ROLE_ARG = arg("--role", required=True, choices=[r.value for r in Role], help="the role to grant")


@command(
    "user add",
    help="add a user with a role, or grant an existing user another role",
    args=[arg("name", help="login name (lowercase letters, digits, - and _)"), ROLE_ARG],
    roles=[Role.ADMIN],
    bootstrap=True,
)
def user_add(ctx, args):
    role = Role(args.role)
    if ctx.bootstrapping and role != Role.ADMIN:
        raise UserError("the store has no users yet: the first user must be an admin (`--role admin`)")
    with ctx.store.transaction() as session:
        user, changed = add_user(session, args.name, role, actor=ctx.actor, now=ctx.now())
        roles = sorted(r.role.value for r in user.roles)
    verb = "added" if changed else "already has"
    ctx.emit(
        {"name": args.name, "roles": roles, "changed": changed},
        f"{args.name}: {verb} role {role} (roles: {', '.join(roles)})",
    )


@command(
    "user revoke",
    help="take a role away from a user",
    args=[arg("name"), ROLE_ARG],
    roles=[Role.ADMIN],
)
def user_revoke(ctx, args):
    with ctx.store.transaction() as session:
        revoke_role(session, args.name, Role(args.role), actor=ctx.actor, now=ctx.now())
    ctx.emit({"name": args.name, "revoked": args.role}, f"{args.name}: revoked role {args.role}")


@command("user list", help="list users and their roles", roles=[Role.ADMIN])
def user_list(ctx, args):
    with ctx.store.transaction() as session:
        rows = [
            {
                "name": u.name,
                "roles": sorted(r.role.value for r in u.roles),
                "active": u.active,
                "created_at": u.created_at,
            }
            for u in list_users(session)
        ]
    ctx.emit(
        rows,
        table(
            ["user", "roles", "active", "created"],
            ([r["name"], ", ".join(r["roles"]), r["active"], f"{r['created_at']:%Y-%m-%d %H:%M}"] for r in rows),
        ),
    )
