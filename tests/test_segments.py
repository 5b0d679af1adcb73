"""Segment counting: GSM-7 and UCS-2 limits for one segment and for each part of a longer message."""

from __future__ import annotations

import pytest

from shared.segments import segments

CASES = [  # (body, segments)
    (None, 1),
    ("", 1),
    ("a" * 160, 1),
    ("a" * 161, 2),
    ("a" * 306, 2),
    ("a" * 307, 3),
    ("€" * 80, 1),  # extension characters count two septets
    ("€" * 81, 2),
    ("é" * 160, 1),  # in the GSM-7 basic table
    ("ü" * 70 + "ß", 1),
    ("ç" * 70, 1),  # lower-case ç is not GSM-7: UCS-2
    ("ç" * 71, 2),
    ("ç" * 134, 2),
    ("ç" * 135, 3),
    ("a" * 159 + "😀", 3),  # one emoji makes all of it UCS-2, and takes two code units
    ("😀" * 35, 1),
    ("😀" * 36, 2),
]


@pytest.mark.parametrize(("body", "expected"), CASES)
def test_segments_body_counts_as_twilio_does(body, expected):
    assert segments(body) == expected
