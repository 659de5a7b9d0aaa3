"""Training: ``trainer.train_and_evaluate(config, workdir)`` and everything only a training run needs.

It owns the trainer (``trainer``: claim the workdir, load the data, build the state, train, evaluate,
report), the model table (``models``: model_type -> config, module, task) and what a model trains on
(``tasks``: classification, next token), the train state, the optimizer, the input feed, the metric
log, the config checks, the evaluation it runs (``evaluation``: the eval step and ``Evaluator``) and
how a run starts from other weights (``pretrained_init``: ``config.init_from``). It may import
``train.data``, ``train.runs``, ``train.scoring`` and ``mamba_jax``; not model_files, study or
command_line.
"""
