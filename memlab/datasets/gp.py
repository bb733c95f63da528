"""Gaussian-process (GP) and non-linear GP (NLGP) inputs on a ring of D pixels.

    python data.py --name nlgp_D100_g3 gp_D100    # materialize the figures' sets

The data model of Ingrosso & Goldt, "Data-driven emergence of convolutional structure in
neural networks" (PNAS 2022), in one dimension:

- GP:   z ~ N(0, C) with the translation-invariant covariance C_ij = exp(-d_ij^2 / xi^2),
        d_ij = min(|i - j|, D - |i - j|) the distance on the ring (periodic boundary).
- NLGP: x_i = erf(g z_i) / Z(g), Z(g) chosen so that every pixel has unit variance.
        g -> 0 recovers the GP; large g pushes x towards sign(z): same kind of spatial
        correlations, strongly non-Gaussian marginals (excess kurtosis -> -2).
- Task: two balanced classes that differ only in correlation length, xi0 (label 0) and
        xi1 (label 1).  Trials use labels -1/+1 (y = 2 * label - 1).

C is circulant, so its eigenvectors are Fourier modes and its eigenvalues the FFT of its
first row: filtering white noise by the square root of that spectrum samples N(0, C) exactly
in O(D log D) per sample, with no D x D matrix.
"""
from __future__ import annotations

import numpy as np

from memlab.datasets.registry import register


def ring_distance(D: int) -> np.ndarray:
    """d_i = distance from pixel 0 to pixel i on a ring of D pixels."""
    i = np.arange(D)
    return np.minimum(i, D - i)


def covariance_row(D: int, xi: float) -> np.ndarray:
    """First row of C: exp(-d^2 / xi^2)."""
    return np.exp(-ring_distance(D).astype(float) ** 2 / xi**2)


def covariance(D: int, xi: float) -> np.ndarray:
    """The full D x D covariance C_ij = c(d_ij) (for tests and plots; sampling never builds it)."""
    row = covariance_row(D, xi)
    return np.stack([np.roll(row, i) for i in range(D)])


def spectrum(D: int, xi: float) -> np.ndarray:
    """Eigenvalues of the circulant C for the rfft frequencies 0..D//2, shape (D//2 + 1,).

    The row is symmetric (c_i = c_{D-i}), so its FFT is real.  Wrapping the Gaussian kernel at
    D/2 can leave eigenvalues of order exp(-(D/2xi)^2) below zero: clipped to 0 (negligible
    for xi << D, the regime of the paper).
    """
    lam = np.fft.rfft(covariance_row(D, xi)).real
    return np.clip(lam, 0.0, None)


def filter_sqrt(D: int, xi: float) -> np.ndarray:
    """What multiplies rfft(white noise) to give a N(0, C) field: sqrt(eigenvalues)."""
    return np.sqrt(spectrum(D, xi))


def nlgp_scale(gain: float) -> float:
    """Z(g) = sqrt(E[erf(g z)^2]), z ~ N(0, 1): the closed form (2/pi) arcsin(2g^2 / (1 + 2g^2))."""
    g2 = float(gain) ** 2
    return float(np.sqrt(2 / np.pi * np.arcsin(2 * g2 / (1 + 2 * g2))))


def gp_fields(rng: np.random.Generator, n: int, D: int, xi: float) -> np.ndarray:
    """n samples of the GP, shape (n, D): white noise filtered by sqrt(spectrum) in Fourier space."""
    noise = rng.standard_normal((n, D))
    return np.fft.irfft(filter_sqrt(D, xi) * np.fft.rfft(noise, axis=1), n=D, axis=1)


def saturate(z: np.ndarray, gain: float) -> np.ndarray:
    """The NLGP's pointwise nonlinearity erf(g z) / Z(g); gain 0 is the identity (the GP)."""
    if gain == 0:
        return z
    from scipy.special import erf   # here, not at import: scipy.special costs ~0.3 s
    return erf(gain * z) / nlgp_scale(gain)


def nlgp(rng: np.random.Generator, n: int, D: int, xi: float, gain: float) -> np.ndarray:
    """n samples of NLGP(xi, gain), shape (n, D), unit variance per pixel."""
    return saturate(gp_fields(rng, n, D, xi), gain)


def two_class(rng: np.random.Generator, n: int, *, D: int, xi0: float, xi1: float,
              gain: float) -> tuple[np.ndarray, np.ndarray]:
    """n balanced samples (n // 2 with xi0, label 0; the rest with xi1, label 1), shuffled."""
    n0 = n // 2
    X = np.concatenate([nlgp(rng, n0, D, xi0, gain), nlgp(rng, n - n0, D, xi1, gain)])
    y = np.repeat(np.array([0, 1], dtype=np.uint8), [n0, n - n0])
    order = rng.permutation(n)
    return X[order].astype(np.float32), y[order]


# Named sets for the figures: the receptive_fields experiments' defaults (D = 100, xi0 = 1,
# xi1 = 3), 2,000 samples each.  Trials draw fresh samples on the fly; these are for pictures.
NAMED = {"gp_D100": 0.0, "nlgp_D100_g1": 1.0, "nlgp_D100_g3": 3.0, "nlgp_D100_g10": 10.0}
NAMED_D, NAMED_XI0, NAMED_XI1, NAMED_N, NAMED_SEED = 100, 1.0, 3.0, 2000, 0


def _named(gain: float):
    def build(source=None) -> dict:
        X, y = two_class(np.random.default_rng(NAMED_SEED), NAMED_N, D=NAMED_D,
                         xi0=NAMED_XI0, xi1=NAMED_XI1, gain=gain)
        return {"X": X, "y": y,
                "meta": {"signal_shape": [NAMED_D], "classes": [f"xi={NAMED_XI0:g}", f"xi={NAMED_XI1:g}"],
                         "D": NAMED_D, "xi0": NAMED_XI0, "xi1": NAMED_XI1, "gain": gain,
                         "source": "memlab.datasets.gp (Ingrosso & Goldt 2022 data model)"}}
    kind = "GP" if gain == 0 else f"NLGP, gain {gain:g}"
    build.__doc__ = (f"{kind}: {NAMED_N} samples on a ring of {NAMED_D} pixels, "
                     f"xi {NAMED_XI0:g} (label 0) vs {NAMED_XI1:g} (label 1), seed {NAMED_SEED}.")
    return build


for _name, _gain in NAMED.items():
    register(_name, kind="synthetic", on_demand=True, default=_name in ("gp_D100", "nlgp_D100_g3"),
             shape=(NAMED_N, NAMED_D))(_named(_gain))
