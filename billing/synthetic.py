"""Synthetic ``billing-record/1`` records for load tests and benchmarks.

The records look like a real bill run: six locales with their own operators, currencies,
time zones, scripts, tax rules and payment codes; mostly consumers with one or a few
services, some business accounts with many lines; call-detail records spread over the
billing period with realistic durations, volumes and rating. Every record reconciles
exactly as the contract demands, so a load test measures the pipeline and not the
rejection path.

Everything comes from one ``random.Random(seed)``: the same arguments give the same
bytes, on any machine, at any time (no clock, no global random state, no iteration over
sets whose order depends on string hashing).

Payment codes are built with :mod:`billing.paycodes`, the same code the validator checks
them with, so a change there cannot silently make synthetic records invalid.

Run ``python -m billing.synthetic --count 10000 --cdrs 20 --seed 1 -o run.jsonl`` to
write a bill run to a file.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import accumulate
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from babel import Locale
from babel.numbers import get_currency_precision

from invoicer.billing.paycodes import epc, febraban, gost
from invoicer.billing.synthetic_einvoice import COUNTRIES as EINVOICE_COUNTRIES
from invoicer.billing.synthetic_einvoice import as_einvoice

__all__ = ["LOCALES", "generate", "write_jsonl"]

SCHEMA = "billing-record/1"

# --- small helpers --------------------------------------------------------------------

_FA_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
_LETTERS = "ABCDEFGHJKLMNPRSTUVWXZ"


def _fill(rng: random.Random, pattern: str) -> str:
    """Replace each ``#`` of ``pattern`` by a random digit and each ``@`` by a letter."""
    n = pattern.count("#")
    head = pattern[: len(pattern) - n]
    if n and "#" not in head and "@" not in head:
        # The usual shape (a prefix, then digits): one random number for all the digits.
        return f"{head}{rng.randrange(10**n):0{n}d}"
    digits = iter(f"{rng.randrange(10**n):0{n}d}") if n else iter(())
    out = []
    for c in pattern:
        if c == "#":
            out.append(next(digits))
        elif c == "@":
            out.append(rng.choice(_LETTERS))
        else:
            out.append(c)
    return "".join(out)


def _money_formatter(digits: int) -> Callable[[int], str]:
    """A function formatting an amount in minor units (an int) with ``digits`` decimals.

    Integers all the way and a string only at the end: exact, and several times faster
    than going through Decimal for each of millions of CDR amounts.
    """
    if digits == 0:
        return str
    scale = 10**digits

    def fmt(minor: int) -> str:
        sign = "-" if minor < 0 else ""
        whole, frac = divmod(abs(minor), scale)
        return f"{sign}{whole}.{frac:0{digits}d}"

    return fmt


