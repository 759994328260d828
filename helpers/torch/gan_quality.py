"""How good the synthetic images are (notebook 05), measured in two feature spaces and in
pixels, each number beside the real images' score against themselves.

- The project's own classifier: the penultimate layer (512 features) of the best PyTorch
  baseline run of the data set at the GAN's image size (chosen on validation loss). It
  needs no download, so it is always measured once notebook 04 has run.
- Inception-v3 (the FID and KID everyone reports): its weights are downloaded on first
  use by torch-fidelity (through torchmetrics); offline the metric is marked skipped with
  the reason, never a crash.
- Pixels: memorisation, each synthetic image's nearest real training image.

The statistics themselves are framework-free (``helpers.analysis.gan_quality``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from helpers.analysis import gan_quality
from helpers.config import Layout
from helpers.torch.checkpoints import load_checkpoint
from helpers.torch.models import ResNet50Classifier
from helpers.training.run_folder import RunFolder
from helpers.training.runs import best_run

Extractor = Callable[[torch.Tensor], torch.Tensor]  # uint8 (B, 1, s, s) -> features (B, d)
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


@torch.no_grad()
def features(extract: Extractor, images: np.ndarray, device: torch.device,
             batch_size: int = 128) -> np.ndarray:
    """Features (N, d) float64 of uint8 grey images (N, s, s)."""
    out = [extract(torch.from_numpy(images[i:i + batch_size]).unsqueeze(1).to(device)).cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).double().numpy()


def classifier_extractor(run_dir: Path, device: torch.device) -> Extractor:
    """The penultimate layer (after the 512-unit ReLU) of a trained run's best weights."""
    model = ResNet50Classifier(pretrained=False)
    model.load_state_dict(load_checkpoint(RunFolder(run_dir).checkpoint)["model"])
    model = model.to(device).eval()
    body: nn.Module = model.head[:-1]
    return lambda x: body(model.backbone(model.normalize(x)))


def inception_extractor(device: torch.device) -> Extractor | str:
    """Inception-v3's 2048 pool features as FID computes them, or the sentence saying why
    they are not available (no network and no weights file)."""
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"])
    except (ImportError, OSError, RuntimeError) as error:
        folder = Path(torch.hub.get_dir()) / "checkpoints"
        return (f"Inception FID/KID skipped: its weights could not be loaded "
                f"({type(error).__name__}: {str(error)[:120]}); with network they download on "
                f"first use, offline put {INCEPTION_FILE} (torch-fidelity's release v0.2.0) "
                f"under {folder}.")
    net = net.to(device).eval()
    return lambda x: net(x.expand(-1, 3, -1, -1))  # grey as RGB, uint8 0-255, resized inside


def _space(extract: Extractor | str, real: np.ndarray, fake: np.ndarray,
           device: torch.device, seed: int, **about: Any) -> dict[str, Any]:
    """The feature-space report of one extractor, or its skip reason (printed)."""
    if isinstance(extract, str):
        print(extract)
        return {"status": "skipped", "reason": extract}
    real_f, fake_f = features(extract, real, device), features(extract, fake, device)
    try:
        report = gan_quality.quality_report(real_f, fake_f, seed=seed)
    except ValueError as error:  # too few images for the statistics: said, not fatal
        print(error)
        return {"status": "skipped", "reason": str(error)}
    return {"status": "measured", "dims": int(real_f.shape[1]), **about, **report}


def measure_quality(layout: Layout, real: np.ndarray, fake: np.ndarray, *,
                    device: torch.device | str = "cpu", seed: int = 42,
                    inception: bool = True) -> dict[str, Any]:
    """Every quality number of ``fake`` against ``real`` (uint8 grey (N, s, s), the real
    ones the GAN's training images), as metrics.json of the GAN run records them."""
    device = torch.device(device)
    size = real.shape[-1]
    baseline = best_run(layout, "pytorch", "baseline", image_size=size)
    classifier: Extractor | str = (
        classifier_extractor(baseline, device) if baseline is not None else
        f"Classifier-space scores skipped: no finished PyTorch baseline at {size} px under "
        f"{layout.runs_dir}; run notebook 04 with IMAGE_SIZE={size} first.")
    incept = inception_extractor(device) if inception else "Inception FID/KID not asked for."
    return {
        "counts": {"real": int(len(real)), "synthetic": int(len(fake))},
        "classifier": _space(classifier, real, fake, device, seed,
                             run=baseline.name if baseline is not None else None),
        "inception": _space(incept, real, fake, device, seed),
        "memorisation": gan_quality.memorisation(real.reshape(len(real), -1).astype(np.float32),
                                                 fake.reshape(len(fake), -1).astype(np.float32)),
    }
