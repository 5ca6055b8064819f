"""`tre hub`: run the JupyterHub, its enforcement service, and render Kubernetes values."""

from __future__ import annotations

import signal
import sys

from tre.cli.framework import arg, command, group
from tre.errors import UserError

group("hub", "run the JupyterHub (`tre hub` alone starts it) and render its Kubernetes values", default="start")


@command(
    "hub start",
    help="run JupyterHub on this machine in the foreground (Ctrl-C stops it and every server)",
    roles=None,
    json=False,
)
def hub_start(ctx, args):
    from tre.hub_config.launch import run_hub

    code = run_hub(ctx.settings, ctx.environ, info=ctx.info)
    if code not in (0, -15, 143):
        raise UserError(f"JupyterHub exited with status {code}: see its output above")


def _retention(ctx, now) -> list[str]:
    """The daily § 4-11 run, as the enforcer service: what it warned or deleted, one line each."""
    from tre import retention
    from tre.hub_config.enforcer import SERVICE_NAME

    done = retention.run(ctx.settings, ctx.store, actor=SERVICE_NAME, now=now)
    lines = [f"retention: {d['project']} {d['action']} (limit {d['deadline']})" for d in done if d.get("first", True)]
    return lines + [f"retention incomplete: {line}" for line in retention.incomplete(done)]


@command(
    "hub enforce",
    help="stop running servers whose approval expired or whose project is locked (the hub runs this as a service; "
    "repeating, it also runs `tre retention run` once a day)",
    args=[arg("--every", type=float, default=0, help="repeat every N seconds (0: check once and exit)")],
    roles=None,
)
def hub_enforce(ctx, args):
    from tre.hub_config import enforcer
    from tre.workspace import isolation_enabled

    client = enforcer.connect(ctx.settings.hub_dir)
    if client is None:
        raise UserError("no hub of this installation is running: start it with `tre hub`")
    isolation = isolation_enabled(ctx.settings)
    if args.every > 0:
        # The hub stops its services with SIGINT; a process started in the background may have
        # inherited SIGINT ignored, so take it (and SIGTERM) back explicitly.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        enforcer.run_forever(
            ctx.store,
            client,
            every=args.every,
            isolation=isolation,
            log=lambda m: print(m, file=sys.stderr, flush=True),
            daily=lambda now: _retention(ctx, now),
        )
    stopped = enforcer.enforce_once(
        ctx.store, client, today=ctx.now().astimezone().date(), now=ctx.now(), isolation=isolation
    )
    names = [f"{s.user}/{s.project}" for s in stopped]
    ctx.emit({"stopped": names}, f"stopped {len(names)} server(s)" + (": " + ", ".join(names) if names else ""))


@command(
    "hub helm-values",
    help="print Zero-to-JupyterHub Helm values (YAML) for running this TRE's hub on Kubernetes",
    args=[
        arg(
            "--hub-db-url", default="", help="PostgreSQL URL of the hub's database (default: a placeholder secret ref)"
        ),
        arg("--tre-db-url", default="", help="PostgreSQL URL of the TRE metadata store"),
        arg("--image", default="registry.example.org/tre/singleuser:latest", help="the researchers' server image"),
        arg("--domain", default="tre.example.org", help="the public host name"),
    ],
    roles=None,
    needs_store=False,
    json=False,
)
def hub_helm_values(ctx, args):
    from tre.hub_config.helm import build_helm_values, dump_yaml

    values = build_helm_values(
        ctx.settings, hub_db_url=args.hub_db_url, tre_db_url=args.tre_db_url, image=args.image, domain=args.domain
    )
    ctx.stdout.write(dump_yaml(values))
