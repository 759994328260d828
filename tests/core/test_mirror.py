"""The Keras and PyTorch sides are mirror images: the same public names and signatures.

Read from the source with ``ast``, so this test imports neither framework.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parents[2] / "helpers"
# (module pair, the public names both must define with the same parameters)
MIRRORED = {
    "data": ("load_datasets",),
    "models": ("build_model", "configure_phase", "set_seeds", "pick_device", "describe_device"),
    # the hooks of runs.drive (with make_loss, pick_device and describe_device, mirrored in
    # losses and models) and run_training, which calls it
    "training": ("load_run_data", "loss_name", "train", "predict_split", "prune_checkpoint",
                 "run_training"),
    "gradcam": ("load_model", "gradcam_maps", "probabilities", "maps_and_probabilities"),
}


def public_api(path: Path) -> dict[str, list[str]]:
    """Top-level public functions and classes -> parameter names (a dataclass: its fields)."""
    api: dict[str, list[str]] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            args = node.args
            api[node.name] = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            api[node.name] = [n.target.id for n in node.body
                              if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
    return api


@pytest.mark.parametrize("part", sorted(MIRRORED))
def test_both_frameworks_define_the_same_names_and_parameters(part: str) -> None:
    keras_api = public_api(HELPERS / "keras" / f"{part}.py")
    torch_api = public_api(HELPERS / "torch" / f"{part}.py")
    for name in MIRRORED[part]:
        assert name in keras_api and name in torch_api, name
        # Only PyTorch's loader takes worker processes and a device to place batches on.
        torch_params = [p for p in torch_api[name] if name != "load_datasets"
                        or p not in ("num_workers", "device")]
        assert keras_api[name] == torch_params, (name, keras_api[name], torch_api[name])
