"""Moved to `tre.idnumbers`, the one recogniser of ID numbers (the output checker, which runs in
a project zone and never imports `tre.linkage`, uses it too). Kept so that older imports work."""

from tre.idnumbers import (  # noqa: F401
    CLASSIFY_CHUNK,
    KINDS,
    REASONS,
    RULES,
    SEXES,
    CheckRule,
    IdInfo,
    IdKind,
    check_digits,
    classify_ascii,
    generate_synthetic,
    is_valid,
    parse,
    validate_array,
    validate_ascii,
)
