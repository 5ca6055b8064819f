"""`tre demo`: the whole path on synthetic data, one step after the other.

Each step is a function of the demo context that does its part idempotently and prints what
a person watching should see. Later steps build on earlier ones; running the demo again
reuses what is already there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table
from sqlalchemy import select

from tre import approvals, deadlines, identity, synth
from tre.config import Settings, ensure_dirs
from tre.db import Store
from tre.enums import ExtractStatus, RequestStatus, Role
from tre.errors import ApprovalError, DeliveryError, UserError
from tre.linkage import extracts, quality
from tre.linkage.ingest import ingest
from tre.linkage.zone import CentralZone
from tre.models import Extract, OutputRequest
from tre.os_accounts import PosixAccounts
from tre.output_check.demo import review_and_release
from tre.registers import Manifest
from tre.users import add_user, bind_municipalities
from tre.volumes import volumes
from tre.workspace import (
    ISOLATION_OFF_WARNING,
    isolation_enabled,
    project_statuses,
    provision_project,
    valid_approvals,
    workspace,
)

# The demo's people: researchers in the example projects, two officers, a key custodian, an
# admin. The approvals in approvals/ name the researchers as project members.
DEMO_USERS: dict[str, tuple[Role, ...]] = {
    "ada": (Role.ADMIN,),
    "kari": (Role.CUSTODIAN,),
    "olav": (Role.OFFICER,),
    "oda": (Role.OFFICER,),
    "rita": (Role.RESEARCHER,),
    "reidar": (Role.RESEARCHER,),
    "sara": (Role.RESEARCHER,),
    "mona": (Role.RESEARCHER,),
    "oslo": (Role.MUNICIPALITY,),
}
# The demo's municipal user reads the § 3-3 feedback of these municipalities.
DEMO_MUNICIPALITIES = {"oslo": ("0301",)}
ADMIN = "ada"
CUSTODIAN = "kari"


@dataclass(frozen=True)
class DemoOptions:
    persons: int = 20_000
    years: int = 2
    last_year: int = 2024
    seed: int = 2024
    hub: bool = True  # end with JupyterHub running


# The § 20 project whose example notebook the demo runs, reviews and releases.
DEMO_PROJECT, DEMO_AUTHOR, DEMO_NOTEBOOK = "diabetes", "rita", "diabetes_followup.ipynb"


@dataclass
class Demo:
    settings: Settings
    store: Store
    options: DemoOptions
    say: Callable[[str], None]
    console: object  # a rich console for tables
    results: dict = field(default_factory=dict)

    def now(self) -> dt.datetime:
        return self.store.clock()

    def zone(self) -> CentralZone:
        return CentralZone(self.settings, clock=self.store.clock)

    @property
    def deliveries(self) -> Path:
        o = self.options
        return self.settings.deliveries_dir / f"demo-{o.persons}-{o.years}y-{o.last_year}-seed{o.seed}"


def step_store(demo: Demo) -> None:
    ensure_dirs(demo.settings)
    before, after = demo.store.migrate()
    demo.say(f"metadata store {demo.store.shown_url}: schema {after}" + (" (created)" if before is None else ""))


def step_users(demo: Demo) -> None:
    added = []
    with demo.store.transaction() as session:
        for name, roles in DEMO_USERS.items():
            for role in roles:
                _, changed = add_user(session, name, role, actor=ADMIN if name != ADMIN else "demo", now=demo.now())
                if changed:
                    added.append(name)
            if name in DEMO_MUNICIPALITIES:
                bind_municipalities(session, name, DEMO_MUNICIPALITIES[name], actor=ADMIN, now=demo.now())
        # The admin works from this OS account without demo mode too (cli_identity = os).
        account = identity.caller(os.environ)
        if identity.OS_NAME.fullmatch(account):
            identity.bind(session, ADMIN, account, actor="demo", now=demo.now())
    who = ", ".join(f"{n} ({'/'.join(r.value for r in roles)})" for n, roles in DEMO_USERS.items())
    demo.say(f"demo users: {who}" + ("" if added else " — already there"))
    demo.say(
        f"the OS account {account} may act as {ADMIN} on the command line; the other demo users act with "
        "TRE_CLI_IDENTITY=demo (the name is then asserted, and every audit event says so) or after "
        "`tre user bind-os NAME ACCOUNT`"
    )


def step_synthetic_registers(demo: Demo) -> None:
    """Synthetic national register deliveries, generated once per set of options."""
    o = demo.options
    if (demo.deliveries / synth.GROUND_TRUTH).exists():
        demo.say(f"synthetic deliveries already in {demo.deliveries}")
    else:
        summary = synth.generate(demo.deliveries, persons=o.persons, years=o.years, seed=o.seed, last_year=o.last_year)
        demo.say(
            f"generated synthetic registers for {summary.persons:,} persons, {o.last_year - o.years + 1}-{o.last_year}: "
            f"{summary.rows:,} rows in {len(summary.files)} deliveries ({summary.seconds:.1f} s)"
        )
    manifests = [Manifest.read(p) for p in sorted(demo.deliveries.glob("*.manifest.json"))]
    periods = sorted({m.period for m in manifests})
    rows: dict[str, dict[str, int]] = {}
    for m in manifests:
        rows.setdefault(m.source, {})[m.period] = m.rows
    table = Table(title="register deliveries (rows)", title_justify="left", show_edge=False, header_style="bold")
    for column in ("source", *periods):
        table.add_column(column, justify="left" if column == "source" else "right")
    for source, by_period in rows.items():
        table.add_row(source, *(f"{by_period[p]:,}" if p in by_period else "" for p in periods))
    demo.console.print(table)
    dirt = json.loads((demo.deliveries / synth.GROUND_TRUTH).read_text(encoding="utf-8"))
    demo.say(f"deliberate dirt for the ingest to catch: {_dirt_line(dirt['totals'])}")
    demo.results["deliveries"] = demo.deliveries


def _dirt_line(totals: dict) -> str:
    return ", ".join(f"{count:,} {kind.replace('_', ' ')}" for kind, count in totals.items() if count) or "none"


def step_ingest(demo: Demo) -> None:
    """Ingest every delivery into the central zone (a delivery already in is a no-op) and print
    the linkage and quality report."""
    zone = demo.zone()
    outcomes = ingest(zone, demo.store, [demo.deliveries], actor=ADMIN)
    done = Counter(o.status for o in outcomes)
    demo.say(
        "ingest: "
        + ", ".join(f"{n} {status}" for status, n in sorted(done.items()))
        + f" ({sum(o.report.get('rows_rejected', 0) for o in outcomes if o.report):,} rows rejected by rule)"
    )
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise DeliveryError(f"the demo's ingest failed: {failed[0].message}")
    with zone.reading(demo.store) as con:
        report = quality.build_report(con, now=demo.now())
    demo.console.print(quality.render_report(report))


def step_approvals(demo: Demo) -> None:
    """Sync approvals/ (the three example approvals) and print the § 4-8 deadlines."""
    with demo.store.transaction() as session:
        result = approvals.sync(session, demo.settings.approvals_dir, actor=ADMIN, now=demo.now())
        due = deadlines.deadlines(session, demo.now().date())
    if result.problems:
        raise UserError(f"the demo's approvals have problems: {result.problems[0]}")
    demo.say(f"approvals: {len(result.added)} added, {len(result.changed)} changed, {len(result.unchanged)} unchanged")
    for d in due:
        demo.say(f"  {d.approval_id}: due {d.due.isoformat()} ({d.working_days} working days) — {d.status}")


def step_projects(demo: Demo) -> None:
    """Provision the approved projects' workspaces (OS group and accounts when root)."""
    isolation = isolation_enabled(demo.settings)
    if not isolation:
        demo.say(ISOLATION_OFF_WARNING)
    with demo.store.transaction() as session:
        projects = [p["project"] for p in project_statuses(session, demo.settings.projects_dir, demo.now().date())]
        for project in projects:
            result = provision_project(
                session,
                project,
                projects_dir=demo.settings.projects_dir,
                prefix=demo.settings.os_account_prefix,
                accounts=PosixAccounts() if isolation else None,
                actor=ADMIN,
                now=demo.now(),
                volumes=volumes(demo.settings, isolation=isolation),
            )
            accounts = ", ".join(f"{u} as {a}" for u, a in sorted(result.accounts.items())) or "no OS accounts"
            demo.say(f"project {project}: workspace {result.path} ({accounts})")
    demo.results["projects"] = projects


