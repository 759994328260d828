"""The WGAN-GP of notebook 05 in PyTorch (as the thesis): networks, the gradient penalty,
one critic and one generator update, and a resumable training loop.

Gulrajani et al. 2017: the critic minimises D(fake) - D(real) + lambda (||grad D(x_hat)|| - 1)^2
on random interpolates x_hat, ``critic_steps`` times per generator step; the generator
minimises -D(G(z)). Images are grey, scaled to [-1, 1]. The generator is a Linear layer to a
(C, b, b) map and transposed convolutions that double the side up to the image size
(224 = 7 x 2^5, 64 = 4 x 2^4, 32 = 4 x 2^3), BatchNorm and ReLU between, tanh at the end;
the critic mirrors it with strided convolutions, LeakyReLU 0.2 and no BatchNorm (which the
penalty forbids). Every random draw of iteration i comes from a generator seeded with
(seed, i), so a run resumed from a checkpoint ends with the same weights as one that was
never interrupted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from helpers.analysis import plots
from helpers.config import GanSettings, Layout, Profile
from helpers.data.arrays import training_ratio
from helpers.data.synthetic import (
    Minority,
    gan_images,
    load_synthetic_images,
    mosaic,
    synthetic_set_complete,
    to_uint8,
    write_synthetic_set,
)
from helpers.environment import environment
from helpers.errors import UserError
from helpers.io import remove_stale_temporaries, save_json
from helpers.locks import holding
from helpers.torch.checkpoints import (
    load_checkpoint,
    resume_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from helpers.torch.gan_quality import measure_quality
from helpers.torch.models import pick_device
from helpers.training.curves import Curves
from helpers.training.run_folder import RunFolder, recorded_path
from helpers.training.runs import RunSpec, finished

HISTORY = ["iteration", "critic_loss", "generator_loss", "wasserstein", "gradient_penalty"]
SAMPLE_GRID = 32  # images in the fixed-latent sample grid


def stages(size: int) -> tuple[int, int]:
    """(base side b, doublings k) with size = b x 2^k and b between 4 and 7."""
    side, k = size, 0
    while side > 7 and side % 2 == 0:
        side, k = side // 2, k + 1
    if not 4 <= side <= 7 or k == 0:
        raise UserError(f"IMAGE_SIZE={size} cannot be built by doubling a 4-7 px map (224 = 7 x "
                        f"2^5, 64 = 4 x 2^4): use 32, 64, 128 or 224 for the GAN.")
    return side, k


def channels(size: int, width: int) -> list[int]:
    """Channels of the generator's stages, widest first: width x 2^(k-1) ... width."""
    _, k = stages(size)
    return [width * 2 ** (k - 1 - i) for i in range(k)]


class Generator(nn.Module):
    """z (B, latent) -> images (B, 1, size, size) in [-1, 1]."""

    def __init__(self, size: int, width: int, latent: int = 128) -> None:
        super().__init__()
        self.base, _ = stages(size)
        chans = channels(size, width)
        self.project = nn.Sequential(nn.Linear(latent, chans[0] * self.base ** 2),
                                     nn.Unflatten(1, (chans[0], self.base, self.base)),
                                     nn.BatchNorm2d(chans[0]), nn.ReLU())
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans, chans[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU()]
        layers += [nn.ConvTranspose2d(chans[-1], 1, 4, 2, 1), nn.Tanh()]
        self.upsample = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(z))


