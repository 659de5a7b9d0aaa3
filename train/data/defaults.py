"""Default values of the data fields of a config (see notes/contracts.md).

configs/*.py start from ``data_config()`` and add model and training fields.
"""

import ml_collections


def data_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.dataset = "sentiment140"  # Or "synthetic" (train.data.synthetic).
  # Folder with the raw files (official zip, extracted CSVs or any 6-column CSV[.gz]);
  # None: env SENT140_DATA_DIR, else the TFDS manual-download folder.
  config.data_dir = ml_collections.FieldReference(None, field_type=str)
  # Where the prepared data goes; None: env MAMBA_JAX_DATA_CACHE, else ./data_cache.
  config.prepared_dir = ml_collections.FieldReference(None, field_type=str)
  config.vocab_size = 32_000
  config.max_length = 64
  config.split_fractions = (0.98, 0.01, 0.01)  # train, validation, test of the training file.
  config.tokenizer_max_sentences = 1_000_000  # Train-split sentences sampled for SentencePiece.
  # Deterministic subsample of the train split (quick runs); None = all.
  config.max_train_examples = ml_collections.FieldReference(None, field_type=int)
  config.seed = 0
  return config
