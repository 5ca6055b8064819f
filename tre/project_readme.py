"""What a researcher reads first: the approval a project rests on, and `work/README.md`.

`approval_summary` is the approval as the hub's home page shows it (reference, validity,
threshold, conditions). `build_project_readme` writes the project's README: the approval and
its period, the tables and variables of the extract with a data dictionary (from the extract's
manifest and Parquet schemas, described from the registers' declarations), the rules outputs
follow, and how to request a release. The spawner writes it into `work/` at every server
start (`tre.workspace.seed_notebooks`), replacing only a README the TRE wrote.
"""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from tre.models import Approval, Project
from tre.retention import deadline
from tre.workspace import Workspace, approval_threshold, project_approval

README = "README.md"
# The first line of a README the TRE wrote: a README without it is the researchers' and stays.
README_MARK = "<!-- Written by the TRE at every start of your server; edit a copy, not this file. -->"
KINDS = {
    "hrl20": "indirectly identifiable data for research (hrl § 20, KPR regulation § 4-4)",
    "rek": "research with prior approval from the regional ethics committee (REK)",
    "direct45": "directly identifiable data (KPR regulation § 4-5)",
    "anon43": "data anonymous for the recipient (KPR regulation § 4-3)",
}
PRECISION = {
    "day": "dates to the day",
    "month": "dates at month precision: a date stands for the first day of its month",
    "tertial": "dates by tertial: a date stands for the first day of its tertial (January, May, September)",
    "year": "dates by year: a date stands for 1 January",
}


def default_threshold() -> int:
    from tre.output_check.parameters import load_parameters

    return load_parameters().threshold


def approval_summary(approval: Approval | None) -> dict | None:
    """The approval as people read it: reference, kind, validity, threshold, conditions."""
    if approval is None:
        return None
    document = approval.document or {}
    own = approval_threshold(approval)
    conditions = document.get("conditions") or []
    return {
        "id": approval.id,
        "reference": approval.reference,
        "kind": approval.kind.value,
        "kind_words": KINDS.get(approval.kind.value, approval.kind.value),
        "status": approval.status.value,
        "legal_basis": approval.legal_basis,
        "valid_from": approval.valid_from.isoformat(),
        "valid_until": approval.valid_until.isoformat(),
        "threshold": own if own is not None else default_threshold(),
        "threshold_is_default": own is None,
        "conditions": [str(c) for c in conditions if isinstance(c, str)],
        "purpose": str(document.get("purpose_description") or approval.purpose),
        "applicant": str(document.get("applicant") or ""),
        "recipient": _recipient(document.get("recipient")),
        "date_precision": str(document.get("date_precision") or ""),
        "version": approval.version,
    }


def _recipient(value) -> str:
    """The approval's `[recipient]` as one line (the stored document is validated at sync)."""
    if not isinstance(value, dict):
        return ""
    return f"{value.get('name', '')} (org. no. {value.get('org_number', '')}, {value.get('kind', '')})"


