"""Privacy accounting (``protocols.dp.accounting``): the totals are the library's (``dp-accounting``),
the binomial mechanism behaves like the Gaussian of the same variance, calibration is tight, and bad
parameters are refused."""

from __future__ import annotations

import math
from fractions import Fraction

import dp_accounting
import pytest
from dp_accounting.pld import common
from dp_accounting.pld import privacy_loss_distribution as pld
from dp_accounting.rdp import RdpAccountant

from protocols.dp.accounting import (
    DISCRETIZATION,
    Accountant,
    Binomial,
    DiscreteGaussian,
    _noise,
    calibrate_coins,
    calibrate_group,
    calibrate_sigma2,
    group_noise,
    zcdp_rho,
)

DELTA = 1e-9


def test_a_mixed_sequence_totals_what_the_library_composes() -> None:
    """Three discrete Gaussians (two of sensitivity 1, one of 3) and two binomial outputs: the same
    epsilon as the library's own privacy loss distributions composed by hand, for three deltas."""
    acc = Accountant()
    acc.add(DiscreteGaussian(Fraction(100)), count=2)
    acc.add(DiscreteGaussian(Fraction(900), sensitivity=3))
    acc.add(Binomial(1600, sensitivity=2), count=2)
    g = pld.from_discrete_gaussian_mechanism(
        10.0, sensitivity=1, value_discretization_interval=DISCRETIZATION
    )
    g3 = pld.from_discrete_gaussian_mechanism(
        30.0, sensitivity=3, value_discretization_interval=DISCRETIZATION
    )
    # the binomial's distribution from its two pmfs on a window of the support (the shifted one's
    # tails, below 10^-30, given to an outcome of infinite loss)
    b = Binomial(1600, 2)
    upper = b.log_pmf_window(2)
    upper["tail"] = math.log(1e-30)  # type: ignore[index]
    bl = pld.from_two_probability_mass_functions(
        b.log_pmf_window(0), upper, value_discretization_interval=DISCRETIZATION
    )
    total = g.self_compose(2).compose(g3).compose(bl.self_compose(2))
    # and on the whole support: a looser bound (the library truncates the wider compositions'
    # tails pessimistically), above the window's but within 10^-5 of it
    full = pld.from_two_probability_mass_functions(
        b.log_pmf(0), b.log_pmf(2), value_discretization_interval=DISCRETIZATION
    )
    loose = g.self_compose(2).compose(g3).compose(full.self_compose(2))
    for delta in (1e-5, 1e-9, 1e-12):
        assert acc.epsilon(delta) == pytest.approx(total.get_epsilon_for_delta(delta), rel=1e-9)
        assert 0 <= loose.get_epsilon_for_delta(delta) - acc.epsilon(delta) < 1e-5 * acc.epsilon(delta)
    assert len(acc.mechanisms) == 5


def test_gaussians_are_no_worse_than_the_librarys_zcdp_bound() -> None:
    """For discrete Gaussians alone the library's RDP accountant (zCDP events of rho = 1 / (2 sigma2))
    gives an upper bound; the privacy loss distribution is tighter, but not by more than half."""
    acc = Accountant()
    rdp = RdpAccountant()
    for sigma2 in (Fraction(50), Fraction(200), Fraction(81, 2)):
        acc.add(DiscreteGaussian(sigma2))
        rdp.compose(dp_accounting.ZCDpEvent(zcdp_rho(sigma2)))
    ours, bound = acc.epsilon(DELTA), rdp.get_epsilon(DELTA)
    assert 0.5 * bound < ours <= bound


def test_binomial_noise_is_close_to_the_gaussian_of_its_variance() -> None:
    """Bin(m, 1/2) has variance m / 4: at m = 400 its epsilon is within 10% of the discrete Gaussian's
    with sigma2 = 100; more coins give less epsilon, a larger sensitivity more."""
    eps = {}
    for m in (100, 400, 1600):
        a = Accountant()
        a.add(Binomial(m))
        eps[m] = a.epsilon(DELTA)
    g = Accountant()
    g.add(DiscreteGaussian(Fraction(100)))
    assert eps[400] == pytest.approx(g.epsilon(DELTA), rel=0.1)
    assert eps[100] > eps[400] > eps[1600]
    two = Accountant()
    two.add(Binomial(400, sensitivity=2))
    assert two.epsilon(DELTA) > eps[400]


