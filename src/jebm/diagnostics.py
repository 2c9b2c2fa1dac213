"""Convergence diagnostics for many chains: effective sample size and split R̂.

Input layout is jebm's trace, **draws first**: ``(num_draws, num_chains, *event)``
(what :func:`jebm.run_chains` returns as ``trace``). Every diagnostic is computed
independently for each event element and has shape ``event``. A pytree of such
arrays gives a pytree of results.

Both functions are pure and jittable: ``num_draws``, ``num_chains`` and ``method``
are static; there is no data-dependent Python control flow.

Conventions (Vehtari et al. 2021, §3–4):

* chains are *split* in half (an odd middle draw is dropped), giving ``2M`` chains
  of ``⌊N/2⌋`` draws, so a trend within a chain shows up as between-chain variance;
* *rank normalisation* replaces each draw by ``Φ⁻¹((r − 3/8)/(S + 1/4))`` where
  ``r`` is its (tie-averaged) rank among all ``S`` pooled draws, which makes the
  diagnostics well-defined for heavy tails and invariant to monotone transforms;
* the autocorrelation sum is truncated by Geyer's initial positive sequence and
  made monotone (initial monotone sequence), as in Stan.

References:
  Vehtari, A., Gelman, A., Simpson, D., Carpenter, B. and Bürkner, P.-C. (2021).
  Rank-normalization, folding, and localization: an improved R̂ for assessing
  convergence of MCMC. Bayesian Analysis 16(2), 667–718.

  Geyer, C. J. (1992). Practical Markov chain Monte Carlo. Statistical Science
  7(4), 473–483.

  Gelman, A. and Rubin, D. B. (1992). Inference from iterative simulation using
  multiple sequences. Statistical Science 7(4), 457–472.
"""

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtri

from jebm.types import Array, ArrayTree

__all__ = ["effective_sample_size", "split_rhat"]

_ESS_METHODS = ("bulk", "tail", "mean", "identity")
_TAIL_PROB = 0.05  # tail ESS uses the 5% and 95% quantiles (Vehtari et al. 2021, §4.3)


def _check(samples: Array, min_draws: int, name: str) -> None:
    if samples.ndim < 2:
        raise ValueError(
            f"{name} needs samples of shape (num_draws, num_chains, *event), got shape "
            f"{samples.shape}."
        )
    if samples.shape[0] < min_draws:
        raise ValueError(
            f"{name} needs at least {min_draws} draws per chain (axis 0), got {samples.shape[0]}."
        )


def _as_chains(samples: Array) -> Array:
    """``(N, M, *event)`` → float ``(M, N, K)`` with the event flattened to ``K``."""
    x = jnp.asarray(samples)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    n, m = x.shape[:2]
    return jnp.moveaxis(x.reshape(n, m, -1), 0, 1)


def _split(x: Array) -> Array:
    """``(M, N, K)`` → ``(2M, ⌊N/2⌋, K)``: first and last halves; an odd middle draw is dropped."""
    half = x.shape[1] // 2
    return jnp.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


def _average_ranks(pooled: Array) -> Array:
    """1-based ranks along axis 0 of ``(S, K)``; ties get the mean of the ranks they span."""
    ordered = jnp.sort(pooled, axis=0)

    def column(sorted_col, col):
        below = jnp.searchsorted(sorted_col, col, side="left")  # number strictly below
        at_or_below = jnp.searchsorted(sorted_col, col, side="right")
        return (below + 1 + at_or_below) / 2.0

    return jax.vmap(column, in_axes=1, out_axes=1)(ordered, pooled)


def _rank_normalize(x: Array) -> Array:
    """Normal scores ``Φ⁻¹((r − 3/8)/(S + 1/4))`` of the draws pooled over chains, ``(M, N, K)``."""
    m, n, k = x.shape
    pooled = x.reshape(m * n, k)
    ranks = _average_ranks(pooled)
    z = ndtri((ranks - 0.375) / (m * n + 0.25)).astype(x.dtype)
    z = jnp.where(jnp.any(jnp.isnan(pooled), axis=0, keepdims=True), jnp.nan, z)  # NaN: no rank
    return z.reshape(m, n, k)


def _undefined(x: Array) -> Array:
    """Elements of ``(M, N, K)`` with a NaN draw or all draws equal, ``(K,)``.

    Equality is tested exactly: a variance computed in floating point need not be 0
    for constant draws (a compiled mean may round), so ``var > 0`` is no test.
    """
    return jnp.any(jnp.isnan(x), axis=(0, 1)) | jnp.all(x == x[:1, :1], axis=(0, 1))


