"""Image layout helpers shared by the transformers and the ensemble.

Images travel in one of two layouts:

- 4-D arrays ``(n_samples, height, width, channels)`` (NHWC), or
- 2-D rows of ``height * width * channels`` values in the same NHWC order, the
  layout scikit-learn transformers pass along, with the image shape given
  separately as ``input_shape=(height, width, channels)``.

The helpers here turn either layout into 2-D rows (so that
:func:`sklearn.utils.validation.validate_data` can check them) and remember
which layout to hand back.
"""

import operator

import numpy as np


def check_input_shape(input_shape, owner):
    """Return ``input_shape`` as a tuple of three positive ints (or None).

    Parameters
    ----------
    input_shape : tuple of int or None
        The ``(height, width, channels)`` the user passed.
    owner : str
        Name of the estimator, used in the error message.

    Returns
    -------
    shape : tuple of int or None

    Examples
    --------
    >>> check_input_shape([8, 8, 1], "ZCAWhitener")
    (8, 8, 1)
    """
    if input_shape is None:
        return None
    try:
        shape = tuple(operator.index(v) for v in input_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"{owner}: input_shape must be (height, width, channels), three "
            f"positive integers; got input_shape={input_shape!r}. For 8x8 "
            "grey-scale images use input_shape=(8, 8, 1)."
        )
    return shape


def _ndim(X):
    ndim = getattr(X, "ndim", None)
    if ndim is None and isinstance(X, (list, tuple)):
        try:
            ndim = np.ndim(X)
        except ValueError:  # ragged nested lists: let validate_data complain
            ndim = None
    return ndim


def to_rows(X, input_shape, owner):
    """Flatten 4-D images to 2-D rows; leave other inputs to ``validate_data``.

    Parameters
    ----------
    X : array-like
        2-D rows, or a 4-D array of NHWC images.
    input_shape : tuple of int or None
        The image shape the caller knows of (a validated ``input_shape``
        parameter, or the shape seen during ``fit``). A 4-D ``X`` must match it.
    owner : str
        Name of the estimator, used in error messages.

    Returns
    -------
    X : array-like
        ``X`` itself when it is not 4-D, else an ndarray of shape
        ``(n_samples, height * width * channels)``.
    image_shape : tuple of int or None
        ``X.shape[1:]`` for 4-D input, else ``input_shape``.
    was_4d : bool
        Whether the caller should hand 4-D arrays back.

    Examples
    --------
    >>> import numpy as np
    >>> rows, shape, was_4d = to_rows(np.zeros((5, 4, 4, 3)), None, "demo")
    >>> rows.shape, shape, was_4d
    ((5, 48), (4, 4, 3), True)
    """
    ndim = _ndim(X)
    if ndim == 4:
        X = np.asarray(X)
        shape = tuple(X.shape[1:])
        if input_shape is not None and shape != tuple(input_shape):
            raise ValueError(
                f"{owner}: X holds images of shape {shape} (height, width, "
                f"channels), but input_shape is {tuple(input_shape)}. Pass "
                "images of the shape used in fit, or change input_shape."
            )
        return X.reshape(X.shape[0], -1), shape, True
    if ndim is not None and ndim > 2:
        raise ValueError(
            f"{owner} expects X as 2-D rows (n_samples, n_features) or 4-D "
            "images (n_samples, height, width, channels); got an array with "
            f"shape {np.shape(X)}. Reshape X to one of these layouts."
        )
    return X, input_shape, False


def check_rows_match_shape(n_features, image_shape, owner):
    """Raise when 2-D rows cannot hold images of ``image_shape``.

    Examples
    --------
    >>> check_rows_match_shape(64, (8, 8, 1), "demo")
    """
    if image_shape is not None and n_features != int(np.prod(image_shape)):
        raise ValueError(
            f"{owner}: input_shape={tuple(image_shape)} describes images of "
            f"{int(np.prod(image_shape))} values, but X has {n_features} "
            "features per row. Pass the (height, width, channels) of your "
            "images, with rows in NHWC order."
        )
