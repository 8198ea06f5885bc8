"""Exact integer noise (``protocols.dp.sampling``): the draws follow their distributions (chi-square at
20,000 seeded draws), the tests can tell a wrong distribution apart, and bad parameters are refused
before anything is drawn."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from scipy import stats

from protocols.dp import (
    bernoulli_exp,
    discrete_gaussian,
    discrete_gaussian_variance,
    discrete_laplace,
    samples,
)
from protocols.prg import PRG

DRAWS = 20_000
SEED = bytes(range(16))


def gaussian_pmf(sigma2: Fraction, xs: range) -> list[float]:
    s2 = float(sigma2)
    top = int(40 * math.sqrt(s2)) + 40
    total = 1 + 2 * sum(math.exp(-x * x / (2 * s2)) for x in range(1, top))
    return [math.exp(-x * x / (2 * s2)) / total for x in xs]


def laplace_pmf(scale: Fraction, xs: range) -> list[float]:
    q = math.exp(-1 / float(scale))
    return [(1 - q) / (1 + q) * q ** abs(x) for x in xs]


def chi_square_p(draws: list[int], pmf: list[float], lo: int) -> float:
    """p-value of the draws against ``pmf`` on ``lo .. lo + len(pmf) - 1``, the two tails pooled
    into one bin each."""
    hi = lo + len(pmf) - 1
    counts = [0] * (len(pmf) + 2)
    for x in draws:
        counts[0 if x < lo else len(pmf) + 1 if x > hi else x - lo + 1] += 1
    inside = sum(pmf)
    expected = (
        [(1 - inside) / 2 * len(draws)] + [p * len(draws) for p in pmf] + [(1 - inside) / 2 * len(draws)]
    )
    return float(stats.chisquare(counts, expected).pvalue)


@pytest.mark.parametrize("sigma2", [Fraction(4), Fraction(7, 3), Fraction(25)], ids=str)
def test_discrete_gaussian_matches_its_pmf(sigma2: Fraction) -> None:
    draws = samples("gaussian", sigma2, DRAWS, PRG(SEED))
    width = int(3 * math.sqrt(sigma2))
    xs = range(-width, width + 1)
    assert chi_square_p(draws, gaussian_pmf(sigma2, xs), -width) > 1e-4
    mean = sum(draws) / DRAWS
    var = sum(x * x for x in draws) / DRAWS - mean * mean
    sd_of_var = discrete_gaussian_variance(sigma2) * math.sqrt(2 / DRAWS)
    assert abs(var - discrete_gaussian_variance(sigma2)) < 5 * sd_of_var
    assert abs(mean) < 5 * math.sqrt(float(sigma2) / DRAWS)


@pytest.mark.parametrize("scale", [Fraction(1), Fraction(3, 2), Fraction(10)], ids=str)
def test_discrete_laplace_matches_its_pmf(scale: Fraction) -> None:
    draws = samples("laplace", scale, DRAWS, PRG(SEED))
    width = int(4 * scale)
    xs = range(-width, width + 1)
    assert chi_square_p(draws, laplace_pmf(scale, xs), -width) > 1e-4


def test_the_test_tells_a_wrong_variance_apart() -> None:
    """Draws with sigma2 = 5 fail the chi-square of sigma2 = 4, and Laplace draws fail a Gaussian's:
    the statistical tests above are not vacuous."""
    xs = range(-6, 7)
    wrong = samples("gaussian", 5, DRAWS, PRG(SEED))
    assert chi_square_p(wrong, gaussian_pmf(Fraction(4), xs), -6) < 1e-6
    laplace = samples("laplace", Fraction(3, 2), DRAWS, PRG(SEED))
    assert chi_square_p(laplace, gaussian_pmf(Fraction(4), xs), -6) < 1e-6


@pytest.mark.parametrize("gamma", [Fraction(0), Fraction(1, 3), Fraction(1), Fraction(5, 2)], ids=str)
def test_bernoulli_exp_has_bias_exp_minus_gamma(gamma: Fraction) -> None:
    prg = PRG(SEED)
    ones = sum(bernoulli_exp(gamma, prg) for _ in range(DRAWS))
    p = math.exp(-gamma)
    if gamma == 0:
        assert ones == DRAWS
    else:
        assert abs(ones / DRAWS - p) < 5 * math.sqrt(p * (1 - p) / DRAWS)


def test_draws_are_fresh_without_a_seed_and_repeat_with_one() -> None:
    assert samples("gaussian", 100, 50) != samples("gaussian", 100, 50)
    assert samples("gaussian", 100, 50, PRG(SEED)) == samples("gaussian", 100, 50, PRG(SEED))


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda: discrete_gaussian(2.5), TypeError, "exact"),
        (lambda: discrete_gaussian(0), ValueError, "positive"),
        (lambda: discrete_gaussian(True), TypeError, "exact"),
        (lambda: discrete_laplace(-1), ValueError, "positive"),
        (lambda: discrete_laplace(0.5), TypeError, "exact"),
        (lambda: bernoulli_exp(-1), ValueError, "negative"),
        (lambda: samples("uniform", 1, 3), ValueError, "unknown noise"),
        (lambda: samples("gaussian", 1, -3), ValueError, "non-negative"),
    ],
    ids=[
        "float-sigma2",
        "zero-sigma2",
        "bool-sigma2",
        "negative-scale",
        "float-scale",
        "negative-gamma",
        "unknown-noise",
        "negative-count",
    ],
)
def test_bad_parameters_are_refused(call: object, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        call()  # type: ignore[operator]
