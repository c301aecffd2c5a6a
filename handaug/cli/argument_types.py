"""argparse ``type=`` converters shared by handaug's command-line tools."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """``text`` as an integer ≥ 1; anything else is argparse's usage error naming the option."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value
