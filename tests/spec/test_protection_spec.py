"""Spec tests: a table of counts in, the table as it would be published out.

`P` is a cell suppressed because it fails a check itself, `S` one suppressed to protect
another; margins (`Total`) are computed from the true cells and kept wherever possible.
"""

from dataclasses import dataclass, field

import pytest
from spec_grids import normalise, parse_cells, render_published

from tre.output_check import build_table, build_table_report, load_parameters

MUNICIPALITIES = r"""
kommune \ age | 0-17 | 18-66 | 67-79 | 80+
0301          | 14   | 230   | 41    | 7
1103          | 9    | 160   | 3     | 2
1151          | 0    | 6     | 4     | 1
4601          | 22   | 310   | 52    | 18
"""

SIX_ONES = r"""
kommune \ sex | F | M | X
0301          | 1 | 1 | 1
1103          | 1 | 1 | 1
"""


@dataclass
class Spec:
    name: str
    cells: str
    published: str
    method: str | None = "suppress"
    parameters: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    status: str = "protected"  # cells were hidden, rounded or merged


SPECS = [
    Spec(
        "a small cell is hidden with a partner in its row and in its column",
        r"""
        kommune \ sex | F  | M  | X
        0301          | 1  | 20 | 30
        1103          | 25 | 2  | 40
        4601          | 33 | 27 | 12
        """,
        r"""
        kommune \ sex | F  | M  | X  | Total
        0301          | P  | S  | 30 | 51
        1103          | S  | P  | 40 | 67
        4601          | 33 | 27 | 12 | 72
        Total         | 59 | 49 | 82 | 190
        """,
    ),
    Spec(
        "one dimension: the smallest other category keeps the total from giving the small one away",
        """
        diagnosis | n
        E11       | 40
        E10       | 3
        O24       | 12
        E13       | 25
        """,
        """
        diagnosis | n
        E11       | 40
        E10       | P
        O24       | S
        E13       | 25
        Total     | 80
        """,
    ),
    Spec(
        "four small cells in a block are not enough for each other: a row of larger ones joins them",
        MUNICIPALITIES,
        r"""
        kommune \ age | 0-17 | 18-66 | 67-79 | 80+ | Total
        0301          | 14   | 230   | S     | S   | 292
        1103          | 9    | 160   | P     | P   | 174
        1151          | 0    | 6     | P     | P   | 11
        4601          | 22   | 310   | 52    | 18  | 402
        Total         | 45   | 706   | 100   | 28  | 879
        """,
    ),
    Spec(
        "an approval's threshold of 10: a row whose every cell is small needs its own total hidden",
        MUNICIPALITIES,
        r"""
        kommune \ age | 0-17 | 18-66 | 67-79 | 80+ | Total
        0301          | S    | S     | S     | P   | 292
        1103          | P    | 160   | P     | P   | 174
        1151          | 0    | P     | P     | P   | S
        4601          | S    | 310   | 52    | S   | S
        Total         | 45   | 706   | 100   | 28  | 879
        """,
        parameters={"threshold": 10},
    ),
    Spec(
        "zeros declared disclosive are protected like small counts",
        MUNICIPALITIES,
        r"""
        kommune \ age | 0-17 | 18-66 | 67-79 | 80+ | Total
        0301          | 14   | 230   | S     | S   | 292
        1103          | S    | S     | P     | P   | 174
        1151          | P    | S     | P     | P   | 11
        4601          | 22   | 310   | 52    | 18  | 402
        Total         | 45   | 706   | 100   | 28  | 879
        """,
        parameters={"zeros_are_disclosive": True},
    ),
    Spec(
        "class disclosure: everyone in 0301 is F, so the zero beside it is protected",
        r"""
        kommune \ sex | F  | M
        0301          | 12 | 0
        1103          | 25 | 9
        4601          | 33 | 27
        """,
        r"""
        kommune \ sex | F  | M  | Total
        0301          | S  | P  | 12
        1103          | S  | S  | 34
        4601          | 33 | 27 | 60
        Total         | 70 | 36 | 106
        """,
    ),
    Spec(
        "NPR merging: small diagnoses go into Other and the total is kept",
        """
        diagnosis | n
        E11       | 40
        E10       | 3
        O24       | 2
        E13       | 25
        E14       | 1
        """,
        """
        diagnosis | n
        E11       | 40
        E13       | 25
        Other     | 6
        Total     | 71
        """,
        method="merge",
    ),
    Spec(
        "NPR merging: a small municipality and, since Other is still small, the next smallest",
        r"""
        kommune \ sex | F  | M
        0301          | 40 | 38
        1144          | 2  | 1
        1151          | 6  | 5
        4601          | 33 | 27
        """,
        r"""
        kommune \ sex | F  | M  | Total
        0301          | 40 | 38 | 78
        4601          | 33 | 27 | 60
        Other         | 8  | 6  | 14
        Total         | 81 | 71 | 152
        """,
        method="merge",
        options={"merge_dimensions": ["kommune"]},
    ),
    Spec(
        "rounding to base 5 after suppression, margins from the true cells",
        MUNICIPALITIES,
        r"""
        kommune \ age | 0-17 | 18-66 | 67-79 | 80+ | Total
        0301          | 15   | 230   | S     | S   | 290
        1103          | 10   | 160   | P     | P   | 175
        1151          | 0    | 5     | P     | P   | 10
        4601          | 20   | 310   | 50    | 20  | 400
        Total         | 45   | 705   | 100   | 30  | 880
        """,
        method="round",
    ),
    Spec(
        "OpenSAFELY midpoint-6 rounding: 1-6 shows as 3, zero stays zero, nothing hidden",
        MUNICIPALITIES,
        r"""
        kommune \ age | 0-17 | 18-66 | 67-79 | 80+ | Total
        0301          | 15   | 231   | 39    | 9   | 291
        1103          | 9    | 159   | 3     | 3   | 171
        1151          | 0    | 3     | 3     | 3   | 9
        4601          | 21   | 309   | 51    | 15  | 399
        Total         | 45   | 705   | 99    | 27  | 879
        """,
        method="midpoint6",
    ),
    Spec(
        "midpoint-6: six counts of 1 under a grand total shown as 3 would each be exactly 1: "
        "the rounding audit suppresses and protects enough of them",
        SIX_ONES,
        r"""
        kommune \ sex | F | M | X | Total
        0301          | P | P | 3 | 3
        1103          | P | P | 3 | 3
        Total         | 3 | 3 | 3 | 3
        """,
        method="midpoint6",
        parameters={"threshold": 2},
    ),
    Spec(
        "midpoint-6 with NPR's threshold: the small margins that pin the cells down are protected too",
        SIX_ONES,
        r"""
        kommune \ sex | F | M | X | Total
        0301          | P | 3 | 3 | P
        1103          | 3 | 3 | 3 | 3
        Total         | P | 3 | 3 | S
        """,
        method="midpoint6",
    ),
    Spec(
        "checked without a remedy: nothing changes and the table fails",
        MUNICIPALITIES,
        r"""
        kommune \ age | 0-17 | 18-66 | 67-79 | 80+ | Total
        0301          | 14   | 230   | 41    | 7   | 292
        1103          | 9    | 160   | 3     | 2   | 174
        1151          | 0    | 6     | 4     | 1   | 11
        4601          | 22   | 310   | 52    | 18  | 402
        Total         | 45   | 706   | 100   | 28  | 879
        """,
        method=None,
        status="fail",
    ),
]


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_protection(spec: Spec):
    records, dimensions = parse_cells(spec.cells)
    table = build_table(records, dimensions, count="n")
    params = load_parameters(**spec.parameters)
    report = build_table_report(table, params, method=spec.method, **spec.options).as_dict()
    assert render_published(report) == normalise(spec.published)
    assert report["status"] == spec.status