def test_epsilon_and_delta_are_inverse_and_monotone() -> None:
    acc = Accountant()
    assert acc.epsilon(DELTA) == 0.0 and acc.delta(1.0) == 0.0
    acc.add(DiscreteGaussian(Fraction(30)))
    e = acc.epsilon(DELTA)
    assert acc.epsilon(1e-6) < e < acc.epsilon(1e-12)
    assert acc.delta(e) <= DELTA * 1.01
    assert acc.delta(e * 0.9) > DELTA


@pytest.mark.parametrize(("epsilon", "sensitivity"), [(1.0, 1), (0.1, 1), (1.0, 4)])
def test_calibration_is_the_smallest_sigma2_that_meets_the_target(epsilon: float, sensitivity: int) -> None:
    s2 = calibrate_sigma2(epsilon, DELTA, sensitivity)
    ok = Accountant()
    ok.add(DiscreteGaussian(s2, sensitivity))
    assert ok.epsilon(DELTA) <= epsilon
    under = Accountant()
    under.add(DiscreteGaussian(s2 * Fraction(99, 100), sensitivity))
    assert under.epsilon(DELTA) > epsilon
    # the classical analytic bound is looser: it asks for more noise
    assert math.sqrt(s2) < sensitivity * math.sqrt(2 * math.log(1.25 / DELTA)) / epsilon


