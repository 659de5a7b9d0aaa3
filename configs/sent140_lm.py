"""In-domain language-model pretraining on the training tweets' text (issue: does it help?).

  python -m train.main --config=configs/sent140_lm.py --workdir=workdirs/sent140_lm
  python -m train.main --config=configs/sent140.py --workdir=workdirs/sent140_from_lm \
      --config.init_from=workdirs/sent140_lm

``mamba_jax.MambaLM`` with the backbone of configs/sent140.py (so its embedding, blocks and
final norm load into that classifier through ``config.init_from``) learns to predict each
next token of the train split's tweets (labels unused; same data, split and tokenizer). The
LM head is the embedding matrix (tied). Validation and test report next-token loss,
perplexity and accuracy; the best checkpoint is the one of highest next-token accuracy.
Training uses a sampled softmax (``lm_sampled_softmax`` below; why: DESIGN.md), whose gradients
converge to the full softmax's as the sample grows (tests/test_lm_training.py).
"""

import ml_collections

from configs import sent140


def get_config() -> ml_collections.ConfigDict:
  """configs/sent140.py as a language model."""
  config = sent140.get_config()
  config.model_type = "mamba_lm"  # train.loop.models: MambaLM, trained on train.loop.tasks.NextToken.
  config.model.dropout = 0.0  # One pass over unlabelled text: nothing to regularize against.
  config.label_smoothing = 0.0  # Plain next-token cross-entropy.
  # Training loss: a sampled softmax over this many candidates drawn from the unigram
  # distribution (train.loop.tasks.NextToken) instead of all 32,000 ids; 0: the full softmax.
  # Evaluation always uses the full softmax.
  config.lm_sampled_softmax = 1024
  config.num_epochs = 1  # One pass over the subset below.
  config.max_train_examples = 500_000  # Train-split tweets (a fixed subsample; see results/lm_pretraining_cpu/).
  config.batch_size = 256  # Smaller than the classifier's: the (b, l, 32000) logits dominate memory.
  config.eval_batch_size = 256  # The same for evaluation.
  config.warmup_steps = 100  # Short warmup for the short run.
  config.eval_every_steps = 400  # Validation next-token accuracy picks the best checkpoint.
  config.checkpoint_every_steps = 400  # Resume granularity.
  return config
