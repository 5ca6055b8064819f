"""A small TRE for review tests: a project with members, officers, an extract, and a queue.

project diabetes   members rita (author), reidar, omar (an officer who is also a member)
officers           olav, oda, otto (not members)
admin              ada
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from factories import make_approval, make_member, make_project, make_user
from output_check_factories import make_extract, pseudonyms, records

from tre.cli import main
from tre.config import Settings, load_settings
from tre.db import Store, utc_now
from tre.enums import Role
from tre.output_check.intake import WorkspaceOutputs
from tre.output_check.requests import Requests
from tre.output_check.storage import SqlRequestStore

PROJECT = "diabetes"


@dataclass
class World:
    env: dict
    settings: Settings
    store: Store
    people: list = None  # the extract's pseudonyms
    clock: object = utc_now

    @property
    def project_dir(self) -> Path:
        return self.settings.projects_dir / PROJECT

    @property
    def cli(self):
        """The CLI in this TRE, as a user types it."""
        from conftest import CLI

        return CLI(self.env)

    def leaving(self, label: str, name: str) -> Path:
        """The central copy of an output's files that will leave."""
        return self.settings.outputs_dir / PROJECT / label / name / "leaving"

    def run(self, step):
        """`step(requests)` in one transaction of the store."""
        with self.store.transaction() as session:
            return step(self.workflow(session))

    def workflow(self, session) -> Requests:
        return Requests(
            SqlRequestStore(session),
            WorkspaceOutputs.from_settings(self.settings),
            self.settings.exports_dir,
            self.clock,
        )

    def queue_table(self, name: str, n: int = 400, seed: int = 0, **options):
        """A protected count table queued by the researchers' API, as a notebook would."""
        from tre.safe import Session

        session = Session(self.project_dir, PROJECT, out=io.StringIO())
        data = records(n, seed=seed, persons=self.people)
        return session.crosstab(data.kommune, data.sex, name=name, **options)

    def queue_file(self, name: str, text: str) -> None:
        from tre.safe import Session

        path = self.project_dir / "work" / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        Session(self.project_dir, PROJECT, out=io.StringIO()).custom_output(path, "a note", name=name)


def build_world(root: Path, *, threshold: int | None = None) -> World:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRE_")}
    env["TRE_CLI_IDENTITY"] = "demo"  # who acts is asserted here, as in make demo (tre/identity.py)
    env["TRE_PROJECT_DISK_QUOTA"] = "0"  # no loop-mounted volumes unless a test wants them
    env.update(
        TRE_HOME=str(root / "home"),
        TRE_PROJECTS_DIR=str(root / "projects"),
        TRE_APPROVALS_DIR=str(root / "approvals"),
    )
    assert main(["init"], environ=env, stdout=io.StringIO()) == 0
    assert main(["user", "add", "ada", "--role", "admin"], environ=env, stdout=io.StringIO()) == 0
    settings = load_settings(env)
    store = Store(settings.db_url)
    with store.transaction() as session:
        people = {name: make_user(session, name, Role.RESEARCHER) for name in ("rita", "reidar")}
        people |= {name: make_user(session, name, Role.OFFICER) for name in ("olav", "oda", "otto", "omar")}
        project = make_project(session, PROJECT, "GP follow-up of diabetes patients")
        for name in ("rita", "reidar", "omar"):
            make_member(session, project, people[name])
        make_approval(session, project, threshold=threshold)
    people = pseudonyms(1000, seed=4)
    make_extract(settings.projects_dir / PROJECT, people)
    return World(env, settings, store, people)