def step_extracts(demo: Demo, projects: list[str] | None = None) -> None:
    """Build each project's extract and print what it holds."""
    zone = demo.zone()
    for project in demo.results["projects"] if projects is None else projects:
        result = _build(demo, zone, project)
        excluded = f", {result.excluded_opt_out} left out by opt-outs" if result.excluded_opt_out else ""
        tables = ", ".join(f"{name} {rows:,}" for name, rows in result.tables.items())
        demo.say(f"extract of {project} ({result.kind}): {result.persons:,} persons{excluded}; {tables}")


def _build(demo: Demo, zone: CentralZone, project: str):
    """Build as the admin; a § 4-5 build (ID numbers) is approved by the key custodian first,
    as `tre extract approve` does (§ 5-2: two people)."""
    try:
        return extracts.build_extract(demo.settings, zone, demo.store, project, actor=ADMIN)
    except ApprovalError as refused:
        waiting = [b for b in extracts.pending_builds(demo.store) if b["project"] == project and not b["approved_by"]]
        if not waiting or "key custodian must approve" not in str(refused):
            raise
    build = waiting[-1]
    extracts.approve_build(
        demo.store,
        project,
        build["build"],
        actor=CUSTODIAN,
        now=demo.now(),
        valid_days=demo.settings.build_approval_days,
    )
    demo.say(
        f"build {build['build']} of {project}: {build['persons']:,} persons with ID numbers under "
        f"{build['reference']}, approved by the key custodian {CUSTODIAN}"
    )
    return extracts.build_extract(demo.settings, zone, demo.store, project, actor=ADMIN)


