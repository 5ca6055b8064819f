"""`tre init` and `tre config ...`: set up the state directory and show the settings."""

from __future__ import annotations

from tre.cli.framework import command, group, table
from tre.config import ensure_dirs, setting_fields, settings_table_markdown

group("config", "show the settings and where each value came from")


@command("init", help="create or migrate the metadata store and the central zone", roles=None, needs_store=False)
def init(ctx, args):
    ensure_dirs(ctx.settings)
    before, after = ctx.store.migrate()
    sealed = _seal_plain_secrets(ctx)
    data = {
        "db_url": ctx.store.shown_url,
        "central_dir": str(ctx.settings.central_dir),
        "before": before,
        "after": after,
        "totp_secrets_sealed": sealed,
    }
    if before == after:
        text = f"metadata store {ctx.store.shown_url} is up to date (schema {after})"
    elif before is None:
        text = f"created metadata store {ctx.store.shown_url} (schema {after})"
    else:
        text = f"migrated metadata store {ctx.store.shown_url} from schema {before} to {after}"
    if sealed:
        text += f"; sealed {sealed} TOTP secret(s) stored in the clear by an older version"
    ctx.emit(data, text)


def _seal_plain_secrets(ctx) -> int:
    from tre.credentials import has_plain_secrets, seal_plain_secrets
    from tre.sealed import login_box

    with ctx.store.transaction() as session:
        if not has_plain_secrets(session):
            return 0
        return seal_plain_secrets(session, login_box(ctx.settings, ctx.environ, session, now=ctx.now()))


@command("config show", help="print every setting, its value and its source", roles=None, needs_store=False)
def config_show(ctx, args):
    from tre.db import head_revision

    settings = ctx.settings
    rows = [
        {
            "name": f.name,
            "env": f.metadata["env"],
            "value": str(getattr(settings, f.name)),
            "source": settings.sources[f.name],
        }
        for f in setting_fields()
    ]
    data = {"settings": rows, "schema": head_revision()}
    ctx.emit(
        data,
        table(
            ["setting", "environment", "value", "from"], ([r["name"], r["env"], r["value"], r["source"]] for r in rows)
        ),
    )


@command(
    "config docs",
    help="print the settings table as Markdown (the table in docs/settings.md)",
    roles=None,
    needs_store=False,
    json=False,
)
def config_docs(ctx, args):
    ctx.emit(None, settings_table_markdown())
