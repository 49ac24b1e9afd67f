"""The scikit-learn estimators of motifcat pass scikit-learn's own estimator checks."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from motifcat.errors import AnalysisError
from motifcat.ingest.cluster import MotifClusterer
from motifcat.ingest.zernike import PCAFeatures, ZernikeFeatures

# ZernikeFeatures reads every row of X as a square patch (side = sqrt(n_features)) on which
# the Zernike basis up to n_max must be resolvable. scikit-learn's generic checks feed random
# X of 1 to 10 features, which are not such patches: the checks below fail only for that reason
# (the estimator raises a ValueError naming the shape). Every other check passes, and so do all
# checks of MotifClusterer and PCAFeatures.
_NOT_A_PATCH = "X of 1-10 random features is not a stack of square patches"
_ZERNIKE_SHAPE_CHECKS = [
    "check_fit_score_takes_y", "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters", "check_estimators_fit_returns_self",
    "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_dtype_object",
    "check_pipeline_consistency", "check_estimators_nan_inf", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_transformer_data_not_an_array",
    "check_transformer_general", "check_transformer_preserve_dtypes",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance",
    "check_fit2d_1sample", "check_fit2d_1feature", "check_dict_unchanged",
    "check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in",
    "check_fit2d_predict1d",
]


def _expected_failures(estimator):
    if isinstance(estimator, ZernikeFeatures):
        return dict.fromkeys(_ZERNIKE_SHAPE_CHECKS, _NOT_A_PATCH)
    return {}


@parametrize_with_checks(
    [MotifClusterer(), ZernikeFeatures(), PCAFeatures(n_components=2)],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_zernike_features_follow_the_estimator_contract_on_patches():
    """What the generic checks cannot feed: fitted state, validation and shape on patches."""
    import numpy as np
    import pytest
    from sklearn.exceptions import NotFittedError

    X = np.random.default_rng(0).random((6, 15, 15))
    zf = ZernikeFeatures(n_max=6)
    with pytest.raises(NotFittedError):
        zf.transform(X)
    out = zf.fit(X).transform(X)
    assert out.shape == (6, zf.n_features_out_) and zf.patch_size_ == 15
    assert np.allclose(zf.transform(X.reshape(6, -1)), out)  # flattened patches too
    with pytest.raises(ValueError, match="infinity|NaN"):
        zf.transform(np.where(X > 0.99, np.nan, X))
    with pytest.raises(TypeError):
        ZernikeFeatures(10)  # keyword-only


def test_analysis_error_is_a_value_error():
    assert issubclass(AnalysisError, ValueError)
