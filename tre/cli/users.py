"""`tre user ...`: TRE users and their roles."""

from __future__ import annotations

from tre.cli.framework import arg, command, group, lazy, table
from tre.enums import Role
from tre.errors import PermissionDenied, UserError

identity = lazy("tre.identity")

group("user", "add users, grant and revoke roles, list users")

ROLE_ARG = arg("--role", required=True, choices=[r.value for r in Role], help="the role to grant")


@command(
    "user add",
    help=(
        "add a user with a role, or grant an existing user another role (admins; the key-custodian role is granted "
        "by a key custodian, except the installation's first, and never to an admin)"
    ),
    args=[
        arg("name", help="login name (lowercase letters, digits, - and _)"),
        ROLE_ARG,
        arg(
            "--municipality",
            action="append",
            default=[],
            metavar="NUMBER",
            help="with --role municipality: a municipality number the user acts for (repeat for more)",
        ),
    ],
    roles=[Role.ADMIN, Role.CUSTODIAN],
    bootstrap=True,
)
def user_add(ctx, args):
    from tre.users import add_user, bind_municipalities, find_user, municipalities_of

    role = Role(args.role)
    if role != Role.CUSTODIAN and not ctx.bootstrapping:
        with ctx.store.transaction() as session:
            acting = find_user(session, ctx.actor)
            if acting is None or not acting.has_role(Role.ADMIN):
                raise PermissionDenied(f"user add refused: only an admin grants the {role} role")
    if ctx.bootstrapping and role != Role.ADMIN:
        raise UserError("the store has no users yet: the first user must be an admin (`--role admin`)")
    if args.municipality and role != Role.MUNICIPALITY:
        raise UserError("--municipality goes with --role municipality")
    bound = None
    with ctx.store.transaction() as session:
        if role == Role.MUNICIPALITY and not args.municipality and not municipalities_of(session, args.name):
            raise UserError("a municipality user acts for at least one municipality: add --municipality NUMBER")
        user, changed = add_user(session, args.name, role, actor=ctx.actor, now=ctx.now())
        numbers = (
            bind_municipalities(session, args.name, args.municipality, actor=ctx.actor, now=ctx.now())
            if role == Role.MUNICIPALITY
            else []
        )
        roles = sorted(r.role.value for r in user.roles)
        if ctx.bootstrapping and identity.mode(ctx.settings) == "os":
            # The first admin acts from the OS account that created the store's first user.
            bound = identity.caller(ctx.environ)
            identity.bind(session, args.name, bound, actor=ctx.actor, now=ctx.now())
    verb = "added" if changed else "already has"
    text = f"{args.name}: {verb} role {role} (roles: {', '.join(roles)})"
    if numbers:
        text += f"; acts for {', '.join(numbers)}"
    if bound:
        text += f"; the OS account {bound} may act as {args.name} (`tre user bind-os` adds others)"
    ctx.emit(
        {"name": args.name, "roles": roles, "changed": changed, "municipalities": numbers, "os_login": bound}, text
    )


@command(
    "user bind-os",
    help="let an OS account act as a TRE user on the command line (cli_identity = os)",
    args=[arg("name", help="the TRE user"), arg("os_user", metavar="ACCOUNT", help="the OS account")],
    roles=[Role.ADMIN],
)
def user_bind_os(ctx, args):
    with ctx.store.transaction() as session:
        changed = identity.bind(session, args.name, args.os_user, actor=ctx.actor, now=ctx.now())
    verb = "may now act" if changed else "could already act"
    ctx.emit({"name": args.name, "os_user": args.os_user, "changed": changed}, f"{args.os_user} {verb} as {args.name}")


@command(
    "user unbind-os",
    help="stop an OS account acting as a TRE user",
    args=[arg("name", help="the TRE user"), arg("os_user", metavar="ACCOUNT", help="the OS account")],
    roles=[Role.ADMIN],
)
def user_unbind_os(ctx, args):
    with ctx.store.transaction() as session:
        changed = identity.unbind(session, args.name, args.os_user, actor=ctx.actor, now=ctx.now())
    verb = "may no longer act" if changed else "could not act"
    ctx.emit({"name": args.name, "os_user": args.os_user, "changed": changed}, f"{args.os_user} {verb} as {args.name}")


@command(
    "user revoke",
    help="take a role away from a user",
    args=[arg("name"), ROLE_ARG],
    roles=[Role.ADMIN],
)
def user_revoke(ctx, args):
    from tre.users import revoke_role

    with ctx.store.transaction() as session:
        revoke_role(session, args.name, Role(args.role), actor=ctx.actor, now=ctx.now())
    ctx.emit({"name": args.name, "revoked": args.role}, f"{args.name}: revoked role {args.role}")


@command("user list", help="list users and their roles", roles=[Role.ADMIN])
def user_list(ctx, args):
    from tre.users import list_users, municipalities_of

    with ctx.store.transaction() as session:
        rows = [
            {
                "name": u.name,
                "roles": sorted(r.role.value for r in u.roles),
                "active": u.active,
                "created_at": u.created_at,
                "municipalities": municipalities_of(session, u.name),
                "os_logins": identity.os_logins(session, u.name),
            }
            for u in list_users(session)
        ]
    ctx.emit(
        rows,
        table(
            ["user", "roles", "active", "created", "municipalities", "OS accounts"],
            (
                [
                    r["name"],
                    ", ".join(r["roles"]),
                    r["active"],
                    f"{r['created_at']:%Y-%m-%d %H:%M}",
                    " ".join(r["municipalities"]),
                    ", ".join(r["os_logins"]),
                ]
                for r in rows
            ),
        ),
    )
