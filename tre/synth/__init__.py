"""Synthetic national register data: DSF, KUHR, IPLOS, NPR, SES, opt-out services, reservations.

`generate(out_dir, persons=..., years=..., seed=...)` writes one delivery per source and year
as the contract in `tre.registers` describes it, with manifests and `dirt.json`, the ground
truth of the deliberate dirt. Only synthetic ID numbers (month + 80) are ever made.
"""

from tre.synth.dirt import DirtKind, dirt_kinds
from tre.synth.frame import ARROW_TYPES, arrow_schema
from tre.synth.generation import DeliverySummary, Summary, check_arguments, generate
from tre.synth.writer import FORMATS, GROUND_TRUTH

__all__ = [
    "ARROW_TYPES",
    "FORMATS",
    "GROUND_TRUTH",
    "DeliverySummary",
    "DirtKind",
    "Summary",
    "arrow_schema",
    "check_arguments",
    "dirt_kinds",
    "generate",
]
