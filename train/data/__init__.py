"""Sentiment140 input pipeline.

sources (find/read raw CSVs) -> normalization -> splits (hash of normalized text) -> records
-> sentiment140_builder (TFDS, array_record) and tokenizer (SentencePiece BPE) -> pipeline
(token cache, get_datasets) -> batching (train/eval iterators). synthetic: a toy task with
the same interface. The data fields of a config are documented in configs/sent140.py.
"""
