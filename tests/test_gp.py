"""GP / NLGP data (memlab.datasets.gp): covariance, marginals, normalization, determinism."""
import numpy as np
import pytest
from scipy import stats

from memlab.datasets import gp, load_dataset, registry

D, XI, N = 32, 2.0, 40_000


@pytest.fixture(scope="module")
def fields():
    """N GP samples and the NLGP images of the very same Gaussian fields, for several gains."""
    z = gp.gp_fields(np.random.default_rng(1), N, D, XI)
    return z, {g: gp.saturate(z, g) for g in (0.5, 1.0, 3.0, 10.0)}


def test_covariance_is_the_ring_kernel():
    C = gp.covariance(12, 2.0)
    assert np.allclose(C, C.T)
    assert C[0, 11] == C[0, 1] == pytest.approx(np.exp(-1 / 4))   # pixel 11 is pixel 0's neighbour
    assert C[3, 9] == pytest.approx(np.exp(-36 / 4))                 # distance 6 = D/2
    assert np.allclose(np.diag(C), 1.0)
    assert np.linalg.eigvalsh(C).min() > -1e-10
    # the spectrum is C's eigenvalues (circulant: Fourier modes diagonalize it)
    lam = gp.spectrum(12, 2.0)
    assert np.allclose(np.sort(np.linalg.eigvalsh(C)), np.sort(np.concatenate([lam, lam[1:-1]])))


def test_gp_empirical_covariance_matches(fields):
    z, _ = fields
    emp = z.T @ z / N
    # each entry's sampling error is sqrt((1 + C_ij^2) / N) <= 0.0071: allow five of them
    assert np.abs(emp - gp.covariance(D, XI)).max() < 5 * np.sqrt(2 / N)
    assert np.abs(z.mean(0)).max() < 5 / np.sqrt(N)


def test_nlgp_covariance_is_the_arcsine_law(fields):
    """E[erf(g z_i) erf(g z_j)] = (2/pi) arcsin(2 g^2 C_ij / (1 + 2 g^2)), then divided by Z(g)^2."""
    _, nl = fields
    C = gp.covariance(D, XI)
    for g, x in nl.items():
        expected = 2 / np.pi * np.arcsin(2 * g**2 * C / (1 + 2 * g**2)) / gp.nlgp_scale(g) ** 2
        assert np.abs(x.T @ x / N - expected).max() < 5 * np.sqrt(2 / N), g


def test_unit_variance(fields):
    z, nl = fields
    for g, x in {0.0: z, **nl}.items():
        assert x.var(0).mean() == pytest.approx(1.0, abs=0.01), g
    assert gp.nlgp_scale(1e3) == pytest.approx(1.0, abs=1e-3)            # erf(g z) -> sign(z)
    assert gp.nlgp_scale(1e-4) == pytest.approx(2e-4 / np.sqrt(np.pi), rel=1e-6)  # erf(x) ~ 2x/sqrt(pi)


def test_marginals_gaussian_for_gp_and_not_for_nlgp(fields):
    z, nl = fields
    # one pixel per sample: independent draws of the marginal
    assert abs(stats.kurtosis(z[:, 0])) < 0.15
    assert stats.kstest(z[:, 0], "norm").pvalue > 1e-3
    kurt = {g: stats.kurtosis(x[:, 0]) for g, x in nl.items()}
    assert kurt[3.0] < -1.5 and kurt[10.0] < -1.8           # saturating: towards sign(z), excess -2
    assert kurt[0.5] > kurt[1.0] > kurt[3.0] > kurt[10.0]  # more gain, less Gaussian
    assert stats.kstest(nl[3.0][:, 0], "norm").pvalue < 1e-6


def test_small_gain_recovers_the_gp(fields):
    z, _ = fields
    assert np.abs(gp.saturate(z, 1e-3) - z).max() < 1e-4
    assert gp.saturate(z, 0.0) is z


def test_sampling_is_deterministic_per_seed():
    a = gp.two_class(np.random.default_rng(7), 100, D=20, xi0=1.0, xi1=3.0, gain=3.0)
    b = gp.two_class(np.random.default_rng(7), 100, D=20, xi0=1.0, xi1=3.0, gain=3.0)
    c = gp.two_class(np.random.default_rng(8), 100, D=20, xi0=1.0, xi1=3.0, gain=3.0)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_two_classes_balanced_and_differ_in_correlation_length():
    X, y = gp.two_class(np.random.default_rng(0), 4001, D=50, xi0=1.0, xi1=3.0, gain=0.0)
    assert X.dtype == np.float32 and X.shape == (4001, 50) and y.dtype == np.uint8
    assert sorted(np.bincount(y)) == [2000, 2001]
    neighbour = [np.mean(X[y == c, :-1] * X[y == c, 1:]) for c in (0, 1)]
    assert neighbour[0] == pytest.approx(np.exp(-1), abs=0.03)
    assert neighbour[1] == pytest.approx(np.exp(-1 / 9), abs=0.03)


def test_named_sets_registered_and_materialize(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMLAB_ROOT", str(tmp_path))
    for name in ("gp_D100", "nlgp_D100_g3"):
        s = registry.spec(name)
        assert (s.kind, s.on_demand, s.shape) == ("synthetic", True, (2000, 100))
    registry._load_cached.cache_clear()
    ds = load_dataset("nlgp_D100_g3")
    registry._load_cached.cache_clear()
    assert (tmp_path / "datasets" / "nlgp_D100_g3.npz").exists()
    assert ds.X.shape == (2000, 100) and ds.y.dtype == np.uint8 and set(np.unique(ds.y)) == {0, 1}
    assert ds.meta["signal_shape"] == [100] and ds.meta["classes"] == ["xi=1", "xi=3"]
    assert ds.meta["gain"] == 3.0
    assert stats.kurtosis(ds.X[:, 0]) < -1.5
