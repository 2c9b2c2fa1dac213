"""Samplers for discrete states: single-site Metropolis, Gibbs-with-Gradients, RBM block Gibbs.

States are float arrays on the lattice (see :mod:`jebm.energies.discrete`):

* **binary**: any shape, entries in {0, 1}; a move flips one entry;
* **categorical**: one-hot along the last axis, shape ``(*sites, q)``; a move recolours
  one site.

All three kernels are on the :class:`~jebm.samplers.base.SamplingAlgorithm` contract,
vmapped over chains by :func:`jebm.run_chains`, with the key as an argument and the
log-density cached in the state.

**Single-site Metropolis** (:func:`metropolis_flip`). Pick a site uniformly; propose its
flip (binary) or a uniformly chosen *other* colour (categorical); accept with
``min(1, p(x′)/p(x))`` (the proposal is symmetric). One log-density evaluation per step.

**Gibbs-with-Gradients** (:func:`gibbs_with_gradients`, Grathwohl et al. 2021). With
``f = log p``, a first-order Taylor expansion estimates the change of ``f`` under each
move from one gradient:

* binary: ``d̃_i(x) = (1 − 2x_i) ∂f/∂x_i ≈ f(flip_i x) − f(x)``;
* categorical: ``d̃_{ik}(x) = ∂f/∂x_{ik} − Σ_l x_{il} ∂f/∂x_{il} ≈ f(x with site i set to
  k) − f(x)``, for ``k`` not the current colour of site ``i``.

The move is drawn from ``q(· | x) = softmax(d̃(x)/2)`` (by inverse CDF from one
uniform: float32 rounding of the cumulative sum perturbs the drawn probabilities by
~1e-7 of the total, far below any Monte Carlo error) and accepted with
``min(1, exp(f(x′) − f(x)) q(move⁻¹ | x′) / q(move | x))``, which needs the gradient at
``x′``: one ``value_and_grad`` per step. The reverse ratio needs ``q(· | x′)``'s normaliser,
which is also the next step's proposal if ``x′`` is accepted; so the state caches the
proposal itself, the weights ``w = exp(d̃/2 − max d̃/2)`` and ``log Σ w``, instead of the
gradient, and each step exponentiates and sums the ``d`` logits once (not twice). A
non-finite gradient entry makes its logit NaN, hence the normaliser NaN, and the step
rejects.

Cost (``benchmarks/discrete.py``, a 64-visible RBM on CPU): single-site Metropolis needs
one forward pass of the energy per step; GWG needs its ``value_and_grad`` (about 2–3×
the forward pass: the backward pass is another matrix product) plus the draw from ``d``
moves (an exponential per move and a cumulative sum), so it cannot come within ~2× of
Metropolis per step, while it gives several times the effective samples per second.

**Block Gibbs for a Bernoulli RBM** (:func:`block_gibbs`). Alternately
``h ~ p(h | v) = σ(c + Wᵀv)`` and ``v ~ p(v | h) = σ(b + Wh)``; every step is accepted.
The state caches the hidden pre-activation ``c + Wᵀv``, which gives both ``p(h | v)`` and
the free energy, so a step costs two matrix products. This kernel needs the RBM's
parameters, not only a log-density: its ``kernel(key, state, params)`` takes ``params``
where the others take ``logdensity_fn``. The top-level :func:`block_gibbs` takes either
the parameters or the RBM's log-density ``jebm.energy.logdensity_fn(rbm_free_energy,
params)``, which carries them (:class:`jebm.energy.BoundLogDensity`); so
``block_gibbs`` is a sampler factory like the others, and PCD (``pcd(rbm_free_energy,
block_gibbs, k)``) and :func:`jebm.samplers.run_chains` use it as they use any sampler.

References:
  Metropolis, N., Rosenbluth, A. W., Rosenbluth, M. N., Teller, A. H. and Teller, E.
  (1953). Equation of state calculations by fast computing machines. J. Chem. Phys.
  21(6), 1087–1092.

  Grathwohl, W., Swersky, K., Hashemi, M., Duvenaud, D. and Maddison, C. J. (2021).
  Oops I took a gradient: scalable sampling for discrete distributions. ICML.

  Geman, S. and Geman, D. (1984). Stochastic relaxation, Gibbs distributions, and the
  Bayesian restoration of images. IEEE TPAMI 6(6), 721–741.

  Hinton, G. E. (2002). Training products of experts by minimizing contrastive
  divergence. Neural Computation 14(8), 1771–1800. (block Gibbs in an RBM)
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jebm.energies.discrete import rbm_free_energy
from jebm.energy import BoundLogDensity
from jebm.samplers.base import SamplingAlgorithm, _symmetric_uniform, metropolis_select
from jebm.types import Array, LogDensityFn, PRNGKey, PyTree

__all__ = [
    "DiscreteState",
    "DiscreteInfo",
    "GWGState",
    "BlockGibbsState",
    "BlockGibbsInfo",
    "metropolis_flip_init",
    "build_metropolis_flip_kernel",
    "metropolis_flip",
    "gwg_init",
    "build_gwg_kernel",
    "gibbs_with_gradients",
    "block_gibbs_init",
    "build_block_gibbs_kernel",
    "block_gibbs",
]


class DiscreteState(NamedTuple):
    """State of a single-site Metropolis chain on binary or one-hot states.

    Attributes:
      position: the current state.
      logdensity: ``log p(position)``, cached.
    """

    position: Array
    logdensity: Array


class GWGState(NamedTuple):
    """State of a Gibbs-with-Gradients chain: the position and its proposal, cached.

    Attributes:
      position: the current state.
      logdensity: ``log p(position)``, cached.
      move_weights: the proposal's unnormalised weights ``exp(d̃/2 − max d̃/2)`` over the
        flat moves (0 for a site's own colour), from the gradient at ``position``.
      move_log_total: ``log Σ move_weights``.
    """

    position: Array
    logdensity: Array
    move_weights: Array
    move_log_total: Array


class DiscreteInfo(NamedTuple):
    """Diagnostics of one discrete Metropolis–Hastings step.

    Attributes:
      acceptance_rate: the Metropolis–Hastings acceptance probability.
      is_accepted: whether the proposal was accepted.
    """

    acceptance_rate: Array
    is_accepted: Array


class BlockGibbsState(NamedTuple):
    """State of block Gibbs sampling in a Bernoulli RBM.

    Attributes:
      position: the visible units ``v``, shape ``(V,)``.
      logdensity: ``−F(v)``, the negative free energy.
      hidden_preactivation: ``c + Wᵀv``, shape ``(H,)``.
    """

    position: Array  # visible units v, (V,)
    logdensity: Array  # −F(v)
    hidden_preactivation: Array  # c + Wᵀv, (H,)


class BlockGibbsInfo(NamedTuple):
    """Diagnostics of one block Gibbs sweep; it has no fields, as every sweep is accepted."""


def _uniforms(key: PRNGKey, n: int, dtype) -> Array:
    """``n`` draws uniform on the open interval (0, 1), from one counter-mode hash of ``key``.

    The U(−1, 1) draws of :mod:`jebm.samplers.base` (both words of each Threefry block
    for float32 threefry keys), mapped by ``(s + 1)/2``.
    """
    return 0.5 * (_symmetric_uniform(key, n, dtype) + 1.0)


def _check_categorical(position: Array) -> None:
    if position.ndim < 1 or position.shape[-1] < 2:
        raise ValueError(
            "a categorical state must be one-hot along its last axis (*sites, q) with q >= 2; "
            f"got shape {position.shape}."
        )


def _apply_move(position: Array, move: Array, categorical: bool) -> Array:
    """Flip entry ``move`` (binary) or set site ``move // q`` to colour ``move % q``.

    Written as elementwise selects on the flat state (no scatter), which stays cheap
    under ``vmap`` on every backend.
    """
    flat = position.reshape(-1)
    index = jnp.arange(flat.size)
    if not categorical:
        return jnp.where(index == move, 1.0 - flat, flat).reshape(position.shape)
    q = position.shape[-1]
    same_site = index // q == move // q
    recoloured = (index == move).astype(flat.dtype)
    return jnp.where(same_site, recoloured, flat).reshape(position.shape)


def _reverse_move(position: Array, move: Array, categorical: bool) -> Array:
    """The move that undoes ``move`` applied at ``position``."""
    if not categorical:
        return move
    q = position.shape[-1]
    site = move // q
    old_colour = jnp.argmax(position.reshape(-1, q)[site])
    return site * q + old_colour


def _pick(values: Array, index: Array) -> Array:
    """``values[index]`` for a flat vector, as a masked sum (cheap under ``vmap``)."""
    return jnp.sum(jnp.where(jnp.arange(values.size) == index, values, 0.0))


_DENSE_CDF_MAX = 256  # up to this many moves the cumulative sum is one triangular matmul


def _inverse_cdf(weights: Array, u: Array) -> Array:
    """An index drawn with probability proportional to ``weights`` (≥ 0), from one uniform
    ``u`` in (0, 1).

    The index is the first whose cumulative weight reaches ``u`` times the total. Entries
    of weight 0 are never chosen: ``u < 1`` keeps ``u · total ≤ total`` after rounding.
    For up to ``_DENSE_CDF_MAX`` moves the cumulative sum is a product with an
    upper-triangular matrix of ones (on CPU about 3× faster than ``jnp.cumsum`` at 64
    moves, measured in one run: 4 against 12 µs for 32 chains); beyond, ``jnp.cumsum``.
    """
    if weights.size <= _DENSE_CDF_MAX:
        cdf = weights @ jnp.triu(jnp.ones((weights.size, weights.size), weights.dtype))
    else:
        cdf = jnp.cumsum(weights)
    return jnp.sum(cdf < u * cdf[-1]).astype(jnp.int32)


# ------------------------------------------------------------ single-site Metropolis


def metropolis_flip_init(position: Array, logdensity_fn: LogDensityFn) -> DiscreteState:
    """The single-site Metropolis state at ``position``.

    Args:
      position: a binary state, or one-hot along the last axis.
      logdensity_fn: ``x ↦ log p(x)`` up to a constant.

    Returns:
      A ``DiscreteState`` holding the position and its log-density.
    """
    position = jnp.asarray(position)
    return DiscreteState(position, logdensity_fn(position))


def _single_site_kernel(propose: Callable, num_move_uniforms: int, categorical: bool):
    """A Metropolis–Hastings kernel around a single-site move: the bookkeeping that the
    flip and Gibbs-with-Gradients kernels share.

    ``propose(state, u, logdensity_fn) -> (proposal, log_q_terms, valid)`` draws the move
    from the uniforms ``u`` (``num_move_uniforms`` of them), and returns the proposed state,
    the terms ``log q(x | x′) − log q(x′ | x)`` adds to ``log p(x′) − log p(x)`` (empty for a
    symmetric move), and whether the proposal is finite. One more uniform decides.
    """

    def kernel(key: PRNGKey, state, logdensity_fn: LogDensityFn):
        x = state.position
        if categorical:
            _check_categorical(x)
        u = _uniforms(key, num_move_uniforms + 1, jnp.result_type(x.dtype, jnp.float32))
        proposal, log_q_terms, valid = propose(state, u, logdensity_fn)
        log_ratio = proposal.logdensity - state.logdensity
        for term in log_q_terms:
            log_ratio = log_ratio + term
        new_state, rate, accept = metropolis_select(
            state, proposal, log_ratio, jnp.log(u[num_move_uniforms]), valid
        )
        return new_state, DiscreteInfo(rate, accept)

    return kernel


def build_metropolis_flip_kernel(categorical: bool = False):
    """Return ``kernel(key, state, logdensity_fn) -> (state, info)``.

    Args:
      categorical: one-hot states along the last axis (static); binary otherwise.
    """

    def propose(state: DiscreteState, u: Array, logdensity_fn: LogDensityFn):
        x = state.position
        if categorical:
            q = x.shape[-1]
            num_sites = x.size // q
            site = jnp.minimum(jnp.floor(u[0] * num_sites).astype(jnp.int32), num_sites - 1)
            shift = 1 + jnp.minimum(jnp.floor(u[1] * (q - 1)).astype(jnp.int32), q - 2)
            colour = (jnp.argmax(x.reshape(-1, q)[site]) + shift) % q
            move = site * q + colour
        else:
            move = jnp.minimum(jnp.floor(u[0] * x.size).astype(jnp.int32), x.size - 1)
        proposal = metropolis_flip_init(_apply_move(x, move, categorical), logdensity_fn)
        return proposal, (), jnp.isfinite(proposal.logdensity)

    return _single_site_kernel(propose, 2, categorical)


def metropolis_flip(logdensity_fn: LogDensityFn, *, categorical: bool = False) -> SamplingAlgorithm:
    """Single-site Metropolis on binary or one-hot states, as a ``SamplingAlgorithm``.

    Args:
      logdensity_fn: ``x ↦ log p(x)`` up to a constant (``−E`` for an energy).
      categorical: one-hot states along the last axis (static); binary otherwise.

    Returns:
      ``SamplingAlgorithm(init, step)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.samplers.discrete import metropolis_flip
      >>> alg = metropolis_flip(lambda x: jnp.sum(x))
      >>> state, info = alg.step(jax.random.key(0), alg.init(jnp.zeros(4)))
      >>> float(jnp.sum(state.position))  # a flip 0 -> 1 raises log p: always accepted
      1.0

    References:
      Metropolis et al. (1953).
    """
    kernel = build_metropolis_flip_kernel(categorical)
    return SamplingAlgorithm(
        init=lambda position, rng_key=None: metropolis_flip_init(position, logdensity_fn),
        step=lambda key, state: kernel(key, state, logdensity_fn),
    )


# --------------------------------------------------------------- Gibbs-with-Gradients


def _move_logits(x: Array, grad: Array, categorical: bool) -> Array:
    """Flat ``d̃(x)/2`` over all moves; a site's own colour is −inf, and a move whose
    gradient entries are not finite is NaN (so the proposal's normaliser is NaN)."""
    grad = jnp.where(jnp.isfinite(grad), grad, jnp.nan)
    if not categorical:
        return ((1.0 - 2.0 * x) * grad).reshape(-1) / 2.0
    q = x.shape[-1]
    rows, grads = x.reshape(-1, q), grad.reshape(-1, q)
    current = jnp.sum(rows * grads, axis=-1, keepdims=True)
    logits = ((grads - current) / 2.0).reshape(-1)
    return jnp.where(x.reshape(-1) == 0, logits, -jnp.inf)  # not a site's own colour


def _gwg_state(
    position: Array, logdensity_fn: LogDensityFn, categorical: bool
) -> tuple[GWGState, Array, Array]:
    """The state at ``position``, its move logits and their maximum: one ``value_and_grad``."""
    logdensity, grad = jax.value_and_grad(logdensity_fn)(position)
    logits = _move_logits(position, grad, categorical)
    top = jnp.max(logits)
    weights = jnp.exp(logits - top)
    state = GWGState(position, logdensity, weights, jnp.log(jnp.sum(weights)))
    return state, logits, top


def gwg_init(
    position: Array, logdensity_fn: LogDensityFn, categorical: bool = False
) -> GWGState:
    """The Gibbs-with-Gradients state at ``position``.

    Args:
      position: a binary state, or one-hot along the last axis.
      logdensity_fn: ``x ↦ log p(x)`` up to a constant, differentiable in ``x``.
      categorical: one-hot states along the last axis (static); binary otherwise.

    Returns:
      A ``GWGState`` holding the position, its log-density and the proposal from it.
    """
    position = jnp.asarray(position)
    if categorical:
        _check_categorical(position)
    return _gwg_state(position, logdensity_fn, categorical)[0]


def build_gwg_kernel(categorical: bool = False):
    """Return ``kernel(key, state, logdensity_fn) -> (state, info)``.

    Args:
      categorical: one-hot states along the last axis (static); binary otherwise.
    """

    def propose(state: GWGState, u: Array, logdensity_fn: LogDensityFn):
        x = state.position
        move = _inverse_cdf(state.move_weights, u[0])
        log_q_fwd = jnp.log(_pick(state.move_weights, move)) - state.move_log_total
        proposal, logits_rev, top_rev = _gwg_state(
            _apply_move(x, move, categorical), logdensity_fn, categorical
        )
        back = _reverse_move(x, move, categorical)
        log_q_rev = _pick(logits_rev, back) - top_rev - proposal.move_log_total
        valid = jnp.isfinite(proposal.logdensity) & jnp.isfinite(proposal.move_log_total)
        return proposal, (log_q_rev, -log_q_fwd), valid

    return _single_site_kernel(propose, 1, categorical)


def gibbs_with_gradients(
    logdensity_fn: LogDensityFn, *, categorical: bool = False
) -> SamplingAlgorithm:
    """Gibbs-with-Gradients on binary or one-hot states, as a ``SamplingAlgorithm``.

    ``logdensity_fn`` must be differentiable in the (float) state; its gradient at a
    lattice point only guides the proposal, the acceptance test keeps ``p`` exact.

    Args:
      logdensity_fn: ``x ↦ log p(x)`` up to a constant (``−E`` for an energy).
      categorical: one-hot states along the last axis (static); binary otherwise.

    Returns:
      ``SamplingAlgorithm(init, step)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.samplers.discrete import gibbs_with_gradients
      >>> alg = gibbs_with_gradients(lambda x: -jnp.sum((x - 0.3) ** 2))
      >>> state, info = alg.step(jax.random.key(0), alg.init(jnp.zeros(4)))
      >>> state.position.shape
      (4,)

    References:
      Grathwohl, W., Swersky, K., Hashemi, M., Duvenaud, D. and Maddison, C. J. (2021).
      Oops I took a gradient: scalable sampling for discrete distributions. ICML.
    """
    kernel = build_gwg_kernel(categorical)
    return SamplingAlgorithm(
        init=lambda position, rng_key=None: gwg_init(position, logdensity_fn, categorical),
        step=lambda key, state: kernel(key, state, logdensity_fn),
    )


# ---------------------------------------------------------------- RBM block Gibbs


def _rbm_state(v: Array, params: PyTree) -> BlockGibbsState:
    pre = params["hidden_bias"] + v @ params["weights"]
    logdensity = v @ params["visible_bias"] + jnp.sum(jax.nn.softplus(pre))
    return BlockGibbsState(v, logdensity, pre)


def block_gibbs_init(position: Array, params: PyTree) -> BlockGibbsState:
    """The state at visible units ``position`` ``(V,)`` of the RBM ``params``.

    ``params`` is ``{"weights": (V, H), "visible_bias": (V,), "hidden_bias": (H,)}``, as
    in :func:`jebm.energies.discrete.bernoulli_rbm`.

    Args:
      position: the visible units ``v``, shape ``(V,)``.
      params: the RBM's parameters.

    Returns:
      A ``BlockGibbsState`` with ``−F(v)`` and the hidden pre-activation ``c + Wᵀv``.
    """
    return _rbm_state(jnp.asarray(position), params)


def build_block_gibbs_kernel():
    """Return ``kernel(key, state, params) -> (state, info)``: one ``v → h → v′`` sweep."""

    def kernel(
        key: PRNGKey, state: BlockGibbsState, params: PyTree
    ) -> tuple[BlockGibbsState, BlockGibbsInfo]:
        num_visible, num_hidden = params["weights"].shape
        dtype = jnp.result_type(state.position.dtype, jnp.float32)
        u = _uniforms(key, num_hidden + num_visible, dtype)
        h = (u[:num_hidden] < jax.nn.sigmoid(state.hidden_preactivation)).astype(dtype)
        v_logits = params["visible_bias"] + params["weights"] @ h
        v = (u[num_hidden:] < jax.nn.sigmoid(v_logits)).astype(state.position.dtype)
        return _rbm_state(v, params), BlockGibbsInfo()

    return kernel


def _rbm_params(rbm: PyTree | BoundLogDensity) -> PyTree:
    """The RBM's parameters, given directly or carried by its log-density."""
    if not callable(rbm):
        return rbm
    if isinstance(rbm, BoundLogDensity) and rbm.energy_fn is rbm_free_energy:
        return rbm.params
    raise ValueError(
        "block_gibbs needs a Bernoulli RBM: pass its params {'weights', 'visible_bias', "
        "'hidden_bias'}, or its log-density jebm.energy.logdensity_fn(rbm_free_energy, "
        f"params), which carries them; got {rbm!r}, a log-density it cannot read the "
        "RBM's parameters from."
    )


def block_gibbs(rbm: PyTree | BoundLogDensity) -> SamplingAlgorithm:
    """Block Gibbs sampling of a Bernoulli RBM's visible units, as a ``SamplingAlgorithm``.

    Args:
      rbm: the RBM's ``{"weights", "visible_bias", "hidden_bias"}``, or its log-density
        ``jebm.energy.logdensity_fn(rbm_free_energy, params)`` (what PCD passes a
        sampler factory), from which the parameters are read.

    Returns:
      ``SamplingAlgorithm(init, step)`` on visible states ``(V,)``; each step is the
      sweep ``v → h → v′``, which leaves ``p(v) ∝ exp(−F(v))`` invariant.

    Raises:
      ValueError: for a log-density of another energy than
        :func:`~jebm.energies.discrete.rbm_free_energy`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.energies.discrete import rbm_init
      >>> from jebm.samplers.discrete import block_gibbs
      >>> alg = block_gibbs(rbm_init(jax.random.key(0), 6, 3))
      >>> state, info = alg.step(jax.random.key(1), alg.init(jnp.zeros(6)))
      >>> state.hidden_preactivation.shape
      (3,)

    References:
      Geman and Geman (1984); Hinton (2002).
    """
    params = _rbm_params(rbm)
    kernel = build_block_gibbs_kernel()
    return SamplingAlgorithm(
        init=lambda position, rng_key=None: block_gibbs_init(position, params),
        step=lambda key, state: kernel(key, state, params),
    )