def _autocovariance(x: Array) -> Array:
    """Biased autocovariance of each chain at lags ``0..N-1`` via FFT, ``(M, N, K)``."""
    n = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    n_fft = 1 << (2 * n - 1).bit_length()  # ≥ 2N so the circular correlation does not wrap
    f = jnp.fft.rfft(centred, n=n_fft, axis=1)
    acov = jnp.fft.irfft(f * jnp.conj(f), n=n_fft, axis=1)[:, :n]
    return (acov / n).astype(x.dtype)


def _ess(x: Array) -> Array:
    """Multi-chain ESS of ``(M, N, K)`` chains (no splitting, no ranks), shape ``(K,)``.

    ``ρ̂_t = 1 − (W − mean_m γ̂_{m,t}) / var⁺`` with ``W`` the mean within-chain
    variance and ``var⁺ = (N−1)/N · W + B/N`` (Vehtari et al. 2021, eq. 10);
    ``τ̂ = −1 + 2 Σ_{k<K} P̂_k + ρ̂_{2K}⁺`` over the positive, monotone pair sums
    ``P̂_k = ρ̂_{2k} + ρ̂_{2k+1}`` (Geyer 1992); ``ESS = MN / τ̂``.
    """
    m, n, _ = x.shape
    acov = _autocovariance(x)  # (M, N, K)
    within = acov[:, 0].mean(axis=0) * n / (n - 1.0)  # W, ddof = 1 per chain
    chain_means = x.mean(axis=1)  # (M, K)
    between_over_n = jnp.var(chain_means, axis=0, ddof=1) if m > 1 else jnp.zeros_like(within)
    var_plus = within * (n - 1.0) / n + between_over_n
    rho = 1.0 - (within[None] - acov.mean(axis=0)) / var_plus[None]  # (N, K)
    rho = rho.at[0].set(1.0)

    num_pairs = n // 2
    pairs = rho[: 2 * num_pairs].reshape(num_pairs, 2, -1)
    pair_sums = pairs.sum(axis=1)  # (num_pairs, K)
    # Initial positive sequence: keep the pairs before the first non-positive one.
    stops = pair_sums <= 0
    num_alive = jnp.where(stops.any(axis=0), jnp.argmax(stops, axis=0), num_pairs)  # (K,)
    alive = jnp.arange(num_pairs)[:, None] < num_alive[None]
    # Initial monotone sequence: each kept pair sum is capped by the previous one. (A scan
    # rather than lax.cummin, which compiles slowly on CPU for long chains.)
    running_min = lambda carry, p: (jnp.minimum(carry, p),) * 2
    monotone = jax.lax.scan(running_min, pair_sums[0], pair_sums)[1]
    head = jnp.sum(jnp.where(alive, monotone, 0.0), axis=0)
    # Stan's improvement: the even lag of the first dropped pair, if positive.
    first_dropped = jnp.minimum(num_alive, num_pairs - 1)
    next_even = jnp.take_along_axis(pairs[:, 0], first_dropped[None], axis=0)[0]
    extra = jnp.where((num_alive < num_pairs) & (next_even > 0), next_even, 0.0)
    tau = -1.0 + 2.0 * head + extra
    total = float(m * n)
    tau = jnp.maximum(tau, 1.0 / jnp.log10(total))  # caps ESS at MN·log10(MN), as Stan does
    ess = total / tau
    # Constant draws or a NaN draw leave the element undefined; without this the
    # comparisons above would hide it behind the cap.
    return jnp.where(_undefined(x), jnp.nan, ess)


def _tail_ess(split: Array) -> Array:
    """min of the ESS of the 5% and 95% quantile indicators (Vehtari et al. 2021, §4.3)."""
    m, n, k = split.shape
    pooled = split.reshape(m * n, k)
    q = jnp.quantile(pooled, jnp.array([_TAIL_PROB, 1.0 - _TAIL_PROB]), axis=0)  # (2, K)
    lower = (split <= q[0][None, None]).astype(split.dtype)
    upper = (split <= q[1][None, None]).astype(split.dtype)
    ess = jnp.minimum(_ess(lower), _ess(upper))
    return jnp.where(jnp.any(jnp.isnan(split), axis=(0, 1)), jnp.nan, ess)  # NaN: no quantile


def _rhat(x: Array) -> Array:
    """Potential scale reduction ``√(var⁺/W)`` of ``(M, N, K)`` chains (Gelman & Rubin 1992)."""
    n = x.shape[1]
    within = jnp.var(x, axis=1, ddof=1).mean(axis=0)
    between_over_n = jnp.var(x.mean(axis=1), axis=0, ddof=1)
    var_plus = within * (n - 1.0) / n + between_over_n
    return jnp.where(_undefined(x), jnp.nan, jnp.sqrt(var_plus / within))


