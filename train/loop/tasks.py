"""What a run trains the model to do: classify tweets, or predict their next token.

Axes (``mamba_jax.notation``): b, l, c, m, v, s, N.

A task gives the trainer (``train.loop.trainer``) and its evaluation (``train.model_files.inference``):

* ``loss(apply_fn, params, batch, rng, label_smoothing) -> (loss, accuracy)`` inside the
  jitted train step (``rng`` is the step's dropout key);
* ``eval_outputs(logits, batch)``: what the jitted eval step returns per row;
* ``metrics(outputs, split, ece_bins)``: host-side metrics of a whole split from those rows;
* ``reported_splits`` and ``report_metrics(name, outputs, split, config, raw_texts=None)``: the final
  report's splits and the metrics of each (a classifier's with accuracy per slice, ``train.scoring.slices``).

Both tasks read the same batches (tokens, mask, label, weight; ``train.data.batching``),
so the input pipeline, checkpoints and resume are shared. Which task a model trains on
is part of ``train.loop.models.MODELS``; ``for_run(config, train_split)`` makes the run's task.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from train.scoring import metrics, slices


def weighted_cross_entropy(logits: jax.Array, labels: jax.Array, weights: jax.Array,
                           label_smoothing: float) -> jax.Array:
  """Mean over weighted rows of softmax CE against ``smooth_labels(one_hot(labels), eps)``.

  logits (..., c), labels (...) int, weights (...) float -> scalar.
  """
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
  per_example = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)
  return jnp.sum(per_example * weights) / jnp.maximum(jnp.sum(weights), 1e-8)


def weighted_accuracy(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
  correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  return jnp.sum(correct * weights) / jnp.maximum(jnp.sum(weights), 1e-8)


CLASS_WEIGHTINGS = ("none", "balanced")  # config.class_weighting.


def balanced_class_weights(labels: np.ndarray) -> np.ndarray:
  """Inverse class frequency, N / (c * N_k) for each class k that occurs (c: classes that occur).

  labels (N,) int -> (max label + 1,) float32. A class absent from ``labels`` gets weight 0
  (it never appears as a target). The mean weight over the rows is 1, so the loss keeps its scale.
  """
  counts = np.bincount(np.asarray(labels, np.int64))
  present = counts > 0
  weights = np.zeros(counts.shape, np.float64)
  weights[present] = counts.sum() / (present.sum() * counts[present])
  return weights.astype(np.float32)


class Classification:
  """Class of a text: logits (b, c) against ``batch["label"]`` (b,).

  ``reported_splits``: the final report's splits. Sentiment140 and the synthetic task:
  validation, test and manual_test (``metrics.REPORTED_SPLITS``); the user's files
  (config.dataset "labelled_files") and the Long Range Arena tasks ("lra_<task>"): validation and test.
  """

  reported_splits = metrics.REPORTED_SPLITS

  def __init__(self, reported_splits: tuple = metrics.REPORTED_SPLITS,
               class_weights: Optional[np.ndarray] = None):
    """``class_weights`` (c,): each training row's loss weight by its label (``balanced_class_weights``);
    None: every row weighs 1."""
    self.reported_splits = tuple(reported_splits)
    self.class_weights = None if class_weights is None else jnp.asarray(class_weights, jnp.float32)

  @classmethod
  def for_run(cls, config: ml_collections.ConfigDict, train_split=None) -> "Classification":
    """The user's files and the LRA tasks report validation and test (no manual_test);
    ``config.class_weighting`` "balanced" weighs the loss by ``balanced_class_weights`` of
    ``train_split``'s labels."""
    no_manual_test = config.dataset == "labelled_files" or config.dataset.startswith("lra_")
    reported = ("validation", "test") if no_manual_test else metrics.REPORTED_SPLITS
    if config.class_weighting not in CLASS_WEIGHTINGS:
      raise ValueError(f"config.class_weighting={config.class_weighting!r}: use one of {', '.join(CLASS_WEIGHTINGS)}")
    if config.class_weighting == "none":
      return cls(reported)
    if train_split is None:
      raise ValueError("config.class_weighting='balanced' needs the train split (its class counts)")
    return cls(reported, balanced_class_weights(train_split.labels))

  def loss(self, apply_fn, params, batch: dict, rng: jax.Array,
           label_smoothing: float) -> tuple[jax.Array, jax.Array]:
    """Weighted cross-entropy (rows weighted by ``batch["weight"]`` times their class's weight) and
    the batch accuracy (unweighted by class)."""
    logits = apply_fn({"params": params}, batch["tokens"], batch["mask"], train=True, rngs={"dropout": rng})
    weights = batch["weight"]
    if self.class_weights is not None:
      weights = weights * self.class_weights[batch["label"]]
    loss = weighted_cross_entropy(logits, batch["label"], weights, label_smoothing)
    return loss, weighted_accuracy(logits, batch["label"], batch["weight"])

  def eval_outputs(self, logits: jax.Array, batch: dict) -> jax.Array:
    """Logits (b, c) float32."""
    del batch
    return logits.astype(jnp.float32)

  def metrics(self, outputs: np.ndarray, split, ece_bins: int) -> dict:
    """``train.scoring.metrics.classification_metrics`` of the logits (N, c) of ``split``."""
    return metrics.classification_metrics(metrics.softmax(outputs), split.labels, ece_bins)

  @staticmethod
  def report_metrics(name: str, outputs: np.ndarray, split, config: ml_collections.ConfigDict,
                     raw_texts: Optional[list] = None) -> dict:
    """``train.scoring.metrics.split_metrics`` of the logits (N, c) of split ``name``, with ``slices``
    (``train.scoring.slices.classification_slices``) of its ``raw_texts`` when given, else of its normalized
    texts (no hashtag or all-caps slices) when the split keeps them."""
    probs = metrics.softmax(outputs)
    report = metrics.split_metrics(name, probs, split.labels, config.neutral_threshold, config.ece_bins)
    texts = raw_texts if raw_texts is not None else split.texts
    if texts is not None:
      report["slices"] = slices.classification_slices(probs, split.labels, texts,
                                                      (np.asarray(split.tokens) != 0).sum(axis=1),
                                                      normalized=raw_texts is None)
    return report

  @staticmethod
  def summary(report: dict) -> str:
    """The final eval report in one line (what ``python -m train.main`` prints)."""
    if "manual_test" not in report:  # The user's files: their classes, no manual_test.
      test = report["test"]
      return (f"test accuracy {test['accuracy']:.4f}, macro-recall {test['macro_recall']:.4f}, "
              f"macro-F1 {test['macro_f1']:.4f} "
              f"({test['num_examples']} rows, {len(test['confusion_matrix'])} classes)")
    manual = report["manual_test"]
    return (f"test accuracy {report['test']['accuracy']:.4f}, manual_test binary accuracy "
            f"{manual['binary']['accuracy']:.4f}, three-way {manual['three_way']['accuracy']:.4f} "
            f"(threshold {manual['three_way']['threshold']})")


