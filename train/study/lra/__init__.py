"""The Long Range Arena study (``python -m train.lra``): runs, parameter counts, data statistics, the table.

- ``runs``: one (task, model) trained by ``train.loop.trainer`` within a wall-clock budget (the schedule
  fitted to it), its record in ``results/lra/runs/``; the models' parameter counts.
- ``reports``: what the command line prints or writes besides training (parameter counts, the generated
  data's statistics, the table).
- ``table``: the project's accuracies beside the seeds' table (``results/lra/table.md``).

Configs: ``configs/lra.py``; data: ``train.data.lra``. Imports the rooms below ``train.study`` and
``configs``; ``train.command_line`` only in ``train/lra.py``.
"""
