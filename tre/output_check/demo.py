"""The review part of `tre demo`: the project's queued outputs through two-person review to a bundle.

`review_and_release` does what the people would, each step in its own transaction and through
the same workflow (so every step is checked and audited): the author makes a request of the
queued outputs with their context and submits it, each demo officer votes approve on every
output and submits the review, the first officer releases. It never overrides a failed check:
an output whose check failed stops the demo with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tre.config import Settings
from tre.db import Clock, Store, utc_now
from tre.errors import UserError
from tre.output_check.intake import WorkspaceOutputs
from tre.output_check.requests import Requests
from tre.output_check.storage import SqlRequestStore

DEMO_OFFICERS = ("olav", "oda")


def review_and_release(
    store: Store,
    settings: Settings,
    project_id: str,
    *,
    author: str,
    officers: Sequence[str] = DEMO_OFFICERS,
    title: str = "Results of the example analysis",
    context: dict[str, dict] | None = None,
    clock: Clock = utc_now,
    say: Callable[[str], None] = print,
) -> Path:
    """Request, review and release every output in `project_id`'s queue; returns the bundle.

    `context` gives an output's context by name ({"population", "shows", "relation"}); outputs
    without one get a plain description from how they were made. Run again with an empty queue,
    it returns the bundle of the author's last release of the project.
    """

    def step(do):
        with store.transaction() as session:
            return do(
                Requests(
                    SqlRequestStore(session), WorkspaceOutputs.from_settings(settings), settings.exports_dir, clock
                )
            )

    queued = step(lambda wf: wf.queued(project_id, author))
    if not queued:
        return step(lambda wf: _last_bundle(wf, project_id, author))
    failed = [m["name"] for m in queued if m["status"] == "fail"]
    if failed:
        raise UserError(f"the demo does not override failed checks: {', '.join(failed)} failed; see their reports")
    label = step(lambda wf: wf.new(project_id, author, title)).label
    for meta in queued:
        given = (context or {}).get(meta["name"]) or _describe(meta, project_id, queued)
        output = step(lambda wf, m=meta, g=given: wf.add(label, author, m["name"], g))
        if output.failed_check:
            raise UserError(
                f"{output.name} failed its re-check when added to {label}: see `tre request status {label}`"
            )
    step(lambda wf: wf.submit(label, author))
    say(f"{author} submitted {label} with {len(queued)} output(s): {', '.join(m['name'] for m in queued)}")
    for officer in officers:
        for meta in queued:
            step(
                lambda wf, o=officer, m=meta: wf.vote(
                    label, o, m["name"], "approve", f"{o}: report, preview and context checked"
                )
            )
        request = step(lambda wf, o=officer: wf.submit_review(label, o))
        say(f"{officer} reviewed {label}: approve ({request.status.name})")
    released = step(lambda wf: wf.release(label, officers[0]))
    say(f"{officers[0]} released {label}: {released.bundle}")
    return released.bundle


def _describe(meta: dict, project_id: str, queued: list[dict]) -> dict:
    others = [m["name"] for m in queued if m["name"] != meta["name"]]
    return {
        "population": f"the persons in project {project_id}'s extract",
        "shows": f"a {meta['kind']} output made with tre.safe.{meta.get('call', 'custom_output')}",
        "relation": "made in the same notebook as " + ", ".join(others) if others else "the project's first output",
    }


def _last_bundle(wf: Requests, project_id: str, author: str) -> Path:
    mine = [r for r in wf.of_project(project_id, author) if r["author"] == author and r["status"] == "released"]
    if not mine:
        raise UserError(f"project {project_id} has no queued outputs: run its notebook first")
    return wf.bundle(mine[-1]["request"], author)
