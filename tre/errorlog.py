"""The log of internal errors: tracebacks for developers, never an ID number.

`$TRE_HOME/logs/errors.log` (0600, in a 0700 folder). A traceback can quote data (a value a
library could not convert, a file name), so every ID number in it, in any written form, and
every run of 11 digits is redacted before it is written.
"""

from __future__ import annotations

import os
import re
import traceback
from pathlib import Path

from tre import idnumbers
from tre.config import ensure_private_dir
from tre.db import utc_now
from tre.errors import UserError

_ELEVEN_DIGITS = re.compile(r"(?<!\d)\d{11}(?!\d)")


def write(home: Path, error: BaseException) -> str:
    """Append `error`'s traceback to the error log; returns "; the traceback is in PATH" for a
    message, or "" when the log cannot be written."""
    try:
        logs = ensure_private_dir(Path(home) / "logs", "the log directory")
        text = "".join(traceback.format_exception(error))
        path = logs / "errors.log"
        with open(path, "a", encoding="utf-8") as f:
            os.chmod(path, 0o600)
            f.write(f"--- {utc_now().isoformat()}\n{_ELEVEN_DIGITS.sub('<id-number>', idnumbers.redact_text(text))}")
        return f"; the traceback is in {path}"
    except (OSError, UserError):
        return ""
