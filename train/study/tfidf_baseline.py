"""TF-IDF + logistic regression baseline on the study's splits and normalization (``python -m train.tfidf_baseline``).

The texts are the normalized texts of the prepared TFDS dataset the data
pipeline encodes (``train.data.pipeline.build_tfds``: its own reading,
normalization and text-hash split; the synthetic task's texts for
``dataset="synthetic"``), so the baseline sees exactly the tweets
the neural models see, before tokenization. Word uni- and bigrams (single
characters and "<url>"/"<user>" placeholders included) are weighted by
TF-IDF with sublinear term frequency; a binary L2-regularized logistic
regression is fitted on the train split for each C in ``--c_values``, the C
with the best validation accuracy is kept, and it is evaluated on the test
split and the manual test set with the metrics of ``train.scoring.metrics``
(accuracy, macro-F1, ECE, and the three-way neutral threshold on the manual set).
"""

from __future__ import annotations

import json
import os
import resource
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from train.runs import provenance
from train.scoring import metrics


SPLITS = ("train", "validation", "test", "manual_test")
TOKEN_PATTERN = r"<url>|<user>|\b\w+\b"  # Words (incl. 1 letter) and the two placeholders.


def load_texts(config) -> Tuple[Dict[str, Tuple[List[str], np.ndarray]], Dict[str, Any]]:
  """{split: (normalized texts, labels int32)} with the pipeline's splits, and a data summary.

  Train is subsampled like the pipeline does when config.max_train_examples is set.
  """
  # pylint: disable=import-outside-toplevel
  from train.data import labelled_files, pipeline, sources, synthetic, tfds_dataset

  if config.dataset == "synthetic":
    datasets = synthetic.make_datasets(config)
    splits = {name: (list(s.texts), np.asarray(s.labels, np.int32))
              for name, s in datasets.splits.items()}
    return splits, {"dataset": "synthetic"}
  if config.dataset == "labelled_files":  # The user's files: train / validation / test, no manual test.
    files, names = labelled_files.find_files(config), pipeline.LABELLED_SPLIT_NAMES
  else:
    files = sources.find_sources(sources.resolve_data_dir(config.data_dir), download=bool(config.download))
    names = SPLITS
  dataset_dir = pipeline.build_tfds(config, files)
  columns = tfds_dataset.read(dataset_dir, names)
  splits = {name: (columns[name].normalized_texts, columns[name].labels) for name in names}
  report = tfds_dataset.read_build_report(dataset_dir)
  summary = {"dataset": config.dataset, "sources": report["sources"],
             "malformed": report["malformed_by_reason"], "duplicates": report["duplicate_details"],
             "split_fractions": [float(f) for f in config.split_fractions]}
  max_train = config.max_train_examples
  texts, labels = splits["train"]
  if max_train and int(max_train) < len(labels):
    # Same rows as pipeline.load's subsample (same seed, same file order).
    rng = np.random.Generator(np.random.PCG64(pipeline.SUBSAMPLE_SEED))
    keep = np.sort(rng.choice(len(labels), size=int(max_train), replace=False))
    splits["train"] = ([texts[i] for i in keep], labels[keep])
    summary["train_rows_used"] = int(max_train)
  return splits, summary


def fit_and_evaluate(splits, c_values: Sequence[float], *, min_df: int = 2, max_iter: int = 1000,
                     ece_bins: int = 15, neutral_threshold: float = 0.7, select_by: str = "accuracy",
                     class_weight: Optional[str] = None) -> Dict[str, Any]:
  """Fits TF-IDF + logistic regression per C, keeps the best on validation, evaluates it.

  Args:
    splits: {split: (texts, labels)}; train/validation/test labels are class ids (Sentiment140:
      {0, 1}); manual_test labels in {0, 1, 2} (2 = neutral, scored by the three-way threshold only).
    select_by: the validation metric that picks C: "accuracy" or "macro_recall" (ties: the larger C).
    class_weight: None (every row 1) or "balanced" (scikit-learn's: inverse class frequency).
  """
  # pylint: disable=import-outside-toplevel
  from sklearn.feature_extraction.text import TfidfVectorizer
  from sklearn.linear_model import LogisticRegression

  timings = {}
  t = time.perf_counter()
  vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=min_df, sublinear_tf=True,
                               token_pattern=TOKEN_PATTERN, lowercase=False, dtype=np.float32)
  train_texts, train_labels = splits["train"]
  x_train = vectorizer.fit_transform(train_texts)
  features = {name: vectorizer.transform(texts) for name, (texts, _) in splits.items() if name != "train"}
  timings["vectorize_s"] = time.perf_counter() - t

  candidates = []
  for c in c_values:
    t = time.perf_counter()
    classifier = LogisticRegression(C=float(c), max_iter=max_iter, solver="lbfgs", class_weight=class_weight)
    classifier.fit(x_train, train_labels)
    validation = metrics.classification_metrics(classifier.predict_proba(features["validation"]),
                                                splits["validation"][1], ece_bins)
    candidates.append({"C": float(c), "validation_accuracy": validation["accuracy"],
                       "validation_macro_recall": validation["macro_recall"],
                       "fit_s": time.perf_counter() - t, "iterations": int(classifier.n_iter_[0])})
    print(f"C={c}: validation accuracy {validation['accuracy']:.4f}, macro-recall {validation['macro_recall']:.4f} "
          f"({candidates[-1]['fit_s']:.0f} s)", flush=True)
    if candidates[-1][f"validation_{select_by}"] >= max(x[f"validation_{select_by}"] for x in candidates):
      best, best_classifier = candidates[-1], classifier
  report = {
      "model": "tfidf_logreg",
      "vectorizer": {"ngram_range": [1, 2], "min_df": min_df, "sublinear_tf": True,
                     "token_pattern": TOKEN_PATTERN},
      "C": best["C"],
      "class_weight": class_weight,
      "selected_by": f"validation {select_by}",
      "c_search": candidates,
      "num_features": int(x_train.shape[1]),
      "num_parameters": int(best_classifier.coef_.size + best_classifier.intercept_.size),
      "rows": {name: len(labels) for name, (_, labels) in splits.items()},
      "timings_s": timings,
  }
  for name in (n for n in metrics.REPORTED_SPLITS if n in splits):
    report[name] = metrics.split_metrics(name, best_classifier.predict_proba(features[name]), splits[name][1],
                                         neutral_threshold, ece_bins)
  return provenance.to_jsonable(report)


