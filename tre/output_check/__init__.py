"""Output checking: disclosure-control rules, remedies, differencing and check reports.

Pure functions over pandas and numpy data; the CLI (`tre check ...`) and the researchers'
API (`tre.safe`) are the adapters. This package never imports `tre.linkage`.

Public surface:
- parameters: `load_parameters`, `Parameters`
- tables: `build_table`, `Table`, `TableError`
- checks: `build_cell_findings`, `Finding`; leaks: `is_identity_number`, `is_person_level`
- remedies: `build_primary_mask`, `build_secondary_mask` (hypercube), `plan_merges`,
  `build_merged_table`, `round_to_base`, `midpoint_round`, `build_rounded_protection`
- the LP audit: `build_attacker_intervals`, `find_under_protected`; of rounded tables:
  `build_rounding_audit`
- linked tables (dimensions whose codes nest: municipality ⊂ county ⊂ country, nested age
  bands): `Hierarchy`, `protect_linked` (consistent secondary suppression, audited),
  `build_linked_intervals` (the attacker's intervals over all of them together)
- differencing: `PublishedTable`, `find_differences`; released tables (the layout the
  review workflow writes): `read_released_tables`, `write_published_table`
- reports: `build_table_report`, `build_regression_report`, `build_frame_findings`,
  `build_notebook_report`, `build_file_report`, `Report`, `render_html`
- the project's queue (what `tre.safe` writes): `write_queued_output`, `list_queue`,
  `build_queued_output_report`
"""

from tre.output_check.assessments import (
    METHODS,
    build_frame_findings,
    build_regression_report,
    build_table_report,
    combine_status,
)
from tre.output_check.checks import Finding, build_cell_findings
from tre.output_check.differencing import PublishedTable, find_differences
from tre.output_check.intervals import build_attacker_intervals, build_rounding_audit, find_under_protected
from tre.output_check.kinds import TOTAL, CellStatus, Check, OutputKind, Status
from tre.output_check.leaks import is_identity_number, is_person_level
from tre.output_check.linked import Hierarchy, build_linked_intervals, protect_linked
from tre.output_check.merging import build_merged_table, plan_merges
from tre.output_check.notebooks import build_file_report, build_notebook_report
from tre.output_check.parameters import Parameters, load_parameters
from tre.output_check.queue import build_queued_output_report, list_queue, write_queued_output
from tre.output_check.reports import Report, render_html
from tre.output_check.rounding import build_rounded_protection, midpoint_round, round_to_base
from tre.output_check.sources import read_released_tables, write_published_table
from tre.output_check.suppression import build_primary_mask, build_secondary_mask
from tre.output_check.tables import Table, TableError, build_table

__all__ = [
    "METHODS",
    "TOTAL",
    "CellStatus",
    "Check",
    "Finding",
    "Hierarchy",
    "OutputKind",
    "Parameters",
    "PublishedTable",
    "Report",
    "Status",
    "Table",
    "TableError",
    "build_attacker_intervals",
    "build_file_report",
    "build_notebook_report",
    "build_queued_output_report",
    "list_queue",
    "read_released_tables",
    "write_published_table",
    "write_queued_output",
    "build_cell_findings",
    "build_frame_findings",
    "build_linked_intervals",
    "build_merged_table",
    "build_primary_mask",
    "build_regression_report",
    "build_rounded_protection",
    "build_rounding_audit",
    "build_secondary_mask",
    "build_table",
    "build_table_report",
    "combine_status",
    "find_differences",
    "find_under_protected",
    "is_identity_number",
    "is_person_level",
    "load_parameters",
    "midpoint_round",
    "plan_merges",
    "protect_linked",
    "render_html",
    "round_to_base",
]
