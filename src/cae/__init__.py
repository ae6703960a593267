"""cae: a reproducible lab for convolutional autoencoders on images."""

__version__ = "0.1.0"
