"""helpers.analysis.gan_quality against torchmetrics' FID and KID, given the same feature vectors.

torchmetrics runs a feature network on every update; here an identity module with
``num_features`` stands in for it, so both sides see the very same features.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")
pytest.importorskip("torchmetrics", reason="torchmetrics is not installed")
from torchmetrics.image.fid import FrechetInceptionDistance  # noqa: E402
from torchmetrics.image.kid import KernelInceptionDistance  # noqa: E402

from helpers.analysis.gan_quality import frechet_distance, kernel_distance  # noqa: E402

pytestmark = [pytest.mark.torch,  # KID warns that it buffers features: expected here
              pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance`:UserWarning")]
D = 8


class Identity(torch.nn.Module):
    """A 'feature network' that returns its input: the rows are already features."""

    def __init__(self, num_features: int = D) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def features(n: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, D)) * scale + shift


def feed(metric, real: np.ndarray, fake: np.ndarray):
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(fake), real=False)
    return metric.compute()


@pytest.mark.parametrize("shift, scale", [(0.0, 1.0), (0.3, 1.5), (2.0, 0.5)])
def test_frechet_distance_matches_torchmetrics(shift: float, scale: float) -> None:
    real, fake = features(300, 0), features(200, 1, shift, scale)
    theirs = float(feed(FrechetInceptionDistance(feature=Identity()), real, fake))
    assert frechet_distance(real, fake) == pytest.approx(theirs, rel=1e-6, abs=1e-8)


def test_frechet_distance_matches_torchmetrics_with_more_features_than_rows() -> None:
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(30, 64)), rng.normal(size=(20, 64)) * 1.2 + 0.1
    theirs = float(feed(FrechetInceptionDistance(feature=Identity(64)), real, fake))
    assert frechet_distance(real, fake) == pytest.approx(theirs, rel=1e-6)


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_kernel_distance_matches_torchmetrics_on_whole_sets(shift: float) -> None:
    real, fake = features(120, 0), features(120, 1, shift)
    kid = KernelInceptionDistance(feature=Identity(), subsets=3, subset_size=120)
    their_mean, their_std = (float(v) for v in feed(kid, real, fake))
    mean, std = kernel_distance(real, fake, subsets=3, subset_size=120)
    assert mean == pytest.approx(their_mean, rel=1e-9, abs=1e-12)
    assert std == pytest.approx(their_std, abs=1e-9)


def test_kernel_distance_matches_torchmetrics_on_subsets() -> None:
    real, fake = features(400, 0), features(300, 1, 0.3)
    torch.manual_seed(0)
    kid = KernelInceptionDistance(feature=Identity(), subsets=200, subset_size=100)
    their_mean, their_std = (float(v) for v in feed(kid, real, fake))
    mean, std = kernel_distance(real, fake, subsets=200, subset_size=100)
    # different random subsets, same estimator: the means agree within their standard errors
    assert mean == pytest.approx(their_mean, abs=4 * max(std, their_std) / np.sqrt(200) * np.sqrt(2))
    assert std == pytest.approx(their_std, rel=0.3)
