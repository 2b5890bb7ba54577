"""A small surrogate of the accuracy proxy, trained online on the candidates evaluated so far.

Proxy accuracy is modelled as the Fisher prior's total damage plus a learned per-block correction::

    top1 ~ a + c * damage(x) + sum_b (u_b * pruned_b + v_b * removed_b + q_b * int8_b)

``a`` and ``c`` are free; the per-block terms have a Gaussian prior (ridge), so with few evaluations the
surrogate leans on the prior and with more it learns which blocks the prior misjudges. It is Bayesian linear
regression: besides the mean it gives the posterior spread of each prediction, large along directions no
evaluation has explored yet (a block never kept, never removed), which is what makes optimism (an upper
confidence bound) send the search there. A linear model is enough: it only has to rank proposals near the
budget, it fits in microseconds, and it cannot overfit a few dozen points the way a neural network would.
"""

from __future__ import annotations

import numpy as np

from .prior import DamageModel
from .space import SearchSpace

MIN_POINTS = 4  # fewer evaluations than this: the surrogate declines to predict


class Surrogate:
    """Bayesian ridge regression from configuration features to proxy accuracy."""

    def __init__(self, space: SearchSpace, prior: DamageModel, coefficient_std: float = 0.05,
                 noise_floor: float = 0.005):
        self.space = space
        self.prior = prior
        # Prior standard deviation of each per-block term, in proxy-accuracy units: removing or narrowing
        # one block can plausibly cost or gain a few points.
        self.coefficient_std = coefficient_std
        self.noise_floor = noise_floor
        self.weights: np.ndarray | None = None
        width = space.width.astype(float)
        self._pruned = np.where(space.valid, 1.0 - width / space.full_width[:, None], 0.0)
        self._removed = (space.width == 0) & space.valid
        self._int8 = space.int8

    def features(self, x: np.ndarray) -> np.ndarray:
        """Design matrix: intercept, prior damage, then per-block pruned fraction, removed and INT8 flags."""
        x = np.asarray(x)
        rows = np.arange(self.space.n)
        return np.hstack([
            np.ones((len(x), 1)),
            self.prior.total(x)[:, None],
            self._pruned[rows, x],
            self._removed[rows, x].astype(float),
            self._int8[rows, x].astype(float),
        ])

    @property
    def ready(self) -> bool:
        return self.weights is not None

    def fit(self, x: np.ndarray, y: np.ndarray) -> "Surrogate":
        """Refit on all evaluations so far (no-op below ``MIN_POINTS``)."""
        if len(y) < MIN_POINTS:
            self.weights = None
            return self
        phi = self.features(x)
        self.noise = max(float(np.std(y)), self.noise_floor)
        for _ in range(2):  # the ridge strength depends on the noise level, estimated from the residuals
            penalty = np.full(phi.shape[1], (self.noise / self.coefficient_std) ** 2)
            penalty[:2] = 1e-6  # intercept and prior slope are free
            self.covariance = np.linalg.inv(phi.T @ phi + np.diag(penalty))
            self.weights = self.covariance @ phi.T @ y
            residual = y - phi @ self.weights
            dof = max(len(y) - 2, 1)
            self.noise = max(float(np.sqrt(np.sum(residual ** 2) / dof)), self.noise_floor)
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the predicted proxy accuracy of each configuration."""
        if self.weights is None:
            raise RuntimeError("surrogate is not fitted")
        phi = self.features(x)
        spread = self.noise * np.sqrt(np.einsum("ij,jk,ik->i", phi, self.covariance, phi))
        return phi @ self.weights, spread
