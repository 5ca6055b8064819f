"""`tre project ...`: provision workspaces, lock and unlock projects, show their state."""

from __future__ import annotations

from tre.cli.framework import arg, command, group, table
from tre.enums import Role

group("project", "provision project workspaces, lock and unlock projects, show their state")

PROJECT_ARG = arg("project", help="the project id")


@command(
    "project provision",
    help="create a project's workspace (data/, work/, requests/, released/) and, as root, its OS group and accounts",
    args=[PROJECT_ARG],
    roles=[Role.ADMIN],
)
def project_provision(ctx, args):
    from tre.os_accounts import PosixAccounts
    from tre.volumes import volumes
    from tre.workspace import ISOLATION_OFF_WARNING, isolation_enabled, provision_project

    isolation = isolation_enabled(ctx.settings)
    if not isolation:
        ctx.info(ISOLATION_OFF_WARNING)
    with ctx.store.transaction() as session:
        result = provision_project(
            session,
            args.project,
            projects_dir=ctx.settings.projects_dir,
            prefix=ctx.settings.os_account_prefix,
            accounts=PosixAccounts() if isolation else None,
            actor=ctx.actor,
            now=ctx.now(),
            volumes=volumes(ctx.settings, isolation=isolation),
        )
    lines = [f"provisioned {result.project_id} at {result.path}"]
    if result.isolation:
        lines.append(f"  group {result.group}")
        lines += [f"  {user}: OS account {account}" for user, account in sorted(result.accounts.items())]
        lines += [f"  locked account of a former member: {account}" for account in result.locked_accounts]
    else:
        lines.append("  no OS accounts (isolation off)")
    ctx.emit(result.as_dict(), "\n".join(lines))


@command(
    "project lock",
    help="lock a project: no server may start, and its running servers are stopped now",
    args=[PROJECT_ARG, arg("--reason", required=True, help="why (recorded in the audit log)")],
    roles=[Role.ADMIN],
)
def project_lock(ctx, args):
    from tre.hub_config.enforcer import stop_project_servers
    from tre.workspace import lock_project

    with ctx.store.transaction() as session:
        changed = lock_project(session, args.project, args.reason, actor=ctx.actor, now=ctx.now())
    reason = f"project {args.project} is locked ({args.reason})"
    stopped = stop_project_servers(ctx.settings, ctx.store, args.project, reason, actor=ctx.actor, now=ctx.now())
    names = sorted(f"{s.user}/{s.project}" for s in stopped or [])
    text = f"project {args.project} {'locked' if changed else 'was already locked'}"
    text += "; no hub running" if stopped is None else f"; stopped {len(names)} running server(s)"
    ctx.emit({"project": args.project, "changed": changed, "hub_running": stopped is not None, "stopped": names}, text)


@command("project unlock", help="unlock a locked project", args=[PROJECT_ARG], roles=[Role.ADMIN])
def project_unlock(ctx, args):
    from tre.workspace import unlock_project

    with ctx.store.transaction() as session:
        changed = unlock_project(session, args.project, actor=ctx.actor, now=ctx.now())
    ctx.emit(
        {"project": args.project, "changed": changed},
        f"project {args.project} {'unlocked' if changed else 'was not locked'}",
    )


@command(
    "project status",
    help="every project: state, approval, OS group, members and their OS accounts, workspace",
    args=[arg("projects", nargs="*", help="only these projects")],
    roles=[Role.ADMIN, Role.OFFICER],
)
def project_status(ctx, args):
    from tre.workspace import get_project, project_statuses

    today = ctx.now().astimezone().date()  # approvals are dated in local time
    with ctx.store.transaction() as session:
        for project_id in args.projects:
            get_project(session, project_id)  # an unknown one is an error, not an empty table
        rows = project_statuses(session, ctx.settings.projects_dir, today, only=args.projects)
    ctx.emit(
        rows,
        table(
            ["project", "status", "approval", "provisioned", "extract", "members (OS account)"],
            (
                [
                    r["project"],
                    r["status"] + (f" ({r['lock_reason']})" if r["lock_reason"] else ""),
                    f"valid to {r['approval_until']}" if r["approval_valid_today"] else "none valid today",
                    "yes" if r["provisioned_at"] else "no",
                    "yes" if r["extract"] else "no",
                    ", ".join(f"{m['user']} ({m['os_account'] or '-'})" for m in r["members"] if m["active"]),
                ]
                for r in rows
            ),
        ),
    )
