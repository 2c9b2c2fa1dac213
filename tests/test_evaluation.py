"""Evaluation: AUROC against scikit-learn, OOD scoring by energy, JEM predictions, the
test NLL of an energy on the unit box by logit-space AIS, and a run's summary."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import logistic
from sklearn.metrics import roc_auc_score

from jebm import densities
from jebm import evaluation as ev
from jebm.energy import batch_energy, logit_energy
from jebm.partition import ais


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=301)
    scores = np.round(rng.normal(size=301) + 0.7 * labels, 1)  # rounding makes ties
    # Both are exact rational functions of the same ranks; float32 sums: 1e-6.
    assert float(ev.auroc(labels, scores)) == pytest.approx(roc_auc_score(labels, scores),
                                                             abs=1e-6)
    assert float(jax.jit(ev.auroc)(labels, scores)) == pytest.approx(
        roc_auc_score(labels, scores), abs=1e-6)


def test_auroc_extremes_and_validation():
    labels = jnp.array([0, 0, 1, 1])
    assert float(ev.auroc(labels, jnp.array([0.0, 1.0, 2.0, 3.0]))) == 1.0
    assert float(ev.auroc(labels, jnp.array([3.0, 2.0, 1.0, 0.0]))) == 0.0
    assert float(ev.auroc(labels, jnp.zeros(4))) == 0.5
    with pytest.raises(ValueError, match="1-D"):
        ev.auroc(labels, jnp.zeros(3))


def test_ood_auroc_scores_by_energy():
    energy_fn = lambda p, x: 0.5 * jnp.sum((x - p) ** 2)
    x_in = jax.random.normal(jax.random.key(0), (50, 3))
    x_out = 4.0 + jax.random.normal(jax.random.key(1), (40, 3))
    assert float(ev.ood_auroc(energy_fn, jnp.zeros(3), x_in, x_out)) > 0.99
    # Scoring the other way round (the model centred on x_out) flips the AUROC.
    assert float(ev.ood_auroc(energy_fn, jnp.full(3, 4.0), x_in, x_out)) < 0.01


def test_predict_accuracy_and_jem_objective(key):
    weights = jnp.array([[1.0, -1.0], [-1.0, 2.0]])
    logits_fn = lambda p, x: p @ x
    x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.5]])
    y = jnp.array([0, 1, 1])
    np.testing.assert_array_equal(ev.predict(logits_fn, weights, x), [0, 1, 0])
    assert float(ev.accuracy(logits_fn, weights, x, y)) == pytest.approx(2 / 3)


def test_logistic_density_is_the_uniform_box_in_logit_space(key):
    base = densities.logistic((3,))
    z = base.sample(key, 5)
    np.testing.assert_allclose(jax.vmap(base.log_prob)(z),
                               logistic.logpdf(np.asarray(z, np.float64)).sum(-1), atol=1e-5)
    # A constant energy E = c on [0,1]^3 has log Z = −c; logit-space AIS from the logistic
    # base is then exact (every weight is the same), so the NLL is c − c = 0 exactly.
    energy_fn = lambda p, x: p + 0.0 * jnp.sum(x)
    result = ais(key, logit_energy(energy_fn), 1.5, base, 8, num_bridges=3)
    est = ev.nll(energy_fn, 1.5, jax.random.uniform(key, (4, 3)), result.log_z,
                      result.log_z_stderr)
    assert float(est.nll) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.slow
def test_logit_space_ais_recovers_a_known_density_on_the_box(key):
    # Target on [0,1]^4: the push-forward of N(m, S) by the sigmoid, normalised (Z = 1), so
    # its exact NLL is −mean log p(x). The AIS base is a Gaussian fitted to other logits.
    dim = 4
    m = jnp.array([-1.0, 0.0, 0.5, 1.0])
    s = 0.6 * jnp.eye(dim) + 0.2
    target = densities.gaussian(m, s)

    def energy_fn(p, x):
        z = jnp.log(x) - jnp.log1p(-x)
        return -(target.log_prob(z) + jnp.sum(jax.nn.softplus(z) + jax.nn.softplus(-z)))

    x_train = jax.nn.sigmoid(target.sample(jax.random.key(1), 200))
    x_test = jax.nn.sigmoid(target.sample(jax.random.key(2), 100))
    base = densities.fit_gaussian(densities.logit(np.asarray(x_train, np.float64)))

    def estimate(k):
        result = ais(k, logit_energy(energy_fn), None, base, 256, num_bridges=50,
                     step_size=0.3)
        return ev.nll(energy_fn, None, x_test, result.log_z, result.log_z_stderr), result

    est, result = jax.jit(estimate)(key)
    exact = float(jnp.mean(batch_energy(energy_fn, None, x_test)))
    # log Ẑ should be 0; allow 4 delta-method stderr, plus 0.01 for the delta method's
    # first-order error at this ESS.
    assert float(result.ess) > 50
    assert abs(float(est.nll) - exact) < 4 * float(est.log_z_stderr) + 0.01
