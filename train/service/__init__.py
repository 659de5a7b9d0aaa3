"""The sentiment service's library (``python -m train.serve``, ``python -m train.review``): the human-oversight loop.

Owns: the served model and its version (``served_model``: a classifier loaded once, its parameters'
digest, texts -> label, confidence, probabilities and deferral), the micro-batching of concurrent
requests into one scoring call and the atomic model swap (``request_batcher``), the SQLite review
database of deferred texts and their human labels (``review_database``), the HTTP application and its
one-line JSON errors (``app``), running it (``server``), the review page (``static/``), the reviewed
file that ``configs/own_data.py`` fine-tunes on (``review_export``) and the simulated loop that
measures it (``oversight_loop``).

The top room: it may import every room below it (``train.data``, ``train.runs``, ``train.loop`` for the
measured loop's fine-tuning, ``train.model_files`` for loading and scoring a model, ``train.study`` for
the held-out split of ``train.study.domain_adaptation``); only the command-line modules import it.
"""
