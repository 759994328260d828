"""What an upload costs before the page shows anything: an image over the pixel limit is
refused from its header, without decoding; a 16-bit image at the limit is scaled to 8 bits
without a float64 copy. Each is measured in a process of its own, by the growth of its peak
resident memory (``ru_maxrss``) over the check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from helpers.analysis import gradcam
from helpers.config import REPO_ROOT

MB = 2**20
RSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
CHECK = """
import json, resource, sys
from pathlib import Path
import numpy as np
from helpers.analysis import gradcam
from helpers.errors import UserError
data = Path(sys.argv[1]).read_bytes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    grey = gradcam.decode_upload(data)
except UserError as error:
    grey, result = None, {"refused": str(error)}
growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
if grey is not None:
    result = {"histogram": np.bincount(grey.ravel(), minlength=256).tolist()}
print(json.dumps({**result, "growth": growth}))
"""


def checked(path: Path) -> dict:
    """``decode_upload`` of the file at ``path`` in a fresh process: the histogram of the
    8-bit image, or the refusal; ``growth``: the peak memory it added, in bytes."""
    done = subprocess.run([sys.executable, "-c", CHECK, str(path)], capture_output=True,
                          text=True, cwd=REPO_ROOT, check=True)
    result = json.loads(done.stdout.splitlines()[-1])
    result["growth"] *= RSS_UNIT
    return result


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "huge16.png"
    Image.new("I;16", (13_000, 13_000)).save(path)  # uniform: ~330 KB for 169 megapixels
    assert path.stat().st_size < gradcam.MAX_UPLOAD_MB * MB
    result = checked(path)
    assert result["refused"] == ("too large (13,000 x 13,000 pixels = 169.0 megapixels; "
                                 f"at most {gradcam.MAX_UPLOAD_PIXELS / 1e6:g} megapixels).")
    assert result["growth"] < 100 * MB  # decoded, its pixels alone would take 338 MB


def test_a_16bit_image_at_the_limit_is_scaled_without_a_float64_copy(tmp_path: Path) -> None:
    side = int(gradcam.MAX_UPLOAD_PIXELS ** 0.5)
    image = np.zeros((side, side), np.uint16)
    image[::7] = 65535
    image[:, ::5] = 30000  # crossings: 30000 too
    path = tmp_path / "limit16.png"
    Image.fromarray(image).save(path)
    result = checked(path)
    values, counts = np.unique(image, return_counts=True)
    expected = np.zeros(256, int)
    np.add.at(expected, np.round(values * (255 / 65535)).astype(int), counts)
    assert result["histogram"] == expected.tolist()
    assert result["growth"] < 500 * MB  # a float64 copy alone is 400 MB, a whole-image pass 1.3 GB
