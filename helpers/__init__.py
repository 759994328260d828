"""Shared code of the notebook series.

Importing this package imports neither TensorFlow nor torch: the Keras code lives in
``helpers.keras_*`` and the PyTorch code in ``helpers.torch_*``, and a process uses one
of the two (TensorFlow >= 2.20 loaded before Triton, which the CUDA build of torch pulls
in, crashes the process: tensorflow issue 124205).
"""

__version__ = "0.1.0"
