"""The one way a ``python -m train.X`` command starts and stops, shared by every command.

It owns how flags are parsed (``flag_parsing``: a bad flag or ``--config.x`` override is one line
naming the field), how bad input ends a command (``errors``: one line on stderr, ``ERROR: ...``,
exit code 2, no traceback) and what every command sets up (``program``: running ``main``, quiet
logging unless ``--verbosity``, the ``--workdir`` / ``--model`` flags of a model to load). It may
import absl, ml_collections and the standard library only; no room imports it (library modules never
parse flags or exit).
"""
