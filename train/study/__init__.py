"""Measurements that compare models, each run through the trainer on the same data.

It owns the comparison study and its ablations (``runs``: the run table and each run's config;
``training``: train or reuse each (run, seed) and write its record; ``report``: the summary, table and
figures; ``__main__``: ``python -m train.study``), the TF-IDF baseline (``tfidf_baseline``), domain
adaptation (``domain_adaptation``: the released model on another tweet set) and the Long Range Arena
study (``lra``: ``python -m train.lra``). It may import every room
below it (``train.data``, ``train.runs``, ``train.scoring``, ``train.loop``, ``train.model_files``) and
``configs``; ``train.command_line`` only in ``__main__``.
"""
