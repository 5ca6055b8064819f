"""Readable ASCII tables for spec tests: a header row and rows separated by `|`."""


def parse_table(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.strip().splitlines() if line.strip() and not set(line.strip()) <= set("-|+ ")]
    header = [h.strip() for h in lines[0].split("|")]
    return [dict(zip(header, (c.strip() for c in line.split("|")), strict=True)) for line in lines[1:]]