class NextToken:
  """Language modelling on the tweets' text: the features at position t predict token t + 1.

  Every real token after the first is a target (padding and padding rows are not); labels
  are not used. Evaluation always scores the full softmax over the vocabulary (loss in nats
  per target token, perplexity, accuracy = share of targets that are the argmax).

  Training scores the full softmax too, unless ``num_samples`` > 0: then a sampled softmax
  (Jean et al. 2015, "On Using Very Large Target Vocabulary"): each target competes with
  ``num_samples`` ids drawn (with replacement, shared by the batch) from ``q``, the train
  split's unigram distribution; every candidate's logit is corrected by -log(num_samples * q)
  and a drawn id equal to the target is masked out. The head then costs (b, l, s) instead of
  (b, l, v) -- the 32k-way softmax is most of a full step's time on the CPU. The training
  ``accuracy`` is then the share of targets that beat every sampled candidate.
  """

  reported_splits = ("validation", "test")

  def __init__(self, num_samples: int = 0, token_counts: Optional[np.ndarray] = None):
    if num_samples and token_counts is None:
      raise ValueError("a sampled softmax needs the train split's token counts")
    self.num_samples = int(num_samples)
    if num_samples:
      counts = np.asarray(token_counts, np.float64).copy()
      counts[0] = 0.0  # Padding is never a target.
      counts += 1.0 / counts.size  # Every id may be drawn (smoothing).
      q = counts / counts.sum()
      self.log_q = jnp.asarray(np.log(q), jnp.float32)  # (v,)
      self.cdf = jnp.asarray(np.cumsum(q), jnp.float32)  # (v,): ids are drawn by inverting it.

  @classmethod
  def for_run(cls, config: ml_collections.ConfigDict, train_split=None) -> "NextToken":
    """``config.lm_sampled_softmax`` candidates (0: full softmax), q from ``train_split``'s tokens."""
    if "lm_sampled_softmax" not in config:
      raise ValueError("a language model's config needs the field lm_sampled_softmax (see configs/sent140_lm.py)")
    num_samples = int(config.lm_sampled_softmax)
    if not num_samples:
      return cls()
    if train_split is None:
      raise ValueError("config.lm_sampled_softmax needs the train split (its unigram distribution)")
    counts = np.bincount(np.asarray(train_split.tokens, np.int64).ravel(), minlength=int(config.vocab_size))
    return cls(num_samples, counts)

  @staticmethod
  def _targets(batch: dict) -> tuple[jax.Array, jax.Array]:
    """Targets (b, l-1) int and their weights (b, l-1) float."""
    targets = batch["tokens"][:, 1:].astype(jnp.int32)
    weights = batch["mask"][:, 1:].astype(jnp.float32) * batch["weight"][:, None]
    return targets, weights

  def loss(self, apply_fn, params, batch: dict, rng: jax.Array,
           label_smoothing: float) -> tuple[jax.Array, jax.Array]:
    targets, weights = self._targets(batch)
    variables, rngs = {"params": params}, {"dropout": rng}
    if not self.num_samples:
      logits = apply_fn(variables, batch["tokens"], batch["mask"], train=True, rngs=rngs)[:, :-1]
      return (weighted_cross_entropy(logits, targets, weights, label_smoothing),
              weighted_accuracy(logits, targets, weights))
    features, _ = apply_fn(variables, batch["tokens"], batch["mask"], train=True, rngs=rngs, method="encode")
    features = features[:, :-1]  # (b, l-1, m)
    sample_rng = jax.random.fold_in(rng, 1)
    uniform = jax.random.uniform(sample_rng, (self.num_samples,), maxval=self.cdf[-1])
    sampled = jnp.minimum(jnp.searchsorted(self.cdf, uniform), self.cdf.shape[0] - 1)  # (s,) ids ~ q.
    correction = jnp.log(float(self.num_samples)) + self.log_q
    true_logit = apply_fn(variables, features, targets[..., None], method="logits_of")[..., 0]  # (b, l-1)
    sampled_logits = apply_fn(variables, features, sampled, method="logits_of")  # (b, l-1, s)
    sampled_logits = jnp.where(sampled == targets[..., None], -1e9, sampled_logits - correction[sampled])
    logits = jnp.concatenate([(true_logit - correction[targets])[..., None], sampled_logits], -1)
    zero = jnp.zeros_like(targets)  # The target is candidate 0.
    return (weighted_cross_entropy(logits, zero, weights, label_smoothing),
            weighted_accuracy(logits, zero, weights))

  def eval_outputs(self, logits: jax.Array, batch: dict) -> jax.Array:
    """Per row (b, 3) float32: summed target cross-entropy, correct argmax, target count."""
    targets, weights = self._targets(batch)
    logits = logits[:, :-1].astype(jnp.float32)
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], axis=-1)[..., 0]
    correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
    return jnp.stack([jnp.sum(nll * weights, 1), jnp.sum(correct * weights, 1), jnp.sum(weights, 1)], -1)

  def metrics(self, outputs: np.ndarray, split, ece_bins: int) -> dict:
    """loss (mean nats per target token), perplexity, accuracy, num_tokens, num_examples."""
    del split, ece_bins
    nll, correct, count = np.asarray(outputs, np.float64).sum(axis=0)
    loss = nll / max(count, 1.0)
    return {"loss": float(loss), "perplexity": float(np.exp(loss)), "accuracy": float(correct / max(count, 1.0)),
            "num_tokens": int(count), "num_examples": int(len(outputs))}

  def report_metrics(self, name: str, outputs: np.ndarray, split, config: ml_collections.ConfigDict,
                     raw_texts: Optional[list] = None) -> dict:
    """``metrics`` of split ``name`` (every split of the report is scored alike; no slices)."""
    del name, raw_texts
    return self.metrics(outputs, split, config.ece_bins)

  @staticmethod
  def summary(report: dict) -> str:
    """The final eval report in one line (what ``python -m train.main`` prints)."""
    return f"test perplexity {report['test']['perplexity']:.2f}, next-token accuracy {report['test']['accuracy']:.4f}"


CLASSIFICATION = Classification()  # Stateless: the default task of the train and eval steps.
