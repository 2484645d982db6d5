"""Shapes and methods shared with scikit-learn's GaussianProcessRegressor."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.gaussian_process import GaussianProcessRegressor

from sknngp import NNGPClassifier, NNGPRegressor, NTKClassifier, NTKRegressor


@pytest.mark.parametrize("Regressor", [NNGPRegressor, NTKRegressor])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_multi_output_std_and_cov_shapes_match_gpr(Regressor, n_targets):
    rng = np.random.RandomState(0)
    X, Xt = rng.normal(size=(20, 4)), rng.normal(size=(6, 4))
    y = rng.normal(size=(20, n_targets))
    y = y[:, 0] if n_targets == 1 else y
    ours = Regressor(architecture="fc", depth=2).fit(X, y)
    gpr = GaussianProcessRegressor().fit(X, y)
    for flag in ("return_std", "return_cov"):
        got, want = ours.predict(Xt, **{flag: True}), gpr.predict(Xt, **{flag: True})
        assert [a.shape for a in got] == [a.shape for a in want]
    # every target column carries the single-output spread
    single = Regressor(architecture="fc", depth=2).fit(X, rng.normal(size=20))
    _, std1 = single.predict(Xt, return_std=True)
    _, cov1 = single.predict(Xt, return_cov=True)
    _, std = ours.predict(Xt, return_std=True)
    _, cov = ours.predict(Xt, return_cov=True)
    if n_targets > 1:
        for j in range(n_targets):
            assert_allclose(std[:, j], std1, rtol=1e-12)
            assert_allclose(cov[:, :, j], cov1, rtol=1e-12)


def test_methods_listed_exist_only_where_they_make_sense():
    assert hasattr(NNGPRegressor, "log_marginal_likelihood")
    assert not hasattr(NTKRegressor, "log_marginal_likelihood")  # not a Bayesian posterior
    for cls in (NNGPClassifier, NTKClassifier):
        assert hasattr(cls, "predict_proba") and not hasattr(cls, "sample_y")
