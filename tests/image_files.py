"""Small image files for the tests of the `cae` command and its library."""

import numpy as np
from PIL import Image


def save(path, array, **kwargs):
    """Save ``array`` as an image file at ``path`` (format from the suffix); return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, **kwargs).save(path)
    return path


def gray(h, w, seed=0):
    """A random 8-bit grayscale image of ``h``×``w``."""
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