class Critic(nn.Module):
    """images (B, 1, size, size) -> one unbounded score each (B,)."""

    def __init__(self, size: int, width: int) -> None:
        super().__init__()
        base, _ = stages(size)
        chans = channels(size, width)[::-1]  # narrowest first
        layers: list[nn.Module] = []
        for c_in, c_out in zip([1, *chans], chans):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.score = nn.Linear(chans[-1] * base ** 2, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(images)).squeeze(1)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     eps: torch.Tensor) -> torch.Tensor:
    """Mean (||grad_x D(x)|| - 1)^2 at x = eps real + (1 - eps) fake (eps: (B, 1, 1, 1));
    differentiable, so the critic's loss can include it."""
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def update_critic(generator: nn.Module, critic: nn.Module, real: torch.Tensor,
                  z: torch.Tensor, eps: torch.Tensor, opt: torch.optim.Optimizer,
                  gp_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One critic step; its loss, the Wasserstein estimate D(real) - D(fake), the penalty."""
    with torch.no_grad():
        fake = generator(z)
    wasserstein = critic(real).mean() - critic(fake).mean()
    penalty = gradient_penalty(critic, real, fake, eps)
    loss = -wasserstein + gp_weight * penalty
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach(), wasserstein.detach(), penalty.detach()


def update_generator(generator: nn.Module, critic: nn.Module, z: torch.Tensor,
                     opt: torch.optim.Optimizer) -> torch.Tensor:
    """One generator step (the critic fixed); its loss -D(G(z))."""
    critic.requires_grad_(False)
    loss = -critic(generator(z)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    critic.requires_grad_(True)
    return loss.detach()


@dataclass(frozen=True)
class Draws:
    """Every random number of one iteration: real-image indices, latents, interpolation."""

    indices: torch.Tensor  # (critic_steps, B)
    z_critic: torch.Tensor  # (critic_steps, B, latent)
    eps: torch.Tensor  # (critic_steps, B, 1, 1, 1)
    z_generator: torch.Tensor  # (B, latent)

    @classmethod
    def of(cls, seed: int, iteration: int, n: int, s: GanSettings) -> Draws:
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, iteration])
                                              .generate_state(1)[0]))
        steps, b = s.critic_steps, s.batch_size
        return cls(torch.randint(0, n, (steps, b), generator=g),
                   torch.randn(steps, b, s.latent, generator=g),
                   torch.rand(steps, b, 1, 1, 1, generator=g),
                   torch.randn(b, s.latent, generator=g))


_LATENT_STREAMS = {"grid": 0, "synthetic": 1}


def latents(seed: int, n: int, latent: int, stream: str) -> torch.Tensor:
    """``n`` latent vectors from (seed, stream) alone: "grid" (the sample grids, the same at
    every checkpoint) or "synthetic" (the synthetic set)."""
    state = np.random.SeedSequence([seed, _LATENT_STREAMS[stream]]).generate_state(1)[0]
    return torch.randn(n, latent, generator=torch.Generator().manual_seed(int(state)))


def to_unit(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 grey (N, s, s) to float (N, 1, s, s) in [-1, 1] on ``device``."""
    return torch.from_numpy(images).to(device).unsqueeze(1).float().div(127.5).sub(1)


@torch.no_grad()
def generate(generator: nn.Module, z: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Images (N, s, s) in [-1, 1] from latents ``z``, in inference mode (BatchNorm's
    running statistics), as a NumPy array."""
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    out = [generator(chunk.to(device)).squeeze(1).float().cpu()
           for chunk in z.split(batch_size)]
    generator.train(was_training)
    return torch.cat(out).numpy()


@dataclass
class GanState:
    """Both networks and both optimisers (Adam, the thesis' rate and betas)."""

    generator: Generator
    critic: Critic
    opt_g: torch.optim.Optimizer
    opt_c: torch.optim.Optimizer

    @classmethod
    def build(cls, size: int, s: GanSettings, device: torch.device) -> GanState:
        generator = Generator(size, s.width, s.latent).to(device)
        critic = Critic(size, s.width).to(device)
        betas = (s.beta1, s.beta2)
        return cls(generator, critic, torch.optim.Adam(generator.parameters(), s.lr, betas),
                   torch.optim.Adam(critic.parameters(), s.lr, betas))

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.state_dict(), "critic": self.critic.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_c": self.opt_c.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("generator", "critic", "opt_g", "opt_c"):
            getattr(self, name).load_state_dict(state[name])


@dataclass(frozen=True)
class GanResult:
    """A trained generator (inference mode), its loss history, iterations and weights file."""

    generator: Generator
    history: pd.DataFrame
    iterations: int
    checkpoint: Path


def gan_settings(s: GanSettings, *, seed: int, images: np.ndarray) -> dict[str, Any]:
    """What decides the weights: a checkpoint resumes only with the same (more iterations
    may be asked for; the checkpoint interval does not matter)."""
    fixed = {k: v for k, v in asdict(s).items() if k not in ("iterations", "checkpoint_every")}
    return {**fixed, "seed": seed, "images": int(len(images)), "size": int(images.shape[-1])}


def train_gan(images: np.ndarray, s: GanSettings, *, seed: int, checkpoint_dir: str | Path,
              device: torch.device | str = "cpu", resume: bool = True,
              on_checkpoint: Callable[[int, np.ndarray], None] | None = None,
              on_iteration: Callable[[dict[str, float]], None] | None = None) -> GanResult:
    """Train the WGAN-GP on uint8 grey images (N, s, s) for ``s.iterations`` generator steps.

    ``last.pt`` in ``checkpoint_dir`` (every ``s.checkpoint_every`` iterations and at the
    end) holds both networks, both optimisers, the RNG states, the iteration and the
    history; ``resume`` continues from it. ``on_checkpoint(iteration, samples)`` gets the
    fixed-latent samples in [-1, 1] at each checkpoint (the sample grids);
    ``on_iteration`` each iteration's history row.
    """
    device = torch.device(device)
    directory = Path(checkpoint_dir)
    directory.mkdir(parents=True, exist_ok=True)
    settings = gan_settings(s, seed=seed, images=images)
    resumed = resume_checkpoint(directory / "last.pt", settings, resume)
    torch.manual_seed(seed)  # initial weights; every later draw comes from Draws.of
    state = GanState.build(images.shape[-1], s, device)
    history: list[dict[str, float]] = []
    if resumed is not None:
        state.load_state_dict(resumed)
        set_rng_state(resumed["rng"])
        history = list(resumed["history"])
    real = to_unit(images, device)
    fixed = latents(seed, SAMPLE_GRID, s.latent, "grid")
    start = len(history)
    with tqdm(total=s.iterations, initial=start, desc="WGAN-GP", unit="it",
              mininterval=2) as bar:
        for iteration in range(start + 1, s.iterations + 1):
            draws = Draws.of(seed, iteration, len(real), s)
            row = train_iteration(state, real, draws, s, device)
            history.append({"iteration": iteration, **row})
            bar.update()
            bar.set_postfix(critic=f"{row['critic_loss']:.3g}",
                            gen=f"{row['generator_loss']:.3g}", W=f"{row['wasserstein']:.3g}",
                            refresh=False)  # the bar redraws at most every 2 s
            if on_iteration is not None:
                on_iteration(history[-1])
            if iteration % s.checkpoint_every == 0 or iteration == s.iterations:
                save_checkpoint({"settings": settings, "iteration": iteration,
                                 "history": history, "rng": rng_state(), **state.state_dict()},
                                directory / "last.pt")
                if on_checkpoint is not None:
                    on_checkpoint(iteration, generate(state.generator, fixed))
    if not history:
        raise UserError("GAN_ITERATIONS is 0: set it above 0 to train the GAN.")
    frame = pd.DataFrame(history, columns=HISTORY)
    if not np.isfinite(frame[HISTORY[1:]].to_numpy()).all():
        raise UserError("The WGAN-GP diverged (a loss became NaN or infinite): lower GAN_LR and "
                        "pass RESUME=False.")
    state.generator.eval()
    return GanResult(state.generator, frame, len(history), directory / "last.pt")


def train_iteration(state: GanState, real: torch.Tensor, draws: Draws, s: GanSettings,
               device: torch.device) -> dict[str, float]:
    """``critic_steps`` critic updates, then one generator update; the means of their numbers."""
    losses, distances, penalties = [], [], []
    for step in range(s.critic_steps):
        loss, distance, penalty = update_critic(
            state.generator, state.critic, real[draws.indices[step].to(device)],
            draws.z_critic[step].to(device), draws.eps[step].to(device), state.opt_c,
            s.gp_weight)
        losses.append(loss)
        distances.append(distance)
        penalties.append(penalty)
    g_loss = update_generator(state.generator, state.critic, draws.z_generator.to(device),
                              state.opt_g)
    numbers = torch.stack([torch.stack(losses).mean(), g_loss, torch.stack(distances).mean(),
                           torch.stack(penalties).mean()]).tolist()  # one host sync
    return dict(zip(HISTORY[1:], (float(x) if math.isfinite(x) else math.nan for x in numbers)))


def save_generator(result: GanResult, path: Path, size: int, s: GanSettings) -> Path:
    """The generator's weights alone, with what rebuilds it (``load_generator``)."""
    save_checkpoint({"generator": result.generator.state_dict(), "size": size,
                     "width": s.width, "latent": s.latent, "iteration": result.iterations}, path)
    return path


def load_generator(path: Path, device: torch.device | str = "cpu") -> tuple[Generator, int]:
    """A generator saved by ``save_generator`` (inference mode) and its iteration."""
    state = load_checkpoint(path)
    generator = Generator(state["size"], state["width"], state["latent"])
    generator.load_state_dict(state["generator"])
    return generator.to(device).eval(), int(state["iteration"])


def gan_spec(dataset: str, size: int, seed: int, imbalance: str = "natural") -> RunSpec:
    """The GAN run's description; its name (``pytorch-wgan_gp-64px-seed42``, ``...-r10`` at
    an imbalance setting) names its folders."""
    return RunSpec(dataset, "pytorch", "wgan_gp", seed, protocol=f"{size}px",
                   imbalance=imbalance)


@dataclass(frozen=True)
class GanOutcome:
    """A finished GAN run: description, quality metrics, folders, the synthetic set's
    manifest, and whether this call trained it (False: read back)."""

    spec: RunSpec
    metrics: dict[str, Any]
    results_dir: Path
    generator: Path
    synthetic: pd.DataFrame
    trained: bool


def _synthetic_batches(generator: Generator, seed: int, count: int, latent: int
                       ) -> Iterator[np.ndarray]:
    for chunk in latents(seed, count, latent, "synthetic").split(256):
        yield to_uint8(generate(generator, chunk))


def _train(arrays: np.ndarray, s: GanSettings, spec: RunSpec, layout: Layout, seed: int,
           device: torch.device, resume: bool) -> tuple[Generator, int]:
    """Train (or resume), keep the sample mosaics, the curves in TensorBoard (every
    iteration's history row), the history, its figure and the weights."""
    run_dir, ckpt_dir = layout.results(spec.name), layout.checkpoints(spec.name)
    samples = run_dir / "samples"
    samples.mkdir(parents=True, exist_ok=True)

    def keep_samples(iteration: int, images: np.ndarray) -> None:
        cv2.imwrite(str(samples / f"iteration_{iteration:06d}.png"), mosaic(to_uint8(images)))

    with Curves(layout.tensorboard(spec.name), HISTORY[0], HISTORY[1:]) as curves:
        result = train_gan(arrays, s, seed=seed, checkpoint_dir=ckpt_dir, device=device,
                           resume=resume, on_checkpoint=keep_samples, on_iteration=curves)
    result.history.to_csv(run_dir / "history.csv", index=False)
    plots.save_figure(plots.plot_gan_history(result.history), run_dir / "losses.png")
    save_generator(result, ckpt_dir / "generator.pt", arrays.shape[-1], s)
    return result.generator, result.iterations


def _figures(run_dir: Path, real: np.ndarray, fake: np.ndarray, metrics: dict[str, Any],
             seed: int) -> None:
    """Real beside synthetic (random picks of each), and the memorisation check."""
    plots.save_figure(plots.plot_real_vs_synthetic(real, fake, seed=seed),
                      run_dir / "real_vs_synthetic.png")
    plots.save_figure(plots.plot_memorisation(metrics["memorisation"], real, fake),
                      run_dir / "memorisation.png")


def run_gan(layout: Layout, profile: Profile, s: GanSettings, *, seed: int = 42,
            resume: bool = True, device: str | None = None, inception: bool = True,
            imbalance: str = "natural") -> GanOutcome:
    """The GAN phase, start to end: train on the minority class of the training rows at
    ``imbalance`` (resuming an interrupted run), write that setting's synthetic set
    (n_majority - n_minority images, kept when complete), measure its quality and save the
    run's results.

    A run that finished with the same settings is read back; only the generator's weights
    are kept once it is done (``checkpoints/<dataset>/runs/<run>/generator.pt``). One
    process at a time trains it (``helpers.locks``).
    """
    spec = gan_spec(layout.dataset, profile.image_size, seed, imbalance)
    with holding(layout, spec.name, f"Training {spec.name}"):
        remove_stale_temporaries(layout.checkpoints(spec.name))
        return _run_gan(layout, profile, s, spec, seed=seed, resume=resume, device=device,
                        inception=inception)


def _run_gan(layout: Layout, profile: Profile, s: GanSettings, spec: RunSpec, *, seed: int,
             resume: bool, device: str | None, inception: bool) -> GanOutcome:
    size = profile.image_size
    arrays, minority = gan_images(layout, size, spec.imbalance)
    synthetic_dir = layout.synthetic_dir(size, spec.imbalance)
    if minority.missing < 2:
        raise UserError(f"The training split is balanced or nearly ({minority.n_minority} "
                        f"{minority.label} vs {minority.n_majority}): the GAN would add fewer "
                        f"than 2 images, so scenarios wgan and wgan_focal would equal baseline.")
    settings = {**gan_settings(s, seed=seed, images=arrays.images), "iterations": s.iterations}
    run_dir, weights = layout.results(spec.name), layout.checkpoints(spec.name) / "generator.pt"
    torch_device = pick_device(device)
    done = resume and finished(layout, spec, settings) and weights.is_file()
    if done:
        print(f"{spec.name} finished already: results read from {run_dir} (RESUME=False trains "
              f"it again).")
        generator, iteration = load_generator(weights, torch_device)
    else:
        print(f"{spec.name}: WGAN-GP on the {len(arrays)} {minority.label} training images at "
              f"{size} px, {s.iterations} generator iterations on {torch_device}.")
        generator, iteration = _train(arrays.images, s, spec, layout, seed, torch_device, resume)
    record = {"run": spec.name, "settings": settings, "iteration": iteration,
              "count": minority.missing}
    if synthetic_set_complete(layout, size, record, spec.imbalance):
        print(f"The synthetic set in {synthetic_dir} is complete: kept.")
    else:
        write_synthetic_set(layout, size, _synthetic_batches(generator, seed, minority.missing,
                                                             s.latent),
                            minority=minority, seed=seed, iteration=iteration, record=record,
                            imbalance=spec.imbalance)
    manifest = pd.read_csv(synthetic_dir / "manifest.csv")
    if done:
        metrics = RunFolder(run_dir).metrics
    else:
        metrics = _evaluate(layout, spec, profile, s, arrays.images, minority, record,
                            torch_device, inception)
        (weights.parent / "last.pt").unlink(missing_ok=True)  # weights only, once done
    return GanOutcome(spec, metrics, run_dir, weights, manifest, trained=not done)


def _evaluate(layout: Layout, spec: RunSpec, profile: Profile, s: GanSettings, real: np.ndarray,
              minority: Minority, record: dict[str, Any], device: torch.device,
              inception: bool) -> dict[str, Any]:
    """Quality metrics and figures; config.json and metrics.json written last (a run with
    both is finished)."""
    run_dir = layout.results(spec.name)
    fake = load_synthetic_images(layout, real.shape[-1], imbalance=spec.imbalance)
    metrics = {"iterations": record["iteration"], "minority": asdict(minority),
               **measure_quality(layout, real, fake, device=device, seed=spec.seed,
                                 inception=inception)}
    _figures(run_dir, real, fake, metrics, spec.seed)
    save_json({**spec.describe(), "imbalance_ratio": training_ratio(layout, spec.imbalance),
               "settings": record["settings"], "gan": s, "profile": profile,
               "synthetic_dir": str(layout.synthetic_dir(real.shape[-1], spec.imbalance)),
               "checkpoint": recorded_path(layout.checkpoints(spec.name) / "generator.pt",
                                           layout.root),
               "environment": environment(spec.framework, str(device))}, run_dir / "config.json")
    save_json(metrics, run_dir / "metrics.json")
    return metrics
