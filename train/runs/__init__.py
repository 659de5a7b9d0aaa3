"""A training run on disk and what it survives.

It owns the workdir and the config that made it (``workdir``), one run per workdir (``workdir_lock``),
checkpoints (``checkpointing``), SIGTERM / SIGINT (``preemption``), several hosts (``distributed``),
the commit, device and time of every result file (``provenance``), and the files a finished run and
its export hold: the class names (``classes``: classes.json), the final report (``eval_report``:
eval_report.json) and the parameters, config and tokenizer (``model_dir``: params.safetensors). It may
import ``train.data``, ``mamba_jax`` and ``configs`` (the reference config); nothing of the rooms above
it (scoring, loop, model_files, study, command_line).
"""
