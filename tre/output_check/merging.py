"""NPR-style merging: small categories go into an "other" category, so nobody is dropped.

Along each dimension asked for, every category whose total (over the other dimensions) is
above zero but under the threshold is merged into the `other_label` category; while "other"
is itself under the threshold, the next smallest category joins it. Totals are kept exactly:
merging only moves units between categories of the same dimension.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from tre.output_check.parameters import Parameters
from tre.output_check.tables import Table, TableError, extend_sum, rebuild_table

MERGEABLE = ("count", "sum", "mean", "rate")


def plan_merges(table: Table, params: Parameters, dimensions: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Per dimension, the categories to merge into "other" (empty when none need to be)."""
    plan: dict[str, list[str]] = {}
    for dim in dimensions or table.dimensions:
        axis = _axis(table, dim)
        margin = _margin(table.unit_counts, axis)
        cats = table.categories[axis]
        small = [i for i in range(len(cats)) if 0 < margin[i] < params.threshold]
        if not small:
            continue
        merged = set(small)
        if params.other_label in cats:
            merged.add(cats.index(params.other_label))
        rest = sorted((i for i in range(len(cats)) if i not in merged and margin[i] > 0), key=lambda i: (margin[i], i))
        while 0 < sum(margin[i] for i in merged) < params.threshold and rest:
            merged.add(rest.pop(0))
        plan[dim] = [cats[i] for i in sorted(merged)]
    return plan


def build_merged_table(table: Table, params: Parameters, plan: dict[str, list[str]]) -> Table:
    """`table` with each dimension's planned categories merged into `params.other_label`."""
    if table.statistic not in MERGEABLE:
        raise TableError(f"a table of {table.statistic} values cannot be merged: merge before computing it")
    if table.source is not None:  # built from records: build it again, persons counted once
        relabel = {dim: {c: params.other_label for c in merged} for dim, merged in plan.items() if merged}
        categories = [
            [c for c in cats if c not in plan.get(dim, ())] + ([params.other_label] if plan.get(dim) else [])
            for dim, cats in zip(table.dimensions, table.categories, strict=True)
        ]
        categories = [list(dict.fromkeys(cats)) for cats in categories]
        return rebuild_table(table, relabel, categories)
    for dim, merged in plan.items():
        if merged:
            table = _merge_axis(table, _axis(table, dim), merged, params.other_label)
    return table


def _merge_axis(table: Table, axis: int, merged: list[str], label: str) -> Table:
    cats = table.categories[axis]
    keep = [i for i, c in enumerate(cats) if c not in merged]
    gone = [i for i, c in enumerate(cats) if c in merged]
    new_cats = tuple(cats[i] for i in keep) + (label,)

    def regroup(ext: np.ndarray | None, how=np.sum) -> np.ndarray | None:
        if ext is None:
            return None
        inner = ext[tuple(slice(0, n - 1) for n in ext.shape)]
        kept = np.take(inner, keep, axis=axis)
        other = how(np.take(inner, gone, axis=axis), axis=axis, keepdims=True)
        return extend_sum(np.concatenate([kept, other], axis=axis))

    fields = {
        "count": regroup(table.count),
        "total": regroup(table.total),
        "negative": regroup(table.negative),
        "missing": regroup(table.missing),
        "denominator": regroup(table.denominator),
    }
    if table.top is not None:
        m = table.top.shape[-1]
        inner = table.top[tuple(slice(0, n - 1) for n in table.count.shape)]
        kept = np.take(inner, keep, axis=axis)
        pooled = np.moveaxis(np.take(inner, gone, axis=axis), axis, -2)
        pooled = pooled.reshape(pooled.shape[:-2] + (-1,))
        other = -np.sort(-np.nan_to_num(pooled, nan=-np.inf), axis=-1)[..., :m]
        other = np.where(np.isinf(other), np.nan, other)
        other = np.expand_dims(other, axis)
        inner_top = np.concatenate([kept, other], axis=axis)
        fields["top"] = _extend_top(inner_top)
    categories = tuple(new_cats if a == axis else c for a, c in enumerate(table.categories))
    value = _recompute_value(table.statistic, fields)
    return replace(table, categories=categories, value=value, **fields)


def _extend_top(inner_top: np.ndarray) -> np.ndarray:
    """The m largest contributions of every extended cell from those of the interior cells."""
    ndim = inner_top.ndim - 1
    m = inner_top.shape[-1]
    shape = tuple(n + 1 for n in inner_top.shape[:-1])
    out = np.full(shape + (m,), np.nan)
    for pattern in itertools.product((False, True), repeat=ndim):
        block = inner_top
        for axis in reversed([a for a, t in enumerate(pattern) if t]):
            block = np.moveaxis(block, axis, -2)
            block = block.reshape(block.shape[:-2] + (-1,))
            block = np.expand_dims(block, axis)
        block = -np.sort(-np.nan_to_num(block, nan=-np.inf), axis=-1)[..., :m]
        if block.shape[-1] < m:
            block = np.concatenate([block, np.full(block.shape[:-1] + (m - block.shape[-1],), -np.inf)], axis=-1)
        where = tuple(slice(-1, None) if t else slice(0, -1) for t in pattern)
        out[where] = np.where(np.isinf(block), np.nan, block)
    return out


def _recompute_value(statistic: str, fields: dict) -> np.ndarray:
    count = fields["count"]
    with np.errstate(divide="ignore", invalid="ignore"):
        if statistic == "count":
            return count.astype(float)
        if statistic == "sum":
            return fields["total"]
        if statistic == "rate":
            den = fields["denominator"]
            return np.where(den > 0, count / den, np.nan)
        present = count - fields["missing"]
        return np.where(present > 0, fields["total"] / present, np.nan)


def _axis(table: Table, dim: str) -> int:
    if dim not in table.dimensions:
        raise TableError(f"cannot merge along {dim!r}: the table's dimensions are {', '.join(table.dimensions)}")
    return table.dimensions.index(dim)


def _margin(count: np.ndarray, axis: int) -> np.ndarray:
    """Units per category of `axis`, over everything else (the margin row/column)."""
    index = [slice(-1, None)] * count.ndim
    index[axis] = slice(0, -1)
    return count[tuple(index)].ravel()
