"""JEM: cross-entropy of the classifier plus the generative objective, against NumPy."""

import jax.numpy as jnp
import numpy as np
import pytest

from jebm.objectives import jem
from jebm.objectives.base import stateless


def test_jem_objective_adds_cross_entropy_to_the_generative_loss(key):
    weights = jnp.array([[1.0, -1.0], [-1.0, 2.0]])
    logits_fn = lambda p, x: p @ x
    x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.5]])
    y = jnp.array([0, 1, 1])
    generative = stateless(lambda p, k, b: (jnp.sum(p) * jnp.mean(b), {"g": jnp.mean(b)}))
    objective = jem(generative, logits_fn, generative_weight=0.5)
    loss, (metrics, state) = objective.loss(weights, key, (x, y), objective.init(key, (x, y)))
    logits = np.asarray(x, np.float64) @ np.asarray(weights, np.float64).T
    ce = float(np.mean(np.log(np.exp(logits).sum(-1)) - logits[np.arange(3), np.asarray(y)]))
    generative_loss = float(np.sum(weights)) * float(np.mean(x))  # = 1 · 0.5
    # float32 vs float64: 1e-6.
    assert float(loss) == pytest.approx(ce + 0.5 * generative_loss, abs=1e-6)
    assert float(metrics["cross_entropy"]) == pytest.approx(ce, abs=1e-6)
    assert float(metrics["train_accuracy"]) == pytest.approx(2 / 3)


