"""Tests of sknngp.preprocessing: the ZCA recipe as properties, not snapshots."""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sknngp.preprocessing import PerImageStandardizer, ZCAWhitener


def _correlated(n, d, seed=0):
    rng = np.random.RandomState(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)


def _dense_whitening(X, reg):
    """W = (X^T X / n + reg I)^(-1/2) from a full d x d eigendecomposition."""
    C = X.T @ X / len(X)
    s, U = np.linalg.eigh(C)
    return (U / np.sqrt(np.clip(s, 0, None) + reg)) @ U.T


# -- the whitening itself ------------------------------------------------------


@pytest.mark.parametrize("n, d", [(300, 12), (7, 12)], ids=["n>d", "n<d"])
@pytest.mark.parametrize("absolute", [False, True])
def test_matches_dense_inverse_square_root(n, d, absolute):
    X = _correlated(n, d)
    zca = ZCAWhitener(zca_reg=0.3, zca_reg_absolute_scale=absolute).fit(X)
    C = X.T @ X / n
    expected_reg = 0.3 if absolute else 0.3 * np.trace(C) / d
    assert zca.regularization_ == pytest.approx(expected_reg, rel=1e-12)
    W = _dense_whitening(X, expected_reg)
    X_test = _correlated(5, d, seed=1)
    assert_allclose(zca.transform(X_test), X_test @ W, rtol=1e-10, atol=1e-10)
    # Applying the transform to the identity reads W off row by row.
    assert_allclose(zca.transform(np.eye(d)), W, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n, d", [(400, 10), (6, 10)], ids=["n>d", "n<d"])
def test_whitened_train_eigenvalues_are_s_over_s_plus_reg(n, d):
    X = _correlated(n, d)
    zca = ZCAWhitener(zca_reg=0.5).fit(X)
    Z = zca.transform(X)
    s = np.linalg.eigvalsh(X.T @ X / n)[::-1]
    reg = zca.regularization_
    out = np.linalg.eigvalsh(Z.T @ Z / n)[::-1]
    assert_allclose(out, s / (s + reg), atol=1e-12)
    # Same eigenvectors: the output second moment is diagonal in the basis of C.
    V = zca.components_
    s_fit = zca.eigenvalues_
    assert_allclose(V @ (Z.T @ Z / n) @ V.T, np.diag(s_fit / (s_fit + reg)), atol=1e-12)


def test_tiny_reg_whitens_to_identity_when_n_exceeds_d():
    X = _correlated(1000, 8)
    Z = ZCAWhitener(zca_reg=1e-12).fit_transform(X)
    assert_allclose(Z.T @ Z / len(Z), np.eye(8), atol=1e-8)


def test_tiny_reg_whitens_to_identity_on_the_span_when_n_below_d():
    n, d = 5, 20
    X = _correlated(n, d)
    zca = ZCAWhitener(zca_reg=1e-12).fit(X)
    Z = zca.transform(X)
    V = zca.components_
    assert V.shape == (n, d)
    assert_allclose(V @ V.T, np.eye(n), atol=1e-12)
    # Identity on the n-dimensional span of the training data, zero elsewhere.
    assert_allclose(Z.T @ Z / n, V.T @ V, atol=1e-8)


def test_large_reg_approaches_a_scaled_identity():
    X = _correlated(50, 6)
    zca = ZCAWhitener(zca_reg=1e8, zca_reg_absolute_scale=True).fit(X)
    # W = (C + 1e8 I)^(-1/2) = 1e-4 (I - C / 2e8 + ...)
    assert_allclose(1e4 * zca.transform(X), X, atol=1e-5 * np.abs(X).max())


def test_statistics_come_from_training_data_only():
    X_train, X_test = _correlated(200, 6, seed=0), 3 * _correlated(50, 6, seed=1)
    zca = ZCAWhitener(zca_reg=0.1, standardize_channels=True).fit(X_train)
    Z_test = zca.transform(X_test)
    refit = ZCAWhitener(zca_reg=0.1, standardize_channels=True).fit_transform(X_test)
    assert not np.allclose(Z_test, refit)
    # The test transform uses the training mean, scale and W, nothing else.
    Xs = (X_test - X_train.mean(0)) / X_train.std(0)
    Xs_train = (X_train - X_train.mean(0)) / X_train.std(0)
    reg = 0.1 * np.trace(Xs_train.T @ Xs_train / 200) / 6
    assert_allclose(Z_test, Xs @ _dense_whitening(Xs_train, reg), rtol=1e-10, atol=1e-10)


def test_fit_transform_equals_fit_then_transform():
    X = _correlated(40, 9)
    zca = ZCAWhitener(per_image_standardize=True, standardize_channels=True)
    assert_allclose(zca.fit_transform(X), clone(zca).fit(X).transform(X))


def test_computes_in_float64_from_float32_input():
    X = _correlated(100, 5)
    Z32 = ZCAWhitener().fit(X.astype(np.float32)).transform(X.astype(np.float32))
    Z64 = ZCAWhitener().fit(X.astype(np.float32).astype(np.float64)).transform(
        X.astype(np.float32).astype(np.float64)
    )
    assert Z32.dtype == np.float64
    assert_allclose(Z32, Z64, rtol=0, atol=0)


# -- standardization steps ------------------------------------------------------


def test_per_image_standardization_math():
    rng = np.random.RandomState(0)
    X = rng.uniform(0, 5, size=(6, 12))
    X[3] = 2.5  # a constant image
    out = PerImageStandardizer().fit_transform(X)
    varying = np.arange(6) != 3
    assert_allclose(out[varying].mean(axis=1), 0, atol=1e-15)
    assert_allclose(np.linalg.norm(out[varying], axis=1), 1, rtol=1e-14)
    assert_allclose(out[3], 0)
    centred = X[0] - X[0].mean()
    assert_allclose(out[0], centred / np.linalg.norm(centred))
    # Invariant to each image's offset and (positive) contrast.
    assert_allclose(PerImageStandardizer().transform(3 * X + 7), out, atol=1e-14)


def test_per_image_standardizer_is_stateless_and_keeps_4d():
    rng = np.random.RandomState(0)
    images = rng.uniform(size=(4, 3, 3, 2))
    out = PerImageStandardizer().transform(images)  # no fit needed
    assert out.shape == images.shape
    assert_allclose(out.reshape(4, -1), PerImageStandardizer().transform(images.reshape(4, -1)))


def test_zca_with_per_image_step_equals_pipeline_of_the_two():
    X = _correlated(60, 10)
    fused = ZCAWhitener(zca_reg=0.2, per_image_standardize=True).fit(X)
    piped = make_pipeline(PerImageStandardizer(), ZCAWhitener(zca_reg=0.2)).fit(X)
    X_test = _correlated(4, 10, seed=3)
    assert_allclose(fused.transform(X_test), piped.transform(X_test), atol=1e-12)


def test_channel_standardization_pools_pixels_of_each_channel():
    rng = np.random.RandomState(0)
    images = rng.normal(size=(30, 4, 4, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, -2.0]
    zca = ZCAWhitener(standardize_channels=True, input_shape=(4, 4, 3))
    zca.fit(images.reshape(30, -1))
    assert_allclose(zca.channel_mean_, images.mean(axis=(0, 1, 2)))
    assert_allclose(zca.channel_scale_, images.std(axis=(0, 1, 2)))
    standardized = (images - zca.channel_mean_) / zca.channel_scale_
    expected = ZCAWhitener().fit(standardized.reshape(30, -1))
    assert_allclose(zca.transform(images.reshape(30, -1)),
                    expected.transform(standardized.reshape(30, -1)), atol=1e-12)


def test_channel_standardization_without_shape_is_per_feature():
    X = _correlated(80, 5)
    zca = make_pipeline(StandardScaler(), ZCAWhitener()).fit(X)
    fused = ZCAWhitener(standardize_channels=True).fit(X)
    assert_allclose(fused.transform(X), zca.transform(X), atol=1e-12)


def test_constant_channel_is_centred_not_scaled():
    X = _correlated(20, 4)
    X[:, 2] = 3.0
    zca = ZCAWhitener(standardize_channels=True).fit(X)
    assert zca.channel_scale_[2] == 1.0
    assert np.all(np.isfinite(zca.transform(X)))


# -- layouts: 4-D images, pandas ---------------------------------------------------


def test_4d_input_returns_4d_and_matches_rows():
    rng = np.random.RandomState(0)
    images = rng.uniform(size=(25, 4, 4, 2))
    kwargs = dict(zca_reg=0.1, standardize_channels=True, per_image_standardize=True)
    zca4 = ZCAWhitener(**kwargs).fit(images)
    zca2 = ZCAWhitener(input_shape=(4, 4, 2), **kwargs).fit(images.reshape(25, -1))
    out4 = zca4.transform(images)
    assert out4.shape == images.shape
    assert zca4.input_shape_ == (4, 4, 2)
    assert_allclose(out4.reshape(25, -1), zca2.transform(images.reshape(25, -1)))
    # A model fitted on rows takes 4-D images of the same shape, and vice versa.
    assert_allclose(zca2.transform(images), out4)
    assert_allclose(zca4.transform(images.reshape(25, -1)), out4.reshape(25, -1))


def test_inverse_transform_round_trip():
    rng = np.random.RandomState(0)
    for images in (rng.uniform(size=(40, 3, 3, 2)), rng.uniform(size=(5, 3, 3, 2))):
        zca = ZCAWhitener(zca_reg=0.05, standardize_channels=True).fit(images)
        assert_allclose(zca.inverse_transform(zca.transform(images)), images, atol=1e-12)
        rows = images.reshape(len(images), -1)
        assert_allclose(zca.inverse_transform(zca.transform(rows)), rows, atol=1e-12)


def test_pandas_output_keeps_column_names():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_correlated(30, 4), columns=["a", "b", "c", "d"])
    for est in (ZCAWhitener(), PerImageStandardizer()):
        out = clone(est).set_output(transform="pandas").fit_transform(X)
        assert isinstance(out, pd.DataFrame)
        assert list(out.columns) == ["a", "b", "c", "d"]
        assert_allclose(out.to_numpy(), clone(est).fit_transform(X.to_numpy()))


def test_get_feature_names_out_is_one_to_one():
    zca = ZCAWhitener().fit(_correlated(10, 3))
    assert list(zca.get_feature_names_out()) == ["x0", "x1", "x2"]


def test_pickle_round_trip_keeps_the_transform():
    X = _correlated(30, 6)
    zca = ZCAWhitener(per_image_standardize=True).fit(X)
    assert_allclose(pickle.loads(pickle.dumps(zca)).transform(X), zca.transform(X))


# -- errors: each message says what, the value, and the fix ---------------------------


@pytest.mark.parametrize("bad", [(8, 8), (8, 0, 1), ("a", 8, 1), (8.5, 8, 1)])
def test_error_bad_input_shape(bad):
    with pytest.raises(ValueError, match=r"input_shape must be \(height, width, channels\).*"
                                         r"got input_shape=.*input_shape=\(8, 8, 1\)"):
        ZCAWhitener(input_shape=bad).fit(np.ones((3, 64)))


def test_error_input_shape_does_not_match_rows():
    with pytest.raises(ValueError, match=r"input_shape=\(4, 4, 3\) describes images of 48 "
                                         r"values, but X has 64 features.*NHWC"):
        ZCAWhitener(input_shape=(4, 4, 3)).fit(np.ones((3, 64)))


def test_error_4d_images_of_another_shape():
    zca = ZCAWhitener().fit(np.random.RandomState(0).normal(size=(10, 4, 4, 1)))
    with pytest.raises(ValueError, match=r"images of shape \(2, 8, 1\).*input_shape is "
                                         r"\(4, 4, 1\)\. Pass images of the shape used in fit"):
        zca.transform(np.ones((2, 2, 8, 1)))


def test_error_input_of_rank_three():
    with pytest.raises(ValueError, match=r"expects X as 2-D rows.*or 4-D images.*shape "
                                         r"\(3, 4, 4\)\. Reshape X"):
        ZCAWhitener().fit(np.ones((3, 4, 4)))


def test_error_unregularized_singular_covariance():
    with pytest.raises(ValueError, match=r"singular \(rank 3 of 6 features, n_samples=3\).*"
                                         r"zca_reg=0\b.*Use zca_reg > 0"):
        ZCAWhitener(zca_reg=0).fit(_correlated(3, 6))
    # Full rank and zca_reg=0 is plain (unregularized) whitening.
    Z = ZCAWhitener(zca_reg=0).fit_transform(_correlated(100, 3))
    assert_allclose(Z.T @ Z / 100, np.eye(3), atol=1e-10)


def test_error_all_zero_training_data_with_relative_reg():
    with pytest.raises(ValueError, match=r"rank 0 of 2.*tr\(C\)/d=0.*"
                                         r"zca_reg_absolute_scale=True"):
        ZCAWhitener(zca_reg=0.1).fit(np.zeros((5, 2)))


def test_error_per_image_on_single_feature():
    with pytest.raises(ValueError, match=r"per_image_standardize=True.*n_features=1.*"
                                         r"Set per_image_standardize=False"):
        ZCAWhitener(per_image_standardize=True).fit(np.ones((5, 1)))


def test_error_negative_zca_reg_names_the_parameter():
    with pytest.raises(ValueError, match=r"'zca_reg' parameter of ZCAWhitener must be a float "
                                         r"in the range \[0(\.0)?, inf\).*Got -1"):
        ZCAWhitener(zca_reg=-1).fit(np.ones((3, 2)))


def test_inverse_transform_unavailable_with_per_image_standardization():
    zca = ZCAWhitener(per_image_standardize=True).fit(_correlated(10, 4))
    assert not hasattr(zca, "inverse_transform")
    with pytest.raises(AttributeError) as excinfo:
        zca.inverse_transform(np.ones((2, 4)))
    assert "per_image_standardize=True" in str(excinfo.value.__cause__)
    assert "Set per_image_standardize=False" in str(excinfo.value.__cause__)


def test_error_inverse_transform_wrong_width():
    zca = ZCAWhitener().fit(_correlated(10, 4))
    with pytest.raises(ValueError, match="X has 3 features, but ZCAWhitener is expecting 4"):
        zca.inverse_transform(np.ones((2, 3)))


def test_error_pandas_output_of_4d_images():
    pytest.importorskip("pandas")
    images = np.random.RandomState(0).uniform(size=(10, 2, 2, 1))
    for est in (ZCAWhitener(), PerImageStandardizer()):
        est = clone(est).set_output(transform="pandas").fit(images)
        with pytest.raises(ValueError, match=r"set_output\(transform='pandas'\) needs 2-D input"
                                             r".*4-D array.*input_shape=\(height, width"):
            est.transform(images)


# -- scikit-learn's common checks: no exemption needed ---------------------------------


@parametrize_with_checks(
    [
        ZCAWhitener(),
        ZCAWhitener(zca_reg=1.0, zca_reg_absolute_scale=True, standardize_channels=True),
        ZCAWhitener(standardize_channels=True, per_image_standardize=True),
        PerImageStandardizer(),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