def _per_leaf(fn, samples: ArrayTree) -> ArrayTree:
    def leaf(s):
        s = jnp.asarray(s)
        return fn(_as_chains(s)).reshape(s.shape[2:])

    return jax.tree.map(leaf, samples)


def effective_sample_size(samples: ArrayTree, *, method: str = "bulk") -> ArrayTree:
    """Multi-chain effective sample size of each event element.

    Args:
      samples: draws of shape ``(num_draws, num_chains, *event)`` (or a pytree of
        them), at least 4 draws.
      method: static choice of estimator:

        * ``"bulk"`` (default): split chains, rank-normalised draws — the ESS of
          the bulk of the distribution, robust to heavy tails (Vehtari et al. 2021);
        * ``"tail"``: split chains, the minimum ESS of the indicators of the 5%
          and 95% quantiles — how well the tails are explored;
        * ``"mean"``: split chains, raw draws — the ESS for estimating the mean;
        * ``"identity"``: whole chains, raw draws — the classic estimator, the
          one ``blackjax.diagnostics.effective_sample_size`` computes.

    Returns:
      ESS of shape ``event`` (a pytree of them). An element whose draws are all
      equal, or contain a NaN, gives NaN. Values are capped at
      ``S·log10(S)`` for ``S`` pooled draws, as in Stan.

    Examples:
      >>> import jax
      >>> from jebm.diagnostics import effective_sample_size
      >>> draws = jax.random.normal(jax.random.key(0), (1000, 4, 2))  # iid
      >>> ess = effective_sample_size(draws)
      >>> ess.shape
      (2,)
      >>> bool(((ess > 3000) & (ess < 5000)).all())  # ≈ 4000 for iid draws
      True

    References:
      Vehtari et al. (2021), §3.2 (ESS) and §4.3 (bulk and tail ESS);
      Geyer (1992), initial positive and monotone sequence estimators.
    """
    if method not in _ESS_METHODS:
        raise ValueError(f"method must be one of {_ESS_METHODS}, got {method!r}.")

    def fn(x):
        if method == "identity":
            return _ess(x)
        split = _split(x)
        if method == "mean":
            return _ess(split)
        if method == "tail":
            return _tail_ess(split)
        return _ess(_rank_normalize(split))

    for leaf in jax.tree.leaves(samples):
        _check(jnp.asarray(leaf), 4, "effective_sample_size")
    return _per_leaf(fn, samples)


def split_rhat(samples: ArrayTree, *, rank_normalize: bool = True) -> ArrayTree:
    """Split R̂ of each event element; values near 1 (say < 1.01) suggest mixing.

    Args:
      samples: draws of shape ``(num_draws, num_chains, *event)`` (or a pytree of
        them), at least 4 draws. One chain works too (its halves are compared).
      rank_normalize: static. ``True`` (default) gives the rank-normalised R̂ of
        Vehtari et al. (2021): the maximum of the split R̂ of the rank-normalised
        draws (bulk) and of the rank-normalised draws folded about the pooled
        median, ``|x − median|`` (tails/scale). ``False`` gives the classic split
        R̂ of the raw draws (Gelman et al.'s BDA3 version).

    Returns:
      R̂ of shape ``event`` (a pytree of them). An element whose draws are all
      equal gives NaN.

    Examples:
      >>> import jax
      >>> from jebm.diagnostics import split_rhat
      >>> draws = jax.random.normal(jax.random.key(0), (1000, 4))
      >>> float(split_rhat(draws)) < 1.01
      True
      >>> shifted = draws + jax.numpy.arange(4.0)[None]  # chains centred at 0, 1, 2, 3
      >>> float(split_rhat(shifted)) > 1.5
      True

    References:
      Vehtari et al. (2021), §4.1–4.2 (rank normalisation and folding);
      Gelman and Rubin (1992).
    """

    def fn(x):
        split = _split(x)
        if not rank_normalize:
            return _rhat(split)
        bulk = _rhat(_rank_normalize(split))
        m, n, k = split.shape
        median = jnp.median(split.reshape(m * n, k), axis=0)
        folded = jnp.abs(split - median[None, None])
        tail = _rhat(_rank_normalize(folded))
        return jnp.maximum(bulk, tail)

    for leaf in jax.tree.leaves(samples):
        _check(jnp.asarray(leaf), 4, "split_rhat")
    return _per_leaf(fn, samples)
