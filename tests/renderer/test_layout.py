"""The layout, judged from outside: no word box from poppler overlaps another, and zbar
reads exactly one payment code on page 1, the record's, on every sample and on thousands
of generated shapes. Plus the frames and the flow that make a collision impossible.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from reportlab.lib.units import mm

from invoicer.billing.models import PaymentMethod
from invoicer.renderer import LayoutError, render
from invoicer.renderer.brand import brand_for
from invoicer.renderer.layout import Box, Frame, PageAreas, Row, flow
from tests.renderer.conftest import (
    overlapping,
    page_one_codes,
    rendered,
    sample_records,
    word_boxes,
)
from tests.renderer.shapes import shapes

#: Generated shapes checked by the suite (more: ``python bench/layout.py --shapes N``).
SHAPES = int(os.environ.get("INVOICER_LAYOUT_SHAPES", "2000"))


def problems(pdf: bytes, record, *, scan_unpayable: bool = True) -> list[str]:
    """What is wrong with a rendered invoice, as a person with poppler and zbar sees it.

    ``scan_unpayable=False`` skips zbar on invoices that draw no code (the samples
    prove the empty case; the generated shapes spend the time on payable ones).
    """
    found = []
    for page, words in enumerate(word_boxes(pdf), start=1):
        for a, b in overlapping(words)[:3]:
            found.append(f"page {page}: {a[4]!r} {a[:4]} overlaps {b[4]!r} {b[:4]}")
    payable = record.payment.method is PaymentMethod.barcode
    if not payable and not scan_unpayable:
        return found
    codes = page_one_codes(pdf)
    if payable:
        if [text for _, text in codes] != [record.payment.code]:
            found.append(f"page 1 codes {codes!r}, expected exactly {record.payment.code!r}")
    elif codes:
        found.append(f"page 1 codes {codes!r} on an invoice with nothing to scan")
    return found


@pytest.mark.parametrize("number", sorted(sample_records()))
@pytest.mark.parametrize("detail", ["full", "summary"])
def test_every_sample_has_no_colliding_words_and_exactly_one_code(number, detail):
    record = sample_records()[number]
    assert problems(rendered(number, detail), record) == []


def test_generated_shapes_never_collide(tmp_path):
    """``SHAPES`` seeded shapes (0–13 history, 0–60 calls, 0–10 payments and
    adjustments, 1–5 services, long texts, every locale, method, kind and detail).

    Rendering happens in the Hypothesis loop (a LayoutError fails there and shrinks);
    poppler and zbar, the slow part, run on two threads beside it, and every shape
    that fails is kept as JSON in the test's tmp_path.
    """
    import json

    pool = ThreadPoolExecutor(max_workers=2)
    checks = []

    @settings(max_examples=SHAPES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(shapes())
    def render_shape(shape):
        record = shape.record()
        pdf = render(record, shape.options)
        checks.append((shape, pool.submit(problems, pdf, record, scan_unpayable=False)))

    try:
        render_shape()
    finally:
        pool.shutdown(wait=True)
    failed = []
    for shape, future in checks:
        found = future.result()
        if found:
            path = tmp_path / f"{shape.data['invoice']['number']}.json"
            path.write_text(json.dumps({"data": shape.data, "detail": shape.options.detail},
                                       ensure_ascii=False))
            failed.append(f"{shape.label}: {found[:2]} ({path})")
    assert len(checks) >= min(SHAPES, 2000) or SHAPES < 2000
    assert not failed, f"{len(failed)} of {len(checks)} shapes: " + "\n".join(failed[:10])


# --- the frames refuse, loudly ----------------------------------------------------------


def _frame(box: Box) -> Frame:
    from reportlab.pdfgen.canvas import Canvas

    from invoicer.renderer import fonts

    fonts.register()
    return Frame(Canvas(None), brand_for("oi"), False, box, "the slot", "XX-1")


def test_text_that_would_leave_its_frame_raises_with_the_invoice_and_both_boxes():
    f = _frame(Box(0, 0, 50 * mm, 10 * mm))
    with pytest.raises(LayoutError) as caught:
        f.text(0, 2 * mm, "R$ 1.234.567.890,00 is never cut", 10)
    message = str(caught.value)
    assert "XX-1" in message and "the slot" in message
    assert caught.value.other_box == f.box and not caught.value.box.inside(f.box)


def test_text_below_the_frame_raises_even_when_it_fits_across():
    f = _frame(Box(0, 10 * mm, 100 * mm, 20 * mm))
    with pytest.raises(LayoutError):
        f.text(0, 10 * mm, "Descenders below the slot", 10)


def test_record_text_is_cut_to_fit_instead():
    f = _frame(Box(0, 0, 30 * mm, 10 * mm))
    drawn = f.text(0, 3 * mm, "A very long description " * 20, 8, max_width=30 * mm)
    assert 0 < drawn <= 30 * mm


def test_two_texts_that_would_overlap_raise():
    f = _frame(Box(0, 0, 100 * mm, 20 * mm))
    f.text(0, 5 * mm, "first", 10)
    with pytest.raises(LayoutError, match="cross"):
        f.text(2 * mm, 6 * mm, "second", 10)


def test_areas_that_meet_are_refused():
    page = Box(0, 0, 200, 300)
    areas = PageAreas(page, Box(10, 10, 190, 150), (("payment slip", Box(10, 140, 190,
                                                                         200)),))
    with pytest.raises(LayoutError, match="payment slip"):
        areas.check("XX-2")


def test_every_sample_page_one_keeps_the_body_out_of_the_payment_slip():
    from invoicer.renderer.context import Context
    from invoicer.renderer.fixed import FixedParts
    from invoicer.renderer.i18n import for_locale

    for record in sample_records().values():
        ctx = Context.of(record, for_locale(record.invoice.locale),
                         brand_for(record.operator.id))
        areas = FixedParts(ctx).first_page()
        slip = areas.area("payment slip")
        assert areas.body.y0 >= slip.y1 and not areas.body.overlaps(slip)


# --- the flow ---------------------------------------------------------------------------


def _areas(top: float) -> PageAreas:
    return PageAreas(Box(0, 0, 100, 400), Box(0, 100, 100, top), ())


def test_a_row_that_does_not_fit_opens_a_page_under_its_continued_rows():
    header = Row(10, lambda f: None, name="header")
    rows = [Row(40, lambda f: None, continued=(header,), name=f"r{i}") for i in range(8)]
    pages = flow(rows, _areas(200), _areas(300), "XX-3")
    assert [len(p.rows) for p in pages] == [2, 5, 3]
    assert pages[1].rows[0][0] is header and pages[2].rows[0][0] is header
    for page in pages:
        for _, slot in page.rows:
            assert slot.inside(page.areas.body)


def test_a_heading_goes_along_with_the_row_after_it():
    heading = Row(10, lambda f: None, keep_with_next=True, name="heading")
    rows = [Row(85, lambda f: None), heading, Row(20, lambda f: None)]
    pages = flow(rows, _areas(200), _areas(300), "XX-4")
    assert [r.name for r, _ in pages[1].rows] == ["heading", "row"]


def test_a_page_one_row_that_cannot_stay_on_page_one_raises():
    rows = [Row(90, lambda f: None), Row(20, lambda f: None, page_one=True, name="shock")]
    with pytest.raises(LayoutError, match="shock"):
        flow(rows, _areas(200), _areas(300), "XX-5")
