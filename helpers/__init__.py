"""Shared code of the notebook series.

Importing this package imports neither TensorFlow nor torch (DESIGN.md section 4):
the Keras code lives in ``helpers.keras_*`` and the PyTorch code in ``helpers.torch_*``,
and a process uses one of the two.
"""

__version__ = "0.1.0"
