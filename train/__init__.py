"""Training, evaluation and the command-line tools of mamba-jax, in rooms by job.

The top holds only the command-line modules (``python -m train.main``, ``predict``, ``evaluate``,
``export``, ``prepare_data``, ``tfidf_baseline``, ``domain_adaptation``; ``python -m train.study``
lives in its room): each is its flags and one call into a room. The rooms, from the ground up, each
importing only the rooms below it: ``data`` (raw files to batches), ``runs`` (a run on disk and what
it survives), ``scoring`` (numbers of predictions against labels), ``loop`` (training), ``model_files``
(a trained model loaded, asked and exported), ``study`` (measurements that compare models); beside them
``command_line``, the one helper every command uses and no room imports.
"""
