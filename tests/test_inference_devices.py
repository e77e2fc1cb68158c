"""Layer-wise inference with its chunks dealt to several devices and processes equals the one-device run.

1 process × 4 host devices and 2 processes × 2 devices (CPU collectives over 127.0.0.1) against
`LayerwiseInference` on the default device: the same logits, fused embeddings, fusion weights, L_att
and final node states of every node (fp32: the same per-chunk program, so 1e-5); in the 2-process run
each process builds only the chunks of its own devices. Workers: tests/inference_worker.py.
"""

from __future__ import annotations

import pathlib

import numpy as np
import processes
import pytest
from inference_cases import MODELS, case

from hgnn_ima_jax import device_rounds
from hgnn_ima_jax.inference import LayerwiseInference

WORKER = pathlib.Path(__file__).with_name("inference_worker.py")
CHUNK = 3  # many chunks per layer (the graph has ~40 nodes), and a last round with spare devices
TOL = dict(rtol=1e-5, atol=1e-5)


def _runs(tmp_path, name, num_processes, devices):
  port = processes.free_port() if num_processes > 1 else 0
  spec = {"num_processes": num_processes, "devices": devices, "port": port, "chunk_size": CHUNK}
  return processes.start(WORKER, tmp_path, name, [{**spec, "process_id": i} for i in range(num_processes)])


def test_chunks_over_four_devices_and_two_processes_equal_one_device(tmp_path):
  four, two = _runs(tmp_path, "four", 1, 4), _runs(tmp_path, "two", 2, 2)
  try:
    ref = {}
    for name in MODELS:
      model, variables, data = case(name)
      engine = LayerwiseInference(model, variables, data, chunk_size=CHUNK)
      ref[name] = (engine.run(data, return_node_states=True), engine.last_stats)
    results = processes.wait(four, 240) + processes.wait(two, 240)
  finally:
    processes.stop(four + two)
  assert [r["devices"] for r in results] == [4, 4, 4]
  assert [r["agreed"] for r in results] == [10, 10, 10]  # process 1 offered 11: every process takes the smallest
  for name in MODELS:
    want, stats = ref[name]
    assert min(stats["chunks"]) > 4  # more chunks than devices: several rounds
    for r in results:
      got = r[name]
      np.testing.assert_allclose(got["logits"], want.logits, **TOL)
      np.testing.assert_allclose(got["fused"], want.fused, **TOL)
      np.testing.assert_allclose(got["fusion_weights"], want.fusion_weights, **TOL)
      np.testing.assert_allclose(got["att_loss"], want.att_loss, **TOL)
      for a, b in zip(got["node_states"], want.node_states, strict=True):
        np.testing.assert_allclose(a, b, **TOL)
      assert got["chunks"] == stats["chunks"]
      assert got["traces"] == {"project": 1, "layer": 1, "head": 1}
    assert results[0][name]["built"] == stats["built"]  # one process builds every chunk (spares are copies)
    p0, p1 = (r[name]["built"] for r in results[1:])
    for n, a, b in zip(stats["chunks"], p0, p1):
      assert a + b == n and abs(a - b) <= 2  # chunk i goes to device i mod 4: half of them per process
  assert ref["hgnn_ima"][0].att_loss > 0  # L_att's per-chunk sums are compared, not zeros


def test_no_device_is_one_line_error():
  with pytest.raises(ValueError, match=r"devices=\[\]"):
    device_rounds.DeviceRounds([])
