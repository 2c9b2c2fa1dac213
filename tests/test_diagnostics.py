"""Tests of jebm.diagnostics against closed forms, BlackJAX and a NumPy reference."""

import blackjax.diagnostics as bd
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from jebm import diagnostics

# Tests call the jitted functions (one compile per shape instead of one per op); the
# eager path is checked against them in test_event_shape_pytrees_and_jit.
effective_sample_size = jax.jit(diagnostics.effective_sample_size, static_argnames="method")
split_rhat = jax.jit(diagnostics.split_rhat, static_argnames="rank_normalize")

# ---------------------------------------------------------------------------- helpers


def _ar1(key, phi, num_draws, num_chains, num_dims=1):
    """Stationary AR(1) chains x_t = φ x_{t-1} + ε_t, Var x = 1, layout (N, M, d)."""
    k0, k1 = jax.random.split(key)
    x0 = jax.random.normal(k0, (num_chains, num_dims))
    eps = jax.random.normal(k1, (num_draws, num_chains, num_dims)) * np.sqrt(1 - phi**2)

    def step(x, e):
        x = phi * x + e
        return x, x

    return jax.lax.scan(step, x0, eps)[1]


def _to_blackjax(x):
    """jebm layout (draws, chains, ...) → BlackJAX's default (chains, draws, ...)."""
    return jnp.moveaxis(jnp.asarray(x), 0, 1)


_BJ_JITTED = {}


def _bj(fn, x):
    # BlackJAX broadcasts with implicit rank promotion, which the test config forbids.
    # One jitted wrapper per function, so tests sharing a shape share the compile.
    jitted = _BJ_JITTED.setdefault(fn, jax.jit(fn))
    with jax.numpy_rank_promotion("allow"):
        return jitted(_to_blackjax(x))


def _np_split(x):
    """(N, M) → (⌊N/2⌋, 2M): first halves then last halves, dropping an odd middle draw."""
    half = x.shape[0] // 2
    return np.concatenate([x[:half], x[x.shape[0] - half :]], axis=1)


def _np_rank_normalize(x):
    """Normal scores of (N, M) draws pooled over chains, with scipy's average ranks."""
    r = stats.rankdata(x.ravel(), method="average").reshape(x.shape)
    return special.ndtri((r - 0.375) / (x.size + 0.25))


def _np_rhat(x):
    """Gelman–Rubin R̂ of (N, M) draws, written from the BDA3 formulas."""
    n = x.shape[0]
    w = x.var(axis=0, ddof=1).mean()
    b = n * x.mean(axis=0).var(ddof=1)
    return np.sqrt(((n - 1) / n * w + b / n) / w)


def _np_rank_rhat(x):
    s = _np_split(np.asarray(x, np.float64))
    bulk = _np_rhat(_np_rank_normalize(s))
    tail = _np_rhat(_np_rank_normalize(np.abs(s - np.median(s))))
    return max(bulk, tail)


def _np_ess(x):
    """Stan's ESS of (N, M) draws with explicit loops (direct sums, no FFT)."""
    x = np.asarray(x, np.float64)
    n, m = x.shape
    acov = np.empty((n, m))
    for c in range(m):
        d = x[:, c] - x[:, c].mean()
        acov[:, c] = [np.dot(d[: n - t], d[t:]) / n for t in range(n)]
    mean_var = acov[0].mean() * n / (n - 1)
    var_plus = mean_var * (n - 1) / n + (x.mean(axis=0).var(ddof=1) if m > 1 else 0.0)
    rho = 1 - (mean_var - acov.mean(axis=1)) / var_plus
    rho[0] = 1.0
    kept = []  # Geyer's initial positive sequence of pair sums
    k = 0
    while 2 * k + 1 < n and rho[2 * k] + rho[2 * k + 1] > 0:
        kept.append(rho[2 * k] + rho[2 * k + 1])
        k += 1
    for i in range(1, len(kept)):  # initial monotone sequence
        kept[i] = min(kept[i], kept[i - 1])
    extra = rho[2 * k] if 2 * k + 1 < n and rho[2 * k] > 0 else 0.0
    tau = max(-1 + 2 * sum(kept) + extra, 1 / np.log10(n * m))
    return n * m / tau


