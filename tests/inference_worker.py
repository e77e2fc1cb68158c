"""One process of tests/test_inference_devices.py: `python inference_worker.py SPEC_JSON` writes SPEC['out'].

SPEC: {'process_id', 'num_processes', 'devices' (local), 'port', 'chunk_size'}. Runs layer-wise inference of two
models (random variables, the test graph) with the chunks dealt to all devices of all processes; the out JSON holds,
per model, the outputs and the chunks this process built per layer, and what `distributed.agree_smallest` gave
for a value that differs per process.
"""

import json
import sys

import jax
import processes

spec = json.loads(sys.argv[1])
processes.join(spec)

from inference_cases import MODELS, case  # noqa: E402

from hgnn_ima_jax import distributed  # noqa: E402
from hgnn_ima_jax.inference import LayerwiseInference  # noqa: E402

# A choice every process must make alike (mini-batch evaluation's chunk size), from values that differ.
result = {"process": jax.process_index(), "devices": jax.device_count()}
result["agreed"] = distributed.agree_smallest(10 + jax.process_index())
for name in MODELS:
  model, variables, data = case(name)
  engine = LayerwiseInference(model, variables, data, chunk_size=spec["chunk_size"], devices=jax.devices())
  res = engine.run(data, return_node_states=True)
  result[name] = {
      "logits": res.logits.tolist(),
      "fused": res.fused.tolist(),
      "fusion_weights": res.fusion_weights.tolist(),
      "att_loss": res.att_loss,
      "node_states": [s.tolist() for s in res.node_states],
      "built": engine.last_stats["built"],
      "chunks": engine.last_stats["chunks"],
      "traces": dict(engine.traces),
  }
with open(spec["out"], "w") as f:
  json.dump(result, f)
