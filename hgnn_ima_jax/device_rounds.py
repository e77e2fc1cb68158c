"""Independent work items dealt to the devices of every process, a round of one item per device at a time.

Layer-wise inference (`hgnn_ima_jax.inference`) is a sequence of independent items per stage: chunks of
nodes to project, receiver chunks of a layer, chunks of target rows for the head. `DeviceRounds` runs one
program over such items on a 1-D mesh ('chunks') of the given devices: item i of a stage goes to mesh
position i mod D in round ⌊i / D⌋; each process builds only the items of its own devices
(`jax.make_array_from_callback` asks it for those shards only); the outputs of a round are all-gathered,
so every process reads every item's result from its local copy and can assemble the next stage's inputs
(a receiver's senders may have been computed anywhere). Parameters are replicated.

Nothing here changes a result: each device runs the single-device program on its item, and an item's
output does not depend on the others. A last round with fewer items than devices gives the spare
positions a copy of the stage's last item; their outputs are dropped. Every process of a multi-process
run must call the same stages in the same order (the all-gathers are collectives), as the evaluation of
a training run does.

Example:

  rounds = DeviceRounds(jax.devices())           # or None: plain `jit` on the default device
  program = rounds.compile(fn, num_args=3, replicated=1)
  for i, out in rounds.run(program, (rounds.replicate(params),), count, make_item):
    ...                                           # out: item i's outputs as NumPy arrays
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import jax
import numpy as np

from hgnn_ima_jax.hosts import host

P = jax.sharding.PartitionSpec
CHUNKS = "chunks"


class DeviceRounds:
  """Runs a program over independent items, one per device per round (see the module docstring).

  Args:
    devices: the devices to deal the items to (e.g. `jax.devices()`: all devices of all processes), or None for
      one item at a time under plain `jit` on the default device.
    jit: how programs are compiled (`jax.jit`; tests pass a faster-compiling one).
  """

  def __init__(self, devices: Sequence[Any] | None = None, jit: Callable = jax.jit):
    self.jit = jit
    self.built = 0  # real items this process has built (in a multi-process run, about count / processes)
    if devices is None:
      self.mesh, self.size, self.local = None, 1, [0]
      return
    devices = list(devices)
    if not devices:
      raise ValueError("devices=[]: no device to run on. Fix: pass None (the default device) or jax.devices()")
    bad = [d for d in devices if not isinstance(d, jax.Device)]
    if bad:  # e.g. device ids: jax.sharding.Mesh failed with "'int' object has no attribute 'process_index'"
      raise TypeError(
          f"devices: {bad[0]!r} is a {type(bad[0]).__name__}, not a jax.Device. Fix: pass jax.devices() "
          "(or a list of its items)"
      )
    self.mesh, self.size = jax.sharding.Mesh(np.asarray(devices, dtype=object), (CHUNKS,)), len(devices)
    self.sharding = jax.sharding.NamedSharding(self.mesh, P(CHUNKS))
    self.replicated = jax.sharding.NamedSharding(self.mesh, P())
    index = self.sharding.addressable_devices_indices_map((self.size,))
    self.local = sorted({g for sl in index.values() for g in range(self.size)[sl[0]]})
    if not self.local:
      raise ValueError(
          f"devices: none of the {self.size} devices belongs to process {jax.process_index()}. "
          "Fix: pass devices of every process that runs (jax.devices())"
      )

  def compile(self, fn: Callable, num_args: int, replicated: int) -> Callable:
    """`fn(*replicated args, *item args)` → a program over a round: item args and outputs get a leading device axis."""
    if self.mesh is None:
      return self.jit(fn)

    def per_device(*args):
      item = jax.tree.map(lambda x: x[0], args[replicated:])
      out = fn(*args[:replicated], *item)
      return jax.tree.map(lambda x: jax.lax.all_gather(x, CHUNKS), out)  # every process reads every item

    specs = (P(),) * replicated + (P(CHUNKS),) * (num_args - replicated)
    # check_vma=False: the outputs are all-gathered, i.e. replicated, which out_specs=P() states.
    return self.jit(jax.shard_map(per_device, mesh=self.mesh, in_specs=specs, out_specs=P(), check_vma=False))

  def replicate(self, tree):
    """Arrays as every device of the mesh holds them (unchanged without a mesh)."""
    if self.mesh is None:
      return tree

    def put(x):
      x = np.asarray(x)
      return jax.make_array_from_callback(x.shape, self.replicated, lambda index: x[index])

    return jax.tree.map(put, tree)

  def run(self, program: Callable, replicated_args: tuple, count: int, make: Callable[[int], tuple]) -> Iterator:
    """Yields (i, outputs of item i as NumPy) for i = 0 … count-1, in order; `make(i)` builds item i's arguments.

    A round is dispatched before the previous one is read, so the host builds it while the devices compute.
    """
    pending = None
    for base in range(0, count, self.size):
      out = self._dispatch(program, replicated_args, base, count, make)
      if pending is not None:
        yield from self._read(*pending)
      pending = (base, min(self.size, count - base), out)
    if pending is not None:
      yield from self._read(*pending)

  def _dispatch(self, program, replicated_args, base, count, make):
    if self.mesh is None:
      self.built += 1
      return program(*replicated_args, *make(base))
    items: dict[int, Any] = {}
    for g in self.local:
      i = min(base + g, count - 1)  # spare positions of the last round repeat its last item
      if i not in items:
        items[i] = jax.tree.flatten(make(i))
        self.built += base + g < count  # a spare position's copy is not counted
    leaves_of = {g: items[min(base + g, count - 1)][0] for g in self.local}
    treedef = next(iter(items.values()))[1]

    def to_global(leaf: int):
      first = np.asarray(leaves_of[self.local[0]][leaf])
      stack = lambda index: np.stack([leaves_of[g][leaf] for g in range(self.size)[index[0]]])
      return jax.make_array_from_callback((self.size,) + first.shape, self.sharding, stack)

    args = jax.tree.unflatten(treedef, [to_global(k) for k in range(treedef.num_leaves)])
    return program(*replicated_args, *args)

  def _read(self, base, n, out):
    out = host(out)  # replicated after the all-gather: the local copy
    if self.mesh is None:
      yield base, out
      return
    for g in range(n):
      yield base + g, jax.tree.map(lambda x: x[g], out)
