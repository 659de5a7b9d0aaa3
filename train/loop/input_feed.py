"""Training batches placed on the devices, split along the batch axis.

Axes (``mamba_jax.notation``): b, l, L, N (the train split's examples).

Two feeds yield the same batches in the same order (``train.data.batching.TrainOrder``:
a pure function of (seed, epoch), bucketed by length or fixed-padded, resumable at any step):

* ``host_train_feed``: numpy batches from ``train.data.batching.train_batches``, sharded
  and copied to the devices by a background thread (``prefetch`` batches ahead).
* ``device_train_feed``: the whole tokenized train split lives on the devices (1.57M x 64
  uint16 is 200 MB) and so does each epoch's example order; a step is one small jitted
  gather with a scalar argument (one compiled gather per bucket bound), so the host never
  limits throughput.

Why these two feeds and not grain: DESIGN.md, "The training input feed".
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from train.data import batching
from train.data.datasets import Split

BATCH_AXIS = "data"


def make_mesh() -> Mesh:
  """A 1-D mesh over every device of every process; the batch is split along it."""
  return Mesh(np.asarray(jax.devices()), (BATCH_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(BATCH_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def check_batch_size(batch_size: int, name: str = "batch_size") -> None:
  devices = jax.device_count()
  if batch_size % devices:
    raise ValueError(f"config.{name}={batch_size} must be divisible by the {devices} devices "
                     f"(data parallel splits every batch evenly).")


def shard_batch(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """Global host batch (every process holds all of it) -> global jax arrays sharded on axis 0.

  Each process contributes its own contiguous slice of rows.
  """
  count, index = jax.process_count(), jax.process_index()
  out = {}
  for name, value in batch.items():
    rows = value.shape[0] // count
    local = value[index * rows:(index + 1) * rows]
    out[name] = jax.make_array_from_process_local_data(sharding, local, value.shape)
  return out


def put_replicated(value: np.ndarray, mesh: Mesh) -> jax.Array:
  """The same full array on every device."""
  return jax.make_array_from_process_local_data(replicated(mesh), value, value.shape)


def _prefetch(iterator: Iterator, size: int) -> Iterator:
  """Runs ``iterator`` in a daemon thread, ``size`` items ahead."""
  if size <= 0:
    yield from iterator
    return
  items: queue.Queue = queue.Queue(maxsize=size)
  done = object()

  def produce():
    try:
      for item in iterator:
        items.put(item)
    except BaseException as e:  # pylint: disable=broad-except
      items.put(e)
    items.put(done)

  threading.Thread(target=produce, daemon=True).start()
  while True:
    item = items.get()
    if item is done:
      return
    if isinstance(item, BaseException):
      raise item
    yield item


def host_train_feed(split: Split, batch_size: int, *, seed: int, start_step: int, mesh: Mesh,
                    bounds: Optional[Sequence[int]] = None, prefetch: int = 2) -> Iterator[dict[str, jax.Array]]:
  """Sharded device batches built on the host (see the module docstring)."""
  sharding = batch_sharding(mesh)
  host = batching.train_batches(split, batch_size, seed=seed, start_step=start_step, bounds=bounds)
  return _prefetch((shard_batch(b, sharding) for b in host), prefetch)


def _gather(tokens: jax.Array, labels: jax.Array, order: jax.Array, step: jax.Array, *,
            length: int) -> dict[str, jax.Array]:
  """Batch ``step`` of an epoch: tokens (N, L) uint16, labels (N,), order (steps, b) -> a batch of length l."""
  indices = jax.lax.dynamic_index_in_dim(order, step, axis=0, keepdims=False)
  batch_tokens = jnp.take(tokens, indices, axis=0)[:, :length].astype(jnp.int32)
  return {
      "tokens": batch_tokens,
      "mask": (batch_tokens != 0).astype(jnp.int32),
      "label": jnp.take(labels, indices, axis=0).astype(jnp.int32),
      "weight": jnp.ones(indices.shape, jnp.float32),
  }


def device_train_feed(split: Split, batch_size: int, *, seed: int, start_step: int, mesh: Mesh,
                      bounds: Optional[Sequence[int]] = None) -> Iterator[dict[str, jax.Array]]:
  """Sharded batches gathered on the devices from a device-resident train split.

  Once per epoch the (steps, b) example order goes to the devices (its batch axis sharded);
  each step then costs one dispatch with a scalar argument; the batch's padded length is a
  static argument (one compiled gather per bound).
  """
  plan = batching.TrainOrder(split, batch_size, seed=seed, bounds=bounds)
  steps = plan.steps_per_epoch
  if steps == 0:
    raise ValueError(f"train split has {len(split)} examples, fewer than one batch of {batch_size}")
  tokens = put_replicated(np.ascontiguousarray(split.tokens), mesh)
  labels = put_replicated(split.labels.astype(np.int32), mesh)
  order_sharding = NamedSharding(mesh, PartitionSpec(None, BATCH_AXIS))
  gather = jax.jit(_gather, static_argnames="length", out_shardings=batch_sharding(mesh))
  count, index = jax.process_count(), jax.process_index()
  epoch, step_in_epoch = divmod(start_step, steps)
  while True:
    order, lengths = plan.epoch(epoch)
    order = order.astype(np.int32)
    columns = batch_size // count
    order = jax.make_array_from_process_local_data(
        order_sharding, np.ascontiguousarray(order[:, index * columns:(index + 1) * columns]), order.shape)
    for step in range(step_in_epoch, steps):
      yield gather(tokens, labels, order, np.int32(step), length=int(lengths[step]))
    epoch, step_in_epoch = epoch + 1, 0


def train_feed(config, split: Split, *, start_step: int, mesh: Mesh) -> Iterator[dict[str, jax.Array]]:
  """The feed chosen by ``config.train_data_on_device``."""
  check_batch_size(config.batch_size)
  bounds = batching.config_bounds(config, split.max_length)
  if config.train_data_on_device:
    return device_train_feed(split, config.batch_size, seed=config.seed, start_step=start_step, mesh=mesh,
                             bounds=bounds)
  return host_train_feed(split, config.batch_size, seed=config.seed, start_step=start_step, mesh=mesh,
                         bounds=bounds, prefetch=config.prefetch_batches)
