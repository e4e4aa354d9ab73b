"""argparse ``type=`` checks shared by every command module: one ``error:`` line naming the flag."""

from __future__ import annotations

import argparse

from layer_builder.aws.facts import REGION_RE


def positive_int(text: str) -> int:
    """A count of things done at once (``--workers``): a whole number, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def path_arg(text: str) -> str:
    """A file or directory argument: an empty one would silently mean the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    if "\0" in text:
        raise argparse.ArgumentTypeError("must not contain a NUL character")
    return text


def region_name(text: str) -> str:
    """A region name's shape (``eu-west-1``), checked before any registry or AWS is read: a
    typo would otherwise read as "no layer in region ..." or a connection error."""
    if not REGION_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an AWS region name (like eu-west-1)")
    return text
