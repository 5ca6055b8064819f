"""`tre request ...`: researchers put queued outputs into a request, describe them, submit it.

Outputs come from the project's queue (`requests/queue/<name>/`, where `tre.safe` puts them).
"""

from __future__ import annotations

from contextlib import contextmanager

from tre.cli.framework import ANY_ROLE, arg, command, group, table

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
    from tre.output_check.intake import WorkspaceOutputs
    from tre.output_check.requests import Requests
    from tre.output_check.storage import SqlRequestStore

    with ctx.store.transaction() as session:
        yield Requests(
            SqlRequestStore(session), WorkspaceOutputs.from_settings(ctx.settings), ctx.settings.exports_dir, ctx.now
        )


def _context(args) -> dict:
    from tre.output_check.workflow import CONTEXT_FIELDS

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


GROUP_ARG = arg("--group", metavar="NAME", help="a name for outputs that belong together and share their context")
EXCEPTION_HELP = (
    "why the output should leave although its check flagged it (an exception request; an output whose check "
    "failed needs one before the request is submitted)"
)


@command(
    "request add",
    help="add queued outputs to a PENDING request, several at once sharing one context: their files are copied "
    "to the central side (links, FIFOs, hard links, oversize files and types that may not leave are refused), "
    "re-checked there, and leave the queue; all of them or none",
    args=[
        REQUEST_ARG,
        arg("outputs", nargs="+", metavar="OUTPUT", help="queued outputs' names (see `tre request outputs PROJECT`)"),
        *CONTEXT_ARGS,
        GROUP_ARG,
        arg("--exception", metavar="TEXT", help=EXCEPTION_HELP + "; with one output"),
    ],
    roles=ANY_ROLE,
)
def request_add(ctx, args):
    from tre.errors import UsageError

    if args.exception and len(args.outputs) > 1:
        raise UsageError("--exception goes with one output: ask for each with `tre request exception REQ OUTPUT TEXT`")
    exceptions = {args.outputs[0]: args.exception} if args.exception else None
    with workflow(ctx) as wf:
        added = wf.add_group(args.request, ctx.actor, args.outputs, _context(args), args.group, exceptions)
    lines = []
    for output in added:
        missing = output.missing_context()
        hint = f"; still to describe: {', '.join(missing)} (`tre request describe`)" if missing else ""
        if output.failed_check and not output.exception:
            hint += "; its check failed: it needs an exception (`tre request exception`)"
        lines.append(
            f"added {output.name} ({output.kind}, check {output.check_status}) to {args.request.upper()}{hint}"
        )
    data = [
        {
            "output": output.name,
            "kind": output.kind,
            "check_status": output.check_status,
            "sha256": output.sha256,
            "missing_context": output.missing_context(),
            "group": output.group,
            "exception": output.exception,
        }
        for output in added
    ]
    ctx.emit(data[0] if len(data) == 1 else data, "\n".join(lines))  # one output: one object, as scripts expect


@command(
    "request describe",
    help="give an output of a PENDING request (or every output of a --group) its context: population, what it "
    "shows, relation to earlier outputs",
    args=[
        REQUEST_ARG,
        arg("output", nargs="?", metavar="OUTPUT", help="the output (or give --group)"),
        *CONTEXT_ARGS,
        GROUP_ARG,
    ],
    roles=ANY_ROLE,
)
def request_describe(ctx, args):
    from tre.errors import UsageError

    if (args.output is None) == (args.group is None):
        raise UsageError("name one output, or a --group of outputs, to describe")
    with workflow(ctx) as wf:
        if args.group:
            outputs = wf.describe_group(args.request, ctx.actor, args.group, _context(args))
        else:
            outputs = [wf.describe(args.request, ctx.actor, args.output, _context(args))]
    ctx.emit(
        [{"output": o.name, "context": o.context, "missing_context": o.missing_context()} for o in outputs],
        "\n".join(
            f"{o.name}: "
            + (f"still to describe: {', '.join(o.missing_context())}" if o.missing_context() else "context complete")
            for o in outputs
        ),
    )


