"""Django's own username rules over a sweep of inputs, for crates/tessera-core/tests/it/usernames.rs.

For each input this asks Django 5.2 (from PyPI, not a table) two things:
  * AbstractBaseUser.normalize_username(input) — NFKC, what Django stores;
  * whether the normalised name passes the username field's checks: UnicodeUsernameValidator
    (^[\\w.@+-]+\\Z) and max_length=150, run after normalisation as Django's forms do.

Inputs: every code point assigned in this Python's Unicode database (general category other than
Cn; surrogates cannot be in a Rust string) in the BMP, plane 1 and plane 14, a sample of planes 2
and 3 (all of the CJK compatibility supplement), tricky strings (fullwidth, ligatures, ℌ,
superscripts, Hangul jamo, combining sequences) and seeded random short strings.

Python's unicodedata is Unicode {unidata_version} (14.0.0 in Python 3.11), older than the Rust crates':
only code points assigned in Python's version are swept and used in strings, because Python
treats later ones as unassigned (left alone by NFKC, no \\w) while Rust knows them.

The fixture was made with the CI venv (.ci/run; Python 3.11, Django==5.2.19):

    /tmp/tessera-ci-venv/bin/python crates/tessera-core/tests/usernames/normalize.py \\
        crates/tessera-core/tests/usernames/django-5.2.19.txt

Output lines (code points in hex; a sequence joins them with '.'; ranges are first-last):
    unicode <version> / django <version>
    swept <ranges>          the single code points swept
    valid <ranges>          those whose normalised form Django accepts as a username
    changed <cp> <seq>      those whose normalised form is not the code point itself
    string <seq> <seq> <0|1>  a string, its normalised form, whether Django accepts it
"""

import random
import sys
import unicodedata

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
    USE_TZ=True,
)
django.setup()

from django.contrib.auth.base_user import AbstractBaseUser  # noqa: E402
from django.contrib.auth.validators import UnicodeUsernameValidator  # noqa: E402
from django.core.exceptions import ValidationError  # noqa: E402

normalize = AbstractBaseUser.normalize_username
validator = UnicodeUsernameValidator()
MAX_LENGTH = 150  # AbstractUser.username's max_length


def accepted(normalised):
    if not normalised or len(normalised) > MAX_LENGTH:
        return False
    try:
        validator(normalised)
    except ValidationError:
        return False
    return True


def assigned(cp):
    return unicodedata.category(chr(cp)) not in ("Cn", "Cs")


def seq(text):
    return ".".join("%x" % ord(c) for c in text)


def ranges(cps):
    out, start, prev = [], None, None
    for cp in cps:
        if start is None:
            start = prev = cp
        elif cp == prev + 1:
            prev = cp
        else:
            out.append((start, prev))
            start = prev = cp
    if start is not None:
        out.append((start, prev))
    return " ".join("%x" % a if a == b else "%x-%x" % (a, b) for a, b in out)


def swept():
    cps = set(range(0x0000, 0x20000))  # BMP and plane 1
    cps.update(range(0x20000, 0x30000, 16))
    cps.update(range(0x2F800, 0x2FA20))  # CJK compatibility ideographs supplement
    cps.update(range(0x30000, 0x40000, 16))
    cps.update(range(0xE0000, 0xE1000))  # tags, variation selectors supplement
    return sorted(cp for cp in cps if assigned(cp))


TRICKY = [
    "ａｌｉｃｅ", "ＡＬＩＣＥ", "alice", "ﬁona", "ﬃ", "ﬆ", "ℌello", "ℍ", "ℵ", "x²", "H₂O", "¹²³",
    "각", "각", "ㄱㅏㄱ", "ﾊﾟﾝ", "ｶﾞ", "e\u0301", "é", "a\u0323\u0307", "a\u0307\u0323",
    "\u1e9b\u0323", "Å", "\u212b", "\u2126", "µ", "ſ", "ß", "İstanbul", "Ǆ", "ǅ", "ǆ", "ĳ",
    "①", "⑳", "Ⓐlice", "㍿", "㍻", "ﷺ", "ﷺ" * 9, "ﷻ", "…", "‥", "½", "Ⅻ", "ⅻ", "𝐀𝐥𝐢𝐜𝐞",
    "𝔄𝔩𝔦𝔠𝔢", "🄰", "🅐", "🅰", "हिन्दी", "தமிழ்", "ไทย", "مرحبا", "ﻣﺮﺣﺒﺎ", "עִבְרִית",
    "_x", "a.b+c-d_e@f", "a b", "a/b", " a", "a\u00a0b", "a\u2002b", "a\u200bb", "a\u200db",
    "a\ufe0fb", "a\u0300", "\u0300a", "\u0345", "ⅰⅱ", "٣", "۳", "߃", "०", "𝟘𝟙", "¼",
    "a" * 150, "a" * 151, "ｘ" * 150, "ﬀ" * 75, "ﬀ" * 76, "", "\u3000", "　alice",
]


def random_strings(pool_by_kind, rng, n):
    kinds = list(pool_by_kind)
    weights = [pool_by_kind[k][0] for k in kinds]
    out = []
    for _ in range(n):
        length = rng.randint(2, 6)
        chars = []
        for _ in range(length):
            kind = rng.choices(kinds, weights)[0]
            chars.append(chr(rng.choice(pool_by_kind[kind][1])))
        out.append("".join(chars))
    return out


def main(path):
    cps = swept()
    bmp = [cp for cp in cps if cp < 0x10000]
    changed = [cp for cp in cps if normalize(chr(cp)) != chr(cp)]
    marks = [cp for cp in bmp if unicodedata.category(chr(cp)) in ("Mn", "Mc", "Me")]
    rng = random.Random(16)
    pools = {
        "any": (35, cps),
        "mark": (20, marks),
        "jamo": (15, list(range(0x1100, 0x1200)) + list(range(0x3131, 0x318F))),
        "ascii": (15, [ord(c) for c in "abcxyzABCXYZ019_.@+-"]),
        "changed": (15, changed),
    }
    strings = TRICKY + random_strings(pools, rng, 4000)
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write("# Written by normalize.py (see its docstring); do not edit.\n")
        out.write("unicode %s\n" % unicodedata.unidata_version)
        out.write("django %s\n" % django.__version__)
        out.write("swept %s\n" % ranges(cps))
        out.write("valid %s\n" % ranges(cp for cp in cps if accepted(normalize(chr(cp)))))
        for cp in changed:
            out.write("changed %x %s\n" % (cp, seq(normalize(chr(cp)))))
        for s in strings:
            n = normalize(s)
            out.write("string %s %s %d\n" % (seq(s) or "-", seq(n) or "-", accepted(n)))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: normalize.py OUTPUT")
    main(sys.argv[1])
