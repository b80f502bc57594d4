"""Bounded tables of things already worked out (parsed replies and command lines, wire forms).

A server says the same replies and a client sends the same lines again and again, and what is
made of them is immutable, so the engine keeps the results by their input. Each table is
bounded: when full it is emptied at once (cheaper than tracking use, and what is dropped is
cheap to make again), so input that never repeats (addresses, queue ids) cannot grow it.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(table: dict[K, V], key: K, value: V, limit: int) -> V:
    """Keep ``value`` under ``key`` in ``table`` of at most ``limit`` entries; ``value``."""
    if len(table) >= limit:
        table.clear()
    table[key] = value
    return value
