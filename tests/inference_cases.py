"""The models and graph of the multi-device layer-wise inference test (shared by the test and its worker)."""

import jax
import numpy as np
from model_fixtures import make_graph, random_variables

from hgnn_ima_jax import models

MODELS = ("hgnn_ima", "hgt_late")  # one encoder with L_att; one encoder per modality
FIELDS = dict(hidden=8, heads=2, num_layers=2, projection="per_channel", input_batch_norm=True)


def case(name: str):
  """(model, random float32 variables, graph): the same in every process."""
  data = make_graph(2, widths="mixed")
  model = models.build_model(name, data.schema, **FIELDS)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), data.to_graphs_tuple()))
  return model, random_variables(shapes, 0, np.float32), data
