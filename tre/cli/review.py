"""`tre review ...` and `tre release`: officers review output requests and release them.

`tre review serve` runs the review page (standalone with its own login, or under the hub).
"""

from __future__ import annotations

from pathlib import Path

from tre.cli.framework import LazyChoices, arg, command, group, table
from tre.cli.requests import COMMENT_ARGS, REQUEST_ARG, comment, print_request, workflow
from tre.enums import Role, VoteDecision
from tre.errors import IntegrityError, NotFound

group("review", "officers: the review queue, a request's outputs and checks, votes; `tre review serve` runs the page")

OFFICERS = [Role.OFFICER, Role.ADMIN]


@command(
    "review queue",
    help="requests for officers, newest first, and whether you may review each",
    args=[
        arg(
            "--view",
            choices=LazyChoices("tre.output_check.requests", "QUEUE_VIEWS"),
            metavar="VIEW",
            default="open",
            help="open: everything waiting for officers (default); waiting-for-me: a step of yours (review, "
            "finish, settle, release); reviewed-by-me; released; returned",
        )
    ],
    roles=OFFICERS,
)
def review_queue(ctx, args):
    with workflow(ctx) as wf:
        rows = wf.queue(ctx.actor, args.view)
    ctx.emit(
        rows,
        table(
            ["request", "project", "status", "outputs", "failed", "reviews", "next"],
            [
                [
                    r["request"],
                    r["project"],
                    r["status"],
                    r["outputs"],
                    r["failed_checks"],
                    f"{r['reviews']['submitted']}/{r['reviews']['started']}",
                    r["next"],
                ]
                for r in rows
            ],
            title=f"review queue ({args.view})",
        ),
    )


@command(
    "review show",
    help="a request's outputs with their check results, the author's context, and the votes you may see",
    args=[REQUEST_ARG],
    roles=OFFICERS,
)
def review_show(ctx, args):
    with workflow(ctx) as wf:
        data = wf.view(args.request, ctx.actor)
    ctx.emit(data, lambda console: print_request(console, data))


@command(
    "review vote",
    help="vote on one output of a request (your first vote starts your review); change it until you submit",
    args=[
        REQUEST_ARG,
        arg("output", metavar="OUTPUT", help="the output's name"),
        arg("decision", choices=[d.value for d in VoteDecision]),
        arg("--comment", default="", metavar="TEXT", help="why (required for changes and reject)"),
        arg("--override", metavar="TEXT", help="approving an output whose automatic check failed: the justification"),
    ],
    roles=[Role.OFFICER],
)
def review_vote(ctx, args):
    with workflow(ctx) as wf:
        request = wf.vote(args.request, ctx.actor, args.output, args.decision, args.comment, args.override)
    review = request.review_of(ctx.actor)
    left = [f.name for f in request.files if f.name not in review.votes]
    ctx.emit(
        {
            "request": request.label,
            "output": args.output,
            "decision": args.decision,
            "status": request.status.value,
            "not_voted": left,
        },
        f"{request.label} {args.output}: {args.decision}"
        + (f"; still to vote on: {', '.join(left)}" if left else f"; submit with `tre review submit {request.label}`"),
    )


@command(
    "review comment",
    help="comment in a request's thread, or an output's, as a reviewer: the other reviewer reads it once both "
    "reviews are in, the project once the reviews have decided (never with --officers-only)",
    args=[*COMMENT_ARGS, arg("--officers-only", action="store_true", help="never shown to the project")],
    roles=[Role.OFFICER],
)
def review_comment(ctx, args):
    comment(ctx, args, officers_only=args.officers_only)


@command(
    "review submit",
    help="submit your review: votes become final, and visible to the other reviewer once both are in",
    args=[REQUEST_ARG],
    roles=[Role.OFFICER],
)
def review_submit(ctx, args):
    with workflow(ctx) as wf:
        request = wf.submit_review(args.request, ctx.actor)
    words = {
        "in_review": "waits for the second review",
        "reviewed": "has a conflict: a third reviewer settles it",
        "approved": "is APPROVED: release it with `tre release " + request.label + "`",
        "returned": "is RETURNED to its author for changes",
        "rejected": "is REJECTED",
    }
    ctx.emit(
        {"request": request.label, "status": request.status.value},
        f"review submitted; {request.label} {words.get(request.status.value, request.status.value)}",
    )


@command(
    "review return",
    help="return an APPROVED request to its author when it cannot be released (a file changed, a newer release)",
    args=[REQUEST_ARG, arg("--reason", required=True, metavar="TEXT", help="what the author must change")],
    roles=[Role.OFFICER],
)
def review_return(ctx, args):
    with workflow(ctx) as wf:
        request = wf.return_approved(args.request, ctx.actor, args.reason)
    ctx.emit({"request": request.label, "status": request.status.value}, f"{request.label} returned to its author")


@command(
    "release",
    help="release an APPROVED request: the released folder in the project and the export bundle",
    args=[REQUEST_ARG],
    roles=OFFICERS,
)
def release(ctx, args):
    with workflow(ctx) as wf:
        done = wf.release(args.request, ctx.actor)
    ctx.emit(
        {
            "request": done.request,
            "project": done.project,
            "bundle": str(done.bundle),
            "bundle_sha256": done.bundle_sha256,
            "released_dir": str(done.released_dir),
            "release_record": done.record_id,
        },
        f"{done.request} released: bundle {done.bundle} (sha256 {done.bundle_sha256[:16]}…); "
        f"released tables in {done.released_dir}",
    )


group("bundle", "release bundles: check one against its manifest")


@command(
    "bundle verify",
    help="recompute every sha256 in a release bundle's manifest; one line per problem, non-zero exit on any",
    args=[arg("bundle", metavar="BUNDLE", type=Path, help="a bundle, e.g. $TRE_EXPORTS_DIR/<project>/REQ-4.zip")],
    roles=None,
    needs_store=False,
)
def bundle_verify(ctx, args):
    from tre.output_check.releases import verify_bundle

    if not args.bundle.is_file():
        raise NotFound(f"no bundle at {args.bundle}")
    manifest, problems = verify_bundle(args.bundle)
    hashed = len((manifest or {}).get("files") or [])
    ctx.emit(
        {"bundle": str(args.bundle), "ok": not problems, "files": hashed, "problems": problems},
        "\n".join(problems) if problems else f"{args.bundle.name}: all {hashed} files match the manifest",
    )
    if problems:
        raise IntegrityError(f"{args.bundle.name}: {len(problems)} problem(s): it is not the bundle that was released")


@command(
    "review serve",
    help="run the review page: standalone on this machine with its own login, or (--hub) as the hub's service",
    args=[
        arg("--hub", action="store_true", help="run as the JupyterHub service tre-review (hub OAuth login)"),
        arg("--port", type=int, help="port (default: the review_port setting)"),
        arg("--ip", help="address (default: the review_ip setting)"),
    ],
    roles=None,
    json=False,
)
def review_serve(ctx, args):
    from tre.output_check.web.app import serve

    serve(ctx.settings, hub=args.hub, ip=args.ip, port=args.port, info=ctx.info)
