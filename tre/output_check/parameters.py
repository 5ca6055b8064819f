"""The disclosure-control parameters: `parameters.toml` in this package, plus overrides.

`load_parameters()` reads the versioned file; `Parameters.with_overrides(threshold=10)` is how
an approval's own threshold comes in. Every report records `Parameters.as_dict()`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tre.errors import ConfigError

PARAMETERS_FILE = Path(__file__).with_name("parameters.toml")


@dataclass(frozen=True)
class Parameters:
    version: str
    threshold: int
    zeros_are_disclosive: bool
    class_disclosure: bool
    protection_factor: float
    nk_n: int
    nk_k: float
    p_ratio: float
    magnitude_protection: float
    min_dof: int
    allow_min_max: bool
    percentile_min_count: int
    exact_date_min_count: int
    person_level_rows: int
    round_base: int
    midpoint_base: int
    other_label: str
    rate_per: int

    @property
    def protection_width(self) -> float:
        """How wide an attacker's interval for a suppressed count must at least be."""
        return self.protection_factor * self.threshold

    def with_overrides(self, **values) -> Parameters:
        """These parameters with some values replaced (None leaves a value as it is)."""
        given = {k: v for k, v in values.items() if v is not None}
        unknown = sorted(set(given) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown output-check parameter(s): {', '.join(unknown)}")
        return _validated(dataclasses.replace(self, **given))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_parameters(path: Path = PARAMETERS_FILE, **overrides) -> Parameters:
    """The parameters from the versioned TOML file, with `overrides` applied."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read output-check parameters {path}: {e}") from None
    names = {f.name for f in dataclasses.fields(Parameters)}
    problems = [f"unknown parameter {k!r}" for k in sorted(set(data) - names)]
    problems += [f"missing parameter {k!r}" for k in sorted(names - set(data))]
    if problems:
        raise ConfigError(f"output-check parameters {path}: {'; '.join(problems)}")
    return _validated(Parameters(**data)).with_overrides(**overrides)


def _validated(p: Parameters) -> Parameters:
    problems = []
    for f in dataclasses.fields(p):
        value = getattr(p, f.name)
        expected = {"int": int, "float": (int, float), "bool": bool, "str": str}[f.type]
        if not isinstance(value, expected) or (f.type != "bool" and isinstance(value, bool)):
            problems.append(f"{f.name} must be {f.type}, got {value!r}")
    if not problems:
        if p.threshold < 1:
            problems.append(f"threshold must be at least 1, got {p.threshold}")
        if not 0 < p.nk_k <= 1:
            problems.append(f"nk_k must be in (0, 1], got {p.nk_k}")
        if p.nk_n < 1:
            problems.append(f"nk_n must be at least 1, got {p.nk_n}")
        if not 0 <= p.p_ratio < 1:
            problems.append(f"p_ratio must be in [0, 1), got {p.p_ratio}")
        if p.round_base < 1 or p.midpoint_base < 2:
            problems.append("round_base must be at least 1 and midpoint_base at least 2")
        if p.protection_factor <= 0 or p.magnitude_protection <= 0:
            problems.append("protection_factor and magnitude_protection must be positive")
    if problems:
        raise ConfigError(f"output-check parameters: {'; '.join(problems)}")
    return p
