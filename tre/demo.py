"""`tre demo`: the whole path on synthetic data, one step after the other.

Each step is a function of the demo context that does its part idempotently and prints what
a person watching should see. Later steps build on earlier ones; running the demo again
reuses what is already there.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from tre import approvals, deadlines, synth
from tre.config import Settings, ensure_dirs
from tre.db import Store
from tre.enums import Role
from tre.errors import DeliveryError, UserError
from tre.linkage import extracts, quality
from tre.linkage.ingest import ingest
from tre.linkage.zone import CentralZone
from tre.os_accounts import PosixAccounts
from tre.registers import Manifest
from tre.users import add_user
from tre.workspace import ISOLATION_OFF_WARNING, isolation_enabled, project_statuses, provision_project

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
}
ADMIN = "ada"


@dataclass(frozen=True)
class DemoOptions:
    persons: int = 20_000
    years: int = 2
    last_year: int = 2024
    seed: int = 2024


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
    who = ", ".join(f"{n} ({'/'.join(r.value for r in roles)})" for n, roles in DEMO_USERS.items())
    demo.say(f"demo users: {who}" + ("" if added else " — already there"))


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
            )
            accounts = ", ".join(f"{u} as {a}" for u, a in sorted(result.accounts.items())) or "no OS accounts"
            demo.say(f"project {project}: workspace {result.path} ({accounts})")
    demo.results["projects"] = projects


def step_extracts(demo: Demo) -> None:
    """Build each project's extract and print what it holds."""
    zone = demo.zone()
    for project in demo.results["projects"]:
        result = extracts.build_extract(demo.settings, zone, demo.store, project, actor=ADMIN)
        excluded = f", {result.excluded_opt_out} left out by opt-outs" if result.excluded_opt_out else ""
        tables = ", ".join(f"{name} {rows:,}" for name, rows in result.tables.items())
        demo.say(f"extract of {project} ({result.kind}): {result.persons:,} persons{excluded}; {tables}")


STEPS: list[Callable[[Demo], None]] = [
    step_store,
    step_users,
    step_synthetic_registers,
    step_ingest,
    step_approvals,
    step_projects,
    step_extracts,
]


def run(demo: Demo, steps: list[Callable[[Demo], None]] | None = None) -> None:
    for step in steps or STEPS:
        step(demo)