# ------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("method", ["bulk", "mean", "identity"])
@pytest.mark.parametrize(
    "phi", [0.0, 0.5, 0.9, -0.3], ids=["iid", "phi0.5", "phi0.9", "antithetic"]
)
def test_ess_of_ar1_matches_closed_form(method, phi):
    # AR(1): ρ_t = φ^t, so τ = (1 + φ)/(1 − φ) and ESS / (MN) → (1 − φ)/(1 + φ).
    num_draws, num_chains = 10_000, 16
    x = _ar1(jax.random.key(11), phi, num_draws, num_chains, num_dims=2)
    rel = effective_sample_size(x, method=method) / (num_draws * num_chains)
    expected = (1 - phi) / (1 + phi)
    # Madras & Sokal (1988): sd(τ̂)/τ ≈ √(2(2W + 1)/S) for a window W. Geyer's sequence
    # stops where φ^W ≈ S^(-1/2), W ≈ ln S / (2 ln(1/φ)) = 57 at φ = 0.9 (at most 8
    # otherwise); S = 1.6e5 gives sd/τ ≈ 0.038 at φ = 0.9, ≤ 0.011 otherwise. Allow 4 sd.
    tol = 0.15 if phi == 0.9 else 0.045
    np.testing.assert_allclose(rel, expected, rtol=tol)


def test_rhat_near_one_for_iid_chains():
    x = jax.random.normal(jax.random.key(1), (2000, 4))
    # With 2M = 8 split chains of n = 1000 iid draws, R̂ − 1 ≈ (B/W − 1)/(2n) and B/W has
    # sd √(2/(2M − 1)) = 0.53, so sd(R̂) ≈ 2.7e-4; 6 sd = 0.0016.
    for rank in (True, False):
        np.testing.assert_allclose(split_rhat(x, rank_normalize=rank), 1.0, atol=0.0016)


