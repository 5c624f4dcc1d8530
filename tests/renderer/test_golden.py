"""Every sample renders as its golden files say (``samples/golden/``).

A layout change fails here until ``python samples/golden.py`` rewrites the files and
the diff (text and pictures) is reviewed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import SAMPLES
from tests.renderer.conftest import rendered, sample_records

GOLDEN = SAMPLES / "golden"
REGENERATE = "python samples/golden.py"


def _golden_module():
    spec = importlib.util.spec_from_file_location("samples_golden", SAMPLES / "golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


golden = _golden_module()


def _grey(path: Path):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("L").copy()


@pytest.mark.parametrize("number", sorted(sample_records()))
def test_sample_matches_its_golden_text_and_pictures(number, tmp_path):
    written = golden.artifacts(rendered(number), number, tmp_path)
    text = written[0]
    expected_text = GOLDEN / text.name
    assert expected_text.is_file(), f"no golden files for {number}: run {REGENERATE}"
    assert text.read_text(encoding="utf-8") == expected_text.read_text(encoding="utf-8"), (
        f"{number}: the text layer changed; review and run {REGENERATE}")
    expected_pages = sorted(p.name for p in GOLDEN.glob(f"{number}-*.png"))
    assert sorted(p.name for p in written[1:]) == expected_pages
    for image in written[1:]:
        now, then = _grey(image), _grey(GOLDEN / image.name)
        assert now.size == then.size, image.name
        # Same renderer, same poppler: the same pixels. A little slack for another
        # poppler's anti-aliasing; a moved word or box changes far more than this.
        different = sum(1 for a, b in zip(now.tobytes(), then.tobytes(), strict=True)
                        if abs(a - b) > 48)
        assert different <= now.size[0] * now.size[1] // 500, (
            f"{image.name}: {different} pixels changed; review and run {REGENERATE}")


def test_no_golden_file_is_left_over():
    numbers = set(sample_records())
    stems = {p.name.split(".")[0].rsplit("-", 1)[0] if p.suffix == ".png" else p.stem
             for p in GOLDEN.iterdir() if p.suffix in (".txt", ".png")}
    assert stems == numbers