@command(
    "request exception",
    help="ask for an exception for an output of a PENDING request: " + EXCEPTION_HELP + "; empty text withdraws it",
    args=[REQUEST_ARG, OUTPUT_ARG, arg("text", metavar="TEXT", help="the justification")],
    roles=ANY_ROLE,
)
def request_exception(ctx, args):
    with workflow(ctx) as wf:
        output = wf.set_exception(args.request, ctx.actor, args.output, args.text)
    ctx.emit(
        {"output": output.name, "exception": output.exception},
        f"{output.name}: " + ("exception requested" if output.exception else "exception withdrawn"),
    )


COMMENT_ARGS = [
    REQUEST_ARG,
    arg("output", nargs="?", metavar="OUTPUT", help="an output's thread (default: the request's)"),
    arg("--text", required=True, metavar="TEXT", help="the comment"),
]


def comment(ctx, args, officers_only: bool = False) -> None:
    with workflow(ctx) as wf:
        written = wf.comment(args.request, ctx.actor, args.text, args.output, officers_only=officers_only)
    where = f"{args.request.upper()} {written.output}" if written.output else args.request.upper()
    ctx.emit(
        {"request": args.request.upper(), "output": written.output, "id": written.id, "visibility": written.visibility},
        f"comment added to the thread of {where}" + (" (officers only)" if officers_only else ""),
    )


@command(
    "request comment",
    help="comment in a request's thread, or an output's: members of the project and its reviewers read it "
    "(a reviewer's comments once both reviews are in)",
    args=COMMENT_ARGS,
    roles=ANY_ROLE,
)
def request_comment(ctx, args):
    comment(ctx, args)


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
    from tre.output_check.workflow import CONTEXT_FIELDS

    console.print(
        f"[bold]{data['request']}[/bold] {data['title'] or ''} — project {data['project']}, by {data['author']}, "
        f"{data['status'].upper()} (round {data['round']})"
    )
    _print_thread(console, data["comments"], "  ")
    for f in data["files"]:
        console.print(f"\n[bold]{f['name']}[/bold] ({f['kind']}): check {f['check_status'].upper()} — {f['summary']}")
        if f.get("threshold"):
            console.print(f"  checked with threshold {f['threshold']}")
        if f.get("group"):
            console.print(f"  group: {f['group']}")
        for key, words in CONTEXT_FIELDS.items():
            console.print(f"  {words}: {f['context'].get(key) or '(missing)'}")
        if f.get("exception"):
            console.print(f"  exception requested: {f['exception']}")
        for finding in f["findings"]:
            if finding.get("status") != "pass":
                console.print(f"  • {finding['check']}: {finding['message']}")
        for c in f.get("files", []):
            console.print(f"  leaves: {c['name']} ({c['size']} bytes, sha256 {c['sha256'][:16]}…)")
            for note in c.get("notes", []):
                console.print(f"    ! {note}")
        if f["decision"]:
            console.print(f"  decision: {f['decision']}")
        for v in f["votes"]:
            extra = f" — override: {v['override']}" if v["override"] else ""
            final = "" if v["final"] else " (not submitted)"
            comment = f": {v['comment']}" if v["comment"] else ""
            console.print(f"  vote {v['reviewer']}: {v['decision']}{final}{comment}{extra}")
        _print_thread(console, f.get("comments", []), "  ")
    if data["release"]:
        console.print(
            f"\nreleased {data['release']['released_at']} by {data['release']['released_by']}: "
            f"{data['release']['bundle']}"
        )


def _print_thread(console, comments: list[dict], indent: str) -> None:
    for c in comments:
        who = f"{c['author']} ({'officer' if c['written_as'] == 'officer' else 'project'})"
        private = " [officers only]" if c["officers_only"] else ""
        console.print(f"{indent}comment by {who} at {c['at']}{private}: {c['body']}", markup=False)
