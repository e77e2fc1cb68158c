"""Configs are checked before any work starts: one line `config.<field>=<value>: <problem>. Fix: <fix>`.

The library checks (`validate_config`, called first by `train_and_evaluate`), the tables the model
code reads its allowed values from, and the scripts: exit code 2, one line, nothing written.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
from conftest import REPO
from script_helpers import run_python

from hgnn_ima_jax import choices, config_compare, config_values, field_usage
from hgnn_ima_jax import config_validation as cv
from hgnn_ima_jax.data_utils import validate_run_config
from hgnn_ima_jax.experiments import configs, run_options
from hgnn_ima_jax.experiments.configs import DATASETS, PROTOCOLS, get_config
from hgnn_ima_jax.experiments.configs import test as test_config

LINE = re.compile(r"^config\.[a-z0-9_.]+=.*: .+\. Fix: .+$")


def with_fields(config, **fields):
  for path, value in fields.items():
    configs.set_path(config, path.replace("__", "."), value)
  return config


def error_of(**fields) -> cv.ConfigError:
  with pytest.raises(cv.ConfigError) as info:
    validate_run_config(with_fields(get_config("synthetic").to_dict(), **fields))  # a dict: no ConfigDict type checks
  msg = str(info.value)
  assert LINE.match(msg) and "\n" not in msg, msg
  return info.value


# One case per field group: (field overrides, field named in the error, words of the problem).
BAD = {
    "count": ({"num_epochs": 0}, "num_epochs", "out of range"),
    "negative count": ({"num_epochs": -3}, "num_epochs", "out of range"),
    "layers": ({"model__num_layers": -1}, "model.num_layers", "out of range"),
    "heads": ({"model__heads": 0}, "model.heads", "out of range"),
    "patience": ({"early_stopping__patience": 0}, "early_stopping.patience", "out of range"),
    "hidden % heads": ({"model__hidden": 63}, "model.hidden", "not divisible by model.heads=8"),
    "dropout": ({"model__dropout": 1.5}, "model.dropout", "out of range"),
    "dropout = 1": ({"model__fusion_input_dropout": 1.0}, "model.fusion_input_dropout", "out of range"),
    "weight decay": ({"optimizer__weight_decay": -0.1}, "optimizer.weight_decay", "out of range"),
    "learning rate": ({"optimizer__learning_rate": -1e-3}, "optimizer.learning_rate", "out of range"),
    "learning rate 0": ({"optimizer__learning_rate": 0.0}, "optimizer.learning_rate", "out of range"),
    "learning rate nan": ({"optimizer__learning_rate": float("nan")}, "optimizer.learning_rate", "not finite"),
    "learning rate inf": ({"optimizer__learning_rate": float("inf")}, "optimizer.learning_rate", "not finite"),
    "score scale": ({"model__score_scale": -1.0}, "model.score_scale", "out of range"),
    "integer": ({"model__hidden": 64.0}, "model.hidden", "not an integer"),
    "variant": ({"model__variant": "-foo"}, "model.variant", "not one of"),
    "combine": ({"model__combine": "max"}, "model.combine", "not one of"),
    "align_sign": ({"model__align_sign": "plus"}, "model.align_sign", "not one of"),
    "projection": ({"model__projection": "dense"}, "model.projection", "not one of"),
    "protocol": ({"protocol": "mine"}, "protocol", "not one of"),
    "schedule": ({"optimizer__schedule": "cosine"}, "optimizer.schedule", "not one of"),
    "model name": ({"model_name": "gat"}, "model_name", "not one of"),
    "bool": ({"loss__ind_loss": "yes"}, "loss.ind_loss", "not a boolean"),
    "batch norm needs per_channel": (
        {"model__projection": "shared", "model__input_batch_norm": True},
        "model.input_batch_norm",
        "per_channel",
    ),
    "seeds empty": ({"seeds": ()}, "seeds", "empty"),
    "seeds repeat": ({"seeds": (0, 0)}, "seeds", "repeats"),
    "seeds negative": ({"seeds": (0, -1)}, "seeds", "not an integer in"),
    "synthetic fraction": ({"synthetic__homophily": 1.5}, "synthetic.homophily", "outside [0, 1]"),
    "synthetic scale": ({"synthetic__scale": 0.001}, "synthetic.num_targets", "targets at scale 0.001"),
    "synthetic noise": ({"synthetic__noise": -1.0}, "synthetic.noise", "negative"),
    "synthetic memory": ({"synthetic__scale": 1e9}, "synthetic.scale", "nodes alone take"),
    "synthetic fill": ({"synthetic__missing_fill": "mean"}, "synthetic.missing_fill", "not a fill rule"),
}


def test_a_scaled_synthetic_graph_too_large_for_the_machine_is_refused_with_the_smaller_ones(monkeypatch):
  """The fixed AMAZON-1-like graphs have no knob to lower: on a machine whose available memory their features exceed
  (here made 1 GB), the dataset is refused when the config is checked; the generator's own refusal came later, as a
  traceback."""
  from hgnn_ima_jax import memory_check

  monkeypatch.setattr(memory_check, "host_available_bytes", lambda: 2**30)
  with pytest.raises(cv.ConfigError) as e:
    validate_run_config(get_config("synthetic10m"))
  assert str(e.value).startswith("config.dataset=synthetic10m: the features of its 929,408 nodes alone take 3.5 GB, ")
  assert "Fix: train a smaller one (synthetic_amazon1, synthetic_amazon1x4), or where" in str(e.value)
  validate_run_config(get_config("synthetic_amazon1"))  # 0.1 GB


@pytest.mark.parametrize("case", list(BAD))
def test_each_field_group_is_refused_in_one_line(case):
  fields, field, problem = BAD[case]
  err = error_of(**fields)
  assert err.field == field and problem in err.problem, str(err)
  assert str(err).startswith(f"config.{field}=")


def test_every_shipped_config_is_valid():
  for dataset in DATASETS:
    for protocol in PROTOCOLS:
      cv.validate_config(get_config(dataset, protocol))
  cv.validate_config(test_config.get_config())
  for name in choices.MODEL_NAMES:
    cv.validate_config(with_fields(get_config("douban"), model_name=name))


def test_the_model_code_reads_its_allowed_values_from_the_table():
  from hgnn_ima_jax import attention, layers, models
  from hgnn_ima_jax.data_utils import paper_datasets
  from hgnn_ima_jax.experiments import configs

  assert layers.VARIANTS is choices.CHOICES["model.variant"] and attention.COMBINES is choices.CHOICES["model.combine"]
  assert (
      configs.PROTOCOLS is choices.CHOICES["protocol"] and paper_datasets.FILL_RULES is choices.CHOICES["missing_fill"]
  )
  assert models.MODEL_NAMES == tuple(choices.MODEL_NAMES) and tuple(models.ABLATIONS) == choices.ABLATIONS
  for model_over, _ in models.ABLATIONS.values():
    assert model_over.get("variant", "full") in choices.CHOICES["model.variant"]


def test_validation_imports_no_jax():
  code = (
      "import sys; from experiments.configs import get_config; from hgnn_ima_jax import config_validation as cv; "
      "from hgnn_ima_jax import cli_flags, config_compare, config_paths; "
      "cv.validate_config(get_config('synthetic')); cv.validate_config(get_config('imdb', 'paper')); "
      "config_compare.config_fingerprint(get_config('imdb')); config_paths.data_dir_or_env(get_config('imdb')); "
      "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'flax', 'jraph')))"
  )
  out = run_python("-c", code, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == "[]"


def test_train_and_evaluate_checks_before_building_or_writing(tmp_path, monkeypatch):
  from hgnn_ima_jax import train
  from hgnn_ima_jax.data_utils import load_dataset

  monkeypatch.setattr(train, "make_batch", lambda d: pytest.fail("the graph was built before the config was checked"))
  bad = with_fields(test_config.get_config(), model__dropout=1.5)
  with pytest.raises(cv.ConfigError, match=r"^config\.model\.dropout=1\.5: "):
    train.train_and_evaluate(bad, str(tmp_path / "run"), load_dataset("synthetic", scale=0.05), progress=False)
  assert not (tmp_path / "run").exists()


def test_wrong_types_from_a_notebook_are_one_line_each(tmp_path):
  """Each of these was an AttributeError from deep inside (`'GraphsTuple' object has no attribute 'schema'`)."""
  import dataclasses

  import jax

  from hgnn_ima_jax import train
  from hgnn_ima_jax.data_utils import load_dataset
  from hgnn_ima_jax.device_rounds import DeviceRounds
  from hgnn_ima_jax.graph import DatasetError

  data, config = load_dataset("synthetic", scale=0.05), test_config.get_config()
  with pytest.raises(TypeError, match=r"^data: a GraphsTuple, expected an MMHN\. Fix:"):
    train.train_and_evaluate(config, str(tmp_path / "run"), data.to_graphs_tuple(), progress=False)
  with pytest.raises(TypeError, match=r"^config: a dict, expected an ml_collections\.ConfigDict\. Fix:"):
    train.train_and_evaluate(config.to_dict(), str(tmp_path / "run"), data, progress=False)
  assert not (tmp_path / "run").exists()
  with pytest.raises(TypeError, match=r"^devices: 0 is a int, not a jax\.Device"):
    DeviceRounds([0])
  DeviceRounds(jax.devices())
  plain = dataclasses.replace(data, relations=tuple(tuple(r) for r in data.relations))  # not Relation tuples
  with pytest.raises(DatasetError, match=r"relations: \('movie', .* is not a Relation\. Fix: give each as"):
    plain.validate()


def test_the_machine_is_checked_before_the_workdir_is_made(tmp_path, monkeypatch):
  """A mesh_data the devices cannot hold and a malformed $HGNN_IMA_MEMORY_LIMIT were tracebacks after the
  workdir (config.json, checkpoints/) had been written."""
  import jax

  from hgnn_ima_jax import train
  from hgnn_ima_jax.data_utils import load_dataset
  from hgnn_ima_jax.memory_check import MemoryLimitError

  data = load_dataset("synthetic", scale=0.05)
  k = jax.device_count() + 1  # divides no device count
  config = with_fields(test_config.get_config(), **{"batch.mode": "neighbor", "batch.parts": k, "mesh_data": k})
  with pytest.raises(cv.ConfigError, match=rf"^config\.mesh_data={k}: does not divide the {k - 1} devices"):
    train.train_and_evaluate(config, str(tmp_path / "run"), data, progress=False)
  monkeypatch.setenv("HGNN_IMA_MEMORY_LIMIT", "abc")
  with pytest.raises(MemoryLimitError, match="HGNN_IMA_MEMORY_LIMIT='abc' is not a size. Fix:"):
    train.train_and_evaluate(test_config.get_config(), str(tmp_path / "run"), data, progress=False)
  assert not (tmp_path / "run").exists()


# --- field names: a path no part of the project reads is refused, with the nearest field ----------------


def _leaf_paths(tree, prefix=""):
  for key, value in tree.items():
    if isinstance(value, dict) and value and f"{prefix}{key}" not in cv.known_fields():
      yield from _leaf_paths(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}"


def test_every_field_of_every_shipped_config_is_known():
  """The known-field table lives in the library (which imports no experiments/): every config that
  `experiments.configs` builds holds known fields only, so the two cannot drift apart."""
  import dataclasses

  from hgnn_ima_jax.data_utils.synthetic_config import SyntheticConfig

  built = [get_config(d, p) for d in DATASETS + ("graphs/mine.npz",) for p in PROTOCOLS]
  built += [test_config.get_config(d) for d in DATASETS]
  knobs = {f"synthetic.{f.name}" for f in dataclasses.fields(SyntheticConfig)}
  paths = {path for config in built for path in _leaf_paths(config.to_dict())}
  assert len(paths) > 60
  unknown = sorted(p for p in paths if p not in cv.known_fields() and p not in knobs)
  assert not unknown, unknown
  assert {p for p in paths if p.startswith("synthetic.")} <= knobs  # choices.DATA_LAYER_GROUPS: the data layer's names
  assert choices.DATA_LAYER_GROUPS == ("synthetic",)


# `config.get("x", D)`, `config.model.get("x", D)` and `(config.get("batch") or {}).get("x", D)`: the field, and the
# default's source text when one is given
_GETS = (
    re.compile(r"\bconfig\.()get\([\"'](\w+)[\"'](?:,\s*([^()]+?))?\)"),
    re.compile(r"\bconfig\.(\w+)\.get\([\"'](\w+)[\"'](?:,\s*([^()]+?))?\)"),
    re.compile(r"\(config\.get\([\"'](\w+)[\"']\) or \{\}\)\.get\([\"'](\w+)[\"'](?:,\s*([^()]+?))?\)"),
)


def _fields_read_with_get() -> list[tuple[str, str, str | None]]:
  """(file, field path, default's source or None) of every `.get` of a config field in the library, the data layer
  and the scripts."""
  groups = {p.split(".")[0] for p in cv.known_fields() if "." in p} | set(choices.DATA_LAYER_GROUPS)
  read = []
  for folder in ("hgnn_ima_jax", "data_utils", "experiments"):
    for f in sorted((REPO / folder).glob("*.py")):
      for pattern in _GETS:
        for m in pattern.finditer(f.read_text()):
          if not m[1] or m[1] in groups:
            read.append((f.name, f"{m[1]}.{m[2]}" if m[1] else m[2], m[3]))
  return read


def test_every_field_the_code_reads_with_get_is_known():
  """`config.get("x")`, `config.model.get("x")` and `(config.get("batch") or {}).get("x")` in the library, the data
  layer and the scripts name known fields (those a config may lack included: mesh_data, seed_batch, model.remat)."""
  groups = {p.split(".")[0] for p in cv.known_fields() if "." in p} | set(choices.DATA_LAYER_GROUPS)
  read = {path for _, path, _ in _fields_read_with_get()}
  assert {"seed_batch", "mesh_data", "shard_seeds", "checkpoint_every", "batch.parts", "model.remat"} <= read, read
  unknown = sorted(p for p in read if p not in cv.known_fields() and p not in groups)
  assert not unknown, unknown


def test_the_code_falls_back_to_the_default_configs_values():
  """A config may lack a field (one built in Python, an older run's config.json); the code then reads it with
  `.get(field, default)`, and that default is the one experiments/configs/default.py gives the field: two
  copies of one value, which this keeps equal."""
  from hgnn_ima_jax.data_utils import splits  # a default may name a constant of it

  base = configs.default.get_config()
  checked = []
  for name, path, text in _fields_read_with_get():
    if text is None:
      continue
    value = eval(text, {"splits": splits})  # noqa: S307 (our own source: a literal or a constant of splits)
    node = base
    for part in path.split("."):
      node = node[part]
    want = list(node) if isinstance(node, (tuple, list)) else node
    got = list(value) if isinstance(value, (tuple, list)) else value
    assert got == want and type(got) is type(want), f"{name}: config.get({path!r}, {text}) but default.py has {node!r}"
    checked.append(path)
  assert {"seed_batch", "checkpoint_every", "mesh_data", "missing_fill", "split_fractions", "model.remat"} <= set(
      checked
  ), checked


@pytest.mark.parametrize(
    "set_field,line",
    [
        # the audit's repros: 60 epochs trained silently; a TypeError from HGNNIMA.__init__
        (lambda c: setattr(c, "epochs", 3), "config.epochs=3: is not a config field. Fix: did you mean num_epochs? "),
        (
            lambda c: setattr(c.model, "hiden", 32),
            "config.model.hiden=32: is not a config field. Fix: did you mean model.hidden? ",
        ),
        (
            lambda c: setattr(c, "hidden", 32),
            "config.hidden=32: is not a config field. Fix: did you mean model.hidden? ",
        ),
        (
            lambda c: setattr(c, "optim", {"lr": 0.1}),
            "config.optim={'lr': 0.1}: is not a config field. Fix: did you mean optimizer? ",
        ),
        (
            lambda c: setattr(c.optimizer, "lr", 0.1),
            "config.optimizer.lr=0.1: is not a config field. Fix: use one of optimizer.b1, optimizer.b2, ",
        ),
        (
            lambda c: setattr(c, "zzz", 1),
            "config.zzz=1: is not a config field. Fix: use a field of experiments/configs/",
        ),
    ],
)
def test_a_misspelt_field_from_python_is_one_line_with_the_nearest(set_field, line):
  config = get_config("synthetic")
  set_field(config)
  with pytest.raises(cv.ConfigError) as info:
    cv.validate_config(config)
  assert str(info.value).startswith(line) and LINE.match(str(info.value)), str(info.value)


def test_a_misspelt_field_of_a_plain_dict_or_a_new_config_dict_is_refused():
  import ml_collections

  with pytest.raises(
      cv.ConfigError, match=r"^config\.num_epoch=2: is not a config field\. Fix: did you mean num_epochs\?"
  ):
    cv.validate_config(ml_collections.ConfigDict({"dataset": "synthetic", "num_epoch": 2}))
  d = get_config("synthetic").to_dict()
  d["early_stopping"]["patiense"] = 5
  with pytest.raises(
      cv.ConfigError, match=r"^config\.early_stopping\.patiense=5: .* did you mean early_stopping\.patience\?"
  ):
    cv.validate_config(d)
  # the synthetic knobs are the data layer's names (SyntheticConfig): its check names the nearest the same way
  with pytest.raises(
      cv.ConfigError, match=r"^config\.synthetic\.homophilly=0\.7: .* did you mean synthetic\.homophily\?"
  ):
    validate_run_config(with_fields(get_config("synthetic"), synthetic__homophilly=0.7))


def test_user_keyed_dicts_and_fields_absent_from_the_profiles_are_fields():
  """Per-relation fanouts and per-type num_samples are keyed by the graph's names, not by field names; fields
  the profiles do not hold but the code reads (model.hgt_modality) or a run adds are fields too."""
  neighbor = {"batch.mode": "neighbor", "batch.fanouts": ({"ma": 10, "md": 5, "dm": 5, "am": 10},) * 3}
  cv.validate_config(with_fields(get_config("synthetic"), **neighbor))
  hgt = {"batch.mode": "hgt", "batch.num_samples": {"movie": 64, "actor": 32}}
  cv.validate_config(with_fields(get_config("synthetic"), **hgt))
  config = get_config("synthetic")
  config.model.hgt_modality = "text"
  cv.validate_config(config)
  d = test_config.get_config().to_dict()  # a sparse dict: absent fields take the code's defaults
  cv.validate_config({k: d[k] for k in ("dataset", "seeds", "num_epochs", "model")})


def test_train_and_evaluate_refuses_a_misspelt_field_before_writing(tmp_path, monkeypatch):
  from hgnn_ima_jax import train
  from hgnn_ima_jax.data_utils import load_dataset

  monkeypatch.setattr(train, "make_batch", lambda d: pytest.fail("the graph was built before the config was checked"))
  data = load_dataset("synthetic", scale=0.05)
  for field, line in (
      ("model.hiden", r"config\.model\.hiden=32: .*model\.hidden\?"),
      ("epochs", r"config\.epochs=32: .*num_epochs\?"),
  ):
    config = test_config.get_config()
    configs.set_path(config, field, 32)
    with pytest.raises(cv.ConfigError, match=f"^{line}"):
      train.train_and_evaluate(config, str(tmp_path / "run"), data, progress=False)
  assert not (tmp_path / "run").exists()


def test_seeds_text_errors_are_config_errors():
  assert run_options.parse_seeds("3") == (0, 1, 2) and run_options.parse_seeds("0, 3,7") == (0, 3, 7)
  assert run_options.parse_seeds("7,") == (7,)  # a list of one seed
  for text in ("0", "-2", "a", "1.5", "0,x", ",", "0,,3"):  # ',' was the default seeds, '0,,3' was (0, 3)
    with pytest.raises(cv.ConfigError, match=r"^config\.seeds=.*Fix: give --seeds=N"):
      run_options.parse_seeds(text)


# --- data fields the dataset does not read: refused, not ignored ---------------------------------


@pytest.mark.parametrize(
    "dataset,field,value,problem",
    [
        ("synthetic", "data_dir", "/some/where", "is not read by dataset 'synthetic': it is generated"),
        ("synthetic", "features", "generated", "is not read by dataset 'synthetic': it is generated"),
        ("synthetic_amazon1", "data_dir", "/some/where", "is not read by dataset 'synthetic_amazon1'"),
        ("synthetic_amazon1", "features", "generated", "is not read by dataset 'synthetic_amazon1'"),
        ("graphs/mine.npz", "data_dir", "/some/where", "is not read for dataset path 'graphs/mine.npz'"),
    ],
)
def test_a_file_field_the_dataset_does_not_read_is_refused(dataset, field, value, problem, tmp_path):
  config = get_config(dataset)
  validate_run_config(config)  # the defaults: nothing given
  setattr(config, field, value)
  with pytest.raises(cv.ConfigError) as info:
    validate_run_config(config)
  assert str(info.value).startswith(f"config.{field}={value}: {problem}") and LINE.match(str(info.value))
  # ... and read where the dataset reads it
  for name in ("douban", "amazon2"):
    validate_run_config(with_fields(get_config(name), **{field: value}))
  (tmp_path / "douban").mkdir()  # a copy of a dataset in its published format reads `features`
  validate_run_config(with_fields(get_config(str(tmp_path / "douban")), features="generated"))


def test_generated_features_for_a_generic_format_path_are_refused_before_loading():
  with pytest.raises(cv.ConfigError) as info:
    validate_run_config(with_fields(get_config("graphs/mine.npz"), features="generated"))
  assert str(info.value).startswith("config.features=generated: 'generated' applies to the paper's published format")
  assert LINE.match(str(info.value))


def test_a_run_over_several_datasets_gives_file_fields_to_the_datasets_that_read_them():
  opts = run_options.Options(datasets=("synthetic", "douban"), data_dir="/d", features="generated")
  douban, synthetic = run_options.base_config("douban", opts), run_options.base_config("synthetic", opts)
  assert (douban.data_dir, douban.features) == ("/d", "generated")
  assert (synthetic.data_dir, synthetic.features) == ("", "real")
  validate_run_config(synthetic)
  # The same through --config: the path's first part is the field.
  opts = run_options.Options(datasets=("synthetic", "douban"), overrides={"data_dir": "/d"})
  assert run_options.base_config("douban", opts).data_dir == "/d"
  assert run_options.base_config("synthetic", opts).data_dir == ""
  # No dataset of the run reads it: it stays, and is refused.
  alone = run_options.Options(datasets=("synthetic", "synthetic_amazon1"), data_dir="/d")
  with pytest.raises(cv.ConfigError, match=r"^config\.data_dir=/d: is not read by dataset 'synthetic'"):
    validate_run_config(run_options.base_config("synthetic", alone))


def test_the_split_fields_are_read_only_when_the_split_is_drawn():
  """split_fractions and split_seed: refused with split=file (the dataset's own split was used silently),
  read with split=stratified; a paper-protocol run gives them to IMDB, the one dataset whose split it draws."""
  for field, value in (("split_fractions", (0.3, 0.1, 0.6)), ("split_seed", 3)):
    with pytest.raises(cv.ConfigError, match=rf"^config\.{field}=.*: is not read with split=file"):
      validate_run_config(with_fields(get_config("douban"), **{field: value}))
    validate_run_config(with_fields(get_config("douban"), split="stratified", **{field: value}))
    validate_run_config(with_fields(get_config("imdb", "paper"), **{field: value}))  # stratified there
  validate_run_config(with_fields(get_config("douban"), split_fractions=[0.2, 0.1, 0.7], split_seed=0))  # defaults
  paper = run_options.Options(datasets=("douban", "imdb"), protocol="paper", overrides={"split_seed": 4})
  assert run_options.base_config("imdb", paper).split_seed == 4
  assert run_options.base_config("douban", paper).split_seed == 0
  validate_run_config(run_options.base_config("douban", paper))
  every = run_options.Options(datasets=("douban", "imdb"), overrides={"split_seed": 4, "split": "stratified"})
  assert [run_options.base_config(d, every).split_seed for d in ("douban", "imdb")] == [4, 4]
  alone = run_options.Options(datasets=("douban", "amazon"), overrides={"split_seed": 4})  # nobody draws
  with pytest.raises(cv.ConfigError, match=r"^config\.split_seed=4: is not read with split=file"):
    validate_run_config(run_options.base_config("douban", alone))


def test_batch_fields_are_read_only_by_the_modes_that_use_them():
  """A batch field given with a mode that ignores it is refused (--config.batch.size without a sampling mode
  trained full-batch without a word); its readers still take it, and the defaults are the config's."""
  from hgnn_ima_jax.options import BATCH_FIELDS_READ

  defaults = get_config("synthetic").batch.to_dict()  # BatchSettings' (configs/default.py builds it from them)
  assert set().union(*BATCH_FIELDS_READ.values()) == set(defaults) - {"mode"}  # every field has a reader
  cases = [
      ("full", "size", 128, "add --config.batch.mode=neighbor (or hgt) to train on sampled mini-batches, or drop it"),
      ("full", "eval", "sampled", "add --config.batch.mode=neighbor (or hgt)"),
      ("hgt", "fanouts", (5, 5, 5), "it is read with batch.mode=neighbor: switch to that, or drop it"),
      ("neighbor", "num_samples", 64, "it is read with batch.mode=hgt: switch to that"),
  ]
  for mode, field, value, fix in cases:
    with pytest.raises(cv.ConfigError) as e:
      validate_run_config(with_fields(get_config("synthetic"), **{"batch.mode": mode, f"batch.{field}": value}))
    assert str(e.value).startswith(
        f"config.batch.{field}={config_values.format_value(value)}: is not read with batch.mode={mode}"
    )
    assert fix in str(e.value) and LINE.match(str(e.value))
    reader = next(m for m, fields in BATCH_FIELDS_READ.items() if field in fields)
    validate_run_config(with_fields(get_config("synthetic"), **{"batch.mode": reader, f"batch.{field}": value}))
  # the default value of a field is no error in any mode
  validate_run_config(with_fields(get_config("synthetic"), **{"batch.mode": "hgt", "batch.fanouts": ()}))
  # and what a mode does not read does not decide a run's result either
  full = config_compare.result_fields(with_fields(get_config("synthetic"), **{"batch.size": 7}))
  assert (
      "size" not in full["batch"]
      and "size"
      in config_compare.result_fields(with_fields(get_config("synthetic"), **{"batch.mode": "neighbor"}))["batch"]
  )


def test_unread_fields_are_one_rule_for_validation_and_result_fields():
  for dataset in (*DATASETS, "graphs/mine.npz", "Synthetic"):
    config = get_config(dataset)
    kept = config_compare.result_fields(config)
    for field in ("data_dir", "features", "synthetic"):
      assert (field in field_usage.unread_data_fields(dataset)) == (field not in kept), (dataset, field)
    for split in ("file", "stratified"):
      kept = config_compare.result_fields(with_fields(get_config(dataset), split=split))
      assert all((f in kept) == (split == "stratified") for f in choices.SPLIT_DRAW_FIELDS), (dataset, split)


def test_model_fields_are_refused_where_no_cell_reads_them():
  """An override of a model, loss or optimizer field that no cell's model or optimizer reads would change
  nothing: refused, one line.
  A dataset profile's value (DOUBAN's score_scale=100 under an HGT baseline) is no override, and a cell that
  ignores an override another cell reads keeps its result fields (table2's hgt_late beside hgnn_ima)."""
  from hgnn_ima_jax.experiments import run_options

  def check(models, dataset="douban", protocol="code", **overrides):
    opts = run_options.Options(datasets=(dataset,), overrides=overrides, protocol=protocol)
    cells = [run_options.cell_config(dataset, opts, m) for m in models]
    run_options.check_overrides_read(cells, opts)
    return cells

  refused = [
      (("hgt_late",), {"model.combine": "add"}, "is not read by model_name=hgt_late", "train --model=hgnn_ima"),
      (
          ("hgt_early", "hgt_late"),
          {"model.score_scale": 50.0},
          "read by model_name=hgt_early or hgt_late: ",
          "baseline_",
      ),
      (("hgt", "hgt_early"), {"model.fusion_form": "paper"}, "a single-channel HGT has no modality fusion", "hgt_late"),
      (("hgt",), {"loss.ind_loss": True}, "one logit head", "hgt_late"),
      (("hgnn_ima",), {"model.baseline_score_scale": 2.0}, "HGT baselines' score scale", "model.score_scale"),
      (("hgnn_ima", "hgnn_ima-cross"), {"model.nei_mode": "target"}, "only -nei reads it", "--model=hgnn_ima-nei"),
      (("hgnn_ima-cross",), {"loss.att_weight": 0.5}, "with variant -cross, which has no Eq. 6", "another variant"),
      (("hgnn_ima-align",), {"model.variant": "-nei"}, "is set by model_name=hgnn_ima-align (variant=-align)", ""),
      (("hgnn_ima-L_att",), {"loss.att_weight": 0.5}, "is set by model_name=hgnn_ima-L_att (att_weight=0.0)", ""),
  ]
  refused += [  # the optimizer's fields, by name and schedule
      (("hgnn_ima",), {"optimizer.b1": 0.8}, "is not read with optimizer.schedule=onecycle", "schedule=constant"),
      (("hgnn_ima",), {"optimizer.onecycle_pct_start": 0.1, "protocol": "paper"}, "schedule=constant", "onecycle"),
      (("hgt_late",), {"optimizer.weight_decay": 0.01, "protocol": "paper"}, "optimizer.name=adam", "name=adamw"),
  ]
  for models, overrides, problem, fix in refused:
    protocol = overrides.pop("protocol", "code")
    ((path, value),) = overrides.items()
    with pytest.raises(cv.ConfigError) as e:
      check(models, protocol=protocol, **overrides)
    assert str(e.value).startswith(f"config.{path}={config_values.format_value(value)}: ") and problem in str(
        e.value
    ), e.value
    assert fix in str(e.value).split("Fix: ")[1] and LINE.match(str(e.value))
  # ignored by every cell for different reasons: each reason with its cells (the first cell's alone misled)
  with pytest.raises(cv.ConfigError) as e:
    check(("hgt", "hgnn_ima-cross"), **{"model.nei_mode": "target"})
  assert "is read by no cell of this run: " in str(e.value) and LINE.match(str(e.value))
  assert "(douban/hgt); " in str(e.value) and "only -nei reads it) (douban/hgnn_ima-cross). Fix: " in str(e.value)
  # reasons that differ only in the cell's model name are one reason naming the models (each was repeated)
  with pytest.raises(cv.ConfigError) as e:
    check(("hgt", "hgt_early", "hgt_late"), **{"model.combine": "add"})
  assert str(e.value).startswith("config.model.combine=add: is not read by model_name=hgt, hgt_early or hgt_late: ")
  assert str(e.value).count("no inter-modal attention") == 1 and LINE.match(str(e.value))
  # read by one cell of the run: kept, and the cells that ignore it have the same result fields as without it
  hgt_late, ours = check(("hgt_late", "hgnn_ima"), **{"model.combine": "add"})
  assert ours.model.combine == "add" and "combine" not in config_compare.result_fields(hgt_late)["model"]
  assert config_compare.result_fields(hgt_late) == config_compare.result_fields(check(("hgt_late",))[0])
  check(("hgnn_ima", "hgnn_ima-nei"), **{"model.nei_mode": "target"})
  check(("hgnn_ima-align",), **{"model.variant": "-align"})  # what the name sets anyway
  # the profile's value is no override; the same value given again is not an error either
  assert check(("hgt_late",))[0].model.score_scale == 100.0
  check(("hgt_late",), **{"model.score_scale": 100.0})
  check(("hgnn_ima",), **{"optimizer.name": "adam"})  # the code profile's weight_decay=5e-3 is no override
  check(("hgnn_ima",), protocol="paper", **{"optimizer.b1": 0.8})  # read with the paper's constant schedule
  # the library refuses the contradiction it can see without the overrides: a variant beside an ablation name
  with pytest.raises(cv.ConfigError, match=r"^config\.model\.variant=-nei: is set by model_name=hgnn_ima-align"):
    cv.validate_config(with_fields(get_config("douban"), model_name="hgnn_ima-align", **{"model.variant": "-nei"}))
  cv.validate_config(with_fields(get_config("douban"), model_name="hgnn_ima", **{"model.variant": "-nei"}))


# --- the scripts: exit 2, one line, nothing written -------------------------------------------

CLI_CASES = {
    "epochs": (["--epochs=-3"], "config.num_epochs=-3: "),
    "seeds count": (["--seeds=0"], "config.seeds=0: "),
    "seeds text": (["--seeds=a,b"], "config.seeds=a,b: "),
    "hidden": (["--config.model.hidden=63"], "config.model.hidden=63: "),
    "heads": (["--config.model.heads=0"], "config.model.heads=0: "),
    "dropout": (["--config.model.dropout=1.5"], "config.model.dropout=1.5: "),
    "learning rate": (["--config.optimizer.learning_rate=-0.001"], "config.optimizer.learning_rate=-0.001: "),
    "variant": (["--config.model.variant=foo"], "config.model.variant=foo: "),
    "synthetic": (["--config.synthetic.misalignment=2"], "config.synthetic.misalignment="),
    "knob of another dataset": (
        ["--dataset=synthetic_amazon1", "--config.synthetic.scale=0.1"],
        "config.synthetic.scale=0.1: is not read by dataset 'synthetic_amazon1'",
    ),
    "data_dir of a generated graph": (["--data_dir=/tmp"], "config.data_dir=/tmp: is not read by dataset 'synthetic'"),
    "split fractions": (
        ["--config.split=stratified", "--config.split_fractions=0.5,0.6,0.1"],
        "config.split_fractions=(0.5, 0.6, 0.1): must be three positive",
    ),
    "split seed of the file split": (["--config.split_seed=3"], "config.split_seed=3: is not read with split=file"),
    "batch size without a sampling mode": (["--config.batch.size=128"], "config.batch.size=128: is not read with"),
    "attention field of an HGT baseline": (
        ["--model=hgt_late", "--config.model.combine=add"],
        "config.model.combine=add: is not read by model_name=hgt_late",
    ),
    # ml_collections raised a KeyError / AttributeError traceback for these while defining the flag
    "misspelt field": (
        ["--config.model.hiden=32"],
        "config.model.hiden=32: config.model has no field 'hiden'. Fix: did you mean --config.model.hidden?",
    ),
    "unknown section": (["--config.optim.learning_rate=0.1"], "config.optim.learning_rate=0.1: config has no field"),
}


def _one_error_line(proc) -> str:
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert lines[0].startswith("error: config.") and LINE.match(lines[0][len("error: ") :]), lines[0]
  return lines[0]


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_train_cli_refuses_bad_values_before_writing(case, tmp_path):
  args, start = CLI_CASES[case]
  workdir = tmp_path / "run"
  proc = run_python("experiments/train.py", f"--workdir={workdir}", "--noprogress", *args, timeout=120)
  assert _one_error_line(proc).startswith(f"error: {start}")
  assert not workdir.exists()


@pytest.mark.parametrize(
    "script,args",
    [
        ("table2.py", ["--models=hgnn_ima,hgt_early", "--config.model.num_layers=-1"]),
        ("ablation.py", ["--variants=-align", "--seeds=a"]),
        ("depth_sweep.py", ["--layers=1,2", "--config.model.heads=3"]),  # --tiny hidden 16 % 3
        ("visualize.py", ["--epochs=0"]),
    ],
)
def test_artefact_scripts_refuse_bad_cells_before_writing(script, args, tmp_path):
  workdir = tmp_path / "out"
  proc = run_python(f"experiments/{script}", "--tiny", f"--workdir={workdir}", "--noprogress", *args, timeout=180)
  line = _one_error_line(proc)
  assert any(f in line for f in ("num_layers=-1", "seeds=a", "model.hidden=16", "num_epochs=0")), line
  assert not workdir.exists()


def test_a_workdir_that_cannot_be_written_is_refused_and_nothing_is_left(tmp_path):
  from hgnn_ima_jax import run_dir

  afile = tmp_path / "afile"
  afile.write_text("x")
  cases = {
      str(afile): "is a file, not a directory",
      str(afile / "run"): f"cannot be made: {afile} is a file",
  }
  if pathlib.Path("/proc/self").is_dir():  # mkdir fails there even for root, whom os.access always lets in
    cases["/proc/hgnn-ima-run"] = "cannot be made in /proc"
  for path, why in cases.items():
    with pytest.raises(run_dir.WorkdirError) as e:
      run_dir.check_workdir(path)
    assert str(e.value).startswith(f"workdir={path}: {why}") and ". Fix: " in str(e.value), str(e.value)
  run_dir.check_workdir(str(tmp_path / "new" / "nested"))  # a path that can be made is fine
  run_dir.check_workdir(str(tmp_path))  # so is an existing directory
  assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # the probes left nothing
  # the library refuses it before building anything: no graph is needed to get there
  from hgnn_ima_jax import train

  with pytest.raises(run_dir.WorkdirError, match="is a file"):
    train.train_and_evaluate(test_config.get_config("synthetic"), str(afile), None)


@pytest.mark.parametrize("script,arg", [("train.py", "--dataset=synthetic"), ("table2.py", "--tiny")])
def test_scripts_refuse_a_workdir_that_cannot_be_made_in_one_line(script, arg, tmp_path):
  afile = tmp_path / "afile"
  afile.write_text("x")
  proc = run_python(f"experiments/{script}", arg, f"--workdir={afile / 'run'}", "--noprogress", timeout=120)
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert lines[0] == (
      f"error: --workdir={afile / 'run'}: cannot be made: {afile} is a file. Fix: give a path below a directory "
      "you can write to"
  )
  assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_a_workdir_of_the_other_kind_is_refused_before_any_work(tmp_path):
  """From an audit: `visualize.py --workdir=runs/first` (meant as --run) trained a model into that run's directory
  and drew its figures; a table script wrote its cells into a train.py run, train.py its run among a table's cells."""
  run, table = tmp_path / "run", tmp_path / "table"
  run.mkdir()
  (run / "config.json").write_text("{}")  # what the refusals look at: a run's config.json, a cell's
  (table / "synthetic" / "hgnn_ima").mkdir(parents=True)
  (table / "synthetic" / "hgnn_ima" / "config.json").write_text("{}")
  before = sorted(str(p) for p in tmp_path.rglob("*"))
  cases = [
      (("visualize.py", f"--workdir={run}"), f"Fix: --run={run} draws that run's figures; a new --workdir trains one"),
      (("table2.py", "--tiny", f"--workdir={run}"), "Fix: give a new --workdir"),
      (("train.py", f"--workdir={table}"), "holds the cells of a table2/ablation/depth_sweep/visualize run. Fix:"),
  ]
  for args, words in cases:
    proc = run_python(f"experiments/{args[0]}", *args[1:], "--noprogress", timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and words in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.startswith(f"error: --workdir={args[-1].split('=')[1]}: holds "), proc.stderr
  assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_an_xla_cache_that_cannot_be_a_directory_is_one_line_before_any_work(tmp_path):
  """From an audit: --xla_cache=<a file> trained, with JAX's warning at every compilation and no cache."""
  afile = tmp_path / "afile"
  afile.write_text("x")
  env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}  # it would make the flag moot
  cmd = [sys.executable, "experiments/train.py", f"--xla_cache={afile}", f"--workdir={tmp_path / 'run'}"]
  proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2 and proc.stderr.splitlines() == [
      f"error: --xla_cache={afile}: is a file, not a directory. Fix: give a new path or an existing directory; or "
      "--xla_cache= to compile without a cache"
  ], proc.stderr[-3000:]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
  # the default cache in a home where it cannot be made (read-only): a note, and the run compiles without one
  from hgnn_ima_jax.experiments import common

  assert common.usable_cache(str(afile / "xla"), given=False) == ""
  assert common.usable_cache(str(tmp_path / "cache"), given=False) == str(tmp_path / "cache")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_unknown_config_overrides_are_named_with_the_nearest_field():
  from hgnn_ima_jax.experiments import run_options
  from hgnn_ima_jax.experiments.configs import default

  config = default.get_config()
  check = lambda *args: run_options.unknown_config_override(["train.py", *args], config)
  assert check("--config.model.hidden=32", "--config.batch.fanouts=5,5", "--seeds=2", "--config.model.remat") is None
  assert check("--config.batch.fanouts[0]=5") is None  # ml_collections' index syntax
  assert check("--config.optimizer.lr", "0.1") == (
      "config.optimizer.lr: config.optimizer has no field 'lr'. Fix: use one of "
      + ", ".join(config.optimizer.keys())
      + " (--help lists them)"
  )
  assert check("--config.seeds.first=1").startswith("config.seeds.first=1: config.seeds is a value, not a group")
  assert check("--", "--config.zzz=1") is None  # after '--' the flags are not ours


def test_every_did_you_mean_asks_choices_nearest():
  """The "did you mean" of a misspelt model field, batch field, config field, --config override and dataset name each
  called difflib its own way; one helper answers them all (their messages are pinned where each is tested)."""
  assert choices.nearest("hiden", ["heads", "hidden", "num_layers"]) == "hidden"
  assert choices.nearest("zzz", ["heads", "hidden"]) is None and choices.nearest("hidden", []) is None
  assert (
      choices.nearest("abc", ["abx", "aby"]) == choices.nearest("abc", ("aby", "abx")) == "aby"
  )  # not the first given
  assert choices.nearest("hiden", {"hidden": 1}.keys()) == "hidden"  # any iterable of names
  asking = sorted(
      str(f.relative_to(REPO))
      for d in ("hgnn_ima_jax", "data_utils", "experiments")
      for f in (REPO / d).rglob("*.py")
      if "difflib" in f.read_text()
  )
  assert asking == ["hgnn_ima_jax/choices.py"]


def test_print_config_shows_the_resolved_values():
  proc = run_python(
      "experiments/train.py",
      "--dataset=douban",
      "--seeds=0,3",
      "--print_config",
      "--config.model.dropout=0.3",
      timeout=120,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  cfg = json.loads(proc.stdout)
  assert cfg["num_epochs"] == 50 and cfg["model"]["score_scale"] == 100.0 and cfg["seeds"] == [0, 3]
  assert cfg["model"]["dropout"] == 0.3 and cfg["dataset"] == "douban"


def test_the_data_directory_from_the_environment_is_recorded(tmp_path, monkeypatch):
  """From an audit: with the data found through $HGNN_IMA_DATA_DIR, config.json said data_dir='', so load_run,
  visualize and --resume in a shell without the variable looked in ./data. The variable now counts as --data_dir
  for a dataset that reads one; a cell saved with '' is still the same cell."""
  import os

  from hgnn_ima_jax.experiments import cell_runs

  data = tmp_path / "my data"
  env = {**os.environ, "HGNN_IMA_DATA_DIR": str(data)}
  for dataset, want in (("douban", str(data)), ("synthetic", "")):  # synthetic reads no directory
    proc = subprocess.run(
        [sys.executable, "experiments/train.py", f"--dataset={dataset}", "--print_config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["data_dir"] == want
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv("HGNN_IMA_DATA_DIR", "rel")  # made absolute, as --data_dir is
  opts = run_options.Options(datasets=("imdb",))
  config = run_options.base_config("imdb", opts)
  assert config.data_dir == str(tmp_path / "rel")
  monkeypatch.delenv("HGNN_IMA_DATA_DIR")
  assert run_options.base_config("imdb", opts).data_dir == ""
  assert cell_runs.signature(config) == cell_runs.signature(run_options.base_config("imdb", opts))
  # a Python caller of train_and_evaluate with data_dir='' too (resolve_config makes the config it saves)
  from hgnn_ima_jax import train

  monkeypatch.setenv("HGNN_IMA_DATA_DIR", "rel")
  assert train.resolve_config(get_config("imdb")).data_dir == str(tmp_path / "rel")
  assert train.resolve_config(get_config("synthetic")).data_dir == ""  # reads no directory
  given = get_config("imdb")
  given.data_dir = str(data)
  assert train.resolve_config(given).data_dir == str(data)  # a given one wins


def test_fields_the_graph_makes_moot_are_refused_once_it_has_loaded(tmp_path):
  """From an audit: --config.loss.att_weight on a graph where no sender lacks a modality (L_att is 0), and
  --config.missing_fill where nothing is filled (or, for hgt, nothing it reads), trained as without them."""
  from hgnn_ima_jax.graph import Relation, Schema

  def schema(present, relations=(Relation("movie", "md", "director"), Relation("director", "dm", "movie"))):
    types = ("movie", "director")
    return Schema(
        types, (3, 2), relations, (2,) * len(relations), ("text", "image"), ((4, 4), (4, 4)), present, "movie", 2
    )

  full, no_image = ((True, True), (True, True)), ((True, True), (True, False))
  config = {"model_name": "hgnn_ima", "dataset": "mine.npz"}
  assert set(field_usage.unread_for_graph(config, schema(full))) == {"missing_fill", *field_usage._NO_LATT}
  assert field_usage.unread_for_graph(config, schema(no_image)) == {}
  # the director lacks an image but sends no edge: L_att is still 0, and its image is filled
  assert set(field_usage.unread_for_graph(config, schema(no_image, (Relation("movie", "md", "director"),)))) == set(
      field_usage._NO_LATT
  )
  assert set(field_usage.unread_for_graph({**config, "model_name": "hgt"}, schema(no_image))) == {"missing_fill"}
  assert field_usage.unread_for_graph({**config, "model_name": "hgt_late"}, schema(no_image)) == {}
  problem = field_usage.ignored_override(config, "loss.att_weight", 0.5, 1.0, schema(full))
  assert problem[0] == "is not read on dataset mine.npz: no sender of an edge lacks a modality, so L_att (Eq. 7) is 0"
  assert field_usage.ignored_override(config, "loss.att_weight", 1.0, 1.0, schema(full)) is None  # the profile's value
  assert field_usage.ignored_override(config, "loss.att_weight", 0.5, 1.0) is None  # before the graph has loaded
  # the CLI checks once the graph has loaded, before anything is written
  proc = run_python(
      "experiments/train.py",
      "--dataset=synthetic_amazon1",
      "--config.missing_fill=text",
      f"--workdir={tmp_path / 'run'}",
      "--epochs=1",
      timeout=300,
  )
  assert proc.returncode == 2 and proc.stderr.strip().startswith(
      "error: config.missing_fill=text: is not read on dataset synthetic_amazon1: every node type has every modality"
  ), proc.stderr[-2000:]
  assert not (tmp_path / "run").exists()


def test_score_scale_can_be_set_back_to_its_default():
  """DOUBAN's profile sets c = 100; a float-typed field took no None from the command line, so 1/sqrt(d_k) was
  out of reach there."""
  proc = run_python(
      "experiments/train.py", "--dataset=douban", "--config.model.score_scale=None", "--print_config", timeout=120
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert json.loads(proc.stdout)["model"]["score_scale"] is None
  proc = run_python(
      "experiments/train.py",
      "--model=hgt_late",
      "--config.model.baseline_score_scale=abc",
      "--print_config",
      timeout=120,
  )
  assert proc.returncode == 2 and proc.stderr.strip().endswith(
      "config.model.baseline_score_scale=abc: is not a number. Fix: use a finite number > 0 or None"
  ), proc.stderr[-2000:]


def test_a_dataset_path_and_data_dir_are_saved_absolute(tmp_path, monkeypatch):
  """A relative path in a run's config.json broke --resume, visualize --run and load_run from another directory."""
  monkeypatch.chdir(tmp_path)
  options = run_options.Options(datasets=("graphs/mine.npz",))
  assert run_options.base_config("graphs/mine.npz", options).dataset == str(tmp_path / "graphs" / "mine.npz")
  douban = run_options.base_config("douban", run_options.Options(datasets=("douban",), data_dir="data"))
  assert (douban.dataset, douban.data_dir) == ("douban", str(tmp_path / "data"))
  assert run_options.base_config("synthetic", run_options.Options()).data_dir in ("", None)  # unset stays unset


def test_audit_of_the_models_and_flags(tmp_path):
  """From an audit of the README's model table and flags."""
  import json

  from hgnn_ima_jax import run_dir

  # Eq. 11's paper form was unreachable from a command line: --config.model.update resolved to ConfigDict.update
  out = run_python("experiments/train.py", "--config.model.update_form=paper", "--print_config", timeout=120)
  assert out.returncode == 0 and json.loads(out.stdout)["model"]["update_form"] == "paper", out.stderr[-2000:]
  old = run_python("experiments/train.py", "--config.model.update=paper", "--print_config", timeout=120)
  assert "did you mean --config.model.update_form?" in old.stderr and old.returncode == 2, old.stderr[-2000:]
  # a run saved before the rename reads as update_form
  (tmp_path / "config.json").write_text(json.dumps({"model": {"update": "paper"}}))
  assert run_dir.read_config(str(tmp_path)).model.update_form == "paper"
  # a Table 4 name's config.json recorded the base model.variant; an old one reads as the name's
  from hgnn_ima_jax import train

  resolved = train.resolve_config(with_fields(get_config("synthetic"), model_name="hgnn_ima-cross"))
  assert resolved.model.variant == "-cross" and resolved.loss.att_weight == 1.0
  assert train.resolve_config(with_fields(get_config("synthetic"), model_name="hgnn_ima-L_att")).loss.att_weight == 0
  (tmp_path / "config.json").write_text(json.dumps({"model_name": "hgnn_ima-align", "model": {"variant": "full"}}))
  assert run_dir.read_config(str(tmp_path)).model.variant == "-align"
  # paper_rule selects by early_stopping.rule=paper's running bests; with val_loss it selected by the loss alone
  assert error_of(selection_metric="paper_rule").field == "selection_metric"
  validate_run_config(with_fields(get_config("synthetic"), selection_metric="paper_rule", early_stopping__rule="paper"))
  # --epochs and --config.num_epochs apart: the override won silently
  with pytest.raises(cv.ConfigError, match=r"^config\.num_epochs=3: contradicts --epochs=5\. Fix:"):
    run_options.base_config("synthetic", run_options.Options(epochs=5, overrides={"num_epochs": 3}))
  run_options.base_config("synthetic", run_options.Options(epochs=3, overrides={"num_epochs": 3}))
  # feature_seed seeds generated features: a generic-format file has none
  with pytest.raises(cv.ConfigError, match=r"^config\.feature_seed=3: is not read for dataset path"):
    validate_run_config(with_fields(get_config("graphs/mine.npz"), feature_seed=3))


def test_a_run_saved_before_an_added_field_reads_as_the_value_it_trained_with(tmp_path):
  """From a review: a mini-batch cell written before batch.drop_last existed was refused by the scripts' --resume
  ('batch.drop_last: <absent> (saved) vs False (asked)'), and train.py --resume saw the flag's default as a
  contradiction. Its config.json now reads as the value it trained with, and compares equal."""
  from hgnn_ima_jax import run_dir
  from hgnn_ima_jax.experiments import cell_runs

  for mode in ("neighbor", "hgt"):
    config = with_fields(get_config("synthetic"), **{"batch.mode": mode, "batch.size": 16})
    old = config_values.normalise(config.to_dict())
    for path in choices.ADDED_FIELDS:
      *parents, leaf = path.split(".")
      del config_values.get_path(old, ".".join(parents))[leaf]
    workdir = tmp_path / mode
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps(old))
    saved = run_dir.read_config(str(workdir))
    assert all(config_values.get_path(saved.to_dict(), p) == v for p, v in choices.ADDED_FIELDS.items())
    assert cell_runs.signature(saved) == cell_runs.signature(config)
    assert (
        config_compare.config_fingerprint(old)
        == config_compare.config_fingerprint(config)
        == config_compare.config_fingerprint(saved)
    )
    changed = with_fields(get_config("synthetic"), **{"batch.mode": mode, "batch.size": 16, "batch.drop_last": True})
    assert config_compare.config_fingerprint(changed) != config_compare.config_fingerprint(
        old
    )  # a value other than the old one counts
    saved.batch.num_samples = {"movie": 4}  # the read config's field takes either form, as a fresh one
    saved.batch.num_samples = 8


@pytest.mark.parametrize(
    "value",
    [16, (4, 4), ({"ma": 10, "md": 5}, {"ma": 2, "md": 0}), "text", "a b", "a$b", "", 0.5, True],
)
def test_config_flag_pastes_into_a_shell_as_one_argument(value):
  """Flags printed for a user to copy (the tables' Settings line, resume and model-name errors) are one shell word
  with the value the command line parses back; a dict override used to come out unquoted, several words."""
  import ast
  import shlex

  flag = config_values.config_flag("batch.fanouts", value)
  (word,) = shlex.split(flag)
  assert word == f"--config.batch.fanouts={config_values.format_value(value)}"
  text = word.split("=", 1)[1]
  bare = isinstance(value, str) and value and value.strip() == value  # format_value: such strings go bare
  assert (text if bare else ast.literal_eval(text)) == value


def test_settings_line_quotes_dict_overrides():
  from hgnn_ima_jax.experiments import common

  fanouts = ({"ma": 10, "md": 5}, {"ma": 2, "md": 0})
  line = common.settings_note(
      {"protocol": "code", "epochs": {"douban": 2}, "overrides": {"batch.fanouts": fanouts, "batch.size": 16}}
  )
  assert (
      "overrides: --config.batch.fanouts=\"({'ma': 10, 'md': 5}, {'ma': 2, 'md': 0})\" --config.batch.size=16." in line
  )
