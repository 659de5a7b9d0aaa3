"""The sentiment service's library (``python -m train.serve``, ``python -m train.review``): the human-oversight loop.

Owns: the served model and its version (``served_model``: a classifier loaded once, its parameters'
digest, texts -> label, confidence, probabilities and deferral), the micro-batching of concurrent
requests into one scoring call and the atomic model swap (``request_batcher``), the SQLite review
database of deferred texts and their human labels (``review_database``), the HTTP application and its
one-line JSON errors (``app``), running it (``server``), the review page (``static/``), the reviewed
file that ``configs/own_data.py`` fine-tunes on (``review_export``) and the simulated loop that
measures it (``oversight_loop``).

May import: the model files and scoring of ``train`` (loading a model, its classes and card), the data
path's reader and normalization (``train.data``), the trainer (for the measured loop's fine-tuning);
nothing imports it but the command-line modules.
"""
