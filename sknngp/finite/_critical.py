"""The critical learning rate of gradient descent on the MSE, from the empirical NTK.

For the loss ``0.5 * mean((f - y)**2)`` over ``m`` target entries, one
full-batch gradient step of learning rate ``lr`` moves the outputs by
``-lr / m * Theta (f - y)`` to first order, where ``Theta = J J^T`` is the
network's empirical NTK (``J`` the Jacobian of the ``m`` outputs with respect
to the trained parameters). The step is stable along every eigendirection
only while ``lr * lambda_max(Theta) / m < 2``: the critical learning rate is
``2 m / lambda_max(Theta)`` (Lee et al. 2019, arXiv:1902.06720, Sec. 2.4;
Lee et al. 2020 set learning rates as fractions of it).

``lambda_max`` is found by power iteration on products ``Theta v = J (J^T v)``:
one vector-Jacobian product (a backward pass) and one Jacobian-vector product
(a forward-mode pass) per iteration, so the ``m x m`` NTK is never formed.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from sklearn.utils import check_random_state

from ._modules import FiniteNetModule

#: rows on which an estimator's ``lr="auto"`` measures ``lambda_max``.
AUTO_LR_SAMPLES = 1024


def top_ntk_eigenvalue(module, X, *, n_iter=30, tol=1e-3, seed=0):
    """``lambda_max`` of the empirical NTK of ``module`` on the rows ``X``.

    Parameters
    ----------
    module : FiniteNetModule
        The network (all ensemble members; their NTKs are blocks of one
        block-diagonal NTK, so the largest member eigenvalue is returned).
    X : torch.Tensor of shape (n_samples, ...)
        Inputs, on the module's device and dtype.
    n_iter : int, default=30
        Maximum power iterations.
    tol : float, default=1e-3
        Stop when the estimate changes by less than this, relatively.
    seed : int, default=0
        Seed of the starting vector.

    Returns
    -------
    float
    """
    params = {k: v.detach() for k, v in module.named_parameters()}

    def f(p):
        return torch.func.functional_call(module, p, (X,))

    with torch.no_grad():
        shape = f(params).shape
    gen = torch.Generator().manual_seed(int(seed))
    v = torch.randn(shape, generator=gen, dtype=torch.float64).to(X.device, X.dtype)
    v = v / v.norm()
    estimate = 0.0
    for _ in range(n_iter):
        _, vjp = torch.func.vjp(f, params)
        (u,) = vjp(v)  # J^T v
        _, w = torch.func.jvp(f, (params,), (u,))  # J J^T v
        new = float(w.norm())
        if not np.isfinite(new):
            raise FloatingPointError(
                "the empirical NTK's power iteration gave a non-finite value: the "
                "network's outputs overflow on these inputs; rescale X."
            )
        if new == 0.0:
            return 0.0
        v = w / new
        if abs(new - estimate) <= tol * new:
            return new
        estimate = new
    return estimate


def critical_learning_rate(estimator_or_module, X, y=None, *, max_samples=AUTO_LR_SAMPLES,
                           n_iter=30, random_state=0):
    """Critical learning rate ``2 m / lambda_max(Theta)`` of MSE gradient descent.

    ``Theta`` is the *empirical* NTK of a finite network on ``X`` and ``m``
    the number of target entries (``n_samples * n_outputs``), matching the
    ``0.5 * mean((f - y)**2)`` loss of :class:`FiniteNetRegressor` and of
    :class:`FiniteNetClassifier` with ``loss="mse"``. Full-batch gradient
    descent of learning rate ``lr`` is stable along the top NTK direction
    only for ``lr`` below this value (for the linearized network; a finite
    network may tolerate a little more, Lewkowycz et al. 2020,
    arXiv:2003.02218).

    Parameters
    ----------
    estimator_or_module : FiniteNetRegressor, FiniteNetClassifier or FiniteNetModule
        An unfitted estimator: the network it would initialize (with its
        ``random_state``; an int gives the network ``fit`` starts from). A
        fitted estimator: its trained network. A module: used as is.
    X : array-like of shape (n_samples, n_features) or \
            (n_samples, height, width, channels)
        Inputs (the training set).
    y : array-like, default=None
        Targets; needed for an unfitted estimator only, to know the number
        of outputs (the classes of a classifier, the columns of a regressor).
    max_samples : int or None, default=1024
        ``lambda_max`` is measured on at most this many rows (a random
        subset) and scaled to ``n_samples`` rows: the top eigenvalue of an
        NTK grows in proportion to the number of rows (its top eigenvector
        is close to the constant direction), so ``m / lambda_max`` is nearly
        independent of ``n``. None uses every row.
    n_iter : int, default=30
        Maximum power iterations (each one backward and one forward-mode
        pass over the rows).
    random_state : int, RandomState instance or None, default=0
        Seeds the row subset and the starting vector.

    Returns
    -------
    lr_crit : float
        ``2 * n_samples * n_outputs / lambda_max``.

    Examples
    --------
    >>> import numpy as np
    >>> from sknngp.finite import FiniteNetRegressor, critical_learning_rate
    >>> X = np.random.RandomState(0).normal(size=(50, 4))
    >>> y = X[:, 0]
    >>> lr = critical_learning_rate(FiniteNetRegressor(random_state=0), X, y)
    >>> bool(lr > 0)
    True
    """
    if max_samples is not None and (not isinstance(max_samples, Integral)
                                    or isinstance(max_samples, bool) or max_samples < 1):
        raise ValueError(
            f"critical_learning_rate: max_samples={max_samples!r}; pass a positive "
            "int or None (every row)."
        )
    if not isinstance(n_iter, Integral) or isinstance(n_iter, bool) or n_iter < 1:
        raise ValueError(f"critical_learning_rate: n_iter={n_iter!r}; pass a positive int.")
    if isinstance(estimator_or_module, FiniteNetModule):
        module = estimator_or_module
        rows = np.asarray(X, dtype=np.float32)
        rows = rows.reshape(len(rows), -1)
    elif hasattr(estimator_or_module, "_initial_module"):
        module, rows = estimator_or_module._module_for_critical_lr(X, y)
    else:
        raise TypeError(
            "critical_learning_rate: expected a FiniteNetRegressor, FiniteNetClassifier "
            f"or FiniteNetModule, got {type(estimator_or_module).__name__}."
        )
    return critical_lr_of_module(module, rows, max_samples=max_samples, n_iter=n_iter,
                                 random_state=random_state)


def critical_lr_of_module(module, rows, *, max_samples=AUTO_LR_SAMPLES, n_iter=30,
                          random_state=0):
    """``2 m / lambda_max`` of ``module`` on float32 ``rows`` (a NumPy array)."""
    rng = check_random_state(random_state)
    n = len(rows)
    if n == 0:
        raise ValueError("critical_learning_rate: X has no rows.")
    if max_samples is not None and n > max_samples:
        rows = rows[np.sort(rng.choice(n, max_samples, replace=False))]
    device = next(module.parameters()).device
    dtype = next(module.parameters()).dtype
    X = torch.as_tensor(np.ascontiguousarray(rows)).to(device, dtype)
    lam = top_ntk_eigenvalue(module, X, n_iter=n_iter, seed=rng.randint(2**31 - 1))
    if lam <= 0:
        raise ValueError(
            "critical_learning_rate: the empirical NTK is zero on X (the network's "
            "outputs do not depend on its parameters there), so every learning "
            "rate is stable; set lr to a number."
        )
    return 2.0 * len(X) * module.n_outputs / lam
