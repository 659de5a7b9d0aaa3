"""Sentiment140 input pipeline; the data flows one way.

sources (find/read raw CSVs) -> normalization -> splits (hash of normalized text) -> records
-> sentiment140_builder (the TFDS array_record dataset; tfds_dataset finds, writes and reads
it) -> tokenizer (SentencePiece BPE, trained on the dataset's train split) -> token_cache
(every split's token ids, with summary) -> pipeline.get_datasets (builds what is missing,
loads) -> batching (train/eval iterators). prepared_paths: where each part lives. synthetic:
a toy task with the same interface. The data fields of a config are in configs/sent140.py.
"""
