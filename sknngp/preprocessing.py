"""Input preprocessing of the kernel studies: regularized ZCA whitening.

Lee et al. (2020, Sec. 3.10 and Fig. 9) found that regularized ZCA whitening of
the images lifts both kernel and finite-network accuracy. This module holds that
recipe as two scikit-learn transformers:

- :class:`PerImageStandardizer` - each image minus its mean, over its norm
  (stateless);
- :class:`ZCAWhitener` - optional per-channel standardization with training
  statistics, optional per-image standardization, then multiplication by the
  regularized inverse square root of the training second-moment matrix.

Both accept 2-D rows (``n_samples, height * width * channels`` in NHWC order)
and 4-D NHWC arrays, and return the layout they were given.
"""

from numbers import Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    OneToOneFeatureMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import Interval
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._images import check_input_shape, check_rows_match_shape, to_rows

_EPS = np.finfo(np.float64).eps


def _per_image_standardize(X):
    """Centre each row on its own mean and scale it to unit Euclidean norm.

    Rows that are constant (zero norm once centred, up to round-off) are
    returned as zeros instead of being divided by ~0.
    """
    X = np.asarray(X, dtype=np.float64)
    # Divide each row by its largest magnitude first (the result does not
    # depend on a row's scale): the mean and norm of rows of 1e160 overflow,
    # those of rows of 1e-160 underflow.
    top = np.abs(X).max(axis=1, keepdims=True)
    X = X / np.where(top > 0, top, 1.0)
    centred = X - X.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    # Round-off floor: centring a constant row leaves residues of order
    # eps * |x|, whose norm is at most ~ sqrt(d) * eps * max|x| (max|x| <= 1 now).
    floor = 10 * _EPS * np.sqrt(X.shape[1]) * np.abs(X).max(axis=1, keepdims=True)
    constant = norms <= floor
    centred[constant[:, 0]] = 0.0
    return centred / np.where(constant, 1.0, norms)


def _check_output_layout(estimator, was_4d):
    """A DataFrame cannot hold 4-D images: say so before sklearn's wrapper fails."""
    if was_4d and _get_output_config("transform", estimator)["dense"] != "default":
        raise ValueError(
            f"{type(estimator).__name__}: set_output(transform="
            f"{_get_output_config('transform', estimator)['dense']!r}) needs 2-D "
            "input, but X is a 4-D array of images. Pass X as rows of shape "
            "(n_samples, height * width * channels) with input_shape=(height, "
            "width, channels), or use set_output(transform='default')."
        )


class PerImageStandardizer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Centre each image on its own mean and scale it to unit norm.

    Each sample ``x`` (all pixels and channels together) becomes
    ``(x - mean(x)) / ||x - mean(x)||``, the "layer norm" step of the
    neural-tangents authors' preprocessing. The transform is stateless: ``fit``
    only records the number of features, and ``transform`` works unfitted.

    Read more in the :class:`ZCAWhitener` documentation, which can apply this
    step itself before whitening (``per_image_standardize=True``).

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    ZCAWhitener : Regularized ZCA whitening, optionally after this step.
    sklearn.preprocessing.Normalizer : Unit-norm rows without centring.

    Notes
    -----
    Images whose pixels are all equal have no direction to normalize; they are
    mapped to zeros. The step discards each image's mean and norm, so it has no
    inverse. 4-D input ``(n_samples, height, width, channels)`` is returned in
    the same shape.

    Examples
    --------
    >>> import numpy as np
    >>> from sknngp import PerImageStandardizer
    >>> X = np.array([[1.0, 2.0, 3.0], [4.0, 4.0, 4.0]])
    >>> PerImageStandardizer().fit_transform(X).round(4)
    array([[-0.7071,  0.    ,  0.7071],
           [ 0.    ,  0.    ,  0.    ]])
    """

    _parameter_constraints: dict = {}

    def __init__(self):
        pass

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Record the number of features (the transform itself is stateless).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, height, width, channels)
            Images, as 2-D rows or 4-D NHWC arrays.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The transformer.
        """
        X, _, _ = to_rows(X, None, type(self).__name__)
        validate_data(self, X, dtype=np.float64)
        return self

    def transform(self, X):
        """Standardize each image.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, height, width, channels)
            Images, as 2-D rows or 4-D NHWC arrays.

        Returns
        -------
        X_new : ndarray of the same shape as X, dtype float64
            Each image centred on its mean and scaled to unit norm.
        """
        X, shape, was_4d = to_rows(X, None, type(self).__name__)
        _check_output_layout(self, was_4d)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        out = _per_image_standardize(X)
        return out.reshape(-1, *shape) if was_4d else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


