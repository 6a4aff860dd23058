"""Readable run names, so people can tell runs apart at a glance."""

from __future__ import annotations

import random

_ADJECTIVES = (
    "amber bold brave bright calm clever crisp eager fair fast gentle glad grand keen "
    "kind lively lucky merry mighty neat noble polite proud quick quiet rapid sharp shy "
    "silent sleek smart snappy steady sunny swift tidy vivid warm wise witty young zesty"
).split()
_NOUNS = (
    "ant bass bear bee bird boar cat cod colt crab crane deer dove duck eel elk finch "
    "fox frog goat gull hare hawk heron horse jay koi lark lynx mole moth newt otter owl "
    "panda pike puma ram robin seal shrew slug snail swan toad trout vole wasp wolf wren"
).split()


def random_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(100, 999)}"
