"""LSTM baseline on Sentiment140 (same data, tokenizer and training as configs/sent140.py).

  python -m train.main --config=configs/lstm.py --workdir=workdirs/lstm

Only the model changes: 64-wide embeddings (as the other models), 2 stacked
unidirectional LSTM layers of 128 units that stop at each tweet's length,
dropout 0.2, the same masked mean pooling. Non-embedding parameters: ~231k,
about 3.5x Mamba's ~66k (the study fixes 128 units; the embeddings, which hold
most parameters, are identical).
"""

import ml_collections

from configs import sent140


def get_config() -> ml_collections.ConfigDict:
  """The reference config with a stacked LSTM in place of Mamba."""
  config = sent140.get_config()
  config.model_type = "lstm"  # mamba_jax.baselines.lstm.LSTMClassifier.
  config.model = ml_collections.ConfigDict()  # Constructor fields of LSTMConfig.
  config.model.embed_dim = 64  # Token embedding width (the other models' d_model).
  config.model.hidden_size = 128  # Units per LSTM layer.
  config.model.n_layers = 2  # Stacked layers.
  config.model.dropout = 0.2  # On the embeddings and after each LSTM layer.
  config.model.pooling = "mean"  # Masked mean over real tokens (as Mamba).
  return config
