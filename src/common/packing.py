"""A settled batch's record of who it reached and how, packed small.

A batch's recipients are written once, in the statement that settles the batch, and read
rarely (a look-up, an export, a follow-up). Written as arrays they cost the settlement a
few microseconds per recipient on both sides; a batch's recipients are mostly consecutive
ids and its codes mostly 1000, so they pack to a few bytes:

- `ids`: runs of consecutive ids, each a (first id, count) pair of big-endian 8-byte
  integers: a range batch of 1,000 is 16 bytes;
- `codes`: the codes other than `USUAL` (1000), each a (position, code) pair of big-endian
  4-byte integers: a batch delivered to everyone is empty.

PostgreSQL unpacks them with `allim_ids(bytea)`, `allim_id_count(bytea)` and
`allim_codes(bytea, count)` (migration 0007).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence

USUAL = 1000


def _packed(typecode: str, values: Sequence[int]) -> bytes:
    packed = array(typecode, values)
    if sys.byteorder == "little":
        packed.byteswap()
    return packed.tobytes()


def _unpacked(typecode: str, data: bytes) -> list[int]:
    unpacked = array(typecode)
    unpacked.frombytes(data)
    if sys.byteorder == "little":
        unpacked.byteswap()
    return unpacked.tolist()


def ids(values: Sequence[int]) -> bytes:
    """`values` (in their order) as runs of consecutive ids."""
    count = len(values)
    # the usual batch, one run, is told in C: its settlement packs it for every batch
    if count and list(values) == list(range(values[0], values[0] + count)):
        return _packed("q", (values[0], count))
    runs: list[int] = []
    for value in values:
        if runs and value == runs[-2] + runs[-1]:
            runs[-1] += 1
        else:
            runs += (value, 1)
    return _packed("q", runs)


def from_ids(data: bytes) -> list[int]:
    """What `ids` packed."""
    runs = _unpacked("q", data)
    return [
        v
        for first, count in zip(runs[::2], runs[1::2], strict=True)
        for v in range(first, first + count)
    ]


def codes(values: Sequence[int]) -> bytes:
    """`values` as their exceptions to `USUAL`: (position, code) pairs, positions from 1."""
    if values.count(USUAL) == len(values):  # the usual batch, delivered to everyone
        return b""
    exceptions = [
        number
        for position, value in enumerate(values, 1)
        if value != USUAL
        for number in (position, value)
    ]
    return _packed("i", exceptions)


def from_codes(data: bytes, count: int) -> list[int]:
    """What `codes` packed, for a batch of `count` recipients."""
    values = [USUAL] * count
    pairs = _unpacked("i", data)
    for position, value in zip(pairs[::2], pairs[1::2], strict=True):
        values[position - 1] = value
    return values
