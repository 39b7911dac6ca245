"""Tasks: a resizer in front of a model, one module per task (see :mod:`taskresize.training.registry`)."""
