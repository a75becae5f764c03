import numpy as np
import pytest

from edgeser.metrics import agreement, ccc, mae, pearson

X = np.array([1.0, 2.0, 3.0, 4.0])
Y = np.array([2.0, 2.0, 4.0, 5.0])


def test_ccc_matches_hand_computation():
    # means 2.5, 3.25; variances 1.25, 1.6875; covariance 1.375 -> 2*1.375 / (1.25 + 1.6875 + 0.5625)
    assert ccc(X, Y)[0] == pytest.approx(2.75 / 3.5, abs=1e-12)


def test_pearson_and_mae_match_hand_computation():
    assert pearson(X, Y)[0] == pytest.approx(1.375 / np.sqrt(1.25 * 1.6875), abs=1e-12)
    assert mae(X, Y)[0] == pytest.approx(0.75)


def test_ccc_penalises_offset_and_scale_unlike_pearson():
    assert pearson(X, X + 1)[0] == pytest.approx(1.0)
    assert ccc(X, X + 1)[0] < 0.75
    assert ccc(X, 2 * X)[0] < 0.9
    assert ccc(X, X)[0] == pytest.approx(1.0)
    assert ccc(X - 2.5, 2.5 - X)[0] == pytest.approx(-1.0)
    assert ccc(X, -X)[0] == pytest.approx(-2 * 1.25 / (2.5 + 25))  # mean gap 5 counts


def test_per_column_and_agreement_dict():
    a = np.stack([X, Y, X], 1)
    b = np.stack([Y, Y, -X], 1)
    c = ccc(a, b)
    assert c.shape == (3,)
    assert c[1] == pytest.approx(1.0)
    table = agreement(a, b)
    assert list(table) == ["arousal", "dominance", "valence"]
    assert table["arousal"]["ccc"] == pytest.approx(2.75 / 3.5)
    assert table["valence"]["pearson"] == pytest.approx(-1.0)


def test_constant_columns():
    assert ccc([1.0, 1.0], [1.0, 1.0])[0] == 1.0
    assert ccc([1.0, 1.0], [2.0, 2.0])[0] == 0.0
    assert pearson([1.0, 1.0], [1.0, 2.0])[0] == 0.0


@pytest.mark.parametrize("a,b", [([1.0, 2.0], [1.0]), ([1.0], [1.0])])
def test_bad_shapes(a, b):
    with pytest.raises(ValueError):
        ccc(a, b)
