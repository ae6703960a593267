"""cae: a reproducible lab for convolutional autoencoders on images."""

from cae import runtime as _runtime  # noqa: F401  (first: TensorFlow's log settings, before it is imported)

__version__ = "0.1.0"
