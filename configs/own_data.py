"""Your own labelled CSV/TSV files (README "Your own data"), from scratch or fine-tuning a released model.

  python -m train.main --config=configs/own_data.py --workdir=workdirs/mine \
      --config.train_file=mine.csv --config.text_column=text --config.label_column=label
  # Fine-tuning models/sent140_mamba (its tokenizer and weights; its head kept for
  # negative/positive data, replaced for other classes):
  python -m train.main --config=configs/own_data.py --workdir=workdirs/mine_ft \
      --config.train_file=mine.csv --config.text_column=text --config.label_column=label \
      --config.init_from=models/sent140_mamba
  # Fine-tuning a Mamba-2 classifier: the Mamba-2 mixer's fields (configs/sent140_mamba2.py) first:
  python -m train.main --config=configs/own_data.py:mamba2 ... --config.init_from=<a Mamba-2 export>

Every field is documented in configs/sent140.py; this one changes what a few thousand rows need.
"""

import ml_collections

from configs import sent140, sent140_mamba2

MIXERS = {"mamba1": sent140, "mamba2": sent140_mamba2}  # --config=configs/own_data.py:<mixer>


def get_config(mixer: str = "mamba1") -> ml_collections.ConfigDict:
  """The reference config on the user's files, sized for a few thousand rows, fine-tuning schedule.

  ``mixer`` ("mamba1", or "mamba2" as ``--config=configs/own_data.py:mamba2``): whose model fields it starts from
  (configs/sent140.py or configs/sent140_mamba2.py), so that init_from can load a classifier of that mixer.
  """
  if mixer not in MIXERS:
    raise ValueError(f"configs/own_data.py:{mixer}: the mixer is one of {', '.join(MIXERS)}")
  config = MIXERS[mixer].get_config()
  config.dataset = "labelled_files"  # train.data.labelled_files: config.train_file (+ validation_file, test_file).
  config.split_fractions = (0.8, 0.1, 0.1)  # Shares of train_file when no validation / test file is given.
  config.vocab_size = 2000  # From scratch: a vocabulary a few thousand texts can fill (fine-tuning uses the source's).
  config.model.d_model = 128  # models/sent140_mamba's width: init_from needs its architecture (config.model equal).
  config.batch_size = 32  # A few thousand rows: ~60 steps per epoch per 2,000 rows.
  config.eval_batch_size = 256  # Validation / test files are small.
  config.num_epochs = 10  # Small data: more passes (the best-by-validation checkpoint is evaluated).
  # ... but large files fewer: 10 epochs of 15,000 training rows at most (50,000 rows: 3 epochs).
  config.train_examples_budget = 150_000
  config.learning_rate = 5e-4  # Fine-tuning: a quarter of sent140's peak, so the pretrained weights are not wiped out.
  config.warmup_steps = 20  # Short warmup: the weights (when fine-tuning) are already trained.
  config.end_learning_rate_factor = 0.1  # Cosine decay to a tenth of the peak.
  config.log_every_steps = 10  # Short runs: frequent logs.
  # Validation (which picks the best checkpoint) and saves twice an epoch, whatever the file's size:
  # 500 rows and 50,000 rows both spend most of their time training.
  config.eval_every_epochs = 0.5
  config.checkpoint_every_epochs = 0.5
  # Users' classes are rarely balanced: the checkpoint with the best mean of per-class recalls, and the
  # loss weighted by inverse class frequency (chosen by measurement against "none":
  # results/domain_adaptation/class_weighting/: more macro-recall, less accuracy on skewed classes).
  config.best_checkpoint_metric = "macro_recall"
  config.class_weighting = "balanced"
  return config
