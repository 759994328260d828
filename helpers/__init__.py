"""Shared code of the notebook series, one subpackage per layer.

    helpers.errors, .io, .locks,     the user's errors, atomic writes and JSON, one process
      .config                        per run, profiles and the folder layout (every layer
                                     uses them)
    helpers.environment              what a run ran on (versions, device, CPU), which
                                     every run's config.json records
    helpers.data                     download, index, audit, near copies, preprocessing,
                                     the split, imbalance ratios, arrays, synthetic images
    helpers.training                 protocols, scenarios, batches, the training driver
                                     (runs), TensorBoard curves, run folders, the grid,
                                     the pixel reference
    helpers.analysis                 metrics, statistics, comparison and reports, plots,
                                     GAN quality, Grad-CAM, the Streamlit page
    helpers.notebook                 a notebook's setup cell, Colab, the series driver and
                                     its HTML pages, the notebooks' shared contract
    helpers.keras, helpers.torch     the two mirrored framework sides: data, models,
                                     losses, training, Grad-CAM (torch also: the WGAN-GP)

Importing ``helpers`` or any of its framework-free subpackages imports neither TensorFlow
nor torch; a process imports one of ``helpers.keras`` and ``helpers.torch``, never both
(TensorFlow >= 2.20 loaded before Triton, which the CUDA build of torch pulls in, crashes
the process: tensorflow issue 124205).
"""

__version__ = "0.1.0"