def _inverse_available(zca):
    if zca.per_image_standardize:
        raise AttributeError(
            "ZCAWhitener.inverse_transform is not available when "
            "per_image_standardize=True: per-image standardization discards "
            "each image's mean and norm, so the original images cannot be "
            "recovered. Set per_image_standardize=False, or apply "
            "PerImageStandardizer before the whitener and invert only the "
            "whitening."
        )
    return True


class ZCAWhitener(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Regularized ZCA whitening fitted on training images only.

    The recipe of Lee et al. (2020), as in the neural-tangents authors' code:
    optional per-channel standardization with training statistics, optional
    per-image standardization, then multiplication by
    ``W = (C + reg * I)^(-1/2)`` where ``C = X^T X / n`` is the second-moment
    matrix of the (standardized) training data. Test data go through the same
    steps with the training statistics and the same ``W``.

    Parameters
    ----------
    zca_reg : float, default=0.1
        Strength of the regularizer added to the eigenvalues of ``C``. Small
        values whiten fully (and amplify noise directions); large values leave
        the data nearly unchanged up to a scale. The paper's best results use
        values around 0.1 (relative scale).

    zca_reg_absolute_scale : bool, default=False
        If False, the regularizer is ``zca_reg * tr(C) / n_features``, i.e.
        relative to the average eigenvalue of ``C`` (the paper's convention).
        If True, ``zca_reg`` is added to the eigenvalues as is.

    standardize_channels : bool, default=False
        Subtract the training mean of each channel and divide by its training
        standard deviation, pooled over images and pixel positions, before
        anything else. Without ``input_shape`` (and for 2-D input), each
        feature is its own channel, as in
        :class:`~sklearn.preprocessing.StandardScaler`. Named after what it
        standardizes, since for images "per channel" is the usual choice.

    per_image_standardize : bool, default=False
        After channel standardization, centre each image on its own mean and
        scale it to unit norm (see :class:`PerImageStandardizer`). This step is
        not invertible, so :meth:`inverse_transform` is unavailable with it.

    input_shape : tuple of int (height, width, channels), default=None
        Shape of one image when ``X`` is given as 2-D rows in NHWC order. Only
        needed to locate channels for ``standardize_channels``; 4-D input
        carries its own shape.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Orthonormal eigenvectors of ``C`` (rows), by decreasing eigenvalue.
        ``n_components = min(n_samples, n_features)``; the eigenvalues of the
        remaining directions (orthogonal to the training data) are zero.

    eigenvalues_ : ndarray of shape (n_components,)
        Eigenvalues of ``C`` matching ``components_``.

    regularization_ : float
        The amount ``reg`` actually added to every eigenvalue.

    channel_mean_ : ndarray of shape (n_channels,) or None
        Training mean of each channel, or None without ``standardize_channels``.

    channel_scale_ : ndarray of shape (n_channels,) or None
        Training standard deviation of each channel (1 where it is 0), or None
        without ``standardize_channels``.

    input_shape_ : tuple of int or None
        Image shape seen in fit (from ``input_shape`` or 4-D ``X``), or None.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    PerImageStandardizer : The per-image standardization step on its own.
    sklearn.decomposition.PCA : With ``whiten=True``, whitening that rotates
        into the principal axes (PCA whitening) instead of staying in the pixel
        basis.

    Notes
    -----
    With ``C = U diag(s) U^T`` (``X`` standardized as configured, ``n`` its
    rows, ``d`` its features),

    .. math::

        \\mathrm{reg} = \\begin{cases} \\lambda \\, \\mathrm{tr}(C) / d &
        \\text{relative (default)} \\\\ \\lambda & \\text{absolute}
        \\end{cases}, \\qquad
        W = U \\, \\mathrm{diag}\\big((s + \\mathrm{reg})^{-1/2}\\big) \\, U^T,

    and ``transform`` returns ``X W``. Hence the second-moment matrix of the
    whitened training data has eigenvalues ``s / (s + reg)`` on the same
    eigenvectors: close to 1 where ``s >> reg`` and damped where the data hold
    little energy. ``W`` is symmetric, so the output stays in the pixel basis
    (it still looks like an image), unlike PCA whitening.

    ``C`` is not centred on the feature means, following the neural-tangents
    authors; centring comes from ``standardize_channels`` (channel means) or
    ``per_image_standardize`` (image means). Everything is computed in float64.

    When ``n_samples < n_features``, ``C`` is rank deficient. The
    decomposition then comes from a thin SVD of the ``n x d`` data (cost
    ``O(n^2 d)``, never a ``d x d`` eigenproblem of a singular matrix), and
    ``W`` is applied exactly, including its factor ``reg^(-1/2)`` on the
    directions orthogonal to the training data. (The neural-tangents authors'
    code instead leaves those directions unscaled; the two agree whenever
    ``n_samples >= n_features``.)

    References
    ----------
    .. [1] J. Lee, S. S. Schoenholz, J. Pennington, B. Adlam, L. Xiao, R. Novak
       and J. Sohl-Dickstein, "Finite Versus Infinite Neural Networks: an
       Empirical Study", NeurIPS 2020, arXiv:2007.15801, Sec. 3.10.
    .. [2] A. J. Bell and T. J. Sejnowski, "The 'independent components' of
       natural scenes are edge filters", Vision Research 37(23), 1997.
    .. [3] A. Krizhevsky, "Learning Multiple Layers of Features from Tiny
       Images", 2009, Appendix A.

    Examples
    --------
    With a negligible regularizer the training data come out white:

    >>> import numpy as np
    >>> from sknngp import ZCAWhitener
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4))
    >>> Z = ZCAWhitener(zca_reg=1e-12).fit_transform(X)
    >>> np.allclose(Z.T @ Z / len(Z), np.eye(4), atol=1e-8)
    True

    The paper's recipe on 8x8 digit images, in a pipeline with a kernel
    estimator (any estimator works here):

    >>> from sklearn.datasets import load_digits
    >>> from sklearn.kernel_ridge import KernelRidge
    >>> from sklearn.pipeline import make_pipeline
    >>> X, y = load_digits(return_X_y=True)
    >>> zca = ZCAWhitener(zca_reg=0.1, standardize_channels=True,
    ...                   per_image_standardize=True, input_shape=(8, 8, 1))
    >>> model = make_pipeline(zca, KernelRidge(alpha=1e-2)).fit(X[:500], y[:500])
    >>> model.predict(X[500:503]).shape
    (3,)
    """

    _parameter_constraints: dict = {
        "zca_reg": [Interval(Real, 0, None, closed="left")],
        "zca_reg_absolute_scale": ["boolean"],
        "standardize_channels": ["boolean"],
        "per_image_standardize": ["boolean"],
        "input_shape": [None, tuple, list],
    }

    def __init__(
        self,
        zca_reg=0.1,
        *,
        zca_reg_absolute_scale=False,
        standardize_channels=False,
        per_image_standardize=False,
        input_shape=None,
    ):
        self.zca_reg = zca_reg
        self.zca_reg_absolute_scale = zca_reg_absolute_scale
        self.standardize_channels = standardize_channels
        self.per_image_standardize = per_image_standardize
        self.input_shape = input_shape

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the standardization statistics and the whitening matrix.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, height, width, channels)
            Training images, as 2-D NHWC rows or 4-D NHWC arrays.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted whitener.
        """
        name = type(self).__name__
        shape = check_input_shape(self.input_shape, name)
        X, shape, _ = to_rows(X, shape, name)
        X = validate_data(self, X, dtype=np.float64)
        check_rows_match_shape(X.shape[1], shape, name)
        if self.per_image_standardize and X.shape[1] == 1:
            raise ValueError(
                f"{name}: per_image_standardize=True maps every image of a single "
                "value to 0, leaving nothing to whiten, but X has n_features=1. "
                "Set per_image_standardize=False, or pass whole images."
            )
        self.input_shape_ = shape

        self.channel_mean_ = self.channel_scale_ = None
        if self.standardize_channels:
            pixels = X.reshape(X.shape[0], -1, self._n_channels())
            mean = pixels.mean(axis=(0, 1))
            scale = pixels.std(axis=(0, 1))
            # Constant channels: keep them centred but unscaled (a standard
            # deviation at round-off level would blow them up).
            constant = scale <= 10 * _EPS * np.maximum(np.abs(mean), 1.0)
            self.channel_mean_, self.channel_scale_ = mean, np.where(constant, 1.0, scale)

        # Whitening does not depend on the data's overall scale (with the
        # relative zca_reg): work on X / 2**k with max |X / 2**k| ~ 1, so that
        # second moments of data of 1e160 (or 1e-160) neither overflow nor
        # underflow; the public eigenvalues_ / regularization_ are in X's units.
        Xs = self._standardize(X)
        top = float(np.max(np.abs(Xs))) if Xs.size else 0.0
        self._scale = 2.0 ** round(np.log2(top)) if top > 0 else 1.0
        Xs = Xs / self._scale
        n, d = Xs.shape
        if n >= d:
            # C is d x d and (generically) full rank: symmetric eigensolver.
            s, U = np.linalg.eigh(Xs.T @ Xs / n)
            s, components = s[::-1], U[:, ::-1].T
        else:
            # n < d: the thin SVD of the n x d data gives the n non-trivial
            # eigenpairs of C directly (s = sigma^2 / n) with orthonormal rows.
            _, sigma, components = np.linalg.svd(Xs, full_matrices=False)
            s = sigma**2 / n
        s = np.clip(s, 0.0, None)  # eigh may return -eps for null directions
        trace = np.einsum("ij,ij->", Xs, Xs) / n
        reg = float(self.zca_reg / np.float64(self._scale) ** 2 if self.zca_reg_absolute_scale
                    else self.zca_reg * trace / d)

        if reg <= 0.0:
            rank = int(np.sum(s > s[0] * max(n, d) * _EPS)) if s[0] > 0 else 0
            if rank < d:
                raise ValueError(
                    f"{name}: the training second-moment matrix X^T X / n is "
                    f"singular (rank {rank} of {d} features, n_samples={n}) and "
                    f"the regularizer added to its eigenvalues is 0 (zca_reg="
                    f"{self.zca_reg!r}, zca_reg_absolute_scale="
                    f"{self.zca_reg_absolute_scale}, tr(C)/d={trace / d:.3g}). "
                    "Use zca_reg > 0 (e.g. 0.1); if the training data are all "
                    "zeros, also set zca_reg_absolute_scale=True."
                )
        self.components_ = components
        self._eigenvalues, self._regularization = s, reg  # in units of X / _scale
        with np.errstate(over="ignore"):
            square = np.float64(self._scale) ** 2
            self.eigenvalues_ = s * square
            self.regularization_ = float(reg * square)
        return self

    def transform(self, X):
        """Whiten images with the training statistics.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, height, width, channels)
            Images, as 2-D NHWC rows or 4-D NHWC arrays.

        Returns
        -------
        X_new : ndarray of the same shape as X, dtype float64
            The whitened images.
        """
        X, shape, was_4d = self._validate_for_transform(X)
        _check_output_layout(self, was_4d)
        out = self._apply(self._standardize(X) / self._scale, power=-0.5)
        return out.reshape(-1, *shape) if was_4d else out

    @available_if(_inverse_available)
    def inverse_transform(self, X):
        """Map whitened images back to the input space.

        Exact inverse of :meth:`transform` (up to round-off), since ``W`` is
        invertible for any ``reg > 0``. Unavailable with
        ``per_image_standardize=True``, which discards each image's mean and
        norm.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, height, width, channels)
            Whitened images.

        Returns
        -------
        X_original : ndarray of the same shape as X, dtype float64
            The images before whitening (and before channel standardization).
        """
        X, shape, was_4d = self._validate_for_transform(X, inverse=True)
        out = self._apply(X, power=0.5) * self._scale
        if self.channel_mean_ is not None:
            n_ch = self._n_channels()
            pixels = out.reshape(out.shape[0], -1, n_ch)
            out = (pixels * self.channel_scale_ + self.channel_mean_).reshape(out.shape)
        return out.reshape(-1, *shape) if was_4d else out

    # -- helpers -----------------------------------------------------------------

    def _n_channels(self):
        return self.input_shape_[-1] if self.input_shape_ is not None else self.n_features_in_

    def _validate_for_transform(self, X, inverse=False):
        check_is_fitted(self)
        name = type(self).__name__
        X, shape, was_4d = to_rows(X, self.input_shape_, name)
        if inverse:
            # Whitened data carry no new feature names to check against.
            X = check_array(X, dtype=np.float64)
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {name} is expecting "
                    f"{self.n_features_in_} features as input."
                )
        else:
            X = validate_data(self, X, dtype=np.float64, reset=False)
        return X, shape, was_4d

    def _standardize(self, X):
        if self.channel_mean_ is not None:
            pixels = X.reshape(X.shape[0], -1, self._n_channels())
            X = ((pixels - self.channel_mean_) / self.channel_scale_).reshape(X.shape)
        if self.per_image_standardize:
            X = _per_image_standardize(X)
        return X

    def _apply(self, X, power):
        """Multiply rows by ``(C + reg I)^power`` (power = -1/2 or +1/2)."""
        V = self.components_
        coef = X @ V.T  # coordinates in the eigenbasis of C
        out = (coef * (self._eigenvalues + self._regularization) ** power) @ V
        if V.shape[0] < V.shape[1]:
            # Directions orthogonal to the training data: eigenvalue 0, so the
            # factor is reg**power (exactly what the full d x d W would do).
            out += self._regularization**power * (X - coef @ V)
        return out
