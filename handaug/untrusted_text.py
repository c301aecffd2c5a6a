"""Values read from files a user did not write (checkpoint configs, weight headers), shown in error messages.

A message must never carry what such a file says verbatim: a control character could rewrite
the terminal, and a megabyte-long string would bury the message. :func:`shown` gives a short,
quoted, escaped rendering.
"""

from __future__ import annotations

#: Longest rendering of one value in a message (characters, before the "... (N characters)" note).
MAX_SHOWN = 80


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """``repr(value)`` with every non-printable character escaped, cut after ``limit`` characters.

    >>> shown("resnet\\x1b[2J")
    "'resnet\\\\x1b[2J'"
    >>> shown("x" * 200, limit=10)
    "'xxxxxxxxx... (202 characters)"
    """
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int of more than 4300 digits, or nesting too deep
        return f"<{type(value).__name__} too large to show>"
    # repr escapes control characters inside strings, but not inside every object's repr.
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    if len(text) > limit:
        return f"{text[:limit]}... ({len(text)} characters)"
    return text