def _manifest(ws: Workspace) -> dict:
    """The extract's manifest (data/ is written by the TRE and read-only for the project)."""
    try:
        data = json.loads((ws.data / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _columns(ws: Workspace, table: str) -> list[tuple[str, str]]:
    """(column, type) of one table of the extract, from its Parquet file's schema."""
    import pyarrow.parquet as pq

    path = ws.data / f"{table}.parquet"
    try:
        schema = pq.read_schema(path)
    except (OSError, ValueError):
        return []
    return [(field.name, _type_words(str(field.type))) for field in schema]


def _type_words(arrow_type: str) -> str:
    if arrow_type.startswith("timestamp") or arrow_type.startswith("date"):
        return "date"
    if arrow_type in ("string", "large_string"):
        return "text"
    if arrow_type.startswith(("int", "uint")):
        return "whole number"
    if arrow_type in ("double", "float", "halffloat") or arrow_type.startswith("decimal"):
        return "number"
    if arrow_type == "bool":
        return "yes/no"
    return arrow_type


def _describe(source_name: str, column: str, precision: str) -> tuple[str, str]:
    """(what a column means, its codes) from the registers' declaration of the source."""
    from tre.registers import SOURCES

    if column == "pseudonym":
        return "the person, under this project's own pseudonym (the same person has another in every project)", ""
    if column == "fnr":
        return "the national ID number, for the linkage the approval allows; it must never appear in an output", ""
    source = SOURCES.get("dsf" if source_name == "persons" else source_name)
    if source is None:
        return "", ""
    try:
        declared = source.column(column)
    except KeyError:
        return "", ""
    meaning = declared.description
    if declared.type in ("DATE", "TIMESTAMP") and precision and precision != "day":
        meaning += f" ({precision} precision)"
    return meaning, _codes(declared.codes)


def _codes(codes: str | None) -> str:
    from tre.registers import CODE_LISTS

    if codes is None:
        return ""
    if codes in CODE_LISTS:
        return ", ".join(CODE_LISTS[codes])
    return {"municipality": "municipality numbers (0301 Oslo ...)", "icpc2": "ICPC-2", "icd10": "ICD-10"}.get(
        codes, codes
    )


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def build_project_readme(
    session: Session, project_id: str, ws: Workspace, notebooks: list[str], *, review_url: str = ""
) -> str:
    """The project's README in Markdown (see the module docstring)."""
    project = session.get(Project, project_id)
    approval = approval_summary(project_approval(session, project_id))
    manifest = _manifest(ws)
    period = manifest.get("period") or {}
    precision = str(manifest.get("date_precision") or (approval or {}).get("date_precision") or "")
    threshold = (manifest.get("disclosure") or {}).get("threshold") or (approval or {}).get("threshold")
    lines = [README_MARK, "", f"# {project_id}: {project.title if project else ''}".rstrip(": "), ""]

    lines += ["## The approval", ""]
    if approval is None:
        lines += ["This project has no approval: no server can start, and no data are delivered.", ""]
    else:
        lines += [
            f"- **Reference** {approval['reference']} (approval `{approval['id']}`, version {approval['version']}, "
            f"{approval['status']})",
            f"- **What it allows**: {approval['kind_words']}",
            f"- **Legal basis**: {approval['legal_basis']}",
            f"- **Purpose**: {approval['purpose']}",
        ]
        if approval["applicant"]:
            lines.append(f"- **Applicant**: {approval['applicant']}")
        if approval["recipient"]:
            lines.append(f"- **Recipient** (§ 4-1): {approval['recipient']}")
        lines += [
            f"- **Valid** from {approval['valid_from']} until {approval['valid_until']}; the servers stop then",
            "",
        ]
        if approval["conditions"]:
            lines += ["Conditions:", "", *(f"- {c}" for c in approval["conditions"]), ""]

    lines += ["## The data", ""]
    if not manifest:
        lines += ["No extract has been delivered yet: the TRE's administrators build it (`tre extract build`).", ""]
    else:
        if period:
            lines.append(f"- **Period**: {period.get('from')} to {period.get('to')}")
        if precision:
            lines.append(f"- **Dates**: {PRECISION.get(precision, precision)}")
        if manifest.get("cohort_size") is not None:
            lines.append(f"- **Cohort**: {manifest['cohort_size']:,} persons".replace(",", " "))
        lines.append(f"- **Built** {str(manifest.get('built_at', ''))[:10]} (extract {manifest.get('extract')})")
        end = deadline(session, project_id)
        if end is not None:
            lines.append(
                f"- **Deleted after {end.isoformat()}** (§ 4-11 storage limit, counted from the first linkage): "
                "then data/, work/ and requests not yet released are deleted and the project is locked"
            )
        lines += [
            "",
            "Open it with `con = tre.connect()` (DuckDB, read-only: `con.sql('SELECT ...').df()`), or read a table's "
            "Parquet file with pandas: `pd.read_parquet('../data/persons.parquet')`. Double-click a Parquet file in "
            "`data/` to see its first rows.",
            "",
        ]
        for note in manifest.get("notes") or []:
            lines.append(f"> {note}")
        lines += ["", "### Tables and variables", ""]
        variables = manifest.get("variables") or {}
        for table, rows in sorted((manifest.get("tables") or {}).items()):
            lines += [f"#### `{table}` ({rows:,} rows)".replace(",", " "), ""]
            columns = _columns(ws, table) or [(v, "") for v in ["pseudonym", *variables.get(table, [])]]
            lines += ["| variable | type | meaning | codes |", "|---|---|---|---|"]
            for name, kind in columns:
                meaning, codes = _describe(table, name, precision)
                lines.append(f"| `{_cell(name)}` | {_cell(kind)} | {_cell(meaning)} | {_cell(codes)} |")
            lines.append("")

    lines += [
        "## Outputs: what may leave",
        "",
        "Nothing leaves this project except outputs checked by `tre.safe` and approved by two disclosure officers.",
        "",
        "- Make every table, figure and model with `import tre.safe as safe` (`safe.crosstab`, `safe.pivot_table`, "
        "`safe.hist`, `safe.ols`, `safe.logit`, `safe.custom_output` for a file you made): each is checked, "
        "protected and queued in `requests/queue/`. `safe.finalise()` lists the queue.",
        f"- Every cell counts at least **{threshold or 'the threshold of'} persons**; smaller cells, and cells that "
        "would reveal them through the margins, are hidden (`:`). Merging small categories, wider age bands or "
        "coarser areas shows more.",
        "- Never in an output: rows about single persons, pseudonyms, ID numbers, exact dates of small groups. "
        "A table that would reveal a cell by differencing with what the project has released before fails.",
        "- Downloads, terminals, shell commands (`!`) and the network are closed here: outputs leave through "
        "review only.",
        "",
        "## How to request a release",
        "",
        "1. Run your notebook: `tre.safe` queues each checked output.",
        "2. Open **Output review**"
        + (f" ({review_url})" if review_url else " (the button on the hub's home page)")
        + ", open this project, make a request, tick the outputs that belong together and describe them: "
        "who is counted, what they show, how they relate to earlier outputs.",
        "3. An output whose check failed needs an exception request: say why it should leave anyway.",
        "4. Submit. Two officers review it independently; read and answer their comments in the request's thread.",
        "5. Once released, the outputs are in `released/REQ-n/` here, and the TRE sends the bundle on.",
        "",
    ]
    if notebooks:
        lines += ["## Example notebooks", "", *(f"- `{n}`" for n in notebooks), ""]
    return "\n".join(lines) + "\n"
