"""Image data sets of the paper, read from the publishers' files.

- :func:`load_cifar10` - CIFAR-10 from ``cifar-10-python.tar.gz``;
- :func:`load_fashion_mnist` - Fashion-MNIST from its four IDX gzip files;
- :func:`load_digits_images` - scikit-learn's bundled 8x8 digits (no download).

All return NHWC float images in [0, 1] and integer labels. Files live under
:func:`get_data_home` (``SKNNGP_DATA`` or ``~/sknngp_data``); missing files are
downloaded when ``download=True`` and a network is available, otherwise the
error says which file to put where.
"""

from ._base import get_data_home
from ._cifar10 import load_cifar10
from ._digits import load_digits_images
from ._fashion_mnist import load_fashion_mnist

__all__ = ["get_data_home", "load_cifar10", "load_digits_images", "load_fashion_mnist"]
