"""scikit-learn's bundled 8x8 digits, as NHWC images: the embedded default."""

from sklearn.datasets import load_digits
from sklearn.utils import Bunch
from sklearn.utils._param_validation import validate_params

DESCR = """Digits as images (scikit-learn's load_digits)

1,797 hand-written digits (UCI "Optical Recognition of Handwritten Digits"), 8x8
pixels of 17 grey levels, bundled with scikit-learn so that nothing is
downloaded. Images are float arrays of shape (n, 8, 8, 1) (NHWC) scaled to
[0, 1] (grey level / 16); ``data`` holds the same values as rows of 64 in NHWC
order (what a Pipeline passes along, with ``input_shape=(8, 8, 1)``).
There is no published train/test split; use
:func:`sklearn.model_selection.train_test_split`.
"""


@validate_params({"return_X_y": ["boolean"]}, prefer_skip_nested_validation=True)
def load_digits_images(*, return_X_y=False):
    """Load scikit-learn's 8x8 digits as NHWC images in [0, 1].

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(images, target)``.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With ``images`` of shape (1797, 8, 8, 1), float64 in [0, 1]; ``data``,
        the same values as rows of shape (1797, 64) (a view); ``target``, int
        labels 0..9; ``target_names`` and ``DESCR``.

    (images, target) : tuple of ndarray
        When ``return_X_y=True``.

    Examples
    --------
    >>> from sknngp.datasets import load_digits_images
    >>> digits = load_digits_images()
    >>> digits.images.shape, digits.data.shape, float(digits.images.max())
    ((1797, 8, 8, 1), (1797, 64), 1.0)
    """
    raw = load_digits()
    images = raw.images[..., None] / 16.0
    if return_X_y:
        return images, raw.target
    return Bunch(images=images, data=images.reshape(len(images), -1), target=raw.target,
                 target_names=raw.target_names, DESCR=DESCR)
