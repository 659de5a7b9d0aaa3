"""ListOps (Nangia & Bowman 2018) as the Long Range Arena generates it: seeded, deterministic.

An expression is a tree of operators over the digits 0-9, written in prefix form with a
closing bracket per operator, e.g. ``[MAX 2 9 [MIN 4 7 ] 0 ]`` = 9. The label (10 classes) is
the expression's value. What the LRA release's generator does (``lra_benchmarks/data/listops.py``
of google-research/long-range-arena), followed here step for step:

- operators MAX, MIN, MED (the median of the arguments, rounded down, ``int(np.median)``) and
  SM (sum modulo 10);
- a node at depth < ``max_depth`` (10) is a digit with probability 1 - ``OPERATOR_P`` (0.75),
  else an operator with 2..``max_args`` (10) arguments (uniform), each a node one level deeper;
  at ``max_depth`` it is a digit;
- a tree is kept when its length (operators, closing brackets and digits) is strictly between
  ``min_length`` (500) and ``max_length`` (2000), and when no earlier kept tree is the same
  (the release keeps a set); the first 96,000 kept trees are train, the next 2,000 validation,
  then 2,000 test.

Differences: the release draws from Python's ``random`` module unseeded; here from
``random.Random(seed)`` (so the same seed gives the same examples), a tree is abandoned as soon
as it is longer than ``max_length`` (it would be rejected anyway, so the kept trees have the
same distribution), and the text is the token sequence without the release's "(" and ")"
around every (function, argument) pair: those carry no information (every operator already
has its closing bracket), the release's length count excludes them, and S4's LRA pipeline
drops them too. Tokens: ``VOCABULARY`` (id 0 is padding).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Iterator, Optional, Sequence

import numpy as np

MAX, MIN, MED, SUM_MOD = "[MAX", "[MIN", "[MED", "[SM"
OPERATORS = (MAX, MIN, MED, SUM_MOD)
END = "]"
DIGITS = tuple(str(d) for d in range(10))
VOCABULARY = ("<pad>",) + OPERATORS + (END,) + DIGITS  # Token id = index; 0 is padding.
TOKEN_IDS = {token: i for i, token in enumerate(VOCABULARY)}
CLASS_NAMES = DIGITS  # Label i = the value i.
OPERATOR_P = 0.25  # The release's VALUE_P: a node below max_depth is an operator when random() <= it.
GENERATOR_VERSION = 1  # Part of the prepared data's key: a change of the generator gives new data.


@dataclasses.dataclass(frozen=True)
class ListOpsParams:
  """The generator's parameters (the LRA release's defaults)."""

  max_depth: int = 10
  max_args: int = 10
  min_length: int = 500  # Kept: min_length < length < max_length.
  max_length: int = 2000

  def __post_init__(self):
    if not (1 <= self.max_depth and 2 <= self.max_args and 0 <= self.min_length < self.max_length - 1):
      raise ValueError(f"ListOps parameters need max_depth >= 1, max_args >= 2 and "
                       f"0 <= min_length < max_length - 1, got {self}")


class _TooLong(Exception):
  """The tree being drawn already has max_length tokens or more."""


def _operator_value(operator: str, values: list[int]) -> int:
  if operator == MAX:
    return max(values)
  if operator == MIN:
    return min(values)
  if operator == MED:
    return int(np.median(values))
  return sum(values) % 10


def _draw(rng: random.Random, depth: int, params: ListOpsParams, tokens: list[str]) -> int:
  """Appends one node (a digit or an operator with its arguments and END) to ``tokens``; returns its value."""
  if len(tokens) >= params.max_length:
    raise _TooLong
  r = rng.random() if depth < params.max_depth else 1.0
  if r > OPERATOR_P:
    value = rng.choice(range(10))
    tokens.append(DIGITS[value])
    return value
  num_args = rng.randint(2, params.max_args)
  operator = rng.choice(OPERATORS)
  tokens.append(operator)
  values = [_draw(rng, depth + 1, params, tokens) for _ in range(num_args)]
  tokens.append(END)
  return _operator_value(operator, values)


def draw_tree(rng: random.Random, params: ListOpsParams) -> tuple[Optional[list[str]], int]:
  """One tree from the root (depth 1): (its tokens, its value), or (None, -1) when it outgrew max_length."""
  tokens: list[str] = []
  try:
    value = _draw(rng, 1, params, tokens)
  except _TooLong:
    return None, -1
  return tokens, value


def generate(num_examples: int, seed: int, params: ListOpsParams = ListOpsParams()) -> Iterator[tuple[str, int]]:
  """The first ``num_examples`` kept, distinct trees of ``random.Random(seed)``: (source text, label)."""
  rng = random.Random(seed)
  seen = set()
  while len(seen) < num_examples:
    tokens, value = draw_tree(rng, params)
    if tokens is None or not params.min_length < len(tokens) < params.max_length:
      continue
    source = " ".join(tokens)
    if source in seen:
      continue
    seen.add(source)
    yield source, value


def split_sizes_check(sizes: Sequence[int]) -> tuple[int, int, int]:
  """(train, validation, test) sizes, each >= 1."""
  sizes = tuple(int(s) for s in sizes)
  if len(sizes) != 3 or min(sizes) < 1:
    raise ValueError(f"ListOps needs (train, validation, test) sizes >= 1, got {sizes}")
  return sizes


def encode(source: str, length: int) -> tuple[np.ndarray, int]:
  """A source text -> (np.uint16 (length,) token ids right-padded with 0, its untruncated token count).

  Raises:
    ValueError: a token outside ``VOCABULARY``.
  """
  words = source.split()
  try:
    ids = [TOKEN_IDS[w] for w in words[:length]]
  except KeyError as error:
    raise ValueError(f"not a ListOps token: {error.args[0]!r}") from None
  row = np.zeros((length,), np.uint16)
  row[:len(ids)] = ids
  return row, len(words)


def decode(ids) -> str:
  """Token ids (padding dropped) -> the source text."""
  return " ".join(VOCABULARY[int(i)] for i in np.asarray(ids).reshape(-1) if int(i) != 0)
