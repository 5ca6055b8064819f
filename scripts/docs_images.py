"""README's pictures, from the screenshots the browser tests take of real pages.

    .venv/bin/python -m pytest tests/e2e/test_researcher_hub.py tests/e2e/test_review_browser.py
    .venv/bin/python scripts/docs_images.py

Takes the researcher's notebook in JupyterLab and the officer's view of an output (its whole
check report, in the review page) from test-artifacts/, crops and scales them, and writes them
to docs/images/ with a palette of 64 colours (small PNGs that read well: screenshots are flat).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
# target: (screenshot, crop box (left, top, right, bottom) or None, width)
IMAGES = {
    "researcher.png": ("researcher-4-notebook.png", (0, 0, 1280, 700), 960),
    "officer.png": ("review-4-officer-table.png", (0, 0, 1200, 1240), 820),
}


def build(name: str, source: str, box, width: int) -> Path:
    image = Image.open(ARTIFACTS / source).convert("RGB")
    if box is not None:
        image = image.crop((box[0], box[1], min(box[2], image.width), min(box[3], image.height)))
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    target = REPO / "docs" / "images" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(target, optimize=True)
    return target


def main() -> int:
    missing = [s for s, _, _ in IMAGES.values() if not (ARTIFACTS / s).is_file()]
    if missing:
        print(f"run the browser tests first: no {', '.join(missing)} in {ARTIFACTS}", file=sys.stderr)
        return 1
    for name, (source, box, width) in IMAGES.items():
        target = build(name, source, box, width)
        print(f"{target.relative_to(REPO)}: {target.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
