"""The LRA study's runs: equal model sizes, the two-tower Retrieval model, the trainer's wall-clock
budget (stop, report, resume), the schedule fitted to a budget, and ``python -m train.lra``.

Tiny shapes throughout (a few hundred parameters, sequences of 64): seconds on a CPU.
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import lra as lra_configs
from mamba_jax.two_tower import TwoTowerClassifier, TwoTowerConfig
from train.loop import trainer
from train.study.lra import runs, table

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"lra_sizes": (48, 16, 16), "max_length": 64, "model.d_model": 16, "model.n_layers": 1,
        "model.head_dim": 8, "batch_size": 8, "eval_batch_size": 16, "length_bucket_bounds": (32,),
        "log_every_steps": 2, "eval_every_steps": 4, "checkpoint_every_steps": 2, "async_checkpointing": False}


def tiny_options(tmp_path, **changes):
  overrides = dict(TINY, prepared_dir=str(tmp_path / "prepared"))
  overrides.update(changes.pop("overrides", {}))
  return runs.LraOptions(task="listops", models=["mamba2"], workdir_root=str(tmp_path / "workdirs"),
                         output_dir=str(tmp_path / "results"), overrides=overrides, command="test", **changes)


def test_study_models_have_equal_sizes():
  counts = runs.param_counts("listops")
  assert set(counts) == set(lra_configs.MODELS)
  assert max(counts.values()) / min(counts.values()) < 1.02
  assert all(590_000 < n < 610_000 for n in counts.values()), counts
  assert counts["transformer_rope"] == counts["performer"]


def _pair_model(encoder_type="mamba"):
  fields = ({"d_model": 16, "n_layers": 1, "mixer": "mamba2", "head_dim": 8, "chunk_size": 8}
            if encoder_type == "mamba" else {"d_model": 16, "n_layers": 1, "num_heads": 2, "d_ff": 32,
                                             "positions": "rope"})
  return TwoTowerClassifier(TwoTowerConfig(vocab_size=20, num_classes=2, encoder_type=encoder_type,
                                           encoder=fields, mlp_dim=8, dropout=0.0))


@pytest.mark.parametrize("encoder_type", ["mamba", "transformer"])
def test_two_tower_encodes_each_document_alone(encoder_type):
  model = _pair_model(encoder_type)
  first = jnp.array([[3, 4, 5, 6, 0, 0], [7, 8, 0, 0, 0, 0]])
  second = jnp.array([[9, 9, 2, 0, 0, 0], [5, 6, 7, 8, 9, 1]])
  tokens = jnp.concatenate([first, second], axis=1)
  mask = (tokens != 0).astype(jnp.int32)
  variables = model.init({"params": jax.random.key(0)}, tokens, mask)
  assert set(variables["params"]) == {"encoder", "hidden", "head"}  # One encoder for both documents.
  assert "head" not in variables["params"]["encoder"]  # The encoder's own head is never made.
  logits = model.apply(variables, tokens, mask)
  assert logits.shape == (2, 2) and logits.dtype == jnp.float32
  u, v = model.apply(variables, tokens, mask, method=model.encode_documents)
  alone = lambda doc: model.apply(variables, jnp.concatenate([doc, doc], 1), (jnp.concatenate([doc, doc], 1) != 0
                                                                             ).astype(jnp.int32),
                                  method=model.encode_documents)[0]
  np.testing.assert_allclose(u, alone(first), atol=1e-5)
  np.testing.assert_allclose(v, alone(second), atol=1e-5)
  hidden = variables["params"]["hidden"]["kernel"]
  assert hidden.shape[0] == 4 * u.shape[1]  # [u, v, u*v, u-v].
  swapped = jnp.concatenate([second, first], axis=1)
  assert float(jnp.max(jnp.abs(model.apply(variables, swapped, (swapped != 0).astype(jnp.int32)) - logits))) > 1e-6


def test_budget_stops_training_reports_and_resumes(tmp_path, monkeypatch):
  config = runs.build_config("listops", "mamba2", tiny_options(tmp_path))
  config.num_train_steps = 1000
  config.budget_minutes = 30.0
  calls = []

  def spent_after_two_steps(run):  # Checked before the loop, then after every step.
    calls.append(run.final_step)
    return len(calls) >= 3

  monkeypatch.setattr(trainer.Run, "budget_spent", spent_after_two_steps)
  workdir = str(tmp_path / "budget_run")
  report = trainer.train_and_evaluate(config, workdir)
  assert report["stopped_by_budget"] and report["steps"] == 2 and report["planned_steps"] == 1000
  assert report["examples_seen"] == 2 * config.batch_size and report["budget_minutes"] == 30.0
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints", "latest"))) == ["2"]
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert [r["step"] for r in rows if r["split"] == "validation"] == [2]  # The last step is validated.
  assert 0.0 <= report["test"]["accuracy"] <= 1.0 and report["wall_time_total_s"] > 0
  monkeypatch.setattr(trainer.Run, "budget_spent", lambda run: True)
  again = trainer.train_and_evaluate(config, workdir)  # Budget spent: evaluates only.
  assert again["steps"] == 2 and again["resumed_from_step"] == 2 and again["stopped_by_budget"]
  # The earlier run's time up to its step-2 checkpoint counts (not its evaluation after the save).
  assert again["wall_time_total_s"] > again["wall_time_s"]
  monkeypatch.undo()
  config.budget_minutes = 1e-4  # 6 ms: spent on preparation, before the first step.
  early = trainer.train_and_evaluate(config, str(tmp_path / "no_steps"))
  assert early["steps"] == 0 and early["examples_seen"] == 0 and early["stopped_by_budget"]
  planned = runs.build_config("listops", "mamba2", tiny_options(tmp_path))
  planned.num_train_steps = 3
  report = trainer.train_and_evaluate(planned, str(tmp_path / "planned"))
  assert report["steps"] == report["planned_steps"] == 3 and not report["stopped_by_budget"]


def test_schedule_is_fitted_to_the_budget_and_kept_on_resume(tmp_path, monkeypatch):
  monkeypatch.setattr(runs, "probe_step_s", lambda config, datasets: 0.01)
  options = tiny_options(tmp_path)
  config = runs.build_config("listops", "mamba2", options)
  workdir = str(tmp_path / "fitted")
  fitted = runs.fit_to_budget(config, 2.0, workdir, log=lambda _: None)
  remaining = 120.0 - fitted["probe_s"]
  assert config.num_train_steps == fitted["num_train_steps"] == int(runs.SCHEDULE_SHARE * remaining / 0.01)
  assert config.warmup_steps == min(200, config.num_train_steps // 20)
  assert config.budget_minutes == pytest.approx(remaining / 60)
  config.num_train_steps, config.budget_minutes = 2, 1.0  # As if fitted so: train two steps, save.
  trainer.train_and_evaluate(config, workdir)
  again = runs.build_config("listops", "mamba2", options)
  monkeypatch.setattr(runs, "probe_step_s", lambda config, datasets: pytest.fail("probed again"))
  assert runs.fit_to_budget(again, 2.0, workdir, log=lambda _: None)["resumed"]
  assert (again.num_train_steps, again.budget_minutes) == (2, 1.0)
  monkeypatch.setattr(runs, "probe_step_s", lambda config, datasets: 0.01)
  with pytest.raises(ValueError, match="budget of 1e-05 min is spent"):
    runs.fit_to_budget(runs.build_config("listops", "mamba2", options), 1e-5, str(tmp_path / "x"), log=print)


def test_probe_times_the_trainers_own_compiled_step(tmp_path, monkeypatch):
  from train.data import pipeline  # pylint: disable=import-outside-toplevel
  config = runs.build_config("listops", "mamba2", tiny_options(tmp_path))
  datasets = pipeline.get_datasets(config, log=lambda _: None)
  timed = []
  step_of = trainer.Trainer.__init__

  def spy(self, *args, **kwargs):  # The probe's step is the one a run compiles (donated state, shardings).
    step_of(self, *args, **kwargs)
    compiled = self.train_step
    self.train_step = lambda *a: timed.append(a[1]["tokens"].shape) or compiled(*a)

  monkeypatch.setattr(trainer.Trainer, "__init__", spy)
  step_s = runs.probe_step_s(config, datasets)
  assert 0.0 < step_s < 60.0
  typical = runs.typical_length(config, datasets.splits["train"])  # The bucket of the median example.
  assert typical in (32, 64) and timed == [(8, typical)] * (1 + runs.PROBE_STEPS)


def test_a_finished_run_is_skipped_and_other_inputs_are_an_error(tmp_path, monkeypatch):
  options = tiny_options(tmp_path, overrides={"num_train_steps": 2})
  first = runs.run(options, log=lambda _: None)[0]
  assert first["steps"] == 2 and first["inputs"]["budget_minutes"] == 0.0
  assert "prepared_dir" not in first["inputs"]["config"] and "num_train_steps" not in first["inputs"]["config"]
  monkeypatch.setattr(trainer, "train_and_evaluate", lambda *a, **k: pytest.fail("trained again"))
  # Its workdir gone and the data elsewhere (another machine): still finished.
  moved = tiny_options(tmp_path, overrides={"num_train_steps": 2, "prepared_dir": str(tmp_path / "elsewhere")})
  moved.workdir_root = str(tmp_path / "other_workdirs")
  messages = []
  assert runs.run(moved, log=messages.append) == [first]
  assert messages == [f"listops mamba2: finished already ({runs.run_file(options.output_dir, 'listops', 'mamba2')}); "
                      "skipped"]
  with pytest.raises(ValueError, match=r"other inputs \(model.d_model: 16, now 8\).*--start_over"):
    runs.run(tiny_options(tmp_path, overrides={"num_train_steps": 2, "model.d_model": 8}), log=lambda _: None)
  with pytest.raises(ValueError, match=r"other inputs \(budget_minutes: 0.0, now 5.0\)"):
    runs.run(tiny_options(tmp_path, overrides={"num_train_steps": 2}, budget_minutes=5.0), log=lambda _: None)
  monkeypatch.undo()
  again = runs.run(tiny_options(tmp_path, overrides={"num_train_steps": 3}, start_over=True), log=lambda _: None)[0]
  assert again["steps"] == 3  # --start_over replaces the record.


def test_bad_options_are_one_line_errors(tmp_path):
  with pytest.raises(ValueError, match="unknown LRA model"):
    runs.build_config("listops", "lstm", tiny_options(tmp_path))
  with pytest.raises(ValueError, match="no field 'd_ff'"):
    runs.build_config("listops", "mamba2", tiny_options(tmp_path, overrides={"model.d_ff": 3}))


def _cli(tmp_path, *arguments):
  command = [sys.executable, "-m", "train.lra", f"--workdir_root={tmp_path / 'workdirs'}",
             f"--output_dir={tmp_path / 'results'}", f"--set=prepared_dir={tmp_path / 'prepared'}", *arguments]
  return subprocess.run(command, cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True,
                        text=True, timeout=600)


@pytest.mark.slow
def test_command_line_trains_records_and_tabulates(tmp_path):
  sets = [f"--set={k}={v!r}" if isinstance(v, tuple) else f"--set={k}={v}" for k, v in TINY.items()]
  result = _cli(tmp_path, "--task=listops", "--model=mamba2", "--set=num_train_steps=3", *sets)
  assert result.returncode == 0, result.stderr[-3000:]
  record = json.loads((tmp_path / "results" / "runs" / "listops__mamba2.json").read_text())
  assert record["steps"] == 3 and record["examples_seen"] == 24 and not record["stopped_by_budget"]
  assert record["command"].startswith("python -m train.lra --workdir_root=")
  text = (tmp_path / "results" / "table.md").read_text()
  row = next(line for line in text.splitlines() if line.startswith("| Mamba-2 (this project) |"))
  assert row.split("|")[2].strip() == f"{100 * record['test_accuracy']:.2f}"
  assert text == table.markdown(table.read_records(str(tmp_path / "results")))
  bad = _cli(tmp_path, "--task=listops", "--model=mamba3")
  assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "mamba3" in bad.stderr
  unknown = _cli(tmp_path, "--task=listops", "--model=mamba2", "--set=no_such_field=1")
  assert unknown.returncode == 2 and "no_such_field" in unknown.stderr
  not_an_override = _cli(tmp_path, "--task=listops", "--model=mamba2", "--set=nothing")
  assert not_an_override.returncode == 2 and not_an_override.stderr.strip().count("\n") == 0
  assert "--set expects key=value" in not_an_override.stderr


def test_retrieval_trains_the_two_tower_model_on_document_pairs(tmp_path):
  from train.data.lra import fetched  # pylint: disable=import-outside-toplevel
  root = tmp_path / "raw" / "retrieval"
  os.makedirs(root)
  rng = np.random.default_rng(0)
  for split, name in fetched.AAN_FILES.items():
    lines = ["label\tid1\tid2\ttext1\ttext2"]
    for i in range(16 if split == "train" else 8):
      words = "".join(rng.choice(list("abcdefgh"), 12))
      lines.append(f"{i % 2}.0\ta{i}\tb{i}\t{words}\t{words if i % 2 else words[::-1]}")
    (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
  overrides = {"lra_data_dir": str(tmp_path / "raw"), "prepared_dir": str(tmp_path / "prepared"),
               "max_length": 32, "batch_size": 4, "eval_batch_size": 8, "num_train_steps": 4,
               "model.encoder.d_model": 16, "model.encoder.n_layers": 1, "model.encoder.head_dim": 8,
               "model.mlp_dim": 8, "async_checkpointing": False}
  options = runs.LraOptions(task="retrieval", models=["mamba2"], workdir_root=str(tmp_path / "workdirs"),
                            output_dir=str(tmp_path / "results"), overrides=overrides, command="test")
  record = runs.run_one("retrieval", "mamba2", options, log=lambda _: None)
  assert record["report"]["model_type"] == "two_tower" and record["steps"] == 4
  assert record["report"]["config"]["model"]["encoder_type"] == "mamba"
  assert record["report"]["test"]["num_examples"] == 8
