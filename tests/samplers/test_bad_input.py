"""Bad input is refused loudly, and non-finite proposals are rejected and counted."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm.energies import gaussian
from jebm.energy import from_fn, logdensity_fn
from jebm.samplers import hmc, mala, run_chains, rwmh, ula

FACTORIES = {
    "mala": lambda ld: mala(ld, 0.5),
    "rwmh": lambda ld: rwmh(ld, 1.0),
    "hmc": lambda ld: hmc(ld, 0.5, jnp.ones(2), 3),
    "ula": lambda ld: ula(ld, 0.5),
}
MH = ["mala", "rwmh", "hmc"]


def _gaussian_ld():
    target = gaussian(jnp.zeros(2), jnp.eye(2))
    return logdensity_fn(target.energy_fn, target.params)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_wrong_event_shape_raises(name):
    # The analytic energy checks its event shape: (4, 3) positions are 4 chains of a
    # 3-vector, not of the 2-vector the target expects.
    with pytest.raises(ValueError, match=r"expects one unbatched x of shape \(2,\)"):
        run_chains(jax.random.key(0), FACTORIES[name](_gaussian_ld()), jnp.zeros((4, 3)), 5)


@pytest.mark.parametrize(
    "positions",
    [jnp.float32(0.0), {"a": jnp.zeros((4, 2)), "b": jnp.zeros((3,))}],
    ids=["no-chain-axis", "mismatched-chain-axes"],
)
def test_positions_without_a_shared_chain_axis_raise(positions):
    with pytest.raises(ValueError, match="leading chain axis"):
        run_chains(jax.random.key(0), rwmh(lambda x: 0.0, 1.0), positions, 5)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_non_scalar_energy_raises(name):
    energy_fn = from_fn(lambda params, x: 0.5 * x**2)  # one energy per coordinate: wrong
    ld = logdensity_fn(energy_fn, None)
    with pytest.raises(ValueError, match="must return one scalar energy"):
        run_chains(jax.random.key(0), FACTORIES[name](ld), jnp.zeros((4, 2)), 5)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_non_scalar_raw_logdensity_raises(name):
    # Without the from_fn wrapper every kernel raises jebm's own error (not jax.grad's
    # TypeError); none may broadcast a vector through the accept test.
    ld = lambda x: -0.5 * x**2
    with pytest.raises(ValueError, match="must return a scalar"):
        run_chains(jax.random.key(0), FACTORIES[name](ld), jnp.zeros((4, 2)), 5)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_nan_energy_at_init_raises(name):
    # Chain 2 starts where the energy is NaN.
    ld = lambda x: jnp.where(x[0] > 0.5, jnp.nan, -0.5 * jnp.sum(x**2))
    x0 = jnp.zeros((4, 2)).at[2, 0].set(1.0)
    with pytest.raises(ValueError, match=r"not finite at the initial position of chains \[2\]"):
        run_chains(jax.random.key(0), FACTORIES[name](ld), x0, 5)


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("name", MH)
def test_non_finite_proposals_are_rejected_and_counted(name, bad):
    # log p is non-finite for x₀ > 1. From 0.9 with steps of size ~0.5–1 a large share
    # of proposals lands there. Every such proposal must be rejected (no chain ever
    # sits in the region), counted as divergent, and never counted as accepted.
    # (+inf is the dangerous case: a naive MH test would accept it with probability 1.)
    ld = lambda x: jnp.where(x[0] > 1.0, bad, -0.5 * jnp.sum(x**2))
    x0 = jnp.full((32, 2), 0.9)
    run = jax.jit(lambda key: run_chains(key, FACTORIES[name](ld), x0, 40))
    result = run(jax.random.key(0))
    trace = np.asarray(result.trace)
    assert np.all(trace[..., 0] <= 1.0)
    assert np.all(np.isfinite(trace))
    divergent = np.asarray(result.info.is_divergent)
    accepted = np.asarray(result.info.is_accepted)
    assert divergent.mean() > 0.05
    assert not np.any((divergent > 0) & (accepted > 0))  # thin=1: per-step 0/1 values
    assert np.all(np.asarray(result.info.acceptance_rate)[divergent > 0] == 0.0)
