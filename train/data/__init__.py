"""The one data path: raw files to batches, flowing one way.

sources (find/read raw CSVs) -> normalization -> splits (hash of normalized text) -> records
-> sentiment140_builder (the TFDS array_record dataset; tfds_dataset finds, writes and reads
it) -> tokenizer (SentencePiece BPE, trained on the dataset's train split) -> token_cache
(every split's token ids, with summary) -> pipeline.get_datasets (builds what is missing,
loads) -> batching (train/eval iterators). prepared_paths: where each part lives; preparation:
what python -m train.prepare_data does; synthetic: a toy task with the same interface. The data
fields of a config are in configs/sent140.py. It is the ground floor: it imports nothing of train
outside train/data.
"""
