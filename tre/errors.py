"""The one error hierarchy of `tre`.

A `UserError` is something the person at the keyboard can fix: the CLI prints its message
on one line, without a traceback, and exits with its `exit_code`. Messages name the rule and
what was expected. They never contain an FNR, a pseudonym, a key or a health value.
"""


class TREError(Exception):
    """Base of every error `tre` raises on purpose."""


class UserError(TREError):
    """Shown to the user as one line; the process exits with `exit_code`."""

    exit_code = 1


class UsageError(UserError):
    """Wrong command-line arguments."""

    exit_code = 2


class ConfigError(UserError):
    """A setting, the settings file, or a directory the settings name is unusable."""

    exit_code = 3


class StoreError(UserError):
    """The metadata store is missing, not migrated, or unreadable."""

    exit_code = 4


class PermissionDenied(UserError):
    """The acting user lacks the role or membership an action needs."""

    exit_code = 5


class NotFound(UserError):
    """A named user, project, approval, request or file does not exist."""

    exit_code = 6


class DeliveryError(UserError):
    """A register delivery cannot be ingested; nothing of it was stored."""

    exit_code = 7


class ApprovalError(UserError):
    """An approval record is invalid, expired, or does not allow the action."""

    exit_code = 8


class InvalidTransition(UserError):
    """A workflow step that the state machine or a policy does not allow."""

    exit_code = 9


class DisclosureRisk(UserError):
    """An output would disclose information about individuals."""

    exit_code = 10


class IntegrityError(UserError):
    """Stored data failed an integrity check (audit chain, hashes, keys)."""

    exit_code = 11


class UnsafeFile(UserError):
    """A file or folder a project wrote that privileged code refuses: a link, a FIFO, a device,
    a hard link, one too large, of a type that may not leave, or with a name outside the rule."""

    exit_code = 12

    def __init__(self, where: str, rule: str):
        self.where, self.rule = where, rule
        super().__init__(f"{where}: {rule}")


class Problems(UserError):
    """Validation that collects every problem and raises once.

    `problems` is a list of one-line strings; the message is their count and the first ones.
    """

    def __init__(self, what, problems):
        self.problems = list(problems)
        self.what = what
        shown = "; ".join(self.problems[:3])
        more = f" (and {len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
        super().__init__(f"{what}: {len(self.problems)} problem(s): {shown}{more}")


def did_you_mean(name: str, known) -> str:
    """ "; did you mean reidar?" when a known name is close to a mistyped one, else ""."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""