def test_rhat_of_shifted_chains_matches_closed_form():
    # Unit-variance chains with means 0, 1, 2, 3: the 8 split chains have means
    # 0,0,1,1,2,2,3,3, var_ddof1 = 10/7, so R̂² ≈ (n−1)/n + 10/7 (W = 1), R̂ ≈ 1.558.
    n = 2000
    x = jax.random.normal(jax.random.key(2), (n, 4)) + jnp.arange(4.0)[None]
    expected = np.sqrt((n // 2 - 1) / (n // 2) + 10 / 7)
    # Split-chain means carry noise 1/√1000 = 0.032 each, moving 10/7 by about
    # 2·√(10/7 · 1/7)·0.032 ≈ 0.03 (sd) and R̂ by ≈ 0.03/(2·1.56) ≈ 0.01; allow 3 sd.
    np.testing.assert_allclose(split_rhat(x, rank_normalize=False), expected, atol=0.03)
    assert float(split_rhat(x)) > 1.4  # the rank version agrees that this is far from 1


def test_rank_rhat_catches_scale_difference_that_plain_rhat_misses():
    # Same mean, one chain with 3× the spread: only the folded (tail) component sees it.
    x = jax.random.normal(jax.random.key(3), (2000, 4)) * jnp.array([[1.0, 1.0, 1.0, 3.0]])
    plain = float(split_rhat(x, rank_normalize=False))
    rank = float(split_rhat(x))
    # Plain: B ≈ 0, so R̂ ≈ √((n−1)/n) < 1 up to sd ≈ 5e-4 (see the iid test).
    assert plain < 1.005
    # Folded ranks: the wide chain's |x| sits far above the rest; R̂ ≈ 1.1 here, far
    # beyond the iid noise of 5e-4.
    assert rank > 1.05


def test_split_catches_a_trend_within_chains():
    # Every chain drifts from −1 to +1: chain means agree, but halves do not.
    n = 2000
    noise = jax.random.normal(jax.random.key(4), (n, 4))
    x = noise + jnp.linspace(-1.0, 1.0, n)[:, None]
    # Halves differ in mean by 1, so var(split means) ≈ 1/4·8/7 and R̂ ≈ √(1 + 0.29/1.33).
    assert float(split_rhat(x, rank_normalize=False)) > 1.05
    assert float(split_rhat(x)) > 1.05


# --------------------------------------------------------- oracles: BlackJAX, NumPy


def test_identity_ess_matches_blackjax_and_numpy_reference():
    x = _ar1(jax.random.key(5), 0.7, 400, 4, num_dims=3).astype(jnp.float32)
    ours = effective_sample_size(x, method="identity")
    ref = np.array([_np_ess(x[:, :, i]) for i in range(3)])
    # Same algorithm; float32 FFT autocovariances vs float64 direct sums differ by ~1e-6
    # relative per lag, accumulated over ≲ 20 lags.
    np.testing.assert_allclose(ours, ref, rtol=1e-4)
    # BlackJAX treats the even lag after the truncation point slightly differently (it
    # also runs it through the monotone step), which changes τ by at most that one
    # autocorrelation, |ρ| ≲ 3/√S = 0.075 against τ ≈ 5.7: ≤ 1.3%.
    np.testing.assert_allclose(ours, _bj(bd.effective_sample_size, x), rtol=0.015)


def test_bulk_and_mean_ess_match_numpy_reference():
    x = _ar1(jax.random.key(6), 0.8, 301, 3, num_dims=2)  # odd: the middle draw is dropped
    for i in range(2):
        xi = np.asarray(x[:, :, i], np.float64)
        bulk_ref = _np_ess(_np_rank_normalize(_np_split(xi)))
        mean_ref = _np_ess(_np_split(xi))
        # float32 vs float64 as above.
        np.testing.assert_allclose(effective_sample_size(x, method="bulk")[i], bulk_ref, rtol=1e-4)
        np.testing.assert_allclose(effective_sample_size(x, method="mean")[i], mean_ref, rtol=1e-4)


def test_bulk_and_tail_ess_match_blackjax():
    # Even number of draws: BlackJAX drops the last draw of an odd chain, we the middle one.
    x = _ar1(jax.random.key(7), 0.6, 400, 4, num_dims=3)
    # Same split and ranks; only the post-truncation lag differs (see the identity test:
    # |ρ| ≲ 3/√1600 = 0.075 against τ ≈ 4, ≤ 2%).
    np.testing.assert_allclose(
        effective_sample_size(x, method="bulk"), _bj(bd.ess_bulk, x), rtol=0.02
    )
    # Tail: ESS of the 5%/95% indicators; BlackJAX uses 1(x ≥ q95), the complement of
    # our 1(x ≤ q95) on continuous draws, and ESS is invariant to x ↦ 1 − x.
    np.testing.assert_allclose(
        effective_sample_size(x, method="tail"), _bj(bd.ess_tail, x), rtol=0.02
    )


def test_rank_rhat_matches_blackjax_and_numpy_reference():
    x = _ar1(jax.random.key(8), 0.9, 400, 4, num_dims=3)
    x = x * jnp.array([1.0, 2.0, 0.5])[None, None] + jnp.array([0.0, 1.0, -3.0])[None, None]
    x = x.at[:, 3].add(0.5)  # one chain off, so R̂ is not trivially 1
    ours = split_rhat(x)
    # Same algorithm in float32 vs float64 scipy ranks/ndtri: ~1e-6 relative.
    ref = np.array([_np_rank_rhat(x[:, :, i]) for i in range(3)])
    np.testing.assert_allclose(ours, ref, rtol=1e-5)
    np.testing.assert_allclose(ours, _bj(bd.rhat, x), rtol=1e-5)  # BlackJAX's is rank-normalised


def test_plain_split_rhat_matches_blackjax_on_the_same_split():
    x = _ar1(jax.random.key(9), 0.5, 400, 3, num_dims=2) + jnp.array([0.0, 0.2, 0.4])[None, :, None]
    half = x.shape[0] // 2
    split = jnp.concatenate([x[:half], x[half:]], axis=1)  # (draws, 2·chains, d)
    # BlackJAX's potential_scale_reduction is the plain (unsplit, unranked) statistic,
    # so feed it our split; identical formulas, float32 roundoff only.
    expected = _bj(bd.potential_scale_reduction, split)
    np.testing.assert_allclose(split_rhat(x, rank_normalize=False), expected, rtol=1e-5)
    ref = [_np_rhat(_np_split(np.asarray(x[..., i], np.float64))) for i in range(2)]
    np.testing.assert_allclose(split_rhat(x, rank_normalize=False), ref, rtol=1e-5)


# ------------------------------------------------------------------- properties


def test_rank_diagnostics_invariances():
    x = _ar1(jax.random.key(10), 0.5, 400, 4, num_dims=3)
    x = x.at[:, 0].multiply(1.5)  # unequal spreads, so the folded R̂ is not trivially 1
    # Bulk ESS sees only ranks: any strictly increasing map leaves it unchanged.
    y = jnp.exp(2.0 * x)
    np.testing.assert_allclose(effective_sample_size(y), effective_sample_size(x), rtol=1e-6)
    # The rank R̂ also folds about the median, |x − median|, whose order survives only
    # increasing affine maps (exp reorders it). Scaling by 4 is exact in floating point,
    # so the order is kept exactly (a general a·x + b can flip near-ties of |x − m|).
    z = 4.0 * x
    np.testing.assert_allclose(split_rhat(z), split_rhat(x), rtol=1e-6)
    assert not np.allclose(split_rhat(y), split_rhat(x), rtol=1e-6)  # folding is scale-aware


def test_event_shape_pytrees_and_jit():
    x = _ar1(jax.random.key(12), 0.3, 32, 2, num_dims=6).reshape(32, 2, 2, 3)
    tree = {"a": x, "b": x[..., 0, 0]}
    ess = effective_sample_size(tree)
    assert ess["a"].shape == (2, 3) and ess["b"].shape == ()
    np.testing.assert_allclose(ess["b"], ess["a"][0, 0], rtol=1e-6)
    rhat = split_rhat(tree)
    assert rhat["a"].shape == (2, 3)
    np.testing.assert_allclose(rhat["b"], rhat["a"][0, 0], rtol=1e-6)
    # Eager (op-by-op, slow to compile, so only one small case) agrees with jit.
    eager = diagnostics.effective_sample_size(x[..., 0, :], method="tail")
    np.testing.assert_allclose(eager, effective_sample_size(x, method="tail")[0], rtol=1e-5)


def test_single_chain_works():
    x = _ar1(jax.random.key(13), 0.0, 2000, 1)
    # One chain of S = 2000 iid draws: each ρ̂_t has sd 1/√S = 0.022 and Geyer's sequence
    # keeps ~2 pairs, so sd(τ̂) ≈ 2·√2·0.022·√2 ≈ 0.09 (a 300-replicate check gave a
    # relative sd of 0.064 and mean 0.97); allow 0.25 ≈ 3-4 sd.
    np.testing.assert_allclose(effective_sample_size(x), 2000, rtol=0.25)
    # Two halves of n = 1000: B/W ~ χ²₁ with sd √2, so sd(R̂) ≈ √2/(2n) = 7e-4; 7 sd.
    np.testing.assert_allclose(split_rhat(x), 1.0, atol=0.005)


def test_constant_and_nan_elements_are_undefined_without_touching_others():
    x = jax.random.normal(jax.random.key(14), (400, 4, 3))
    x = x.at[:, :, 0].set(1.0).at[17, 2, 1].set(jnp.nan)
    for method in ("bulk", "tail", "mean", "identity"):
        ess = effective_sample_size(x, method=method)
        assert np.isnan(ess[0]) and np.isnan(ess[1]) and np.isfinite(ess[2]), method
    for rank in (True, False):
        rhat = split_rhat(x, rank_normalize=rank)
        assert np.isnan(rhat[0]) and np.isnan(rhat[1]) and np.isfinite(rhat[2]), rank


@pytest.mark.parametrize(
    "shape, kwargs, match",
    [
        ((10,), {}, "num_draws, num_chains"),
        ((3, 4), {}, "at least 4 draws"),
        ((10, 4), {"method": "median"}, "method"),
    ],
    ids=["no-chain-axis", "too-few-draws", "bad-method"],
)
def test_bad_input_raises(shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        diagnostics.effective_sample_size(jnp.zeros(shape), **kwargs)
    if "method" not in kwargs:
        with pytest.raises(ValueError, match=match):
            diagnostics.split_rhat(jnp.zeros(shape))