def step_extracts_once(demo: Demo) -> None:
    """Build each project's extract unless one is there for its approval in force."""
    with demo.store.transaction() as session:
        current = {
            e.project_id: (e.approval_id, e.approval_version)
            for e in session.execute(select(Extract).where(Extract.status == ExtractStatus.READY)).scalars()
        }
        wanted = {
            p: {(a.id, a.version) for a in valid_approvals(session, p, demo.now().date())}
            for p in demo.results["projects"]
        }
    stale = [p for p in demo.results["projects"] if current.get(p) not in wanted[p]]
    for project in demo.results["projects"]:
        if project not in stale:
            demo.say(f"extract of {project}: already built for its approval in force")
    step_extracts(demo, stale)


def step_notebook(demo: Demo) -> None:
    """The researcher's part: run the § 20 project's example notebook headless (papermill),
    which queues its checked outputs for review."""
    from tre.headless import run_notebook

    ws = workspace(demo.settings.projects_dir, DEMO_PROJECT)
    if _released_before(demo):
        demo.say(f"{DEMO_PROJECT}: its notebook's outputs were reviewed and released in an earlier run")
        return
    ws.work.mkdir(parents=True, exist_ok=True)
    executed = ws.work / f"demo-{DEMO_NOTEBOOK}"
    run_notebook(
        demo.settings.hub_notebooks_dir / DEMO_NOTEBOOK,
        executed,
        project_dir=ws.root,
        project=DEMO_PROJECT,
        cwd=ws.work,
    )
    queued = sorted(p.name for p in ws.queue.iterdir() if not p.name.startswith("."))
    demo.say(
        f"{DEMO_AUTHOR} ran {DEMO_NOTEBOOK} in {DEMO_PROJECT}: {len(queued)} output(s) queued ({', '.join(queued)})"
    )


def step_review(demo: Demo) -> None:
    """Two officers review the outputs independently; one releases them as a bundle."""
    bundle = review_and_release(
        demo.store, demo.settings, DEMO_PROJECT, author=DEMO_AUTHOR, clock=demo.store.clock, say=demo.say
    )
    demo.results["bundle"] = bundle
    demo.say(f"released bundle: {bundle}")


def _released_before(demo: Demo) -> bool:
    with demo.store.transaction() as session:
        return (
            session.execute(
                select(OutputRequest.id).where(
                    OutputRequest.project_id == DEMO_PROJECT, OutputRequest.status == RequestStatus.RELEASED
                )
            ).first()
            is not None
        )


