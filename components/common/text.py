"""Text from user data (folder names, class names) shown to people: what must never reach a page or a log raw.

Bidirectional controls (U+202E RIGHT-TO-LEFT OVERRIDE and its kin) reorder the text that follows them, so a
class named ``gif<U+202E>gpj.exe`` reads as ``gifexe.jpg``; zero-width spaces make two names look identical.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_FORMATTING = "\u061c\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff"
#: Bidirectional embedding, override and isolate controls, the directional marks, and invisible spaces.
INVISIBLE_FORMATTING = re.compile(f"[{_FORMATTING}]")
#: The above plus the C0 and C1 control characters (newlines, escape sequences).
UNPRINTABLE = re.compile(f"[{_FORMATTING}\x00-\x1f\x7f-\x9f]")


def codepoints(text: str) -> str:
    """``text`` with every invisible formatting or control character shown as a ``\\uXXXX`` escape."""
    return UNPRINTABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (its type's name when empty), cut at ``limit`` characters."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]


def summarize(items: Iterable[str], shown: int = 5, separator: str = ", ") -> str:
    """``a, b, c, d, e ... and 9995 more``: the first ``shown`` items of a list that may be long, for messages
    and log lines that must stay one short line whatever the dataset's size."""
    listed = list(items)
    head = separator.join(listed[:shown])
    return head if len(listed) <= shown else f"{head} ... and {len(listed) - shown:,} more"
