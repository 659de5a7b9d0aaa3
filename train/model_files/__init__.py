"""A trained model put to use through its files.

It owns loading a classifier from a workdir or an exported model directory (``inference``:
``LoadedModel``), answering lines of text with it (``predictions``, what ``python -m train.predict``
prints), and writing an export (``exporter``: parameters, tokenizer, config, evaluation) with its model
card (``model_card``). The files' layout is ``train.runs.model_dir``'s. It may import every room below
it (``train.data``, ``train.runs``, ``train.scoring``, ``train.loop``); not study or command_line.
"""
