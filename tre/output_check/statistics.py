"""Statistics in tables tre.safe did not make: recognised by their columns, checked by rule.

A researcher's own CSV (`safe.custom_output`) or a table displayed in a notebook may hold any
statistic. Columns are recognised by their names (English and Norwegian, any case, words
separated by anything) and each kind has its rule:

| kind | columns like | rule |
|---|---|---|
| group size | `n`, `count`, `antall`, `persons`, `patients`, `denominator` | 0 or at least `threshold` |
| extreme | `min`, `max`, `p0`, `p100`, `q0`, `q4`, `range` | one person's value: fails (a person may judge it when `allow_min_max`) |
| percentile | `median`, `p25`, `q1`, `q3`, `pct90`, `percentile_75` | at least `threshold` units beyond it on either side (`n * min(p, 100-p) / 100`), so a median needs `percentile_min_count` |
| mean, spread, sum | `mean`, `avg`, `snitt`, `sd`, `std`, `var`, `sum`, `total` | a group of at least `threshold` |
| correlation | `corr`, `r`, `rho`, `pearson`, `spearman`, `kendall` | a group of at least `threshold` |
| share | `share`, `prop`, `percent`, `pct`, `andel`, `prevalence`, `rate` | with its denominator: the count it stands for (share x n), and the rest of the group, 0 or at least `threshold` |
| per person | `fitted`, `predicted`, `yhat`, `residual`, `resid` | one value per person: fails |
| curve step | `survival`, `surv`, `km`, `cumulative`, `cuminc`, `at_risk`, `events` | every step needs at least `threshold` events and persons at risk |
| model | `or`, `odds_ratio`, `hr`, `rr`, `coef`, `beta`, `estimate`, `ci`, `se`, `p_value` | made outside safe.ols/safe.logit: review |
| bin edge | `edge`, `bin`, `break`, `from`, `to`, `lower`, `upper` | the outer edges can be the smallest and largest value: review |

A rule that needs a group size and finds no group-size column sends the table to review
with the reason; a statistic no rule knows is never passed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tre.output_check.checks import Finding
from tre.output_check.kinds import Check, Status
from tre.output_check.parameters import Parameters

GROUP_SIZE = {"n", "count", "counts", "antall", "number", "num", "persons", "patients", "individuals", "people",
              "units", "obs", "observations", "denominator", "denom", "size", "personer", "pasienter", "nevner",
              "population", "pop", "frequency", "freq"}  # fmt: skip
EXTREMES = {"min", "max", "minimum", "maximum", "lowest", "highest", "largest", "smallest", "range", "maks", "minste",
            "storste", "first", "last"}  # fmt: skip
MEANS = {"mean", "avg", "average", "gjennomsnitt", "snitt", "sd", "std", "stdev", "stddev", "var", "variance",
         "sum", "total", "sem", "median_abs"}  # fmt: skip
CORRELATIONS = {"corr", "correlation", "r", "rho", "pearson", "spearman", "kendall", "tau", "korrelasjon"}
SHARES = {"share", "prop", "proportion", "percent", "percentage", "pct", "pst", "prosent", "andel", "fraction",
          "prevalence", "rate", "ratio", "incidence"}  # fmt: skip
PER_PERSON = {"fitted", "predicted", "prediction", "yhat", "residual", "residuals", "resid", "leverage", "cooks"}
CURVES = {"survival", "surv", "km", "kaplan", "meier", "cumulative", "cuminc", "cum", "hazard", "at_risk", "nrisk",
          "n_risk", "risk", "events", "event", "n_event", "censored", "censor"}  # fmt: skip
MODELS = {"or", "odds", "odds_ratio", "hr", "rr", "irr", "coef", "coefficient", "beta", "estimate", "ci", "lcl",
          "ucl", "se", "p_value", "pvalue", "p", "z", "t", "stderr"}  # fmt: skip
EDGES = {"edge", "edges", "bin", "bins", "break", "breaks", "from", "to", "lower", "upper", "left", "right"}
_PERCENTILE = re.compile(r"^(?:p|q|pct|perc|percentile|pctl|persentil)_?(\d{1,3}(?:\.\d+)?)$")
_QUARTILES = {"q0": 0.0, "q1": 25.0, "q2": 50.0, "q3": 75.0, "q4": 100.0, "median": 50.0, "median_value": 50.0,
              "lq": 25.0, "uq": 75.0, "iqr": 25.0}  # fmt: skip


@dataclass(frozen=True)
class StatisticColumn:
    name: str
    kind: str
    percentile: float | None = None


def classify_column(name) -> StatisticColumn | None:
    """What a column holds, judged by its name (None: no statistic recognised)."""
    text = re.sub(r"[^a-z0-9.]+", "_", str(name).lower()).strip("_")
    tokens = [t for t in text.split("_") if t]
    joined = text.replace(".", "_")
    if not tokens:
        return None
    if any(t in PER_PERSON for t in tokens):
        return StatisticColumn(str(name), "per_person")
    for token in [joined, *tokens]:
        if token in _QUARTILES:
            p = _QUARTILES[token]
            return StatisticColumn(str(name), "extreme" if p in (0.0, 100.0) else "percentile", p)
        match = _PERCENTILE.match(token)
        if match and token not in ("p", "q") and float(match.group(1)) <= 100:
            p = float(match.group(1))
            return StatisticColumn(str(name), "extreme" if p in (0.0, 100.0) else "percentile", p)
    if joined in ("percentile", "quantile", "quartile", "persentil", "kvartil") or tokens[0] in (
        "percentile",
        "quantile",
    ):
        return StatisticColumn(str(name), "percentile", None)
    kinds = (
        ("curve", CURVES),
        ("extreme", EXTREMES),
        ("correlation", CORRELATIONS),
        ("share", SHARES),
        ("mean", MEANS),
        ("model", MODELS),
        ("edge", EDGES),
        ("size", GROUP_SIZE),
    )
    for kind, words in kinds:
        if joined in words or any(t in words for t in tokens):
            return StatisticColumn(str(name), kind)
    return None


def build_statistic_findings(frame: pd.DataFrame, params: Parameters, where: str) -> tuple[list[Finding], set[str]]:
    """Findings for the statistic columns of `frame`, and the columns they account for."""
    numbers = frame.apply(pd.to_numeric, errors="coerce")
    numeric = [c for c in frame.columns if numbers[c].notna().any()]
    columns = {c: classify_column(c) for c in numeric}
    columns = {c: s for c, s in columns.items() if s is not None}
    if not columns:
        return [], set()
    t = params.threshold
    sizes = [c for c, s in columns.items() if s.kind == "size"]
    n = numbers[sizes[0]].to_numpy(dtype=float) if sizes else None
    findings: list[Finding] = []

    def small(values: np.ndarray) -> int:
        values = values[~np.isnan(values)]
        return int(((values > 0) & (values < t)).sum())

    def fail(check: Check, message: str) -> None:
        findings.append(Finding(check, Status.FAIL, f"{where}: {message}"))

    def review(message: str) -> None:
        findings.append(Finding(Check.UNCHECKED_CONTENT, Status.REVIEW, f"{where}: {message}"))

    for column in sizes:
        values = numbers[column].to_numpy(dtype=float)
        if small(values):
            fail(Check.MINIMUM_THRESHOLD, f"column {column!r}: {small(values)} group(s) under the threshold of {t}")
        if np.nanmax(values, initial=0) <= 1 and len(values) >= t:
            fail(Check.PERSON_LEVEL, f"column {column!r} is 1 on every row: the rows are persons, not groups")
    for column, stat in columns.items():
        values = numbers[column].to_numpy(dtype=float)
        if stat.kind == "per_person":
            fail(Check.PERSON_LEVEL, f"column {column!r} holds a value per person (fitted values, residuals)")
        elif stat.kind == "extreme":
            if params.allow_min_max and n is not None and not ((n > 0) & (n < t)).any():
                review(f"column {column!r} is a minimum or maximum: one person's value")
            else:
                fail(Check.DISALLOWED_STATISTIC, f"column {column!r} is a minimum, maximum or extreme percentile: one "
                     "person's value")  # fmt: skip
        elif stat.kind == "percentile":
            if n is None:
                review(f"column {column!r} is a percentile without the size of its groups: a person must check them")
                continue
            share = min(stat.percentile, 100 - stat.percentile) / 100 if stat.percentile is not None else 0.5
            need = max(params.percentile_min_count, int(np.ceil(t / share))) if share > 0 else np.inf
            bad = int(((n > 0) & (n < need)).sum())
            if bad:
                fail(Check.DISALLOWED_STATISTIC, f"column {column!r}: {bad} percentile(s) of groups too small for "
                     f"them (fewer than {t} persons beyond the percentile): a few persons' values")  # fmt: skip
        elif stat.kind in ("mean", "correlation"):
            if n is None:
                review(f"column {column!r} ({stat.kind}) without the size of its groups (an n column): a person must "
                       "check them")  # fmt: skip
            elif small(n):
                fail(Check.MINIMUM_THRESHOLD, f"column {column!r} ({stat.kind}) for {small(n)} group(s) under the "
                     f"threshold of {t}")  # fmt: skip
        elif stat.kind == "share":
            if n is None:
                review(f"column {column!r} is a share without its denominator: a person must check the counts it "
                       "stands for")  # fmt: skip
                continue
            top = np.nanmax(np.abs(values), initial=0)
            fraction = values / 1000 if top > 100 else values / 100 if top > 1.0 else values  # per 1000, %, share
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = fraction / n
            ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
            if len(ratio) >= 2 and np.allclose(ratio, ratio[0], rtol=1e-3):
                # the group sizes are the shares' numerators over one whole: the whole is known,
                # and so is everyone not in a row
                whole = np.round(1 / ratio[0])
                count, rest = n, np.r_[whole - n, whole - np.nansum(n)]
            else:
                count = np.round(fraction * n)
                rest = n - count
            bad = int(((count > 0) & (count < t)).sum() + ((rest > 0) & (rest < t)).sum() + ((n > 0) & (n < t)).sum())
            if bad:
                fail(Check.MINIMUM_THRESHOLD, f"column {column!r}: {bad} share(s) that stand for a count (or a "
                     f"rest of the group) under the threshold of {t}")  # fmt: skip
        elif stat.kind == "curve":
            events = [c for c, s in columns.items() if s.kind == "curve" and "event" in str(c).lower()]
            at_risk = [c for c, s in columns.items() if s.kind == "curve" and "risk" in str(c).lower()]
            if column in events or column in at_risk:
                if small(values):
                    fail(Check.MINIMUM_THRESHOLD, f"column {column!r}: {small(values)} step(s) of fewer than {t} "
                         "events or persons at risk: a step is a person's event")  # fmt: skip
            elif not events:
                review(f"column {column!r} is a survival or cumulative curve without its events per step: each step "
                       f"can be one person's event; publish steps of at least {t} events")  # fmt: skip
        elif stat.kind == "model":
            review(f"column {column!r} is a model's output made outside safe.ols/safe.logit: a person must check "
                   "the groups behind it")  # fmt: skip
        elif stat.kind == "edge":
            review(f"column {column!r} holds bin edges: the outer edges can show the smallest and largest value")
    return findings, set(columns)