def step_statistics(demo: Demo) -> None:
    """§ 4-6 statistics from the demo's registers: every indicator checked and protected, the
    publication, the site; and each municipality's § 3-3 feedback."""
    from tre.stats.build import build_statistics
    from tre.stats.feedback import publish_feedback
    from tre.stats.record import open_record
    from tre.stats.site import build_site

    zone = demo.zone()
    with zone.reading(demo.store) as con:
        newest = con.execute("SELECT max(committed_at) FROM __tre_deliveries").fetchall()[0][0]
    with open_record(demo.settings.stats_dir, write=False) as record:
        runs = record.runs() if record is not None else None
    fresh = runs is not None and len(runs) and newest is not None and runs["published_at"].max() >= newest
    if fresh and (demo.settings.stats_dir / "site").exists():
        demo.say(f"statistics: already published (run {int(runs['run'].max())}) from these deliveries")
    else:
        result = build_statistics(demo.settings, demo.store, actor=ADMIN, clock=demo.store.clock)
        demo.say(
            f"statistics run {result.run}: {len(result.tables)} tables ({result.cells:,} cells) for "
            f"{', '.join(map(str, result.years))}; {result.hidden:,} cells hidden and protected "
            f"({result.seconds['total']:.0f} s, the checks {result.seconds['check']:.0f} s)"
        )
    site = build_site(demo.settings.stats_dir, demo.settings.stats_vega_dir)
    feedback = publish_feedback(zone, demo.store, actor=ADMIN, trigger="demo")
    demo.say(
        f"statistics site in {site}; § 3-3 feedback for {len(feedback['municipalities'])} municipalities "
        f"in {feedback['path']}"
    )
    demo.results["stats_site"] = site


def step_statistics_url(demo: Demo) -> None:
    """The last line: where the statistics site is."""
    if demo.options.hub:
        url = f"http://{demo.settings.hub_ip}:{demo.settings.hub_port}/services/tre-stats/"
        demo.say(
            f"Statistics site (§ 4-6): {url}  — municipal feedback (§ 3-3, log in as oslo): {url}tilbakemelding/0301/"
        )
    else:
        demo.say(
            f"Statistics site (§ 4-6) built in {demo.results['stats_site']}: serve it with `tre stats serve` "
            f"(http://{demo.settings.stats_ip}:{demo.settings.stats_port}/)"
        )


def step_hub(demo: Demo) -> None:
    """End with JupyterHub running: its URL and how to log in as each demo user."""
    from tre.hub_config.launch import format_demo_accounts, running_hub_pid, set_demo_logins, start_hub_background

    if not demo.options.hub:
        return
    logins = set_demo_logins(demo.store, list(DEMO_USERS), actor=ADMIN, settings=demo.settings, environ=os.environ)
    url = f"http://{demo.settings.hub_ip}:{demo.settings.hub_port}"
    pid = running_hub_pid(demo.settings.hub_dir)
    if pid is None:
        hub = start_hub_background(demo.settings, dict(os.environ))
        pid, url = hub.pid, hub.url
        demo.say(f"JupyterHub started (pid {pid}; log {hub.log}); stop it with `kill {pid}`")
    else:
        demo.say(f"JupyterHub already running (pid {pid})")
    roles = {name: "/".join(r.value for r in roles) for name, roles in DEMO_USERS.items()}
    demo.console.print(format_demo_accounts(url, logins, roles))


STEPS: list[Callable[[Demo], None]] = [
    step_store,
    step_users,
    step_synthetic_registers,
    step_ingest,
    step_approvals,
    step_projects,
    step_extracts_once,
    step_notebook,
    step_review,
    step_statistics,
    step_hub,
    step_statistics_url,
]


def run(
    demo: Demo,
    steps: list[Callable[[Demo], None]] | None = None,
    progress: Callable[[int, int, str], None] = lambda done, total, step: None,
) -> None:
    """Run the steps in order; `progress(done, total, step)` is told as each one begins."""
    steps = steps or STEPS
    for done, step in enumerate(steps):
        progress(done, len(steps), step.__name__.removeprefix("step_").replace("_", " "))
        step(demo)
