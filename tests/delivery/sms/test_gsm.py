"""GSM 03.38 / UCS-2 encoding choice and SMS segmentation (delivery.sms.gsm).

Golden cases pin the boundaries an operator is billed on (160/161, 153 per part, an
escape pair or an emoji at a part boundary); property tests check that any text splits
into parts that join back to it, each within its limit, and no more of them than any
split in order could give.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invoicer.delivery.sms import gsm
from invoicer.delivery.sms.gsm import describe, encoding, segment_count, segments

# --- the alphabet ----------------------------------------------------------------------


def test_basic_table_is_complete_and_codes_match_the_standard():
    # 128 codes, 0x1B being the escape rather than a character.
    assert len(gsm.BASIC) == 127
    assert sorted(gsm.BASIC.values()) == [c for c in range(128) if c != 0x1B]
    known = {"@": 0x00, "£": 0x01, "$": 0x02, "è": 0x04, "Ç": 0x09, "\n": 0x0A,
             "\r": 0x0D, "Δ": 0x10, "_": 0x11, "É": 0x1F, " ": 0x20, "¤": 0x24,
             "¡": 0x40, "A": 0x41, "Ä": 0x5B, "§": 0x5F, "¿": 0x60, "a": 0x61,
             "ü": 0x7E, "à": 0x7F}
    assert {ch: gsm.BASIC[ch] for ch in known} == known


def test_extension_table():
    assert set(gsm.EXTENSION) == set("^{}\\[~]|€\f")
    assert gsm.encode_gsm7("€") == bytes([0x1B, 0x65])
    assert gsm.encode_gsm7("a{b") == bytes([0x61, 0x1B, 0x28, 0x62])


@pytest.mark.parametrize("text", [
    "Plain ASCII, digits 0123456789 and @£$¥!",
    "Ça va? Ñandu, Größe, smörgåsbord, è é ù ì ò à Å Ø Æ ß ΔΦΓΛΩΠΨΣΘΞ ¡¿§¤",
    "braces {} [] ~ | \\ ^ and €",
    "Carpati Telecom: factura de 50,69 RON are scadenta 18.11.2026.",
])
def test_gsm_texts(text):
    assert encoding(text) == "gsm7"
    assert gsm.non_gsm_characters(text) == ""


@pytest.mark.parametrize(("text", "culprits"), [
    ("Plătiți până în 18.11.2026", "ățâî"),  # Romanian: ș ț, and ă â î, are not GSM
    ("Carpați", "ț"),
    ("Serviço de voz", "ç"),  # only the capital Ç is in the table
    ("Linha digitável", "á"),
    ("Счёт 2 850,80 ₽", "Счёт₽"),
    ("صورتحساب", "صورتحساب"),
    ("ok 😀", "😀"),
    ("R$\u00a0104,75", "\u00a0"),  # CLDR's no-break space (the renderer folds it)
    ("`backtick`", "`"),
])
def test_ucs2_texts_and_why(text, culprits):
    assert encoding(text) == "ucs2"
    assert set(gsm.non_gsm_characters(text)) == set(culprits)


def test_encode_gsm7_refuses_what_it_cannot_carry():
    with pytest.raises(ValueError, match="U\\+021B"):
        gsm.encode_gsm7("Carpați")


# --- golden segment counts -------------------------------------------------------------


def parts_and_units(text):
    d = describe(text)
    return d.encoding, list(d.parts), list(d.part_units)


@pytest.mark.parametrize(("text", "enc", "units"), [
    ("", "gsm7", [0]),
    ("a" * 160, "gsm7", [160]),
    ("a" * 161, "gsm7", [153, 8]),
    ("a" * 306, "gsm7", [153, 153]),
    ("a" * 307, "gsm7", [153, 153, 1]),
    ("a" * 459, "gsm7", [153, 153, 153]),
    ("{" * 80, "gsm7", [160]),  # 80 escape pairs fill one SMS exactly
    ("{" * 81, "gsm7", [152, 10]),  # the 77th pair does not fit in 153: it moves
    ("a" * 158 + "€", "gsm7", [160]),
    ("ș" * 70, "ucs2", [70]),
    ("ș" * 71, "ucs2", [67, 4]),
    ("ș" * 134, "ucs2", [67, 67]),
    ("ș" * 135, "ucs2", [67, 67, 1]),
    ("😀" * 35, "ucs2", [70]),  # 35 surrogate pairs: 70 code units, one SMS
    ("😀" * 36, "ucs2", [66, 6]),  # the 34th pair would straddle unit 67: it moves
])
def test_golden_units(text, enc, units):
    got_enc, parts, got_units = parts_and_units(text)
    assert (got_enc, got_units) == (enc, units)
    assert "".join(parts) == text
    assert segment_count(text) == len(units)


def test_euro_exactly_at_a_part_boundary_moves_whole_to_the_next_part():
    # 152 septets, then € (ESC + 0x65) would take septets 153 and 154: it moves.
    text = "a" * 152 + "€" + "b" * 10
    assert parts_and_units(text) == ("gsm7", ["a" * 152, "€" + "b" * 10], [152, 12])
    # One septet earlier it fits: 151 + 2 = 153.
    text = "a" * 151 + "€" + "b" * 10
    assert parts_and_units(text) == ("gsm7", ["a" * 151 + "€", "b" * 10], [153, 10])
    # 161 septets with € last: the split is at 153, € whole in part two.
    assert parts_and_units("a" * 159 + "€") == ("gsm7", ["a" * 153, "a" * 6 + "€"], [153, 8])


def test_escape_pairs_never_split():
    text = ("{" + "x") * 60  # 180 septets: ESC pairs all along
    for part in segments(text):
        # Every part encodes on its own (an ESC without its code would not).
        assert len(gsm.encode_gsm7(part)) <= gsm.PART_SEPTETS
    assert segment_count(text) == 2


def test_emoji_at_the_67_and_70_boundaries():
    # One SMS holds 70 units: 68 letters + a pair fit exactly.
    assert parts_and_units("a" * 68 + "😀") == ("ucs2", ["a" * 68 + "😀"], [70])
    # 71 units: split at 67, and the pair at units 67-68 moves whole to part two.
    assert parts_and_units("a" * 66 + "😀" + "b" * 10) == (
        "ucs2", ["a" * 66, "😀" + "b" * 10], [66, 12])
    assert parts_and_units("a" * 65 + "😀" + "b" * 10) == (
        "ucs2", ["a" * 65 + "😀", "b" * 10], [67, 10])


def test_romanian_with_diacritics_is_ucs2_without_is_gsm():
    with_diacritics = ("Carpați Telecom: factura de 50,69 RON are scadența 18.11.2026. "
                       "Cod de plată: CT5500778899-20261118-5069")
    without = ("Carpati Telecom: factura de 50,69 RON are scadenta 18.11.2026. "
               "Cod de plata: CT5500778899-20261118-5069")
    assert len(with_diacritics) == len(without) == 103
    assert (encoding(with_diacritics), segment_count(with_diacritics)) == ("ucs2", 2)
    assert (encoding(without), segment_count(without)) == ("gsm7", 1)


def test_persian():
    text = "البرز: صورتحساب ریال 4,180,990، مهلت پرداخت 2026/11/17."
    assert (encoding(text), len(text), segment_count(text)) == ("ucs2", 55, 1)
    longer = text + " شناسه پرداخت: 8800012345000004180990"
    assert (len(longer), segment_count(longer)) == (92, 2)


def test_cyrillic():
    text = "Волга Телеком: счёт 2 850,80 ₽, оплатить до 25.11.2026."
    assert (encoding(text), len(text), segment_count(text)) == ("ucs2", 55, 1)


def test_mixed_one_foreign_character_turns_everything_ucs2():
    gsm_text = "Your bill of €98.49 is due {soon} " + "x" * 100  # 134 characters
    d = describe(gsm_text)
    assert (d.encoding, d.units, d.count) == ("gsm7", 137, 1)  # € { } take 2 septets
    mixed = gsm_text + "😀"  # now UTF-16: 134 one-unit characters + a pair = 136 units
    d = describe(mixed)
    assert (d.encoding, d.units, d.count, d.part_units) == ("ucs2", 136, 3, (67, 67, 2))


def test_describe_reports_septets_limit_and_room_left():
    d = describe("a" * 150)
    assert (d.septets, d.limit, d.remaining) == (150, 160, 10)
    d = describe("a" * 200)
    assert (d.count, d.limit, d.remaining, d.septets) == (2, 153, 106, 200)
    assert describe("ș").septets is None


def test_lone_surrogate_is_refused():
    with pytest.raises(ValueError, match="surrogate"):
        describe("a\ud83dz")


# --- properties ------------------------------------------------------------------------

GSM_CHARS = sorted(set(gsm.BASIC) | set(gsm.EXTENSION))
EXTRA = ["ș", "ț", "ă", "ç", "Ж", "ё", "ی", "\u200c", "😀", "👍", "\U0001F3FD", "中", "€", "{"]

gsm_texts = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=520)
# Mostly GSM with the odd foreign character, plus anything Unicode has (no surrogates).
mixed_texts = st.text(
    alphabet=st.one_of(st.sampled_from(GSM_CHARS), st.sampled_from(EXTRA),
                       st.characters(exclude_categories=("Cs",))),
    max_size=300,
)
# Long texts, so that most examples span several parts.
long_gsm_texts = st.text(alphabet=st.sampled_from(GSM_CHARS), min_size=158, max_size=480)
long_mixed_texts = st.text(alphabet=st.one_of(st.sampled_from(GSM_CHARS),
                                              st.sampled_from(EXTRA)),
                           min_size=60, max_size=300)
gsm_side = st.one_of(gsm_texts, long_gsm_texts)
ucs2_side = st.one_of(mixed_texts, long_mixed_texts)


def units_of(part: str, enc: str) -> int:
    """Size of a part, computed by the encoders themselves rather than by cost tables."""
    if enc == "gsm7":
        return len(gsm.encode_gsm7(part))
    return len(part.encode("utf-16-le")) // 2


def min_parts(costs: list[int], limit: int) -> int:
    """Fewest contiguous parts of at most ``limit`` units (dynamic programming oracle)."""
    n = len(costs)
    best = [0] + [n + 1] * n
    for end in range(1, n + 1):
        size = 0
        for start in range(end - 1, -1, -1):
            size += costs[start]
            if size > limit:
                break
            best[end] = min(best[end], best[start] + 1)
    return best[n]


def check_parts(text: str) -> None:
    """The parts join back to the text and each is within its limit."""
    d = describe(text)
    assert "".join(d.parts) == text
    assert d.encoding == encoding(text)
    single, part = ((gsm.SINGLE_SEPTETS, gsm.PART_SEPTETS) if d.encoding == "gsm7"
                    else (gsm.SINGLE_UNITS, gsm.PART_UNITS))
    sizes = [units_of(p, d.encoding) for p in d.parts]
    assert tuple(sizes) == d.part_units
    if sum(sizes) <= single:
        assert d.count == 1
    else:
        assert d.count >= 2
        assert all(0 < size <= part for size in sizes)
    # UTF-16 boundaries: each part encodes alone, and the encodings concatenate to the
    # whole text's (no surrogate pair was cut).
    if d.encoding == "ucs2":
        whole = b"".join(p.encode("utf-16-be") for p in d.parts)
        assert whole == text.encode("utf-16-be")


def check_minimal(text: str) -> None:
    """No split in order has fewer parts, and no part could take one more character."""
    d = describe(text)
    if d.count == 1:
        return
    enc = d.encoding
    costs = [units_of(ch, enc) for ch in text]
    limit = gsm.PART_SEPTETS if enc == "gsm7" else gsm.PART_UNITS
    assert d.count == min_parts(costs, limit)
    for this, following in zip(d.parts, d.parts[1:], strict=False):
        assert units_of(this, enc) + units_of(following[0], enc) > limit


@settings(max_examples=100, deadline=None)
@given(gsm_side)
def test_gsm_parts_join_back_and_stay_within_limits(text):
    check_parts(text)


@settings(max_examples=100, deadline=None)
@given(ucs2_side)
def test_ucs2_parts_join_back_and_stay_within_limits(text):
    check_parts(text)


@settings(max_examples=100, deadline=None)
@given(gsm_side)
def test_gsm_count_is_minimal(text):
    check_minimal(text)


@settings(max_examples=100, deadline=None)
@given(ucs2_side)
def test_ucs2_count_is_minimal(text):
    check_minimal(text)
