"""Score matching on Gaussian energies, where every optimum is known in closed form.

Model: ``E(θ, x) = ½ xᵀ S(θ) x`` with ``S`` symmetric, built from its upper triangle
``θ``. Every score-matching loss is then *quadratic* in ``θ`` (the score ``−Sx`` and
the Hessian ``−S`` are linear in ``θ``), so one Newton step from any point lands on
the exact minimiser of the loss as evaluated (for a fixed key). Data are centred
exactly, so ``C = XᵀX / n`` is the (biased) sample covariance about the zero mean
of the model. Closed forms:

* exact / sliced SM:  ``S* = C⁻¹`` (ESM gradient ``½(SC + CS) − I``);
* denoising SM at σ:   ``S* = (C + σ²I)⁻¹`` in expectation over the noise.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm.objectives import (
    denoising_score_matching,
    denoising_score_matching_loss,
    exact_score_matching,
    exact_score_matching_loss,
    sliced_score_matching,
    sliced_score_matching_loss,
)

D = 2
TRIU = np.triu_indices(D)
COV = np.array([[2.0, 0.6], [0.6, 1.0]])
SSM_VARIANTS = [
    pytest.param("rademacher", False, id="rademacher"),
    pytest.param("rademacher", True, id="rademacher-vr"),
    pytest.param("gaussian", False, id="gaussian"),
    pytest.param("gaussian", True, id="gaussian-vr"),
]


def sym(theta):
    """The symmetric matrix with upper triangle ``theta``."""
    d = int(round((np.sqrt(8 * theta.shape[-1] + 1) - 1) / 2))
    upper = jnp.zeros((d, d), theta.dtype).at[np.triu_indices(d)].set(theta)
    return upper + upper.T - jnp.diag(jnp.diag(upper))


def quadratic_energy(theta, x):
    return 0.5 * x @ sym(theta) @ x


def flipped_energy(theta, x):
    return -quadratic_energy(theta, x)


def triu(matrix):
    return jnp.asarray(matrix, jnp.float32)[TRIU]


def centred_data(seed, n):
    x = np.random.default_rng(seed).multivariate_normal(np.zeros(D), COV, size=n)
    x = x - x.mean(axis=0)
    return jnp.asarray(x, jnp.float32), x.T @ x / n


def newton_minimiser(loss_of_theta, theta0):
    """Exact minimiser of a quadratic loss: one Newton step (jitted by the callers)."""
    g = jax.grad(loss_of_theta)(theta0)
    h = jax.hessian(loss_of_theta)(theta0)
    return theta0 - jnp.linalg.solve(h, g)


def assert_mean_matches(samples, target, n_sd=5.0):
    """|mean − target| ≤ n_sd · sd/√K entrywise (a t-test at ~1e-4 for K = 16)."""
    samples = np.asarray(samples, np.float64)
    k = samples.shape[0]
    mean, se = samples.mean(axis=0), samples.std(axis=0, ddof=1) / np.sqrt(k)
    np.testing.assert_array_less(np.abs(mean - np.asarray(target)), n_sd * se + 1e-6)


def assert_positive_mean(samples, n_sd=5.0):
    samples = np.asarray(samples, np.float64)
    se = samples.std(ddof=1) / np.sqrt(samples.size)
    assert samples.mean() > n_sd * se, (samples.mean(), se)


# ----------------------------------------------------------------------------- exact


def test_exact_sm_gradient_vanishes_at_inverse_covariance():
    x, c = centred_data(0, 500)
    precision = np.linalg.inv(c)
    loss = lambda theta: exact_score_matching_loss(theta, None, x, energy_fn=quadratic_energy)[0]
    grad = jax.jit(jax.grad(loss))(triu(precision))
    # The gradient is ½(SC + CS) − I (off-diagonals doubled by the triangle
    # parametrisation), exactly 0 at S = C⁻¹; float32 sums of n = 500 terms of size
    # ‖S‖‖C‖ ≈ 3 carry ≲ √n·eps·3 ≈ 1e-5 of rounding, so 1e-4 is a safe bound.
    np.testing.assert_allclose(grad, 0.0, atol=1e-4)
    # One Newton step from the identity reaches the unique minimiser (quadratic loss).
    theta = jax.jit(newton_minimiser, static_argnums=0)(loss, triu(np.eye(D)))
    # Rounding relative to ‖C⁻¹‖ ≈ 1: cond(Hessian) ≈ cond(C)² ≈ 10 times 1e-5.
    np.testing.assert_allclose(sym(theta), precision, rtol=1e-4, atol=1e-4)


def test_exact_sm_closed_form_on_matrix_events():
    # E = ½ vec(x)ᵀ A vec(x) on events of shape (2, 3): loss = ½ mean‖A vec x‖² − tr A.
    rng = np.random.default_rng(1)
    b = rng.normal(size=(6, 6))
    a = jnp.asarray(b @ b.T / 6 + np.eye(6), jnp.float32)
    x = jnp.asarray(rng.normal(size=(7, 2, 3)), jnp.float32)
    energy_fn = lambda a, x: 0.5 * x.reshape(-1) @ a @ x.reshape(-1)
    loss, metrics = exact_score_matching_loss(a, None, x, energy_fn=energy_fn)
    flat = np.asarray(x, np.float64).reshape(7, 6)
    a64 = np.asarray(a, np.float64)
    expected = 0.5 * np.mean(np.sum((flat @ a64) ** 2, axis=1)) - np.trace(a64)
    # float32 arithmetic on O(10) numbers: relative rounding ~1e-6.
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    np.testing.assert_allclose(metrics["hessian_trace"], -np.trace(a64), rtol=1e-5)


def test_exact_sm_sign():
    # loss(−E) − loss(E) = (½‖Sx‖² + tr S) − (½‖Sx‖² − tr S) = 2 tr S > 0.
    x, c = centred_data(2, 200)
    theta = triu(np.linalg.inv(c))
    true, _ = exact_score_matching_loss(theta, None, x, energy_fn=quadratic_energy)
    flipped, _ = exact_score_matching_loss(theta, None, x, energy_fn=flipped_energy)
    trace = float(jnp.trace(sym(theta)))
    assert flipped > true
    np.testing.assert_allclose(flipped - true, 2 * trace, rtol=1e-5)  # float32 rounding


def test_exact_sm_objective_is_stateless(key):
    x, _ = centred_data(3, 16)
    objective = exact_score_matching(quadratic_energy)
    state = objective.init(key, x)
    loss, (metrics, new_state) = jax.jit(objective.loss)(triu(np.eye(D)), key, x, state)
    assert new_state == () and loss.shape == () and float(metrics["loss"]) == float(loss)


# ---------------------------------------------------------------------------- sliced


@pytest.mark.parametrize("projection, variance_reduced", SSM_VARIANTS)
def test_sliced_sm_is_unbiased_for_exact_sm(projection, variance_reduced):
    # Any (non-optimal) symmetric S on 6-D matrix events; E_v[SSM] = ESM since E[vvᵀ] = I.
    rng = np.random.default_rng(4)
    b = rng.normal(size=(6, 6))
    a = jnp.asarray(b @ b.T / 6 + 0.5 * np.eye(6), jnp.float32)
    x = jnp.asarray(rng.normal(size=(32, 2, 3)), jnp.float32)
    energy_fn = lambda a, x: 0.5 * x.reshape(-1) @ a @ x.reshape(-1)
    exact, _ = exact_score_matching_loss(a, None, x, energy_fn=energy_fn)
    keys = jax.random.split(jax.random.key(5), 64)
    sliced = jax.jit(
        jax.vmap(
            lambda k: sliced_score_matching_loss(
                a,
                k,
                x,
                energy_fn=energy_fn,
                num_projections=2,
                projection=projection,
                variance_reduced=variance_reduced,
            )[0]
        )
    )(keys)
    # K = 64 independent unbiased estimates: mean within 5 standard errors (every
    # variant has variance here: the off-diagonals of A make vᵀAv random).
    assert_mean_matches(sliced[:, None], jnp.reshape(exact, (1,)))


@pytest.mark.parametrize("projection, variance_reduced", SSM_VARIANTS)
def test_sliced_sm_minimiser_is_inverse_covariance(projection, variance_reduced):
    x, c = centred_data(6, 500)

    def minimiser(k):
        loss = lambda theta: sliced_score_matching_loss(
            theta,
            k,
            x,
            energy_fn=quadratic_energy,
            num_projections=4,
            projection=projection,
            variance_reduced=variance_reduced,
        )[0]
        return newton_minimiser(loss, triu(np.eye(D)))

    thetas = jax.jit(jax.vmap(minimiser))(jax.random.split(jax.random.key(7), 16))
    # For a fixed key the SSM loss is quadratic with a minimiser whose error about C⁻¹
    # comes only from the n·M = 2000 projections (zero mean, E[vvᵀ] = I); the mean of
    # K = 16 independent minimisers lies within 5 standard errors of C⁻¹. The O(1/(nM))
    # bias of inverting a noisy matrix is ≪ the O(1/√(nMK)) tolerance.
    assert_mean_matches(thetas, triu(np.linalg.inv(c)))


@pytest.mark.parametrize("projection, variance_reduced", SSM_VARIANTS)
def test_sliced_sm_sign(projection, variance_reduced, key):
    # Flipping E flips the trace term only: loss(−E) − loss(E) = 2 mean vᵀSv, which is
    # > 0 for every draw when S is positive definite (here S = C⁻¹).
    x, c = centred_data(8, 100)
    theta = triu(np.linalg.inv(c))
    opts = dict(num_projections=2, projection=projection, variance_reduced=variance_reduced)
    true, _ = sliced_score_matching_loss(theta, key, x, energy_fn=quadratic_energy, **opts)
    flipped, _ = sliced_score_matching_loss(theta, key, x, energy_fn=flipped_energy, **opts)
    assert flipped > true


@pytest.mark.parametrize("projection, variance_reduced", SSM_VARIANTS)
def test_sliced_sm_one_projection_matches_closed_form(projection, variance_reduced, key):
    # One projection per example takes its own path (no vmap over a size-1 axis); check it
    # against the quadratic's closed form with the same draws: s = −Sx, ∇s = −S, so per
    # example −vᵀSv + ½ (vᵀSx)² (SSM) or −vᵀSv + ½ ‖Sx‖² (SSM-VR).
    x, c = centred_data(9, 20)
    theta = triu(np.linalg.inv(c)) + 0.1
    s = np.asarray(sym(theta), np.float64)
    draw = jax.random.rademacher if projection == "rademacher" else jax.random.normal
    vs = np.asarray(jax.vmap(lambda k: draw(k, (1, D), jnp.float32))(
        jax.random.split(key, x.shape[0])))[:, 0]
    xs = np.asarray(x, np.float64)
    trace = -np.einsum("ni,ij,nj->n", vs, s, vs)
    fit = (0.5 * np.sum((xs @ s) ** 2, axis=1) if variance_reduced
           else 0.5 * np.einsum("ni,ij,nj->n", vs, s, xs) ** 2)
    loss, metrics = sliced_score_matching_loss(
        theta, key, x, energy_fn=quadratic_energy, num_projections=1, projection=projection,
        variance_reduced=variance_reduced)
    np.testing.assert_allclose(loss, np.mean(fit + trace), rtol=1e-5)  # float32 rounding
    np.testing.assert_allclose(metrics["hessian_trace"], np.mean(trace), rtol=1e-5)


def test_sliced_sm_forms_no_hessian():
    # Cost independent of d: the traced program of SSM has no (d, d) array, the exact
    # one does (a control showing the check can fail).
    d = 257
    x = jnp.ones((3, d))
    energy_fn = lambda w, x: 0.5 * jnp.sum(w * x**2) + jnp.sum(jnp.tanh(x)) ** 2
    w = jnp.ones(d)
    sliced = jax.make_jaxpr(
        lambda w: sliced_score_matching_loss(
            w, jax.random.key(0), x, energy_fn=energy_fn, num_projections=2
        )[0]
    )(w)
    exact = jax.make_jaxpr(lambda w: exact_score_matching_loss(w, None, x, energy_fn=energy_fn)[0])(
        w
    )
    assert f"{d},{d}]" not in str(sliced)
    assert f"{d},{d}]" in str(exact)


def test_sliced_sm_options_are_checked():
    with pytest.raises(ValueError, match="num_projections"):
        sliced_score_matching(quadratic_energy, num_projections=0)
    with pytest.raises(ValueError, match="projection"):
        sliced_score_matching(quadratic_energy, projection="sphere")


# ------------------------------------------------------------------------- denoising


def test_denoising_sm_minimiser_is_smoothed_inverse_covariance():
    sigma = 0.5
    x, c = centred_data(9, 2000)

    def minimiser(k):
        loss = lambda theta: denoising_score_matching_loss(
            theta, k, x, energy_fn=quadratic_energy, sigma=sigma
        )[0]
        return newton_minimiser(loss, triu(np.eye(D)))

    thetas = jax.jit(jax.vmap(minimiser))(jax.random.split(jax.random.key(10), 16))
    # E over the noise of the quadratic's normal equations gives S (C + σ²I) = I; each
    # fixed-key minimiser errs by O(1/√n) from the n noise draws; K = 16 keys, 5 s.e.
    assert_mean_matches(thetas, triu(np.linalg.inv(c + sigma**2 * np.eye(D))))


def test_denoising_sm_ladder_minimiser_per_level():
    sigmas = jnp.array([0.3, 1.0, 2.0])
    x, c = centred_data(11, 3000)

    def conditional_energy(thetas, x, sigma):
        level = jnp.argmin(jnp.abs(sigmas - sigma))  # one symmetric matrix per level
        return quadratic_energy(thetas.reshape(3, -1)[level], x)

    def minimiser(k):
        loss = lambda thetas: denoising_score_matching_loss(
            thetas, k, x, energy_fn=conditional_energy, sigmas=sigmas
        )[0]
        return newton_minimiser(loss, jnp.tile(triu(np.eye(D)), 3))

    thetas = jax.jit(jax.vmap(minimiser))(jax.random.split(jax.random.key(12), 16))
    # The σ² weights scale each level's block of the quadratic and leave its minimiser
    # (C + σ_l² I)⁻¹ in place; each level sees ≈ n/3 examples. 5 s.e. over K = 16 keys.
    target = jnp.concatenate([triu(np.linalg.inv(c + float(s) ** 2 * np.eye(D))) for s in sigmas])
    assert_mean_matches(thetas, target)


def test_denoising_sm_ladder_weights_by_sigma_squared(key):
    # A one-level ladder with a σ-independent energy uses the same noise as sigma=σ and
    # weights the loss by σ²: equal up to float32 rounding.
    x, _ = centred_data(13, 64)
    theta = triu(np.eye(D))
    single, _ = denoising_score_matching_loss(theta, key, x, energy_fn=quadratic_energy, sigma=0.7)
    ladder, _ = denoising_score_matching_loss(
        theta, key, x, energy_fn=lambda t, x, s: quadratic_energy(t, x), sigmas=jnp.array([0.7])
    )
    np.testing.assert_allclose(ladder, 0.49 * single, rtol=1e-5)


def test_denoising_sm_sign():
    # loss(−E) − loss(E) = 2 mean (S x̃)·ε/σ, mean 2 tr S > 0; one-sided 5 s.e. test over
    # K = 16 keys.
    x, c = centred_data(14, 200)
    theta = triu(np.linalg.inv(c))

    def diff(k):
        true = denoising_score_matching_loss(theta, k, x, energy_fn=quadratic_energy, sigma=0.5)
        flip = denoising_score_matching_loss(theta, k, x, energy_fn=flipped_energy, sigma=0.5)
        return flip[0] - true[0]

    assert_positive_mean(jax.jit(jax.vmap(diff))(jax.random.split(jax.random.key(15), 16)))


def test_denoising_sm_options_are_checked():
    with pytest.raises(ValueError, match="exactly one"):
        denoising_score_matching(quadratic_energy)
    with pytest.raises(ValueError, match="exactly one"):
        denoising_score_matching(quadratic_energy, sigma=0.1, sigmas=jnp.array([0.1]))
    with pytest.raises(ValueError, match="positive"):
        denoising_score_matching(quadratic_energy, sigma=-0.1)
    with pytest.raises(ValueError, match="1-D"):
        denoising_score_matching(quadratic_energy, sigmas=jnp.ones((2, 2)))
