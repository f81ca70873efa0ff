#!/usr/bin/env python3
"""Writes naturaldelta-4.17.0.tsv: humanize 4.17.0's `naturaldelta` of thousands of timedeltas.

durin's `expires_in_str` is `humanize.naturaldelta(token.expiry - token.created)`: a timedelta,
with naturaldelta's defaults (months=True, minimum_unit="seconds"). Each row is the delta in
microseconds (signed) and the text humanize gives for `timedelta(microseconds=that)`.

    python -m venv venv && venv/bin/pip install humanize==4.17.0
    venv/bin/python generate.py naturaldelta-4.17.0.tsv

tests/it/humanize.rs compares Tessera's `expires_in_str` with every row, and, when
TESSERA_TEST_PYTHON names a Python with humanize 4.17.0 (CI), runs this script again and requires
its output to equal the committed file.
"""

import datetime as dt
import sys

import humanize

VERSION = "4.17.0"

US = 1_000_000
MINUTE = 60
HOUR = 3_600
DAY = 86_400
YEAR = 365 * DAY


def deltas():
    """The sweep, in seconds (ints) or microseconds (tagged), before sorting."""
    seconds = set()
    micros = set()

    # Every second to 2 hours: every minute boundary (round(seconds / 60), ties to even).
    seconds.update(range(0, 2 * HOUR + 1))
    # Every minute to 2 days, and every second around each half hour (round(seconds / 3600)).
    seconds.update(range(0, 2 * DAY + 1, MINUTE))
    for half_hours in range(0, 2 * 48 + 1):
        for offset in range(-3, 4):
            seconds.add(half_hours * 1_800 + offset)
    # Every day to 3 years, at the day, a second past, a second and a microsecond before, midday.
    for days in range(0, 3 * 365 + 31):
        base = days * DAY
        seconds.update((base, base + 1, base - 1, base + DAY // 2))
        micros.add(base * US - 1)
    # Every week to 20 years, and every day around each year and half year (round(days / 365)).
    for days in range(0, 20 * 365 + 8, 7):
        seconds.add(days * DAY)
    for years in range(0, 21):
        for anchor in (years * 365, years * 365 + 182):
            for days in range(anchor - 3, anchor + 5):
                seconds.update((days * DAY, days * DAY + DAY - 1))
    # Far ends: thousands separators, and the largest a chrono TimeDelta of microseconds holds.
    for days in (36_499, 36_500, 365_000, 3_650_000, 36_500_000, 100_000_000):
        seconds.update((days * DAY, days * DAY - 1))
    # Below a second.
    micros.update((1, 499_999, 500_000, 999_999, 1_000_001, 1_500_000, 59 * US + 999_999))

    values = {s * US for s in seconds if s >= 0} | {m for m in micros if m >= 0}
    # Negative deltas (a token whose expiry precedes its creation): every 7th value, mirrored.
    negatives = {-v for i, v in enumerate(sorted(values)) if i % 7 == 0 and v > 0}
    negatives.update(-m for m in (1, 500_000, 999_999, US, 90 * US, DAY * US - 1, YEAR * US))
    return sorted(values | negatives)


def main():
    if humanize.__version__ != VERSION:
        sys.exit(f"humanize {humanize.__version__} installed; the fixture is humanize {VERSION}'s")
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTPUT.tsv")
    rows = [f"# humanize {VERSION} naturaldelta(timedelta(microseconds=N)); made by generate.py\n"]
    for micros in deltas():
        text = humanize.naturaldelta(dt.timedelta(microseconds=micros))
        assert "\t" not in text and "\n" not in text, text
        rows.append(f"{micros}\t{text}\n")
    with open(sys.argv[1], "w", encoding="utf-8", newline="\n") as out:
        out.writelines(rows)


if __name__ == "__main__":
    main()
