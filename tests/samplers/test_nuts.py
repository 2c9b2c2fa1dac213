"""NUTS (BlackJAX's, behind jebm's contract): moments, and a clear error without BlackJAX."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from samplers_oracles import assert_moments, correlated_gaussian, initial_positions

from jebm.samplers import nuts, run_chains


@pytest.mark.slow
def test_nuts_moments_on_a_correlated_gaussian():
    # 32 chains from exact draws, 200 steps: mean and covariance within 5 between-chain
    # SEs (t with 31 dof, P(|t| > 5) ~ 2e-5 per entry, 6 entries).
    target, ld, mean, cov = correlated_gaussian(2)
    x0 = initial_positions(target, jax.random.key(0), 32)
    alg = nuts(ld, 0.3, jnp.asarray(np.diag(cov), jnp.float32))
    result = jax.jit(lambda key: run_chains(key, alg, x0, 200))(jax.random.key(1))
    assert_moments(result.trace, mean, cov, num_se=5.0, max_se=0.1)
    steps = np.asarray(result.info.num_integration_steps)
    assert steps.min() >= 1 and steps.max() <= 1023


def test_nuts_without_blackjax_fails_clearly(monkeypatch):
    for name in ["blackjax", "blackjax.mcmc", "blackjax.mcmc.hmc", "blackjax.mcmc.nuts"]:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` raise
    with pytest.raises(ImportError, match="pip install blackjax"):
        nuts(lambda x: -jnp.sum(x**2), 0.1, jnp.ones(2))


def test_importing_jebm_does_not_import_blackjax():
    code = (
        "import sys; sys.modules['blackjax'] = None; import jebm, jebm.samplers; "
        "print(sorted(m for m in sys.modules if m.startswith('blackjax')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=None)
    assert out.stdout.strip() == "['blackjax']"  # only the blocking placeholder