def _tax(base: int, rate: Decimal) -> int:
    """Tax on ``base`` minor units, rounded half-up to the minor unit (legal rounding)."""
    return int((Decimal(base) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _add_months(d: date, months: int) -> date:
    """``d`` moved by whole months; the day is kept (callers use days 1 to 28 only)."""
    m = d.month - 1 + months
    return d.replace(year=d.year + m // 12, month=m % 12 + 1)


def _check_digits_mod11(digits: str, weights: Sequence[int]) -> int:
    s = sum(int(d) * w for d, w in zip(digits, weights, strict=True))
    r = s % 11
    return 0 if r < 2 else 11 - r


def _cpf(rng: random.Random) -> str:
    """A Brazilian CPF with valid check digits, formatted ``123.456.789-09``."""
    body = f"{rng.randrange(10**8, 10**9):09d}"
    body += str(_check_digits_mod11(body, range(10, 1, -1)))
    body += str(_check_digits_mod11(body, range(11, 1, -1)))
    return f"{body[:3]}.{body[3:6]}.{body[6:9]}-{body[9:]}"


def _cnpj(rng: random.Random) -> str:
    """A Brazilian CNPJ (head office ``0001``) with valid check digits."""
    body = f"{rng.randrange(10**7, 10**8):08d}0001"
    body += str(_check_digits_mod11(body, (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)))
    body += str(_check_digits_mod11(body, (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)))
    return f"{body[:2]}.{body[2:5]}.{body[5:8]}/{body[8:12]}-{body[12:]}"


def _inn(rng: random.Random, length: int) -> str:
    """A Russian ИНН: 10 digits (organisation) or 12 (person), valid check digits."""
    def check(digits: str, weights: Sequence[int]) -> str:
        return str(sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11 % 10)

    if length == 10:
        body = f"{rng.randrange(10**8, 10**9):09d}"
        return body + check(body, (2, 4, 10, 3, 5, 9, 4, 6, 8))
    body = f"{rng.randrange(10**9, 10**10):010d}"
    body += check(body, (7, 2, 4, 10, 3, 5, 9, 4, 6, 8))
    return body + check(body, (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8))


def _ro_cui(rng: random.Random) -> str:
    """A Romanian fiscal code (CUI) with its check digit, VAT-registered form ``RO…``."""
    body = f"{rng.randrange(10**6, 10**8)}"
    key = "753217532"[-len(body):]
    check = sum(int(d) * int(k) for d, k in zip(body, key, strict=True)) * 10 % 11 % 10
    return f"RO{body}{check}"


def _ir_national_code(rng: random.Random) -> str:
    """An Iranian national code (کد ملی), 10 digits with its check digit."""
    body = f"{rng.randrange(10**9):09d}"
    r = sum(int(d) * w for d, w in zip(body, range(10, 1, -1), strict=True)) % 11
    return body + str(r if r < 2 else 11 - r)


def _ru_account_with_key(bic: str, account: str) -> str:
    """Set the control key (9th digit) of a Russian settlement account for ``bic``.

    Russian banks reject a transfer to an account whose key does not match the bank's
    BIC, so a realistic GOST QR must carry a keyed account.
    """
    digits = bic[-3:] + account[:8] + "0" + account[9:]
    s = sum(int(d) * w for d, w in zip(digits, (7, 1, 3) * 8, strict=False))
    key = (s % 10 * 3) % 10
    return account[:8] + str(key) + account[9:]


# --- locale profiles ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _City:
    name: str
    postal: str  # pattern: '#' digit, '@' letter
    fixed: str  # pattern of a fixed-line number after the country calling code
    tax_rate: str | None = None  # a state rate where tax differs by region (ICMS)


@dataclass(frozen=True, slots=True)
class _Plan:
    label: str
    price: int  # minor units a month


@dataclass(frozen=True, slots=True)
class _Profile:
    """Everything locale-specific: who bills, whom, in which script and how they pay."""

    locale: str
    country: str
    currency: str
    tz: str
    weight: int
    calling_code: str
    mobile: str  # national mobile number pattern
    operator: dict[str, Any]
    prefix: str  # invoice number prefix
    brand: str  # short brand used in service labels
    cities: tuple[_City, ...]
    streets: tuple[str, ...]
    address: tuple[tuple[str, ...], ...]  # address line templates, repeated = likelier
    names: Callable[[random.Random], tuple[str, str]]  # -> (display name, e-mail login)
    companies: tuple[tuple[str, str], ...]  # (name, e-mail domain label)
    company_forms: tuple[str, ...]
    tax_code: str
    tax_rate: str
    mobile_plans: tuple[_Plan, ...]
    business_plans: tuple[_Plan, ...]
    fixed_plans: tuple[_Plan, ...]
    internet_plans: tuple[_Plan, ...]
    tv_plans: tuple[_Plan, ...]
    # per-minute (calls), per-message (sms, mms) and per-MB (data) rates, minor units
    rates: dict[str, int]
    text: dict[str, str]  # localized descriptions
    units: dict[str, str]
    international: tuple[str, ...]  # ISO countries called abroad, repeated = likelier
    roaming: tuple[str, ...]
    barcode: str | None  # the locale's barcode scheme
    direct_debit_share: float
    customer_tax_id: Callable[[random.Random, bool], str | None]
    persian_digits: bool = False


def _names_pt(rng: random.Random) -> tuple[str, str]:
    first, fl = rng.choice(_PT_FIRST)
    (last1, _), (last2, l2) = rng.sample(_PT_LAST, 2)
    if rng.random() < 0.35:
        particle = rng.choice(("da", "de", "dos", "das"))
        return f"{first} {particle} {last1} {last2}", f"{fl}.{l2}"
    return f"{first} {last1} {last2}", f"{fl}.{l2}"


def _names_ro(rng: random.Random) -> tuple[str, str]:
    first, fl = rng.choice(_RO_FIRST)
    last, ll = rng.choice(_RO_LAST)
    return f"{first} {last}", f"{fl}.{ll}"


def _names_ru(rng: random.Random) -> tuple[str, str]:
    # Фамилия Имя Отчество, the order used on Russian bills, with gendered forms.
    female = rng.random() < 0.5
    first, fl = rng.choice(_RU_FIRST_F if female else _RU_FIRST_M)
    masc, fem, ll = rng.choice(_RU_LAST)
    father_m, father_f = rng.choice(_RU_PATRONYMIC)
    return (f"{fem if female else masc} {first} {father_f if female else father_m}",
            f"{ll}.{fl}")


def _names_nl(rng: random.Random) -> tuple[str, str]:
    first, fl = rng.choice(_NL_FIRST)
    last, ll = rng.choice(_NL_LAST)
    return f"{first} {last}", f"{fl}.{ll}"


def _names_fa(rng: random.Random) -> tuple[str, str]:
    first, fl = rng.choice(_FA_FIRST)
    last, ll = rng.choice(_FA_LAST)
    return f"{first} {last}", f"{fl}.{ll}"


def _names_en(rng: random.Random) -> tuple[str, str]:
    first, fl = rng.choice(_EN_FIRST)
    last, ll = rng.choice(_EN_LAST)
    return f"{first} {last}", f"{fl}.{ll}"


_PT_FIRST = (
    ("Maria", "maria"), ("João", "joao"), ("Conceição", "conceicao"), ("Antônio", "antonio"),
    ("Ana Luíza", "analuiza"), ("Sebastião", "sebastiao"), ("Gonçalo", "goncalo"),
    ("Letícia", "leticia"), ("Márcio", "marcio"), ("Lúcia", "lucia"), ("Inês", "ines"),
    ("Caio", "caio"), ("Fabrício", "fabricio"), ("Beatriz", "beatriz"), ("Estêvão", "estevao"),
    ("Juçara", "jucara"), ("Thaís", "thais"), ("Raimundo", "raimundo"), ("Graça", "graca"),
)
_PT_LAST = (
    ("Souza", "souza"), ("Gonçalves", "goncalves"), ("Simões", "simoes"),
    ("Magalhães", "magalhaes"), ("Assunção", "assuncao"), ("Lourenço", "lourenco"),
    ("Brandão", "brandao"), ("Falcão", "falcao"), ("Guimarães", "guimaraes"),
    ("Conceição", "conceicao"), ("Araújo", "araujo"), ("Loureiro", "loureiro"),
    ("Peçanha", "pecanha"), ("Romão", "romao"), ("Damião", "damiao"), ("Silva", "silva"),
    ("Ribeiro", "ribeiro"), ("Antunes", "antunes"),
)
_RO_FIRST = (
    ("Ștefan", "stefan"), ("Ioana", "ioana"), ("Mihăiță", "mihaita"), ("Cătălina", "catalina"),
    ("Răzvan", "razvan"), ("Andreea", "andreea"), ("Ștefănel", "stefanel"),
    ("Bogdan", "bogdan"), ("Ilinca", "ilinca"), ("Gheorghiță", "gheorghita"),
    ("Sânziana", "sanziana"), ("Dănuț", "danut"), ("Irina", "irina"), ("Aurelian", "aurelian"),
    ("Mădălina", "madalina"), ("Costică", "costica"),
)
_RO_LAST = (
    ("Popescu", "popescu"), ("Țurcanu", "turcanu"), ("Mărgărit", "margarit"),
    ("Bălănescu", "balanescu"), ("Ioniță", "ionita"), ("Stănescu", "stanescu"),
    ("Ciobanu", "ciobanu"), ("Mureșan", "muresan"), ("Năstase", "nastase"),
    ("Țăranu", "taranu"), ("Dumitrașcu", "dumitrascu"), ("Vlăduț", "vladut"),
    ("Râșnoveanu", "rasnoveanu"), ("Ștefănescu", "stefanescu"), ("Pîrvu", "pirvu"),
)
_RU_FIRST_M = (
    ("Иван", "ivan"), ("Алексей", "aleksei"), ("Дмитрий", "dmitrii"), ("Сергей", "sergei"),
    ("Андрей", "andrei"), ("Михаил", "mikhail"), ("Юрий", "yurii"), ("Пётр", "petr"),
    ("Николай", "nikolai"), ("Фёдор", "fedor"),
)
_RU_FIRST_F = (
    ("Мария", "maria"), ("Анна", "anna"), ("Елена", "elena"), ("Ольга", "olga"),
    ("Татьяна", "tatiana"), ("Наталья", "natalia"), ("Юлия", "yulia"), ("Ксения", "ksenia"),
    ("Алёна", "alena"), ("Екатерина", "ekaterina"),
)
_RU_LAST = (
    ("Иванов", "Иванова", "ivanov"), ("Смирнов", "Смирнова", "smirnov"),
    ("Кузнецов", "Кузнецова", "kuznetsov"), ("Соколов", "Соколова", "sokolov"),
    ("Воробьёв", "Воробьёва", "vorobiev"), ("Фёдоров", "Фёдорова", "fedorov"),
    ("Лебедев", "Лебедева", "lebedev"), ("Щербаков", "Щербакова", "shcherbakov"),
    ("Журавлёв", "Журавлёва", "zhuravlev"), ("Васильев", "Васильева", "vasiliev"),
    ("Эйдельман", "Эйдельман", "eidelman"), ("Юсупов", "Юсупова", "yusupov"),
)
_RU_PATRONYMIC = (
    ("Иванович", "Ивановна"), ("Сергеевич", "Сергеевна"), ("Петрович", "Петровна"),
    ("Алексеевич", "Алексеевна"), ("Николаевич", "Николаевна"), ("Ильич", "Ильинична"),
    ("Юрьевич", "Юрьевна"), ("Фёдорович", "Фёдоровна"),
)
_NL_FIRST = (
    ("Sanne", "sanne"), ("Daan", "daan"), ("Lotte", "lotte"), ("Bram", "bram"),
    ("Femke", "femke"), ("Thijs", "thijs"), ("Eline", "eline"), ("Marijke", "marijke"),
    ("IJsbrand", "ijsbrand"), ("Sjoerd", "sjoerd"), ("Noëlle", "noelle"), ("Joëlle", "joelle"),
    ("Pieter", "pieter"), ("Anouk", "anouk"),
)
_NL_LAST = (
    ("van Dijk", "vandijk"), ("de Vries", "devries"), ("Bijl", "bijl"),
    ("IJsselmuiden", "ijsselmuiden"), ("Rijnders", "rijnders"), ("Jansen", "jansen"),
    ("Meijer", "meijer"), ("van der Wijk", "vanderwijk"), ("Smit", "smit"),
    ("de Bruijn", "debruijn"), ("van 't Hof", "vanthof"), ("Wijnhoven", "wijnhoven"),
    ("Brouwer", "brouwer"), ("Kuijpers", "kuijpers"),
)
_FA_FIRST = (
    ("محمد", "mohammad"), ("زهرا", "zahra"), ("علی", "ali"), ("فاطمه", "fatemeh"),
    ("مریم", "maryam"), ("رضا", "reza"), ("حسین", "hossein"), ("نگار", "negar"),
    ("امیرحسین", "amirhossein"), ("پریسا", "parisa"), ("کیوان", "keyvan"), ("ژیلا", "zhila"),
    ("سارا", "sara"), ("مهدی", "mehdi"),
)
_FA_LAST = (
    ("رضایی", "rezaei"), ("احمدی", "ahmadi"), ("حسینی", "hosseini"), ("کریمی", "karimi"),
    ("موسوی", "mousavi"), ("محمدی", "mohammadi"), ("جعفری", "jafari"),
    ("قاسمی‌نژاد", "ghaseminejad"), ("طباطبایی", "tabatabaei"), ("صادقی", "sadeghi"),
    ("نوروزی", "nowruzi"), ("پورمحمد", "pourmohammad"),
)
_EN_FIRST = (
    ("Oliver", "oliver"), ("Amelia", "amelia"), ("George", "george"), ("Isla", "isla"),
    ("Harry", "harry"), ("Olivia", "olivia"), ("Siobhan", "siobhan"), ("Rhys", "rhys"),
    ("Priya", "priya"), ("Callum", "callum"), ("Zoë", "zoe"), ("Niamh", "niamh"),
)
_EN_LAST = (
    ("Smith", "smith"), ("Jones", "jones"), ("Taylor", "taylor"), ("O'Brien", "obrien"),
    ("Williams", "williams"), ("Patel", "patel"), ("Evans", "evans"), ("Davies", "davies"),
    ("MacLeod", "macleod"), ("Brown", "brown"), ("Wright", "wright"), ("Hughes", "hughes"),
)


def _pt_tax_id(rng: random.Random, business: bool) -> str | None:
    # Brazilian invoices print the customer's CPF/CNPJ by law; a few records omit it to
    # exercise the optional field.
    if rng.random() < 0.05:
        return None
    return _cnpj(rng) if business else _cpf(rng)


def _ro_tax_id(rng: random.Random, business: bool) -> str | None:
    return _ro_cui(rng) if business else None


def _ru_tax_id(rng: random.Random, business: bool) -> str | None:
    if business:
        return _inn(rng, 10)
    return _inn(rng, 12) if rng.random() < 0.2 else None


def _nl_tax_id(rng: random.Random, business: bool) -> str | None:
    return f"NL{rng.randrange(10**8, 10**9)}B01" if business else None


def _fa_tax_id(rng: random.Random, business: bool) -> str | None:
    if business:
        return f"{rng.randrange(10**10, 10**11)}"  # شناسه ملی, 11 digits
    return _ir_national_code(rng) if rng.random() < 0.6 else None


def _en_tax_id(rng: random.Random, business: bool) -> str | None:
    return f"GB{rng.randrange(10**8, 10**9)}" if business else None


def _op_address(lines: Sequence[str], postal: str, city: str, country: str) -> dict:
    return {"lines": list(lines), "postal_code": postal, "city": city, "country": country}


_GOST_BIC = "044525225"
_GOST_STATIC = {
    "Name": "ПАО «Волга Телеком»",
    "PersonalAcc": _ru_account_with_key(_GOST_BIC, "40702810038000012345"),
    "BankName": "ПАО Сбербанк",
    "BIC": _GOST_BIC,
    "CorrespAcc": "30101810400000000225",
    "PayeeINN": "7709874563",
    "KPP": "770901001",
}
_EPC_STATIC = {
    "BIC": "INGBNL2A",
    "beneficiary": "Polder Telecom B.V.",
}

PROFILES: tuple[_Profile, ...] = (
    _Profile(
        locale="pt_BR", country="BR", currency="BRL", tz="America/Sao_Paulo", weight=30,
        calling_code="55", mobile="{area}9########",
        operator={
            "id": "oi", "name": "Oi S.A.", "tax_id": "76.535.764/0001-43",
            "address": _op_address(["Rua Humberto de Campos, 425"], "22430-190",
                                   "Rio de Janeiro", "BR"),
            "support": {"phone": "*144", "web": "https://www.oi.com.br"},
        },
        prefix="OI", brand="Oi",
        cities=(
            _City("Rio de Janeiro", "2####-###", "21[fix]#######", "0.20"),
            _City("São Paulo", "0####-###", "11[fix]#######", "0.18"),
            _City("Belo Horizonte", "3####-###", "31[fix]#######", "0.18"),
            _City("Salvador", "4####-###", "71[fix]#######", "0.205"),
            _City("Belém", "66###-###", "91[fix]#######", "0.19"),
            _City("Maceió", "57###-###", "82[fix]#######", "0.19"),
            _City("Goiânia", "74###-###", "62[fix]#######", "0.19"),
            _City("Florianópolis", "88###-###", "48[fix]#######", "0.17"),
            _City("São Luís", "65###-###", "98[fix]#######", "0.22"),
            _City("Niterói", "24###-###", "21[fix]#######", "0.20"),
            _City("Ribeirão Preto", "14###-###", "16[fix]#######", "0.18"),
            _City("Porto Alegre", "9####-###", "51[fix]#######", "0.17"),
        ),
        streets=(
            "Rua das Laranjeiras", "Av. Atlântica", "Rua Conceição", "Travessa São João",
            "Rua Barão de Mauá", "Av. Paulista", "Rua Açaí", "Rua Visconde de Pirajá",
            "Praça da Sé", "Rua Frei Caneca", "Alameda Santos", "Rua Gonçalves Dias",
            "Estrada do Galeão", "Rua João Pessoa", "Av. Brigadeiro Faria Lima",
            "Rua Padre Anchieta", "Av. Getúlio Vargas",
        ),
        address=(
            ("{street}, {n}",), ("{street}, {n}", "Apto {n3}"), ("{street}, {n}", "Apto {n3}"),
            ("{street}, {n}", "Bloco {L}, Apto {n3}"), ("{street}, {n} — Casa {n1}",),
        ),
        names=_names_pt,
        companies=(
            ("Construtora Ribeirão Preto", "construtorarp"), ("Padaria São João", "padsaojoao"),
            ("Açougue Irmãos Simões", "irmaossimoes"), ("Transportadora Guaporé", "guapore"),
            ("Farmácia Conceição", "farmaconceicao"), ("Clínica Odontológica Sorrisão",
                                                       "sorrisao"),
        ),
        company_forms=("Ltda.", "ME", "S.A.", "EIRELI"),
        tax_code="ICMS", tax_rate="0.20",
        mobile_plans=(_Plan("Plano Controle 20GB", 5990), _Plan("Pós 40GB", 9990),
                      _Plan("Pós Família 80GB", 19990), _Plan("Controle Essencial 10GB", 3990)),
        business_plans=(_Plan("Empresa Smart 30GB", 7990), _Plan("Gestão de Frota 15GB", 4990)),
        fixed_plans=(_Plan("Fixo Ilimitado Local", 3490), _Plan("Linha Fixa Básica", 2990)),
        internet_plans=(_Plan("Fibra 500 Mega", 9990), _Plan("Fibra 1 Giga", 14990)),
        tv_plans=(_Plan("TV Total HD — 180 canais", 12990),),
        rates={"local": 89, "long_distance": 149, "intrazonal": 119, "international": 350,
               "roaming": 590, "sms": 25, "mms": 99, "data": 10},
        text={
            "subscription": "Assinatura mensal", "local": "Ligações locais",
            "long_distance": "Ligações de longa distância (DDD)",
            "intrazonal": "Ligações intrarregionais", "international": "Ligações internacionais",
            "roaming": "Roaming internacional", "sms": "Mensagens SMS", "mms": "Mensagens MMS",
            "data": "Internet excedente", "data_pack": "Pacote adicional de internet 5GB",
            "tv": "TV por assinatura", "internet": "Banda larga", "equipment":
            "Aparelho Samsung Galaxy A55 — parcela {k}/12", "discount": "Desconto fidelidade",
            "business_discount": "Desconto corporativo", "other": "Serviços de terceiros — "
            "Doação Criança Esperança", "late_fee": "Multa por atraso (2%)",
            "interest": "Juros de mora", "outage": "Crédito por interrupção do serviço",
            "internet_label": "Internet", "roaming_fmt": "Roaming — {country}",
            "mobile": "{brand} Móvel — {plan}", "fixed": "{brand} Fixo — {plan}",
            "broadband": "{brand} Fibra — {plan}", "tv_service": "{brand} TV — {plan}",
        },
        units={"min": "min", "msg": "SMS", "mb": "MB"},
        international=("PT", "PT", "US", "US", "AR", "IT", "ES", "JP"),
        roaming=("AR", "PT", "US", "UY", "CL"),
        barcode="febraban", direct_debit_share=0.2,
        customer_tax_id=_pt_tax_id,
    ),
    _Profile(
        locale="ro_RO", country="RO", currency="RON", tz="Europe/Bucharest", weight=12,
        calling_code="40", mobile="7[ro]#######",
        operator={
            "id": "carpati", "name": "Carpați Telecom S.A.", "tax_id": "RO14399840",
            "address": _op_address(["Bd. Iuliu Maniu nr. 7, Corp A, et. 4"], "061072",
                                   "București", "RO"),
            "support": {"phone": "*433", "web": "https://www.carpati-telecom.example"},
        },
        prefix="CT", brand="Carpați",
        cities=(
            _City("București", "0#####", "21#######"), _City("Cluj-Napoca", "400###",
                                                              "264######"),
            _City("Timișoara", "300###", "256######"), _City("Iași", "700###", "232######"),
            _City("Constanța", "900###", "241######"), _City("Brașov", "500###", "268######"),
            _City("Pitești", "110###", "248######"), _City("Târgu Mureș", "540###",
                                                          "265######"),
            _City("Bistrița", "420###", "263######"), _City("Craiova", "200###", "251######"),
            _City("Galați", "800###", "236######"), _City("Ploiești", "100###", "244######"),
            _City("Suceava", "720###", "230######"), _City("Sibiu", "550###", "269######"),
        ),
        streets=(
            "Str. Ștefan cel Mare", "Bd. Unirii", "Calea Victoriei", "Str. Mihai Eminescu",
            "Șos. Pantelimon", "Str. Țebea", "Aleea Trandafirilor", "Bd. Decebal",
            "Str. Avram Iancu", "Str. Mărășești", "Piața Sfatului", "Str. Băișoara",
            "Bd. Independenței", "Str. Râșnov", "Str. Învățătorului", "Calea Moșilor",
        ),
        address=(
            ("{street} nr. {n}",), ("{street} nr. {n}", "bl. {L}{n1}, sc. {n1}, et. {n1}, "
                                    "ap. {n2}"),
            ("{street} nr. {n}, ap. {n2}",), ("{street} nr. {n}", "bl. {L}{n1}, ap. {n2}"),
        ),
        names=_names_ro,
        companies=(
            ("Transporturi Mărășești", "transmarasesti"), ("Construcții Bistrița",
                                                           "constrbistrita"),
            ("Brutăria Țăranului", "brutariataranului"), ("Agroindustriala Vâlcea",
                                                         "agrovalcea"),
            ("Farmacia Sfântul Ștefan", "farmastefan"),
        ),
        company_forms=("S.R.L.", "S.A."),
        tax_code="TVA", tax_rate="0.19",
        mobile_plans=(_Plan("Abonament Nelimitat 30 GB", 3500), _Plan("Abonament Smart 15 GB",
                                                                     2500),
                      _Plan("Abonament Familie 100 GB", 6000)),
        business_plans=(_Plan("Business Flotă 20 GB", 3200), _Plan("Business Nelimitat", 4800)),
        fixed_plans=(_Plan("Telefonie fixă națională", 1200),),
        internet_plans=(_Plan("Fibră 1000 Mbps", 4500),),
        tv_plans=(_Plan("Televiziune digitală — 150 de canale", 3500),),
        rates={"local": 40, "long_distance": 40, "intrazonal": 40, "international": 120,
               "roaming": 90, "sms": 10, "mms": 50, "data": 5},
        text={
            "subscription": "Abonament lunar", "local": "Convorbiri naționale în rețea",
            "long_distance": "Convorbiri naționale în alte rețele",
            "intrazonal": "Convorbiri în aceeași zonă", "international":
            "Convorbiri internaționale", "roaming": "Roaming în afara UE",
            "sms": "Mesaje SMS", "mms": "Mesaje MMS", "data": "Trafic de date suplimentar",
            "data_pack": "Opțiune extra 10 GB", "tv": "Televiziune", "internet": "Internet fix",
            "equipment": "Telefon iPhone 15 — rata {k}/24", "discount": "Reducere fidelitate",
            "business_discount": "Reducere contract corporativ", "other":
            "Servicii conținut terți", "late_fee": "Penalități de întârziere",
            "interest": "Dobândă penalizatoare", "outage": "Compensație întrerupere serviciu",
            "internet_label": "Internet mobil", "roaming_fmt": "Roaming — {country}",
            "mobile": "{brand} Mobil — {plan}", "fixed": "{brand} Fix — {plan}",
            "broadband": "{brand} Internet — {plan}", "tv_service": "{brand} TV — {plan}",
        },
        units={"min": "min", "msg": "SMS", "mb": "MB"},
        international=("IT", "IT", "ES", "ES", "DE", "GB", "FR", "MD"),
        roaming=("MD", "RS", "TR", "CH", "GB"),
        barcode="code128", direct_debit_share=0.35,
        customer_tax_id=_ro_tax_id,
    ),
    _Profile(
        locale="ru_RU", country="RU", currency="RUB", tz="Europe/Moscow", weight=18,
        calling_code="7", mobile="9[ru]########",
        operator={
            "id": "volga", "name": "ПАО «Волга Телеком»", "tax_id": "7709874563",
            "address": _op_address(["ул. Большая Якиманка, д. 40, стр. 1"], "119049",
                                   "Москва", "RU"),
            "support": {"phone": "8 800 100-00-00", "web": "https://www.volga-telecom.example"},
        },
        prefix="VT", brand="Волга",
        cities=(
            _City("Москва", "1#####", "495#######"), _City("Санкт-Петербург", "19####",
                                                           "812#######"),
            _City("Новосибирск", "630###", "383#######"), _City("Екатеринбург", "620###",
                                                                "343#######"),
            _City("Казань", "420###", "843#######"), _City("Нижний Новгород", "603###",
                                                           "831#######"),
            _City("Ростов-на-Дону", "344###", "863#######"), _City("Самара", "443###",
                                                                   "846#######"),
            _City("Омск", "644###", "3812######"), _City("Челябинск", "454###", "351#######"),
            _City("Уфа", "450###", "347#######"), _City("Воронеж", "394###", "473#######"),
            _City("Пермь", "614###", "342#######"), _City("Ярославль", "150###", "4852######"),
        ),
        streets=(
            "ул. Ленина", "пр-т Мира", "ул. Пушкина", "Невский пр-т", "ул. Тверская",
            "ул. Садовая", "наб. реки Фонтанки", "ул. Гагарина", "ул. Советская",
            "пер. Кривоколенный", "ш. Энтузиастов", "ул. Молодёжная", "ул. Щорса",
            "ул. Объездная", "б-р Яна Райниса",
        ),
        address=(
            ("{street}, д. {n}, кв. {n3}",), ("{street}, д. {n}, корп. {n1}, кв. {n3}",),
            ("{street}, д. {n}",), ("{street}, д. {n}, кв. {n2}",),
        ),
        names=_names_ru,
        companies=(
            ("ООО «Северная звезда»", "sevzvezda"), ("АО «Уральские машины»", "uralmash"),
            ("ООО «Ёлки-Палки»", "yolki"), ("ООО «Щит и Меч»", "shchit"),
            ("ИП Журавлёв А. С.", "zhuravlev-ip"),
        ),
        company_forms=("",),
        tax_code="НДС", tax_rate="0.20",
        mobile_plans=(_Plan("Тариф «Безлимит»", 69000), _Plan("Тариф «Мой разговор»", 45000),
                      _Plan("Тариф «Семейный»", 99000)),
        business_plans=(_Plan("Корпоративный «Бизнес 30»", 80000),
                        _Plan("Корпоративный «Связь без границ»", 120000)),
        fixed_plans=(_Plan("Городской телефон, безлимитный", 55000),),
        internet_plans=(_Plan("Домашний интернет 500 Мбит/с", 65000),),
        tv_plans=(_Plan("Цифровое ТВ «Базовый»", 39900),),
        rates={"local": 150, "long_distance": 250, "intrazonal": 200, "international": 2900,
               "roaming": 4900, "sms": 250, "mms": 600, "data": 900},
        text={
            "subscription": "Абонентская плата", "local": "Местные вызовы",
            "long_distance": "Междугородные вызовы", "intrazonal": "Внутризоновые вызовы",
            "international": "Международные вызовы", "roaming": "Международный роуминг",
            "sms": "SMS-сообщения", "mms": "MMS-сообщения", "data": "Мобильный интернет сверх "
            "пакета", "data_pack": "Дополнительный пакет «Ещё 10 ГБ»",
            "tv": "Цифровое телевидение", "internet": "Домашний интернет",
            "equipment": "Смартфон «Сокол» — рассрочка {k}/12", "discount": "Скидка за "
            "объединение услуг", "business_discount": "Корпоративная скидка",
            "other": "Подписка «Кинотеатр»", "late_fee": "Пени за просрочку платежа",
            "interest": "Пени за просрочку платежа (доначисление)",
            "outage": "Перерасчёт за перерыв в обслуживании", "internet_label": "Интернет",
            "roaming_fmt": "Роуминг — {country}", "mobile": "{brand} Мобайл — {plan}",
            "fixed": "{brand} Телефон — {plan}", "broadband": "{brand} Интернет — {plan}",
            "tv_service": "{brand} ТВ — {plan}",
        },
        units={"min": "мин", "msg": "шт.", "mb": "МБ"},
        international=("KZ", "KZ", "TR", "AM", "CN", "UZ", "DE", "BY"),
        roaming=("TR", "AE", "KZ", "AM", "TH"),
        barcode="gost_qr", direct_debit_share=0.15,
        customer_tax_id=_ru_tax_id,
    ),
    _Profile(
        locale="nl_NL", country="NL", currency="EUR", tz="Europe/Amsterdam", weight=12,
        calling_code="31", mobile="6########",
        operator={
            "id": "polder", "name": "Polder Telecom B.V.", "tax_id": "NL859176342B01",
            "address": _op_address(["Wilhelminakade 123"], "3072 AP", "Rotterdam", "NL"),
            "support": {"phone": "0800-0123", "web": "https://www.poldertelecom.example"},
        },
        prefix="PT", brand="Polder",
        cities=(
            _City("Amsterdam", "10## @@", "20#######"), _City("Rotterdam", "30## @@",
                                                             "10#######"),
            _City("Den Haag", "25## @@", "70#######"), _City("Utrecht", "35## @@", "30#######"),
            _City("Eindhoven", "56## @@", "40#######"), _City("Nijmegen", "65## @@",
                                                             "24#######"),
            _City("IJmuiden", "197# @@", "255######"), _City("'s-Hertogenbosch", "52## @@",
                                                            "73#######"),
            _City("Groningen", "97## @@", "50#######"), _City("Zwijndrecht", "333# @@",
                                                             "78#######"),
            _City("Leeuwarden", "89## @@", "58#######"), _City("Delft", "26## @@",
                                                              "15#######"),
        ),
        streets=(
            "Kerkstraat", "Prinsengracht", "Vijzelstraat", "Wijnhaven", "Dorpsstraat",
            "IJsselkade", "Rijnstraat", "Stationsweg", "Molenweg", "Zuiderkerkhof",
            "Heereweg", "Koningin Julianalaan", "Blijdorplaan", "Spuistraat", "Bijlmerdreef",
        ),
        address=(("{street} {n}",), ("{street} {n}",), ("{street} {n}-{n1}",),
                 ("{street} {n}{l}",), ("{street} {n} hs",)),
        names=_names_nl,
        companies=(
            ("Bakkerij Van Dijk", "bakkerijvandijk"), ("IJzerhandel De Wijk", "ijzerdewijk"),
            ("Transportbedrijf Rijnmond", "rijnmondtransport"), ("Bloemenkwekerij 't Hof",
                                                                 "kwekerijthof"),
        ),
        company_forms=("B.V.", "V.O.F."),
        tax_code="BTW", tax_rate="0.21",
        mobile_plans=(_Plan("Sim Only 20 GB", 1850), _Plan("Onbeperkt Bellen + 50 GB", 3000),
                      _Plan("Gezinsbundel 100 GB", 4500)),
        business_plans=(_Plan("Zakelijk Onbeperkt", 3600), _Plan("Zakelijk 10 GB", 2200)),
        fixed_plans=(_Plan("Vaste telefonie Vrij Bellen", 1000),),
        internet_plans=(_Plan("Glasvezel 1 Gbit/s", 6000),),
        tv_plans=(_Plan("Televisie Compleet — 90 zenders", 1500),),
        rates={"local": 20, "long_distance": 20, "intrazonal": 20, "international": 35,
               "roaming": 25, "sms": 12, "mms": 45, "data": 1},
        text={
            "subscription": "Abonnementskosten", "local": "Gesprekken binnen Nederland",
            "long_distance": "Gesprekken naar vaste nummers", "intrazonal":
            "Regionale gesprekken", "international": "Gesprekken naar het buitenland",
            "roaming": "Bellen buiten de EU", "sms": "Sms-berichten", "mms": "Mms-berichten",
            "data": "Extra mobiel internet", "data_pack": "Aanvullende bundel 5 GB",
            "tv": "Televisie", "internet": "Internet", "equipment":
            "Toestelkrediet Fairphone 5 — termijn {k}/24", "discount": "Korting op je bundel",
            "business_discount": "Zakelijke korting", "other": "Betaalde diensten van derden",
            "late_fee": "Aanmaningskosten", "interest": "Wettelijke rente",
            "outage": "Compensatie storing", "internet_label": "Internet",
            "roaming_fmt": "Roaming — {country}", "mobile": "{brand} Mobiel — {plan}",
            "fixed": "{brand} Vast — {plan}", "broadband": "{brand} Internet — {plan}",
            "tv_service": "{brand} TV — {plan}",
        },
        units={"min": "min", "msg": "sms", "mb": "MB"},
        international=("BE", "BE", "DE", "DE", "TR", "MA", "SR", "GB"),
        roaming=("TR", "CH", "GB", "US", "MA"),
        barcode="epc_qr", direct_debit_share=0.55,
        customer_tax_id=_nl_tax_id,
    ),
    _Profile(
        locale="fa_IR", country="IR", currency="IRR", tz="Asia/Tehran", weight=13,
        calling_code="98", mobile="9[ir]########",
        operator={
            "id": "alborz", "name": "شرکت ارتباطات سیار البرز",
            "tax_id": "10103794125",
            "address": _op_address(["خیابان ولیعصر، بالاتر از میدان ونک، پلاک ۲۵۷۳"],
                                   "19697-33141", "تهران", "IR"),
            "support": {"phone": "9990", "web": "https://www.alborz-telecom.example"},
        },
        prefix="AB", brand="البرز",
        cities=(
            _City("تهران", "1####-#####", "21########"), _City("اصفهان", "81###-#####",
                                                               "31########"),
            _City("شیراز", "71###-#####", "71########"), _City("مشهد", "91###-#####",
                                                               "51########"),
            _City("تبریز", "51###-#####", "41########"), _City("کرج", "31###-#####",
                                                               "26########"),
            _City("اهواز", "61###-#####", "61########"), _City("قم", "37###-#####",
                                                               "25########"),
            _City("رشت", "41###-#####", "13########"), _City("کرمانشاه", "67###-#####",
                                                             "83########"),
            _City("یزد", "89###-#####", "35########"), _City("کرمان", "76###-#####",
                                                             "34########"),
        ),
        streets=(
            "خیابان ولیعصر", "خیابان انقلاب", "بلوار کشاورز", "خیابان آزادی",
            "خیابان شریعتی", "کوچه گلستان", "خیابان چهارباغ عباسی", "بلوار وکیل‌آباد",
            "خیابان زند", "بلوار فردوسی", "خیابان حافظ", "کوچه نسترن",
        ),
        address=(
            ("{street}، پلاک {n}",), ("{street}، پلاک {n}، واحد {n1}",),
            ("{street}، پلاک {n}", "طبقه {n1}، واحد {n2}"),
        ),
        names=_names_fa,
        companies=(
            ("شرکت مهندسی پارس", "parseng"), ("بازرگانی آریا", "aryatrade"),
            ("شرکت حمل‌ونقل زاگرس", "zagros"), ("داروخانه دکتر رضایی", "rezaeipharmacy"),
        ),
        company_forms=("",),
        tax_code="VAT", tax_rate="0.10",
        mobile_plans=(_Plan("طرح دائمی ۳۰ گیگ", 3_500_000), _Plan("طرح دائمی ویژه", 2_000_000),
                      _Plan("طرح خانواده ۱۰۰ گیگ", 7_500_000)),
        business_plans=(_Plan("طرح سازمانی ۵۰ گیگ", 5_000_000),),
        fixed_plans=(_Plan("تلفن ثابت خانگی", 450_000),),
        internet_plans=(_Plan("اینترنت پرسرعت ۱۰۰ مگابیت", 6_000_000),),
        tv_plans=(_Plan("تلویزیون اینترنتی", 1_500_000),),
        rates={"local": 1_000, "long_distance": 1_500, "intrazonal": 1_200,
               "international": 60_000, "roaming": 150_000, "sms": 300, "mms": 2_000,
               "data": 2_000},
        text={
            "subscription": "آبونمان ماهانه", "local": "مکالمات داخل شبکه",
            "long_distance": "مکالمات بین‌شهری", "intrazonal": "مکالمات درون‌استانی",
            "international": "مکالمات بین‌المللی", "roaming": "رومینگ بین‌الملل",
            "sms": "پیامک", "mms": "پیام چندرسانه‌ای", "data": "اینترنت مازاد بر بسته",
            "data_pack": "بسته اینترنت اضافه ۱۰ گیگ", "tv": "تلویزیون", "internet":
            "اینترنت ثابت", "equipment": "گوشی همراه — قسط {k}/۱۲",
            "discount": "تخفیف وفاداری", "business_discount": "تخفیف سازمانی",
            "other": "خدمات ارزش افزوده", "late_fee": "جریمه دیرکرد", "interest":
            "خسارت تأخیر تأدیه", "outage": "جبران قطعی سرویس", "internet_label": "اینترنت",
            "roaming_fmt": "رومینگ — {country}", "mobile": "{brand} همراه — {plan}",
            "fixed": "{brand} ثابت — {plan}", "broadband": "{brand} اینترنت — {plan}",
            "tv_service": "{brand} تلویزیون — {plan}",
        },
        units={"min": "دقیقه", "msg": "پیامک", "mb": "مگابایت"},
        international=("TR", "TR", "AE", "AE", "IQ", "DE", "AF", "US"),
        roaming=("TR", "AE", "IQ", "AM", "GE"),
        barcode="code128", direct_debit_share=0.25,
        customer_tax_id=_fa_tax_id,
        persian_digits=True,
    ),
    _Profile(
        locale="en", country="GB", currency="GBP", tz="Europe/London", weight=15,
        # Ofcom reserves 07700 900000-900999 and the 496 0xxx / 7946 0xxx blocks for
        # drama: synthetic SMS notices and calls can never reach a real subscriber.
        calling_code="44", mobile="7700900###",
        operator={
            "id": "albion", "name": "Albion Mobile Ltd", "tax_id": "GB 284 1937 66",
            "address": _op_address(["1 Drummond Gate"], "SW1V 2QQ", "London", "GB"),
            "support": {"phone": "150", "web": "https://www.albionmobile.example"},
        },
        prefix="AM", brand="Albion",
        cities=(
            _City("London", "SW# #@@", "2079460###"), _City("Manchester", "M# #@@",
                                                              "1614960###"),
            _City("Leeds", "LS# #@@", "1134960###"), _City("Bristol", "BS# #@@", "1174960###"),
            _City("Glasgow", "G# #@@", "1414960###"), _City("Cardiff", "CF# #@@",
                                                              "2920180###"),
            _City("Birmingham", "B# #@@", "1214960###"), _City("Edinburgh", "EH# #@@",
                                                                 "1314960###"),
            _City("Sheffield", "S# #@@", "1144960###"), _City("Nottingham", "NG# #@@",
                                                                "1154960###"),
        ),
        streets=(
            "Acacia Avenue", "High Street", "Church Lane", "Victoria Road", "Station Road",
            "Mill Lane", "King's Road", "Queen Street", "Park View", "St John's Close",
        ),
        address=(("{n} {street}",), ("{n} {street}",), ("Flat {n1}", "{n} {street}"),
                 ("Flat {n2}, {L} Block", "{n} {street}")),
        names=_names_en,
        companies=(
            ("Thames Valley Logistics", "tvlogistics"), ("Brecon Beacons Outdoor",
                                                         "breconoutdoor"),
            ("O'Malley & Daughters Plumbing", "omalleyplumbing"),
        ),
        company_forms=("Ltd", "LLP", "plc"),
        tax_code="VAT", tax_rate="0.20",
        mobile_plans=(_Plan("SIM Only 30GB", 1500), _Plan("Unlimited Max", 3200),
                      _Plan("Family 100GB", 4500)),
        business_plans=(_Plan("Business Unlimited", 2800), _Plan("Business 20GB", 1800)),
        fixed_plans=(_Plan("Home Phone Anytime", 2300),),
        internet_plans=(_Plan("Full Fibre 900", 4999),),
        tv_plans=(_Plan("TV Essentials", 1800),),
        rates={"local": 55, "long_distance": 55, "intrazonal": 55, "international": 150,
               "roaming": 75, "sms": 20, "mms": 50, "data": 1},
        text={
            "subscription": "Monthly plan", "local": "Calls to UK numbers",
            "long_distance": "Calls to UK landlines", "intrazonal": "Local area calls",
            "international": "International calls", "roaming": "Roaming outside Europe",
            "sms": "Text messages", "mms": "Picture messages", "data": "Data over allowance",
            "data_pack": "Data Boost 5GB", "tv": "TV", "internet": "Broadband",
            "equipment": "Handset plan Pixel 9 — instalment {k}/24",
            "discount": "Loyalty discount", "business_discount": "Business multi-line discount",
            "other": "Premium rate services", "late_fee": "Late payment fee",
            "interest": "Interest on late payment", "outage": "Service outage credit",
            "internet_label": "Mobile data", "roaming_fmt": "Roaming — {country}",
            "mobile": "{brand} Mobile — {plan}", "fixed": "{brand} Home Phone — {plan}",
            "broadband": "{brand} Broadband — {plan}", "tv_service": "{brand} TV — {plan}",
        },
        units={"min": "min", "msg": "texts", "mb": "MB"},
        international=("US", "US", "FR", "ES", "IE", "IN", "PL", "PK"),
        roaming=("US", "CH", "TR", "AE", "TH"),
        barcode="code128", direct_debit_share=0.6,
        customer_tax_id=_en_tax_id,
    ),
)

#: Locales the generator produces.
LOCALES: tuple[str, ...] = tuple(p.locale for p in PROFILES)

# Country calling code and national number pattern of the places called abroad.
_ABROAD = {
    "PT": ("351", "9########"), "US": ("1", "20255501##"), "AR": ("54", "911########"),
    "IT": ("39", "3#########"), "ES": ("34", "6########"), "JP": ("81", "90########"),
    "DE": ("49", "151########"), "GB": ("44", "7700900###"), "FR": ("33", "6########"),
    "MD": ("373", "6#######"), "KZ": ("7", "70########"), "TR": ("90", "5#########"),
    "AM": ("374", "9#######"), "CN": ("86", "13#########"), "UZ": ("998", "9########"),
    "BY": ("375", "29#######"), "BE": ("32", "4########"), "MA": ("212", "6########"),
    "SR": ("597", "8######"), "AE": ("971", "5########"), "IQ": ("964", "77########"),
    "AF": ("93", "7########"), "IE": ("353", "8########"), "IN": ("91", "9#########"),
    "PL": ("48", "5########"), "PK": ("92", "3#########"), "UY": ("598", "9#######"),
    "CL": ("56", "9########"), "RS": ("381", "6########"), "CH": ("41", "7########"),
    "TH": ("66", "8########"), "GE": ("995", "5########"),
}

# Digit ranges that make mobile numbers look like each country's real ranges.
_MOBILE_RANGES = {"[ro]": "2345689", "[ru]": "0123689", "[ir]": "0123", "[fix]": "2345"}

_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 4, 8, 12, 14, 14, 14, 13, 14, 14, 14, 14, 15, 16, 16, 14,
                 10, 6, 3)
_HOUR_CUM = tuple(accumulate(_HOUR_WEIGHTS))
_HOUR_SECONDS = tuple(h * 3600 for h in range(24))

# (usage type, weight) per kind of line; fixed lines have no messages, data or roaming.
_MOBILE_MIX = (("local", 34), ("long_distance", 10), ("intrazonal", 5), ("international", 3),
               ("roaming", 2), ("sms", 16), ("mms", 1), ("data", 29))
_FIXED_MIX = (("local", 60), ("long_distance", 22), ("intrazonal", 12), ("international", 6))

# Share of CDRs that are rated (outside the plan) per usage type.
_RATED = {"local": 0.04, "long_distance": 0.25, "intrazonal": 0.15, "international": 0.9,
          "roaming": 1.0, "sms": 0.12, "mms": 0.6, "data": 0.02}
_CATEGORY = {"local": "local", "long_distance": "long_distance", "intrazonal": "intrazonal",
             "international": "international", "roaming": "roaming", "sms": "sms",
             "mms": "sms", "data": "data"}
_CHARGE_CODE = {"local": "LOC", "long_distance": "LDN", "intrazonal": "INZ",
                "international": "INT", "roaming": "ROA", "sms": "SMS", "mms": "MMS",
                "data": "DAT"}
_CALLS = frozenset(("local", "long_distance", "intrazonal", "international", "roaming"))

_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")  # RFC 2606: never delivered


@dataclass(frozen=True, slots=True)
class _Ready:
    """A profile's derived, per-run constants (computed once, used for every record)."""

    p: _Profile
    tz: ZoneInfo
    digits: int
    fmt: Callable[[int], str]
    zero: str
    tax_rate: Decimal
    countries: dict[str, str]  # ISO code -> name in the locale's language
    operator_json: str


def _prepare(p: _Profile) -> _Ready:
    digits = get_currency_precision(p.currency)
    fmt = _money_formatter(digits)
    babel_locale = Locale.parse("en_GB" if p.locale == "en" else p.locale)
    codes = {*p.international, *p.roaming}
    countries = {c: babel_locale.territories[c] for c in sorted(codes)}
    return _Ready(p, ZoneInfo(p.tz), digits, fmt, fmt(0), Decimal(p.tax_rate), countries,
                  json.dumps(p.operator, ensure_ascii=False))


# --- the generator --------------------------------------------------------------------


class _Generator:
    """Holds the random state and per-run constants; ``record(i)`` builds record ``i``."""

    def __init__(self, cdrs: int, seed: int, einvoice: float = 0.0) -> None:
        self.rng = random.Random(seed)
        self.cdrs = cdrs
        self.einvoice = einvoice
        self.ready = [_prepare(p) for p in PROFILES]
        self.cum_weights = tuple(accumulate(p.weight for p in PROFILES))
        rng = self.rng
        # A run tag in every invoice number: runs with other seeds never collide with
        # this one in the ledger, where a repeated number is treated as a redelivery.
        self.tag = f"{rng.getrandbits(32):08X}"
        self.month = _add_months(date(2025, 1, 1), rng.randrange(24))
        # Accounts are unique within a run: an affine walk over 10^10 numbers.
        self.account_base = rng.randrange(10**9, 10**10)
        self._midnights: dict[tuple[str, date, date], list[int]] = {}

    # -- one record --------------------------------------------------------------------

    def record(self, i: int) -> dict[str, Any]:
        rng = self.rng
        r = rng.choices(self.ready, cum_weights=self.cum_weights)[0]
        p = r.p
        business = rng.random() < 0.1
        # Drawn only when asked for, so runs without e-invoices stay byte for byte what
        # they were.
        wants_einvoice = (self.einvoice > 0 and p.country in EINVOICE_COUNTRIES
                          and rng.random() < self.einvoice)
        business = business or wants_einvoice

        cycle = rng.choice((1, 8, 15, 22))
        start = self.month.replace(day=cycle)
        end = _add_months(start, 1) - timedelta(days=1)
        issue = end + timedelta(days=rng.randint(1, 5))
        due = issue + timedelta(days=rng.choice((10, 12, 15, 20)))
        account = f"{(self.account_base + i * 7_919_393) % 10**10:010d}"
        number = f"{p.prefix}-{issue:%Y-%m}-{self.tag}-{i + 1:07d}"

        city = rng.choice(p.cities)
        customer, login, domain = self._customer(r, city, business)

        services, charges_total, tax_base, mobiles = self._services(r, city, business,
                                                                    start, end)
        taxes: list[dict[str, Any]] = []
        taxes_total = 0
        if tax_base:
            # Brazil's ICMS is a state tax: the rate follows the subscriber's state.
            rate_text = city.tax_rate or p.tax_rate
            amount = _tax(tax_base, Decimal(rate_text))
            taxes.append({"code": p.tax_code, "rate": rate_text, "base": r.fmt(tax_base),
                          "amount": r.fmt(amount)})
            taxes_total = amount

        typical = charges_total + taxes_total
        balance, history = self._balance(r, start, issue, typical)
        payments_total = sum(x[1] for x in balance["payments"])
        adjustments_total = sum(x[2] for x in balance["adjustments"])
        total_due = (balance["previous"] - payments_total + adjustments_total + charges_total
                     + taxes_total)
        if balance.pop("credit") and total_due > 0:
            # A payment made twice, or one bigger than the bill, leaves a credit: the
            # record is then paid by nobody (method "none").
            extra = rng.choice((0, rng.randrange(1, max(2, typical // 2))))
            balance["payments"].append((end - timedelta(days=rng.randint(0, 10)),
                                        total_due + extra, "bank_transfer"))
            payments_total += total_due + extra
            total_due = -extra

        record: dict[str, Any] = {
            "schema": SCHEMA,
            "invoice": {
                "number": number,
                "kind": "duplicate" if rng.random() < 0.03 else "original",
                "issue_date": issue.isoformat(),
                "due_date": due.isoformat(),
                "period": {"start": start.isoformat(), "end": end.isoformat()},
                "currency": p.currency,
                "locale": p.locale,
            },
            # A fresh copy: callers may edit a yielded record without touching the next.
            "operator": json.loads(r.operator_json),
            "account": {"number": account, "segment": "business" if business else "consumer",
                        "customer": customer},
            "delivery": self._delivery(r, city, mobiles, login, domain),
            "balance": {
                "previous": r.fmt(balance["previous"]),
                "payments": [{"date": d.isoformat(), "amount": r.fmt(a), "method": m}
                             for d, a, m in balance["payments"]],
                "adjustments": [{"date": d.isoformat(), "description": t, "amount": r.fmt(a)}
                                for d, t, a in balance["adjustments"]],
            },
            "services": services,
            "taxes": taxes,
            "totals": {"charges": r.fmt(charges_total), "taxes": r.fmt(taxes_total),
                       "adjustments": r.fmt(adjustments_total), "total_due": r.fmt(total_due)},
            "payment": self._payment(r, total_due, account, number, due),
            "history": [{"period": m, "amount": r.fmt(a)} for m, a in history],
        }
        if wants_einvoice:
            as_einvoice(record, rng)
        return record

    # -- parts -------------------------------------------------------------------------

    def _customer(self, r: _Ready, city: _City, business: bool
                  ) -> tuple[dict[str, Any], str, str]:
        rng, p = self.rng, r.p
        if business:
            base, slug = rng.choice(p.companies)
            form = rng.choice(p.company_forms)
            name = f"{base} {form}" if form else base
            login = rng.choice(("financeiro", "faturas", "contas") if p.country == "BR"
                               else ("billing", "finance", "accounts", "invoices"))
            domain = f"{slug}.example"
        else:
            name, login = p.names(rng)
            login = f"{login}{rng.randrange(100)}" if rng.random() < 0.5 else login
            domain = rng.choice(_EMAIL_DOMAINS)
        vals = {
            # House numbers: mostly small, a long tail (Brazilian numbering is by metres).
            "street": rng.choice(p.streets),
            "n": min(2999, 1 + int(rng.expovariate(1 / (300 if p.country == "BR" else 40)))),
            "n1": rng.randint(1, 9), "n2": rng.randint(1, 80), "n3": rng.randint(101, 1204),
            "L": rng.choice("ABCDEF"), "l": rng.choice("abc"),
        }
        lines = [t.format(**vals) for t in rng.choice(p.address)]
        if p.persian_digits and rng.random() < 0.5:
            # Iranian addresses are written with Persian digits as often as not; the
            # renderer must cope with both.
            lines = [x.translate(_FA_DIGITS) for x in lines]
        customer: dict[str, Any] = {"name": name}
        tax_id = p.customer_tax_id(rng, business)
        if tax_id is not None:
            customer["tax_id"] = tax_id
        customer["address"] = {"lines": lines, "postal_code": _fill(rng, city.postal),
                               "city": city.name, "country": p.country}
        return customer, login, domain

    def _number(self, r: _Ready, pattern: str, city: _City | None = None) -> str:
        """An E.164 number of the profile's country from a national ``pattern``."""
        rng = self.rng
        if "[" in pattern:
            for key, choices in _MOBILE_RANGES.items():
                if key in pattern:
                    pattern = pattern.replace(key, rng.choice(choices))
        if "{" in pattern:
            area = (city or rng.choice(r.p.cities)).fixed[:2]
            pattern = pattern.replace("{area}", area)
        return f"+{r.p.calling_code}{_fill(rng, pattern)}"

    def _contacts(self, r: _Ready, city: _City, calls: int
                  ) -> dict[str, list[tuple[str, str]]]:
        """The numbers one subscriber calls: a handful, called again and again.

        Never more numbers than ``calls``: a quiet business line makes a call or two,
        and inventing a dozen contacts for it would be most of the generation time.
        """
        rng, p = self.rng, r.p
        local = [(self._number(r, p.mobile if rng.random() < 0.7 else city.fixed, city),
                  city.name) for _ in range(min(calls, rng.randint(3, 10)))]
        others = [c for c in p.cities if c is not city]
        far = []
        for _ in range(min(calls, rng.randint(2, 6))):
            c = rng.choice(others)
            far.append((self._number(r, p.mobile if rng.random() < 0.6 else c.fixed, c),
                        c.name))
        abroad = []
        for _ in range(min(calls, rng.randint(1, 3))):
            iso = rng.choice(p.international)
            cc, pattern = _ABROAD[iso]
            abroad.append((f"+{cc}{_fill(rng, pattern)}", r.countries[iso]))
        return {"local": local, "long_distance": far, "intrazonal": far[: max(1, len(far) // 2)],
                "international": abroad, "roaming": local + far,
                "sms": local + far, "mms": local}

    def _cdr_count(self) -> int:
        """CDRs of one record: most near the mean, a few silent, a few heavy users.

        3 % have none and 3 % twice the mean, the rest a normal spread around the mean,
        so the mean over a run stays ``cdrs``.
        """
        mean = self.cdrs
        if mean == 0:
            return 0
        x = self.rng.random()
        if x < 0.03:
            return 0
        if x < 0.06:
            return 2 * mean
        return max(0, round(self.rng.gauss(mean, mean * 0.2)))

    def _services(self, r: _Ready, city: _City, business: bool, start: date, end: date
                  ) -> tuple[list[dict[str, Any]], int, int, list[str]]:
        """Services with charges and usage.

        Returns them, Σ charges and the tax base (minor units) and the mobile numbers
        (the only ones that can receive an SMS notice).
        """
        rng, p = self.rng, r.p
        text = p.text
        lines: list[tuple[str, str, _Plan, str]] = []  # (kind, id, plan, label)
        taken: set[str] = set()  # membership only, never iterated (hash order varies)

        def new_id(pattern: str) -> str:
            # Service ids are unique within a record; the UK drama range has only 1,000
            # mobile numbers, so a fleet of 60 lines would otherwise repeat one.
            while (number := self._number(r, pattern, city)) in taken:
                pass
            taken.add(number)
            return number

        if business:
            n = min(60, 2 + int(rng.expovariate(1 / 8)))
            plan = rng.choice(p.business_plans)
            for _ in range(n):
                lines.append(("mobile", new_id(p.mobile), plan,
                              text["mobile"].format(brand=p.brand, plan=plan.label)))
            if rng.random() < 0.5:
                fixed = rng.choice(p.fixed_plans)
                lines.append(("fixed", new_id(city.fixed), fixed,
                              text["fixed"].format(brand=p.brand, plan=fixed.label)))
        else:
            bundle = rng.choices(("m", "mi", "fit", "mfit", "f"), (70, 10, 10, 5, 5))[0]
            if "m" in bundle:
                plan = rng.choice(p.mobile_plans)
                lines.append(("mobile", new_id(p.mobile), plan,
                              text["mobile"].format(brand=p.brand, plan=plan.label)))
            if "f" in bundle:
                plan = rng.choice(p.fixed_plans)
                lines.append(("fixed", new_id(city.fixed), plan,
                              text["fixed"].format(brand=p.brand, plan=plan.label)))
            if "i" in bundle:
                plan = rng.choice(p.internet_plans)
                lines.append(("internet", f"FIBRA-{rng.randrange(10**6, 10**7)}", plan,
                              text["broadband"].format(brand=p.brand, plan=plan.label)))
            if "t" in bundle:
                plan = rng.choice(p.tv_plans)
                lines.append(("tv", f"TV-{rng.randrange(10**6, 10**7)}", plan,
                              text["tv_service"].format(brand=p.brand, plan=plan.label)))

        # Spread this record's CDRs over the lines that make calls.
        talkers = [k for k, line in enumerate(lines) if line[0] in ("mobile", "fixed")]
        total = self._cdr_count()
        counts = [0] * len(lines)
        if total and talkers:
            if len(talkers) == 1:
                counts[talkers[0]] = total
            else:
                # Business lines are not equal: a few heavy callers, many quiet ones.
                weights = [rng.paretovariate(1.5) for _ in talkers]
                for k in rng.choices(talkers, weights, k=total):
                    counts[k] += 1

        day_starts = self._day_starts(r, start, end)
        services: list[dict[str, Any]] = []
        charges_total = tax_base = 0
        taxed = p.tax_code
        for (kind, sid, plan, label), count in zip(lines, counts, strict=True):
            charges: list[dict[str, Any]] = []

            def charge(code: str, desc: str, category: str, amount: int, *,
                       quantity: str | None = "1", unit: str | None = None,
                       tax: bool = True, charges: list = charges) -> None:
                nonlocal charges_total, tax_base
                c: dict[str, Any] = {"code": code, "description": desc, "category": category}
                if quantity is not None:
                    c["quantity"] = quantity
                if unit is not None:
                    c["unit"] = unit
                c["amount"] = r.fmt(amount)
                if tax:
                    c["tax"] = taxed
                    tax_base += amount
                charges.append(c)
                charges_total += amount

            category = {"internet": "internet", "tv": "tv"}.get(kind, "subscription")
            charge("SUB", text["subscription"] if category == "subscription" else text[kind],
                   category, plan.price)
            usage: list[dict[str, Any]] = []
            if count:
                usage, rated = self._usage(r, city, kind, count, day_starts)
                for utype, (qty, amount) in rated.items():
                    unit = ("mb" if utype == "data" else "msg" if utype in ("sms", "mms")
                            else "min")
                    charge(_CHARGE_CODE[utype], text[utype], _CATEGORY[utype], amount,
                           quantity=str(qty), unit=p.units[unit])
            x = rng.random()
            if kind == "mobile" and x < 0.08:
                charge("EQP", text["equipment"].format(k=rng.randint(1, 12)), "equipment",
                       plan.price // 2 + rng.randrange(plan.price), quantity=None,
                       tax=p.country != "BR")  # handsets carry no ICMS on the telecom bill
            elif kind == "mobile" and x < 0.16:
                charge("PAC", text["data_pack"], "data", plan.price // 3)
            if business:
                charge("DSC", text["business_discount"], "discount", -(plan.price // 10))
            elif rng.random() < 0.12:
                charge("DSC", text["discount"], "discount", -(plan.price * rng.randint(5, 30)
                                                             // 100))
            if (kind == "tv" and rng.random() < 0.3) or (kind == "mobile" and x > 0.97):
                charge("OUT", text["other"], "other", plan.price // 5 + 1, tax=False)

            service: dict[str, Any] = {"id": sid, "label": label, "charges": charges}
            if usage or rng.random() < 0.5:
                # "usage" is optional: leave it out sometimes when it is empty.
                service["usage"] = usage
            services.append(service)
        mobiles = [sid for kind, sid, _, _ in lines if kind == "mobile"]
        return services, charges_total, tax_base, mobiles

    def _day_starts(self, r: _Ready, start: date, end: date) -> list[int]:
        """Local midnights of the period's days, as UTC timestamps (cached: a run has
        only a few billing cycles per time zone)."""
        key = (r.p.tz, start, end)
        out = self._midnights.get(key)
        if out is None:
            out = []
            d = start
            while d <= end:
                out.append(int(datetime(d.year, d.month, d.day, tzinfo=r.tz).timestamp()))
                d += timedelta(days=1)
            self._midnights[key] = out
        return out

    def _usage(self, r: _Ready, city: _City, kind: str, n: int, day_starts: list[int]
               ) -> tuple[list[dict[str, Any]], dict[str, tuple[int, int]]]:
        """``n`` chronological CDRs of one line, and per usage type the rated quantity and
        amount (the charges the bill shows for usage outside the plan)."""
        rng, p = self.rng, r.p
        rand = rng.random
        mix = _MOBILE_MIX if kind == "mobile" else _FIXED_MIX
        types = rng.choices([t for t, _ in mix], cum_weights=list(accumulate(w for _, w in mix)),
                            k=n)
        # Instants: a day of the period, an hour weighted to waking hours, a second in it.
        # Sorting timestamps (not local wall times) keeps the order right across a DST
        # change; each instant is then written with the offset in force at that moment.
        days = rng.choices(day_starts, k=n)
        hours = rng.choices(_HOUR_SECONDS, cum_weights=_HOUR_CUM, k=n)
        stamps = sorted(d + h + int(rand() * 3600) for d, h in zip(days, hours, strict=True))

        contacts = self._contacts(r, city, n)
        rates, zero, fmt, tz = p.rates, r.zero, r.fmt, r.tz
        internet = p.text["internet_label"]
        roaming_names = [p.text["roaming_fmt"].format(country=r.countries[c])
                         for c in p.roaming]
        trip = rng.choice(roaming_names)  # one trip abroad per period
        lognorm = rng.lognormvariate
        fromts = datetime.fromtimestamp
        rated: dict[str, list[int]] = {}
        out = []
        for ts, utype in zip(stamps, types, strict=True):
            start = fromts(ts, tz).isoformat()
            if utype == "data":
                kb = int(lognorm(9.0, 1.6)) + 1  # median ~8 MB, long tail
                cdr = {"start": start, "type": "data", "destination": internet,
                       "volume_kb": kb, "amount": zero}
                if rand() < _RATED["data"]:
                    mb = (kb + 1023) // 1024
                    amount = mb * rates["data"]
                    cdr["amount"] = fmt(amount)
                    acc = rated.setdefault("data", [0, 0])
                    acc[0] += mb
                    acc[1] += amount
                out.append(cdr)
                continue
            called, dest = rng.choice(contacts[utype])
            if utype == "roaming":
                dest = trip
            cdr = {"start": start, "type": utype, "called": called, "destination": dest}
            if utype in _CALLS:
                secs = min(14_400, int(lognorm(4.0, 1.1)) + 1)  # median ~1 min
                cdr["duration_s"] = secs
                qty = (secs + 59) // 60  # billed per started minute
            else:
                qty = 1
            if rand() < _RATED[utype]:
                amount = qty * rates[utype]
                cdr["amount"] = fmt(amount)
                acc = rated.setdefault(utype, [0, 0])
                acc[0] += qty
                acc[1] += amount
            else:
                cdr["amount"] = zero
            out.append(cdr)
        order = [t for t, _ in mix]
        return out, {t: (rated[t][0], rated[t][1]) for t in order if t in rated}

    def _balance(self, r: _Ready, start: date, issue: date, typical: int
                 ) -> tuple[dict[str, Any], list[tuple[str, int]]]:
        """Previous balance, payments, adjustments and the history of earlier invoices.

        Payments and adjustments are ``(date, amount, method)`` / ``(date, text, amount)``
        tuples in minor units; the caller formats them.
        """
        rng, p = self.rng, r.p
        text = p.text
        new_customer = rng.random() < 0.05
        months = 0 if new_customer else rng.choices(range(1, 14), [1] * 12 + [12])[0]
        history: list[tuple[str, int]] = []
        first_month = _add_months(issue.replace(day=1), -months)
        for k in range(months):
            m = _add_months(first_month, k)
            history.append((f"{m:%Y-%m}", max(0, int(typical * rng.uniform(0.85, 1.15)))))
        previous = history[-1][1] if history else 0

        payments: list[tuple[date, int, str]] = []
        adjustments: list[tuple[date, str, int]] = []
        paid_on = start + timedelta(days=rng.randint(0, 20))
        method = rng.choice(("barcode", "direct_debit", "card", "bank_transfer")
                            if p.country != "BR" else ("barcode", "pix", "direct_debit"))
        scenario = rng.random() if previous else 1.0
        credit = False
        if scenario < 0.80:
            payments.append((paid_on, previous, method))
        elif scenario < 0.85:
            # Not paid: the arrears stay in the balance and a late fee is charged.
            adjustments.append((issue - timedelta(days=2), text["late_fee"],
                                max(1, previous * 2 // 100)))
            if rng.random() < 0.5:
                adjustments.append((issue - timedelta(days=2), text["interest"],
                                    max(1, previous // 100)))
        elif scenario < 0.88 and previous > 1:
            payments.append((paid_on, rng.randrange(1, previous), method))
        elif scenario < 0.93:
            payments.append((paid_on, previous, method))
            credit = True
        else:
            payments.append((paid_on, previous, method))
        if rng.random() < 0.04:
            adjustments.append((start + timedelta(days=rng.randint(0, 25)), text["outage"],
                                -max(1, typical // rng.randint(5, 30))))
        balance = {"previous": previous, "payments": payments, "adjustments": adjustments,
                   "credit": credit}
        return balance, history

    def _delivery(self, r: _Ready, city: _City, mobiles: list[str], login: str, domain: str
                  ) -> dict[str, Any]:
        rng = self.rng
        mode = rng.choices(("electronic", "paper", "both"), (65, 15, 20))[0]
        delivery: dict[str, Any] = {"mode": mode}
        if mode != "paper" or rng.random() < 0.5:
            delivery["email"] = f"{login}@{domain}"
        if rng.random() < 0.8:
            # A customer with only a landline or broadband leaves a mobile for notices.
            delivery["phone"] = mobiles[0] if mobiles else self._number(r, r.p.mobile, city)
            delivery["sms_notice"] = rng.random() < 0.5
        if mode != "paper":
            delivery["attach_pdf"] = rng.random() < 0.8
        return delivery

    def _payment(self, r: _Ready, total_due: int, account: str, number: str, due: date
                 ) -> dict[str, Any]:
        rng, p = self.rng, r.p
        if total_due <= 0:
            return {"method": "none"}
        if rng.random() < p.direct_debit_share:
            return {"method": "direct_debit"}
        scheme = p.barcode
        if scheme == "febraban":
            # Segment 4 (telecom), value type 6 (amount in the barcode, modulo 10).
            free = f"{account:0>16}{due:%Y%m%d}0"
            code = febraban.build(4, 6, total_due, "0108", free)
            return {"method": "barcode", "scheme": "febraban", "code": code}
        if scheme == "gost_qr":
            fields = dict(_GOST_STATIC)
            fields["Sum"] = str(total_due)
            fields["Purpose"] = f"Оплата услуг связи по счёту № {number}"
            fields["PersAcc"] = account
            return {"method": "barcode", "scheme": "gost_qr", "code": gost.build(fields),
                    "fields": fields}
        if scheme == "epc_qr":
            fields = {"IBAN": _EPC_IBAN, **_EPC_STATIC}
            if rng.random() < 0.7:
                fields["remittance_reference"] = epc.make_rf(f"{account}{number[-7:]}")
            else:
                fields["remittance_text"] = f"Factuur {number}"
            amount = Decimal(total_due).scaleb(-r.digits)
            return {"method": "barcode", "scheme": "epc_qr", "code": epc.build(fields, amount),
                    "fields": fields}
        # code128: a plain payment reference the bank or the post office keys in.
        ref = f"{p.prefix}{account}{due:%y%m%d}{total_due % 10**6:06d}"
        return {"method": "barcode", "scheme": "code128", "code": ref}


_EPC_IBAN = epc.make_iban("NL", "INGB0006543210")


# --- public API -----------------------------------------------------------------------


def generate(count: int, cdrs: int, seed: int, einvoice: float = 0.0
             ) -> Iterator[dict[str, Any]]:
    """Yield ``count`` reconciling ``billing-record/1`` records, as JSON-ready dicts.

    ``einvoice`` (0 to 1) is the share of Dutch and Romanian records that become business
    records of ``billing-record/1.1`` asking for an e-invoice (Factur-X, XRechnung,
    Peppol BIS 3, RO_CIUS: :mod:`billing.synthetic_einvoice`); 0 leaves the run as it
    always was.

    ``cdrs`` is the mean number of call-detail records per record (0 for none); the
    actual number varies around it. The same ``(count, cdrs, seed)`` always yields the
    same records. Records are built one at a time, so any ``count`` runs in constant
    memory.
    """
    if count < 0 or cdrs < 0:
        raise ValueError("count and cdrs must not be negative")
    if not 0 <= einvoice <= 1:
        raise ValueError("einvoice is a share between 0 and 1")
    gen = _Generator(cdrs, seed, einvoice)
    for i in range(count):
        yield gen.record(i)


def write_jsonl(out: TextIO, count: int, cdrs: int, seed: int, einvoice: float = 0.0) -> int:
    """Write ``generate(count, cdrs, seed)`` to ``out`` as JSON Lines; return the lines.

    One compact object a line, UTF-8 text as is (``ensure_ascii=False``): the form the
    billing system hands over.
    """
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    written = 0
    for record in generate(count, cdrs, seed, einvoice):
        out.write(encode(record))
        out.write("\n")
        written += 1
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m billing.synthetic``: write a synthetic bill run as JSON Lines."""
    parser = argparse.ArgumentParser(prog="python -m billing.synthetic", description=__doc__
                                     .splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="records (default 1000)")
    parser.add_argument("--cdrs", type=int, default=20, help="mean CDRs a record (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("-o", "--output", default="-", help="file to write, - for stdout")
    args = parser.parse_args(argv)
    if args.output == "-":
        write_jsonl(sys.stdout, args.count, args.cdrs, args.seed)
    else:
        with open(args.output, "w", encoding="utf-8", newline="\n") as out:
            write_jsonl(out, args.count, args.cdrs, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
