"""Validation of the engine's inputs: data, ``get``, ``dtype``, ``device``."""

from __future__ import annotations

import operator

import jax
import numpy as np
import scipy.sparse

_GETS = ("nngp", "ntk")
_DTYPES = {"float32": np.float32, "float64": np.float64}


def _parse_get(get):
    single = isinstance(get, str)
    gets = (get,) if single else tuple(get) if isinstance(get, (tuple, list)) else ()
    if not gets or any(g not in _GETS for g in gets) or len(set(gets)) != len(gets):
        raise ValueError(
            f"get must be 'nngp', 'ntk' or a tuple of them such as ('nngp', 'ntk'); got {get!r}."
        )
    return gets, single


def _parse_dtype(dtype):
    key = dtype
    if dtype in (np.float32, np.float64) or isinstance(dtype, np.dtype):
        key = np.dtype(dtype).name
    if not isinstance(key, str) or key not in _DTYPES:
        raise ValueError(
            f"dtype must be 'float32' or 'float64'; got {dtype!r}."
        )
    return key


def as_images(X, input_shape, name):
    """Validate ``X`` and return a float64 array ``(n, *spatial, channels)``.

    2-D input with ``input_shape=(H, W, C)`` is reshaped row by row (NHWC order);
    2-D input without ``input_shape`` is a plain feature matrix.
    """
    if scipy.sparse.issparse(X):
        raise TypeError(
            f"{name} is a sparse {type(X).__name__}; kernels need dense input: "
            f"pass {name}.toarray()."
        )
    X = np.asarray(X)
    if np.iscomplexobj(X):
        raise ValueError(
            f"{name} is complex ({X.dtype}); kernels need real input: pass the real "
            "and imaginary parts as separate features."
        )
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise ValueError(f"{name} must be a numeric array; got dtype {X.dtype}.")
    X = X.astype(np.float64, copy=False)
    if X.ndim < 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features) or 4-D (n, H, W, C); "
            f"got shape {X.shape}. Reshape a single sample with X.reshape(1, -1)."
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} has 0 samples; got shape {X.shape}.")
    if X.shape[-1] == 0 or 0 in X.shape[1:]:
        raise ValueError(
            f"{name} has 0 features; got shape {X.shape}. A kernel needs at least one feature."
        )
    if not np.all(np.isfinite(X)):
        bad = int(np.size(X) - np.count_nonzero(np.isfinite(X)))
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s); remove or impute them "
            "(e.g. sklearn.impute.SimpleImputer) before computing kernels."
        )
    if input_shape is not None:
        shape = parse_input_shape(input_shape)
        if X.ndim == 2:
            if int(np.prod(shape)) != X.shape[1]:
                raise ValueError(
                    f"input_shape={tuple(input_shape)} holds {int(np.prod(shape))} values "
                    f"per sample but {name} has {X.shape[1]} features; input_shape must "
                    f"satisfy H*W*C == n_features (NHWC order)."
                )
            return X.reshape((X.shape[0],) + shape)
        if X.shape[1:] != shape:
            raise ValueError(
                f"input_shape={tuple(input_shape)} does not match {name}'s sample shape "
                f"{X.shape[1:]}; pass input_shape=None for arrays that are already NHWC."
            )
        return X
    return X


def parse_input_shape(input_shape):
    """``input_shape`` as a tuple ``(H, W, C)`` of positive ints, or None."""
    if input_shape is None:
        return None
    try:
        if isinstance(input_shape, (str, bytes)):
            raise TypeError
        shape = tuple(operator.index(s) for s in input_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1 or any(isinstance(s, bool) for s in input_shape):
        raise ValueError(
            f"input_shape must be (height, width, channels), three positive integers, "
            f"or None; got input_shape={input_shape!r}. For 8x8 grey-scale images "
            "use input_shape=(8, 8, 1)."
        )
    return shape


def check_finite_kernels(arrays, dkey, what="X"):
    """Raise if a computed kernel holds NaN or infinite values (overflow)."""
    for kind, K in arrays.items():
        if not np.all(np.isfinite(K)):
            raise ValueError(
                f"The {kind.upper()} kernel overflowed to inf or NaN in {dkey}: the "
                f"inputs ({what}) or W_std / b_std are too large for {dkey}. Rescale "
                f"{what} (e.g. sklearn.preprocessing.StandardScaler), use smaller W_std "
                "/ b_std" + ("" if dkey == "float64" else ", or dtype='float64'") + "."
            )


def resolve_devices(device):
    """``None``: all local devices of JAX's default backend; a platform name
    ("cpu", "gpu"), ``"gpu:1"``, a ``jax.Device`` or a list of them otherwise."""
    if device is None:
        return jax.local_devices()
    if isinstance(device, jax.Device):
        return [device]
    if isinstance(device, (list, tuple)):
        if not device:
            raise ValueError(
                f"device={device!r} names no device; pass None (JAX's default backend), "
                "a platform name such as 'cpu' or 'gpu', or a non-empty list of devices."
            )
        return [d for item in device for d in resolve_devices(item)]
    if isinstance(device, str):
        platform, _, index = device.partition(":")
        try:
            devices = jax.local_devices(backend=platform)
        except RuntimeError as exc:
            raise ValueError(
                f"device={device!r} is not available to JAX ({exc}). "
                f"Available: {[str(d) for d in jax.local_devices()]}."
            ) from None
        if index:
            if not index.isdigit() or int(index) >= len(devices):
                raise ValueError(
                    f"device={device!r}: there are {len(devices)} {platform} device(s)."
                )
            return [devices[int(index)]]
        return devices
    raise ValueError(
        f"device must be None, a platform name such as 'cpu' or 'gpu', 'gpu:0', "
        f"or a jax.Device; got {device!r}."
    )
