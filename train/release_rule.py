r"""Which classifier becomes the release, by the rule declared before the transfer runs (README "Release rule").

  python -m train.release_rule --candidates=lm_mamba2=candidates/sent140_mamba2_lm \
      --results=results/domain_adaptation/airline,results/domain_adaptation/gop_debate

Prints the ranking (``train.study.release_rule``) and writes it to ``--output`` (markdown) and its JSON beside it.
"""

import json
import os
import sys

from absl import flags

from train.command_line import errors, program
from train.runs import provenance
from train.study import release_rule

FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  with errors.one_line_errors():
    contestants = {"finetune": FLAGS.model}
    for item in FLAGS.candidates:
      name, _, path = item.partition("=")
      if not name or not path:
        raise ValueError(f"--candidates: {item!r} is not name=path")
      contestants[f"finetune_{name}"] = path
    ranking = release_rule.rank(contestants, FLAGS.results)
    ranking["environment"] = provenance.host_environment(" ".join(["python -m train.release_rule"] + sys.argv[1:]))
    text = release_rule.markdown(ranking)
    if FLAGS.output:
      with open(FLAGS.output, "w", encoding="utf-8") as f:
        f.write(text)
      with open(os.path.splitext(FLAGS.output)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(ranking, f, indent=1)
  print(text, end="")


def define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_string("model", os.path.join("models", "sent140_mamba"), "The current release.")
  flags.DEFINE_list("candidates", [], "Release candidates as name=path (as train.domain_adaptation's).")
  flags.DEFINE_list("results", [os.path.join("results", "domain_adaptation", name) for name in ("airline", "gop_debate")],
                    "The transfer benchmark's --output_dir folders (3-class).")
  flags.DEFINE_string("output", os.path.join("results", "domain_adaptation", "release_rule.md"),
                      "Where the ranking goes (and its .json); '' to only print it.")


if __name__ == "__main__":
  program.run(main, define_flags)
