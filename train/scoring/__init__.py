"""Numbers of predictions against labels, on the host.

It owns the metrics of a split (``metrics``: accuracy, macro-F1, per-class precision and recall,
calibration, the three-way threshold), the accuracy per slice of the texts (``slices``) and a trained
model's report on a labelled file (``labelled_file_report``, what ``python -m train.evaluate``
prints). Functions of arrays, texts and a loaded model's probabilities; nothing is trained here. It may
import ``train.data`` and ``train.runs`` (class names, provenance); not loop, model_files, study or
command_line.
"""
