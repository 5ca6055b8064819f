"""`tre request ...`: researchers put queued outputs into a request, describe them, submit it.

Outputs come from the project's queue (`requests/queue/<name>/`, where `tre.safe` puts them).
"""

from __future__ import annotations

from contextlib import contextmanager

from tre.cli.framework import ANY_ROLE, arg, command, group, table
from tre.output_check.intake import WorkspaceOutputs
from tre.output_check.requests import Requests
from tre.output_check.storage import SqlRequestStore
from tre.output_check.workflow import CONTEXT_FIELDS

group("request", "researchers: put queued outputs into an output request, describe them, submit it for review")

REQUEST_ARG = arg("request", metavar="REQ", help="the request, e.g. REQ-12")
OUTPUT_ARG = arg("output", metavar="OUTPUT", help="a queued output's name (see `tre request outputs PROJECT`)")
CONTEXT_ARGS = [
    arg("--population", metavar="TEXT", help="who is counted: the population the output describes"),
    arg("--shows", metavar="TEXT", help="what the output shows"),
    arg("--relation", metavar="TEXT", help="how it relates to earlier outputs (or that it is the first)"),
]


@contextmanager
def workflow(ctx):
    """The workflow in one transaction of the metadata store."""
    with ctx.store.transaction() as session:
        yield Requests(
            SqlRequestStore(session),
            WorkspaceOutputs(ctx.settings.projects_dir, ledger_dir=ctx.settings.ledger_dir),
            ctx.settings.exports_dir,
            ctx.now,
        )


def _context(args) -> dict:
    return {k: getattr(args, k) for k in CONTEXT_FIELDS if getattr(args, k) is not None}


@command(
    "request new",
    help="start an output request for a project you are a member of",
    args=[arg("project", help="the project id"), arg("--title", default="", help="what the outputs are for")],
    roles=ANY_ROLE,
)
def request_new(ctx, args):
    with workflow(ctx) as wf:
        request = wf.new(args.project, ctx.actor, args.title)
    ctx.emit(
        {"request": request.label, "project": request.project_id, "status": request.status.value},
        f"{request.label} for project {request.project_id}: add outputs with "
        f"`tre request add {request.label} OUTPUT --population ... --shows ... --relation ...`",
    )


@command(
    "request outputs",
    help="list a project's queued outputs: what can be added to a request",
    args=[arg("project", help="the project id")],
    roles=ANY_ROLE,
)
def request_outputs(ctx, args):
    with workflow(ctx) as wf:
        queued = wf.queued(args.project, ctx.actor)
    rows = [[m["name"], m["kind"], m["status"], m["created_at"], m.get("summary", "")[:80]] for m in queued]
    ctx.emit(queued, table(["output", "kind", "check", "queued at", "summary"], rows, title=f"queue of {args.project}"))


@command(
    "request add",
    help="add a queued output to a PENDING request (re-checked; its files move into the request)",
    args=[REQUEST_ARG, OUTPUT_ARG, *CONTEXT_ARGS],
    roles=ANY_ROLE,
)
def request_add(ctx, args):
    with workflow(ctx) as wf:
        output = wf.add(args.request, ctx.actor, args.output, _context(args))
    missing = output.missing_context()
    hint = f"; still to describe: {', '.join(missing)} (`tre request describe`)" if missing else ""
    ctx.emit(
        {
            "output": output.name,
            "kind": output.kind,
            "check_status": output.check_status,
            "sha256": output.sha256,
            "missing_context": missing,
        },
        f"added {output.name} ({output.kind}, check {output.check_status}) to {args.request.upper()}{hint}",
    )


@command(
    "request describe",
    help="give an output of a PENDING request its context: population, what it shows, relation to earlier outputs",
    args=[REQUEST_ARG, OUTPUT_ARG, *CONTEXT_ARGS],
    roles=ANY_ROLE,
)
def request_describe(ctx, args):
    with workflow(ctx) as wf:
        output = wf.describe(args.request, ctx.actor, args.output, _context(args))
    missing = output.missing_context()
    ctx.emit(
        {"output": output.name, "context": output.context, "missing_context": missing},
        f"{output.name}: " + (f"still to describe: {', '.join(missing)}" if missing else "context complete"),
    )


@command(
    "request remove",
    help="take an output out of a PENDING request and put it back in the project's queue",
    args=[REQUEST_ARG, OUTPUT_ARG],
    roles=ANY_ROLE,
)
def request_remove(ctx, args):
    with workflow(ctx) as wf:
        wf.remove(args.request, ctx.actor, args.output)
    ctx.emit({"removed": args.output}, f"{args.output} is back in the queue")


def _step(name: str, help: str, method: str, done: str):
    @command(f"request {name}", help=help, args=[REQUEST_ARG], roles=ANY_ROLE)
    def run(ctx, args):
        with workflow(ctx) as wf:
            request = getattr(wf, method)(args.request, ctx.actor)
        ctx.emit({"request": request.label, "status": request.status.value}, f"{request.label} {done}")

    return run


_step(
    "submit",
    "submit a request for review by two officers (every output needs its context)",
    "submit",
    "submitted: two officers review it independently",
)
_step("withdraw", "withdraw a request before its review is decided", "withdraw", "withdrawn")
_step(
    "reopen",
    "reopen a RETURNED request to change its outputs and submit it again",
    "reopen",
    "is PENDING again: change its outputs, then submit",
)


@command(
    "request status",
    help="your projects' requests, or one request in detail",
    args=[
        arg("request", metavar="REQ", nargs="?", help="one request in detail"),
        arg("--project", help="only this project's requests"),
    ],
    roles=ANY_ROLE,
)
def request_status(ctx, args):
    with workflow(ctx) as wf:
        if args.request:
            data = wf.view(args.request, ctx.actor)
            ctx.emit(data, lambda console: print_request(console, data))
            return
        rows = wf.of_project(args.project, ctx.actor) if args.project else wf.mine(ctx.actor)
    ctx.emit(
        rows,
        table(
            ["request", "project", "status", "outputs", "reviews", "title"],
            [
                [r["request"], r["project"], r["status"], r["outputs"], f"{r['reviews']['submitted']}/2", r["title"]]
                for r in rows
            ],
        ),
    )


def print_request(console, data: dict) -> None:
    """A request in words: its outputs, their checks, context and the votes you may see."""
    console.print(
        f"[bold]{data['request']}[/bold] {data['title'] or ''} — project {data['project']}, by {data['author']}, "
        f"{data['status'].upper()} (round {data['round']})"
    )
    for f in data["files"]:
        console.print(f"\n[bold]{f['name']}[/bold] ({f['kind']}): check {f['check_status'].upper()} — {f['summary']}")
        for key, words in CONTEXT_FIELDS.items():
            console.print(f"  {words}: {f['context'].get(key) or '(missing)'}")
        for finding in f["findings"]:
            if finding.get("status") != "pass":
                console.print(f"  • {finding['check']}: {finding['message']}")
        if f["decision"]:
            console.print(f"  decision: {f['decision']}")
        for v in f["votes"]:
            extra = f" — override: {v['override']}" if v["override"] else ""
            final = "" if v["final"] else " (not submitted)"
            comment = f": {v['comment']}" if v["comment"] else ""
            console.print(f"  vote {v['reviewer']}: {v['decision']}{final}{comment}{extra}")
    if data["release"]:
        console.print(
            f"\nreleased {data['release']['released_at']} by {data['release']['released_by']}: "
            f"{data['release']['bundle']}"
        )