def markdown(report: Dict[str, Any]) -> str:
  env, manual = report["environment"], report.get("manual_test")
  pct = lambda x: f"{100 * x:.2f}%"
  lines = [
      "# TF-IDF + logistic regression baseline", "",
      f"- command: `{env['command']}`",
      f"- commit `{env['commit']}`, scikit-learn {env['sklearn_version']}, {env['date_utc']} UTC",
      f"- data: {report['data'].get('dataset')}, rows {report['rows']}"
      + ("; the pipeline's normalization and text-hash split"
         if report["data"].get("dataset") == "sentiment140" else ""),
      *([f"- sources: {', '.join(report['data']['sources'].values())}"]
        if report["data"].get("sources") else []),
      f"- features: word 1-2 grams, min_df {report['vectorizer']['min_df']}, sublinear TF-IDF: "
      f"{report['num_features']:,} features; logistic regression (L2, lbfgs), C = {report['C']} "
      f"chosen on validation from {[c['C'] for c in report['c_search']]}",
      f"- time: {report['total_time_s']:.0f} s, peak memory {report['peak_memory_gib']:.1f} GiB",
      "",
      "| split | accuracy | macro-F1 | ECE | examples |",
      "|---|---:|---:|---:|---:|",
  ]
  for name, metrics in (("validation", report["validation"]), ("held-out test", report["test"]),
                        *([("manual test (binary)", manual["binary"])] if manual else [])):
    lines.append(f"| {name} | {pct(metrics['accuracy'])} | {metrics['macro_f1']:.4f} | "
                 f"{metrics['ece']:.4f} | {metrics['num_examples']} |")
  if manual:
    lines += ["", f"Manual test, three classes (neutral when the top probability is below "
              f"{manual['three_way']['threshold']}): {pct(manual['three_way']['accuracy'])}."]
  return "\n".join(lines) + "\n"


def run(config, output_dir: str, c_values: Sequence[float], *, min_df: int = 2, max_iter: int = 1000,
        command: str = "") -> Dict[str, Any]:
  """Loads ``config``'s texts, fits and evaluates, writes ``<output_dir>/tfidf_baseline.{json,md}``; the report.

  Raises:
    FileNotFoundError, ValueError: no data, or data the pipeline refuses.
  """
  import sklearn  # pylint: disable=import-outside-toplevel

  start = time.perf_counter()
  splits, data_summary = load_texts(config)
  print({name: len(labels) for name, (_, labels) in splits.items()}, flush=True)
  report = fit_and_evaluate(splits, [float(c) for c in c_values], min_df=min_df, max_iter=max_iter,
                            ece_bins=int(config.ece_bins), neutral_threshold=float(config.neutral_threshold))
  report["data"] = data_summary
  report["total_time_s"] = time.perf_counter() - start
  report["peak_memory_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  report["environment"] = {**provenance.host_environment(command), "sklearn_version": sklearn.__version__}
  os.makedirs(output_dir, exist_ok=True)
  stem = os.path.join(output_dir, "tfidf_baseline")
  with open(stem + ".json", "w", encoding="utf-8") as f:
    json.dump(report, f, indent=1)
  with open(stem + ".md", "w", encoding="utf-8") as f:
    f.write(markdown(report))
  return report
