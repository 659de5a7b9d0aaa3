"""Pathfinder (Linsley et al. 2018; Kim, Linsley et al. 2020) images, seeded and deterministic.

A grayscale image holds two long "snakes" (dashed curves: short line segments, "paddles",
separated by small gaps, each turning a little from the last), a few short distractor snakes
and two dots. The label says whether the two dots lie on the two ends of one snake (1) or on
ends of two different snakes (0). The model reads the image as S*S pixel tokens (1,024 at
32x32, 4,096 at 64x64), so the task is long-range by construction.

What the published generator (github.com/drewlinsley/pathfinder, ``snakes2.py``; the LRA
release's settings in ``lra_benchmarks/data/pathfinder.py``) does, followed here: the two
target snakes start from two seed points ``seed_distance`` apart and grow ``contour_length``
paddles each; a new paddle's direction is drawn with weight cos(min(c * turn, pi/2))^2
(c = ``continuity``), so sharp turns are rare and turns beyond pi/(2c) impossible, and it
must not touch another snake; distractor snakes of ``distractor_length`` paddles follow
(those that find no room are left out); the dots sit on the origin of one target snake and
on the far end of the same snake (positive) or of the other one (negative). Labels are
exactly balanced within each split here (the release draws them at random).

Differences, so that the label is a property of the picture (``tests/test_lra_data.py``
flood-fills each image with its dash gaps bridged): a paddle keeps ``clearance`` empty pixels
from every other snake and dot (the release keeps ``paddle_margin``, the same as the gap
inside a snake, so its snakes may nearly touch), and the image is drawn directly at its size
with an analytic anti-aliased line (the release draws at 2x and resizes with OpenCV). No
single-paddle distractors (the release's wrapper turns them off too). The pixel value of a
paddle is its coverage times 255; dots are filled disks of ``marker_radius``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import numpy as np

GENERATOR_VERSION = 1  # Part of the prepared data's key: a change of the generator gives new data.
CLASS_NAMES = ("different", "connected")  # Label 1: the dots are on one snake.


@dataclasses.dataclass(frozen=True)
class PathfinderParams:
  """Geometry of one resolution (pixels; the LRA release's 32 and 64 settings where they apply)."""

  size: int  # S: the image is S x S.
  paddle_length: float  # Length of one dash.
  gap: float  # Gap between consecutive dashes of a snake (the release's: 2 x paddle_margin).
  line_radius: float  # Half the dash thickness.
  marker_radius: float  # Radius of the dots.
  contour_length: int  # Dashes per target snake.
  distractor_length: int  # Dashes per distractor snake (the release: contour_length / 3).
  num_distractors: int  # Distractor snakes tried (the release: 20 (32px) or 22 (64px) / distractor_length);
                        # those that find no room are left out (Picture.num_distractors: how many fit).
  seed_distance: float  # Distance between the two target snakes' first dashes.
  continuity: float  # c: turns beyond pi / (2c) are impossible.
  padding: int  # Pixels kept free at the border.
  bridge_radius: int  # A dilation by this many pixels closes every gap inside a snake ...
  clearance: int  # ... and, with this many empty pixels kept between snakes (> 2 * bridge_radius), joins no two.

  def __post_init__(self):
    if self.clearance <= 2 * self.bridge_radius:
      raise ValueError(f"clearance {self.clearance} must exceed 2 * bridge_radius {self.bridge_radius}")


PARAMS = {
    32: PathfinderParams(size=32, paddle_length=2.0, gap=2.0, line_radius=0.25, marker_radius=1.5,
                         contour_length=14, distractor_length=4, num_distractors=5, seed_distance=7.0,
                         continuity=1.0, padding=1, bridge_radius=1, clearance=3),
    64: PathfinderParams(size=64, paddle_length=5.0, gap=2.0, line_radius=0.5, marker_radius=2.5,
                         contour_length=14, distractor_length=4, num_distractors=5, seed_distance=12.0,
                         continuity=1.8, padding=1, bridge_radius=1, clearance=3),
}
ANGLES = 128  # Headings are multiples of 2 pi / ANGLES.
SUBPIXEL = 4  # Dash pivots lie on a grid of 1 / SUBPIXEL pixel.
_BACKTRACKS = 10  # Dashes taken back per snake before the snake counts as stuck.
_TRIALS_PER_IMAGE = 500
_TRIALS_PER_DISTRACTOR = 5  # The release's max_distractor_contour_retrial is 4 (5 tries).


@dataclasses.dataclass
class Picture:
  """One generated example.

  Attributes:
    image: np.uint8 (S, S).
    label: 1 when both dots are on one snake, else 0.
    markers: ((row, col), (row, col)) of the two dots' centres (rounded down).
    num_distractors: distractor snakes drawn.
  """

  image: np.ndarray
  label: int
  markers: tuple
  num_distractors: int


@dataclasses.dataclass(frozen=True)
class _Stamps:
  """Every dash, pre-drawn: for pivot phase f (the pivot's sub-pixel offset, f = 0..SUBPIXEL^2-1) and
  heading a, the dash from pivot + gap * u(a) to pivot + (gap + paddle_length) * u(a).

  offsets (F*A, P, 2) int: pixel offsets from floor(pivot) (padded rows repeat the first pixel);
  values (F*A, P) float: coverage in [0, 1] (0 on padded rows); step (A, 2): (gap + length) * u(a).
  """

  offsets: np.ndarray
  values: np.ndarray
  step: np.ndarray


def _coverage_of_segment(centres: np.ndarray, start: np.ndarray, end: np.ndarray, radius: float) -> np.ndarray:
  """Anti-aliased coverage in [0, 1] at pixel centres (..., 2) of a segment of half-thickness ``radius``."""
  direction = end - start
  offset = centres - start
  t = np.clip((offset @ direction) / float(direction @ direction), 0.0, 1.0)
  distance = np.linalg.norm(offset - t[..., None] * direction, axis=-1)
  return np.clip(radius + 0.5 - distance, 0.0, 1.0)


@functools.lru_cache(maxsize=None)
def _stamps(params: PathfinderParams) -> _Stamps:
  reach = int(math.ceil(params.gap + params.paddle_length + params.line_radius + 1.5))
  rows, cols = np.mgrid[-reach:reach + 1, -reach:reach + 1]
  centres = np.stack([rows + 0.5, cols + 0.5], axis=-1).astype(np.float64)
  angles = 2 * np.pi * np.arange(ANGLES) / ANGLES
  units = np.stack([np.sin(angles), np.cos(angles)], axis=-1)
  stamps = []
  for phase in range(SUBPIXEL * SUBPIXEL):
    pivot = np.array([phase // SUBPIXEL, phase % SUBPIXEL], np.float64) / SUBPIXEL
    for unit in units:
      coverage = _coverage_of_segment(centres, pivot + params.gap * unit,
                                      pivot + (params.gap + params.paddle_length) * unit, params.line_radius)
      where = np.argwhere(coverage > 0)
      stamps.append((where - reach, coverage[coverage > 0]))
  width = max(len(v) for _, v in stamps)
  offsets = np.stack([np.concatenate([o, np.repeat(o[:1], width - len(o), 0)]) for o, _ in stamps])
  values = np.stack([np.concatenate([v, np.zeros(width - len(v))]) for _, v in stamps])
  return _Stamps(offsets=offsets.astype(np.int64), values=values, step=(params.gap + params.paddle_length) * units)


def _turns(params: PathfinderParams) -> tuple[np.ndarray, np.ndarray]:
  """Turns (in heading steps) a dash may take and their weights cos(min(c * turn, pi/2))^2 (> 0 only)."""
  limit = int(math.floor(ANGLES / (4 * params.continuity)))  # pi / (2c) in heading steps.
  steps = np.arange(-limit, limit + 1)
  weights = np.cos(np.minimum(np.abs(steps) * 2 * np.pi / ANGLES * params.continuity, np.pi / 2)) ** 2
  keep = weights > 1e-6
  return steps[keep], weights[keep]


def _dilate(pixels: np.ndarray, radius: int) -> np.ndarray:
  """Binary dilation of a bool image by a (2r+1)^2 square (Chebyshev distance <= r)."""
  out = pixels.copy()
  for _ in range(radius):
    grown = out.copy()
    grown[1:] |= out[:-1]
    grown[:-1] |= out[1:]
    out = grown.copy()
    out[:, 1:] |= grown[:, :-1]
    out[:, :-1] |= grown[:, 1:]
  return out


class _Canvas:
  """The image being drawn and who owns each pixel (0: nobody, k > 0: snake or dot k)."""

  def __init__(self, params: PathfinderParams):
    self.params = params
    size = params.size
    self.coverage = np.zeros((size, size), np.float64)
    self.owner = np.zeros((size, size), np.int32)
    self.border = np.ones((size, size), bool)
    self.border[params.padding:size - params.padding, params.padding:size - params.padding] = False
    self.stamps = _stamps(params)

  def blocked_for(self, snake: int) -> np.ndarray:
    """(S, S) bool: where snake ``snake`` may not draw (the border and near every other snake or dot)."""
    others = (self.owner > 0) & (self.owner != snake)
    return self.border | _dilate(others, self.params.clearance)

  def candidates(self, pivot: np.ndarray, headings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pixels (K, P, 2) and stamp rows (K,) of the dashes after ``pivot`` at ``headings`` (K,)."""
    base = np.floor(pivot).astype(np.int64)
    phase = np.clip(np.floor((pivot - base) * SUBPIXEL).astype(np.int64), 0, SUBPIXEL - 1)
    rows = (phase[0] * SUBPIXEL + phase[1]) * ANGLES + headings % ANGLES
    return base + self.stamps.offsets[rows], rows

  def free(self, pixels: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """(K,) bool: which candidates' pixels (K, P, 2) all lie inside the image and off ``blocked``."""
    size = self.params.size
    inside = np.all((pixels >= 0) & (pixels < size), axis=(1, 2))
    clipped = np.clip(pixels, 0, size - 1)
    return inside & ~np.any(blocked[clipped[..., 0], clipped[..., 1]], axis=1)

  def draw(self, pixels: np.ndarray, values: np.ndarray, snake: int) -> tuple:
    """Draws coverage ``values`` (P,) at ``pixels`` (P, 2); returns what ``undraw`` needs."""
    r, c = pixels[:, 0], pixels[:, 1]
    saved = (r, c, self.coverage[r, c].copy(), self.owner[r, c].copy())
    np.maximum.at(self.coverage, (r, c), values)
    self.owner[r, c] = np.where((self.owner[r, c] == 0) & (values > 0), snake, self.owner[r, c])
    return saved

  def undraw(self, saved: tuple) -> None:
    r, c, coverage, owner = saved
    self.coverage[r, c] = coverage
    self.owner[r, c] = owner


def _grow_snake(canvas: _Canvas, rng: np.random.Generator, snake: int, origin: np.ndarray, heading: int,
                num_dashes: int) -> Optional[tuple[np.ndarray, np.ndarray]]:
  """Draws a snake of ``num_dashes`` dashes whose first dash begins at ``origin`` with heading
  ``heading`` (in steps of 2 pi / ANGLES); returns (origin, far end) or None (nothing drawn).

  Each next dash takes a turn drawn from ``_turns`` among those whose pixels are free (off the
  border, ``clearance`` away from other snakes, not on this snake's earlier dashes). With no
  free turn the dash before is taken back and redrawn (at most ``_BACKTRACKS`` times).
  """
  params, stamps = canvas.params, canvas.stamps
  blocked = canvas.blocked_for(snake)
  own = np.zeros_like(blocked)  # This snake's dashes before the last one.
  turn_steps, turn_weights = _turns(params)
  unit = stamps.step[heading % ANGLES] / (params.gap + params.paddle_length)
  first_pivot = np.round((origin - params.gap * unit) * SUBPIXEL) / SUBPIXEL
  dashes: list = []  # (pivot, heading, pixels (P', 2), undo record)
  backtracks = 0
  while len(dashes) < num_dashes:
    if dashes:
      pivot = dashes[-1][0] + stamps.step[dashes[-1][1] % ANGLES]
      pivot = np.round(pivot * SUBPIXEL) / SUBPIXEL
      headings, weights = dashes[-1][1] + turn_steps, turn_weights
    else:
      pivot, headings, weights = first_pivot, np.array([heading]), np.ones(1)
    pixels, rows = canvas.candidates(pivot, headings)
    ok = canvas.free(pixels, blocked | own)
    if ok.any():
      cumulative = np.cumsum(np.where(ok, weights, 0.0))
      k = min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")), len(cumulative) - 1)
      real = stamps.values[rows[k]] > 0
      if dashes:
        own[tuple(dashes[-1][2].T)] = True
      drawn = pixels[k][real]
      dashes.append((pivot, int(headings[k]), drawn, canvas.draw(drawn, stamps.values[rows[k]][real], snake)))
      continue
    if not dashes or backtracks >= _BACKTRACKS:
      for dash in reversed(dashes):
        canvas.undraw(dash[3])
      return None
    backtracks += 1
    canvas.undraw(dashes.pop()[3])
    own[:] = False
    for dash in dashes[:-1]:
      own[tuple(dash[2].T)] = True
  last_pivot, last_heading = dashes[-1][0], dashes[-1][1]
  far_end = last_pivot + stamps.step[last_heading % ANGLES]
  return first_pivot + params.gap * unit, far_end


def _disk(canvas: _Canvas, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(pixels (P, 2), coverage (P,)) of a dot, clipped to the image."""
  params = canvas.params
  reach = int(math.ceil(params.marker_radius + 1))
  rows, cols = np.mgrid[-reach:reach + 1, -reach:reach + 1]
  pixels = np.stack([rows, cols], axis=-1).reshape(-1, 2) + np.floor(centre).astype(np.int64)
  distance = np.linalg.norm(pixels + 0.5 - centre, axis=-1)
  coverage = np.clip(params.marker_radius + 0.5 - distance, 0.0, 1.0)
  keep = (coverage > 0) & np.all((pixels >= 0) & (pixels < params.size), axis=1)
  return pixels[keep], coverage[keep]


def _draw_dot(canvas: _Canvas, centre: np.ndarray, owner: int) -> bool:
  """Draws a dot for snake ``owner`` unless it would come near another snake or dot; whether drawn."""
  pixels, coverage = _disk(canvas, centre)
  if not canvas.free(pixels[None], canvas.blocked_for(owner))[0]:
    return False
  canvas.draw(pixels, coverage, owner)
  return True


def _random_free_point(canvas: _Canvas, rng: np.random.Generator, blocked: np.ndarray) -> Optional[np.ndarray]:
  free = np.argwhere(~blocked)
  if not len(free):
    return None
  row, col = free[rng.integers(len(free))]
  return np.array([row + rng.random(), col + rng.random()])


def draw_picture(rng: np.random.Generator, params: PathfinderParams, label: int) -> Picture:
  """One image with the given label (see the module docstring).

  Raises:
    RuntimeError: no image could be drawn in many trials (parameters that do not fit the size).
  """
  for _ in range(_TRIALS_PER_IMAGE):
    canvas = _Canvas(params)
    first = _random_free_point(canvas, rng, canvas.border)
    theta = rng.uniform(-math.pi, math.pi)
    second = first + params.seed_distance * np.array([math.sin(theta), math.cos(theta)])
    snakes = []
    for snake, origin in ((1, first), (2, second)):
      grown = _grow_snake(canvas, rng, snake, origin, int(rng.integers(ANGLES)), params.contour_length)
      if grown is None:
        break
      snakes.append(grown)
    if len(snakes) < 2:
      continue
    marked = int(rng.integers(2))  # The snake whose origin gets a dot.
    markers = (snakes[marked][0], snakes[marked][1] if label == 1 else snakes[1 - marked][1])
    owners = (marked + 1, marked + 1 if label == 1 else 2 - marked)
    if not all(_draw_dot(canvas, centre, owner) for centre, owner in zip(markers, owners)):
      continue
    drawn = 0
    for distractor in range(params.num_distractors):
      snake = 3 + distractor
      for _ in range(_TRIALS_PER_DISTRACTOR):
        start = _random_free_point(canvas, rng, canvas.blocked_for(snake))
        if start is not None and _grow_snake(canvas, rng, snake, start, int(rng.integers(ANGLES)),
                                             params.distractor_length) is not None:
          drawn += 1
          break
    image = np.round(canvas.coverage * 255.0).astype(np.uint8)
    centres = tuple((int(c[0]), int(c[1])) for c in markers)
    return Picture(image=image, label=int(label), markers=centres, num_distractors=drawn)
  raise RuntimeError(f"no {params.size}x{params.size} Pathfinder image fits in {_TRIALS_PER_IMAGE} trials")


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
  """The generator of example ``index`` of ``split``: examples are independent of each other."""
  return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, sum(map(ord, split)), index])))


def split_labels(seed: int, split: str, size: int) -> np.ndarray:
  """Exactly balanced labels of a split in a seeded order (one more 0 when ``size`` is odd)."""
  labels = np.arange(size) % 2
  rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, sum(map(ord, split)), -1 % 2**31])))
  return rng.permutation(labels)


def generate_split(seed: int, split: str, size: int, params: PathfinderParams, start: int = 0,
                   stop: Optional[int] = None) -> list[Picture]:
  """Examples ``start``..``stop`` of a split of ``size`` (default all); a pure function of the arguments."""
  labels = split_labels(seed, split, size)
  stop = size if stop is None else stop
  return [draw_picture(example_rng(seed, split, i), params, int(labels[i])) for i in range(start, stop)]


def draw_chunk(arguments: tuple) -> list[tuple[np.ndarray, int]]:
  """(image, label) of examples start..stop of a split: ``arguments`` = (seed, split, size, resolution,
  start, stop); a top-level function, so worker processes can run it."""
  seed, split, size, resolution, start, stop = arguments
  return [(p.image, p.label) for p in generate_split(seed, split, size, PARAMS[resolution], start, stop)]


def encode(image: np.ndarray) -> np.ndarray:
  """Pixels (S, S) uint8 -> np.uint16 (S*S,) tokens, row-major, pixel value + 1 (0 stays padding)."""
  return image.reshape(-1).astype(np.uint16) + 1
