"""The vocabulary of output checking: kinds of output, statuses, and the checks' names.

Checks are named as ACRO names them (`MinimumThresholdCheck`, `NKCheck`, `PPercentCheck`,
`PresenceOfZeroCheck`, `MinimumDoFCheck`, `MissingCheck`) so checkers recognise them; the
others are tre's own. The string values are stable: they are written into reports.
"""

from enum import StrEnum


class OutputKind(StrEnum):
    FREQUENCY = "frequency"  # counts of units
    MAGNITUDE = "magnitude"  # sums or means of contributors' values
    RATE = "rate"  # counts per `rate_per` of a denominator
    REGRESSION = "regression"  # coefficients, standard errors, residual dof
    FIGURE = "figure"  # an image with the table it was drawn from
    NOTEBOOK = "notebook"  # a whole notebook with its outputs
    FILE = "file"  # anything else: checked for leaks, then by people


class Status(StrEnum):
    """The verdict on a whole output."""

    PASS = "pass"  # every check passes on the values as they are: nothing was hidden or changed
    PROTECTED = "protected"  # safe only because cells were suppressed, rounded or merged
    REVIEW = "review"  # no rule fails, but a person must look (images, missing values, ...)
    FAIL = "fail"  # something disclosive would be published


# From least to most serious: an output's status is the most serious of its parts'.
SEVERITY = (Status.PASS, Status.PROTECTED, Status.REVIEW, Status.FAIL)


class CellStatus(StrEnum):
    """What happened to one cell on its way to publication."""

    OK = "ok"  # published as it is
    PRIMARY = "primary"  # failed a check itself: suppressed (or would be)
    SECONDARY = "secondary"  # suppressed to protect a primary cell
    MERGED = "merged"  # merged into the "other" category
    ROUNDED = "rounded"  # published rounded


class Check(StrEnum):
    MINIMUM_THRESHOLD = "MinimumThresholdCheck"
    PRESENCE_OF_ZERO = "PresenceOfZeroCheck"
    CLASS_DISCLOSURE = "ClassDisclosureCheck"
    NK = "NKCheck"
    P_PERCENT = "PPercentCheck"
    MISSING = "MissingCheck"
    NEGATIVE = "NegativeValuesCheck"
    MINIMUM_DOF = "MinimumDoFCheck"
    DISALLOWED_STATISTIC = "DisallowedStatisticCheck"
    EXACT_DATE = "ExactDateCheck"
    PSEUDONYM = "PseudonymCheck"
    IDENTITY_NUMBER = "IdentityNumberCheck"
    PERSON_LEVEL = "PersonLevelCheck"
    DIFFERENCING = "DifferencingCheck"
    DENOMINATOR = "DenominatorCheck"
    SECONDARY_PROTECTION = "SecondaryProtectionCheck"
    ROUNDING_RECOVERY = "RoundingRecoveryCheck"
    UNCHECKED_IMAGE = "UncheckedImageCheck"
    UNCHECKED_CONTENT = "UncheckedContentCheck"
    UNIT_COUNT = "UnitCheck"


# What a failed check means, in plain words, for the HTML report and the text summary.
EXPLANATIONS: dict[Check, str] = {
    Check.MINIMUM_THRESHOLD: "fewer units than the threshold: the group is small enough to single people out",
    Check.PRESENCE_OF_ZERO: "a zero cell: it tells that nobody in the group has this value",
    Check.CLASS_DISCLOSURE: "everyone in this row or column falls in one category, so this zero tells "
    "everything about the group",
    Check.NK: "a few contributors make up almost all of the cell's total (dominance)",
    Check.P_PERCENT: "the largest contributor could be estimated closely by the second largest",
    Check.MISSING: "some contributors' values are missing and were left out",
    Check.NEGATIVE: "negative values: dominance rules are not defined for them",
    Check.MINIMUM_DOF: "too few residual degrees of freedom: the model is close to a list of its data",
    Check.DISALLOWED_STATISTIC: "a statistic that is one person's value (minimum, maximum, or a percentile "
    "of a small group)",
    Check.EXACT_DATE: "an exact date for a small group: publish weeks, months or tertials",
    Check.PSEUDONYM: "a value is one of the project's pseudonyms",
    Check.IDENTITY_NUMBER: "a value is shaped like a national ID number (FNR or D-number)",
    Check.PERSON_LEVEL: "the table lists persons, not groups",
    Check.DIFFERENCING: "combined with earlier releases, this output reveals a small group (or a suppressed value)",
    Check.DENOMINATOR: "the denominator of the rate is under the threshold",
    Check.SECONDARY_PROTECTION: "a suppressed cell can be recovered or narrowed from the published values",
    Check.ROUNDING_RECOVERY: "recoverable from the rounded margins: the rounded values published around this "
    "small count pin it down to one number",
    Check.UNCHECKED_IMAGE: "an image without its underlying data: a person must check it",
    Check.UNCHECKED_CONTENT: "content no rule can check: a person must look at it",
    Check.UNIT_COUNT: "the persons behind the records are not known: records were counted, a person must check "
    "that no cell is a few persons' records",
}

# Checks a suppression remedies: the cell is primary and may be protected.
SUPPRESSIBLE = frozenset(
    {
        Check.MINIMUM_THRESHOLD,
        Check.PRESENCE_OF_ZERO,
        Check.CLASS_DISCLOSURE,
        Check.NK,
        Check.P_PERCENT,
        Check.EXACT_DATE,
        Check.DIFFERENCING,
        Check.DENOMINATOR,
        Check.DISALLOWED_STATISTIC,
        Check.ROUNDING_RECOVERY,
    }
)

# Checks that only ask for a person's look.
REVIEW_ONLY = frozenset({Check.MISSING, Check.NEGATIVE, Check.UNCHECKED_IMAGE, Check.UNCHECKED_CONTENT})

# Where a label shows a margin in reports, CLI input and released tables.
TOTAL = "Total"