@pytest.mark.parametrize("epsilon", [1.0, 0.1])
def test_coin_calibration_meets_the_target_with_about_the_gaussians_variance(epsilon: float) -> None:
    """The binomial needs about ``4 sigma2`` coins for the discrete Gaussian's ``sigma2`` (within 15%),
    meets the target, and 2% fewer coins do not."""
    m = calibrate_coins(epsilon, DELTA)
    assert m % 2 == 0
    ok = Accountant()
    ok.add(Binomial(m))
    assert ok.epsilon(DELTA) <= epsilon
    fewer = Accountant()
    fewer.add(Binomial(m - 2 * max(1, m // 50)))
    assert fewer.epsilon(DELTA) > epsilon
    assert m / 4 == pytest.approx(float(calibrate_sigma2(epsilon, DELTA)), rel=0.15)


@pytest.mark.parametrize(
    ("mechanism", "units", "under"), [("gaussian", (1, 1024, 1024), 0.99), ("binomial", (1, 8, 8), 0.97)]
)
def test_a_group_composed_meets_its_one_target_and_is_tight(
    mechanism: str, units: tuple[int, ...], under: float
) -> None:
    """Outputs sharing one ``(epsilon, delta)`` (a mean's count and sums): all of them composed meet
    it, with equal signal-to-noise ``sigma2_i / units_i^2``; a level ``under`` times lower does not."""

    def epsilon(t: Fraction) -> float:
        acc = Accountant()
        for u in units:
            acc.add(_noise(mechanism, t, u))
        return acc.epsilon(DELTA)

    t = calibrate_group(1.0, DELTA, units, mechanism)
    assert epsilon(t) <= 1.0 < epsilon(t * Fraction(under))
    acc = Accountant()
    for u in units:
        acc.add(group_noise(1.0, DELTA, units, mechanism, u))
    assert acc.epsilon(DELTA) == epsilon(t)


@pytest.mark.parametrize(
    ("call", "text"),
    [
        (lambda: DiscreteGaussian(Fraction(0)), "sigma2"),
        (lambda: DiscreteGaussian(2.5), "sigma2"),  # type: ignore[arg-type]
        (lambda: DiscreteGaussian(Fraction(4), sensitivity=0), "sensitivity"),
        (lambda: Binomial(0), "coins"),
        (lambda: Binomial(4, sensitivity=5), "cannot hide"),
        (lambda: Accountant().epsilon(0), "delta"),
        (lambda: Accountant().add(Binomial(8), count=0), "count"),
        (lambda: calibrate_sigma2(0, DELTA), "epsilon"),
    ],
    ids=[
        "zero-sigma2",
        "float-sigma2",
        "zero-sensitivity",
        "no-coins",
        "too-few-coins",
        "zero-delta",
        "zero-count",
        "zero-epsilon",
    ],
)
def test_bad_parameters_are_refused(call: object, text: str) -> None:
    with pytest.raises(ValueError, match=text):
        call()  # type: ignore[operator]


def test_a_declared_cost_composes_as_the_librarys_epsilon_delta_mechanism() -> None:
    """``EpsDelta`` (what a ledger charges for a program's declared cost) is the library's worst case
    for (epsilon, delta)-DP: one charge is exactly its epsilon at its delta, two compose to twice
    the epsilon at twice the delta (basic composition is tight for it) and to infinity at the
    single delta; mixed with a Gaussian the total is the library's composition."""
    from protocols.dp.accounting import EpsDelta

    one = Accountant()
    one.add(EpsDelta(0.6, DELTA))
    assert one.epsilon(DELTA) == pytest.approx(0.6, abs=1e-3)
    two = one.copy()
    two.add(EpsDelta(0.6, DELTA))
    assert one.epsilon(DELTA) == pytest.approx(0.6, abs=1e-3)  # the copy left the original alone
    assert two.epsilon(2 * DELTA + 1e-15) == pytest.approx(1.2, abs=1e-3)
    assert math.isinf(two.epsilon(DELTA))
    mixed = one.copy()
    mixed.add(DiscreteGaussian(Fraction(100)))
    lib = pld.from_privacy_parameters(
        common.DifferentialPrivacyParameters(0.6, DELTA), value_discretization_interval=DISCRETIZATION
    ).compose(pld.from_discrete_gaussian_mechanism(10.0, value_discretization_interval=DISCRETIZATION))
    assert mixed.epsilon(1e-6) == pytest.approx(lib.get_epsilon_for_delta(1e-6), rel=1e-9)
    with pytest.raises(ValueError, match="epsilon must be a positive number"):
        EpsDelta(0.0, DELTA)
    with pytest.raises(ValueError, match="delta must be in"):
        EpsDelta(1.0, 1.5)


@pytest.mark.parametrize("mechanism", ["gaussian", "binomial"])
def test_a_group_of_outputs_meets_its_one_target_and_no_less_noise_would(mechanism: str) -> None:
    """``calibrate_group`` for a count (1 unit) and a sum (40 units) under one epsilon: all the outputs
    composed meet the target; 1% less noise for every member would not. Each member's noise scales
    with its sensitivity squared (equal signal-to-noise)."""
    from protocols.dp.accounting import calibrate_group, group_noise

    units = (1, 40)
    t = calibrate_group(1.0, DELTA, units, mechanism)
    ms = [group_noise(1.0, DELTA, units, mechanism, u) for u in units]
    acc = Accountant()
    for m in ms:
        acc.add(m)
    assert acc.epsilon(DELTA) <= 1.0
    less = Accountant()
    for u in units:
        if mechanism == "gaussian":
            less.add(DiscreteGaussian(t * Fraction(99, 100) * u * u, u))
        else:
            less.add(Binomial(2 * math.floor(2 * float(t) * 0.99 * u * u), u))
    assert less.epsilon(DELTA) > 1.0
    if mechanism == "gaussian":
        assert [m.sigma2 for m in ms] == [t * u * u for u in units]  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="not in the group"):
        group_noise(1.0, DELTA, units, mechanism, 2)


def test_a_calibration_for_several_outputs_needs_more_noise_than_for_one() -> None:
    """``count=k``: k equal outputs under one target. For k = 2 the variance is about twice one
    output's (Gaussians compose like the square root of their number), and the pair meets the target."""
    one = calibrate_sigma2(1.0, DELTA)
    two = calibrate_sigma2(1.0, DELTA, count=2)
    assert 1.5 * one < two < 2.5 * one
    acc = Accountant()
    acc.add(DiscreteGaussian(two), count=2)
    assert acc.epsilon(DELTA) <= 1.0
    assert calibrate_coins(1.0, DELTA, count=2) > calibrate_coins(1.0, DELTA)
