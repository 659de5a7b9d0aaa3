r"""Decoding speed of MambaLM's ``generate``: tokens/s at short and long generations.

  python -m benchmarks.generate                     # writes results/generate_<device>.json
  python -m benchmarks.generate --new_tokens=64,1024 --batch_sizes=1,8 --repeats=2

The model has the classifier's reference architecture (configs/sent140.py:
d_model 64, 2 layers, state 16) with a tied LM head over a 32000-token vocabulary,
randomly initialized (speed does not depend on the weights). For each batch size
and number of new tokens t: ``generate`` (greedy, no eos, so exactly t steps) on
prompts of 16 random tokens is compiled and run once (warm-up excluded), then
timed ``--repeats`` times; the median is reported as generated tokens per second
(b * t / seconds) and seconds per step. A recurrent step costs the same whatever
came before it, so tokens/s at t = 1024 should equal tokens/s at t = 64 (up to
the prefill, amortized over t).

Axes (``mamba_jax.notation``): b, t.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

from absl import app
from absl import flags
import jax
import numpy as np

from configs import sent140
from mamba_jax import MambaConfig, MambaLM, generate
from train.runs import provenance

VOCAB_SIZE = 32000
PROMPT_LENGTH = 16

FLAGS = flags.FLAGS


def model_config() -> MambaConfig:
  """configs/sent140.py's Mamba architecture as an LM (no dropout, vocabulary padded to 8)."""
  fields = sent140.get_config().model.to_dict()
  fields["dropout"] = 0.0
  return MambaConfig(vocab_size=VOCAB_SIZE, pad_vocab_size_multiple=8, **fields)


def time_point(model, params, batch_size: int, new_tokens: int, repeats: int) -> dict:
  prompts = np.random.default_rng(0).integers(1, VOCAB_SIZE, (batch_size, PROMPT_LENGTH))
  start = time.perf_counter()
  generate(model, params, prompts, new_tokens)
  compile_and_first = time.perf_counter() - start
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    generate(model, params, prompts, new_tokens)
    seconds.append(time.perf_counter() - start)
  median = statistics.median(seconds)
  return {"batch_size": batch_size, "new_tokens": new_tokens, "prompt_length": PROMPT_LENGTH,
          "seconds": seconds, "median_seconds": median, "first_call_seconds": compile_and_first,
          "tokens_per_s": batch_size * new_tokens / median, "ms_per_step": 1e3 * median / new_tokens}


def main(argv):
  del argv
  config = model_config()
  model = MambaLM(config)
  dummy = np.ones((1, PROMPT_LENGTH), np.int32)
  params = jax.jit(model.init)({"params": jax.random.key(0)}, dummy)["params"]
  points = []
  for batch_size in map(int, FLAGS.batch_sizes):
    for new_tokens in map(int, FLAGS.new_tokens):
      point = time_point(model, params, batch_size, new_tokens, FLAGS.repeats)
      print(f"b={batch_size} t={new_tokens}: {point['tokens_per_s']:.0f} tokens/s "
            f"({point['ms_per_step']:.2f} ms/step)", flush=True)
      points.append(point)
  device = jax.devices()[0]
  report = {
      "benchmark": "generate",
      "model": {"d_model": config.d_model, "n_layers": config.n_layers, "d_state": config.d_state,
                "vocab_size": config.vocab_size, "padded_vocab_size": config.padded_vocab_size},
      "points": points,
      "environment": provenance.environment(device, " ".join(["python -m benchmarks.generate"] + sys.argv[1:])),
  }
  tag = FLAGS.device_tag or provenance.device_tag(device)
  os.makedirs(FLAGS.output_dir, exist_ok=True)
  path = os.path.join(FLAGS.output_dir, f"generate_{tag}.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump(provenance.to_jsonable(report), f, indent=2)
    f.write("\n")
  print(f"wrote {path}")


def _define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_list("new_tokens", ["64", "1024"], "Generated tokens per prompt.")
  flags.DEFINE_list("batch_sizes", ["1", "8"], "Prompts decoded together.")
  flags.DEFINE_integer("repeats", 3, "Timed runs per point (after the warm-up).")
  flags.DEFINE_string("output_dir", "results", "Where generate_<device>.json goes.")
  flags.DEFINE_string(
      "device_tag", None, "File name tag; default 'cpu' or the accelerator kind (e.g. 'h100').")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
