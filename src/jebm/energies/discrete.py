"""Discrete energies with an exact partition function: a Bernoulli RBM, Ising and Potts models.

All states are float32 arrays so that gradient samplers (Gibbs-with-Gradients) can
differentiate the energy at a state; the energy is only *meaningful* on the lattice:

* binary models take ``x ∈ {0, 1}^n`` (shape ``(n,)``);
* the Potts model takes one-hot rows ``x ∈ {0, 1}^{n × q}`` with ``Σ_k x_{ik} = 1``.

As everywhere in jebm the density is ``p(x) = exp(−E(params, x)) / Z``, ``energy_fn``
sees one unbatched ``x``, and the constructors return an
:class:`~jebm.energies.analytic.AnalyticEnergy` with the exact ``log_z`` (by summation
over all states, chunked so memory stays flat) and an exact sampler (a categorical draw
over the enumerated states).

**RBM.** With visible ``v ∈ {0,1}^V``, hidden ``h ∈ {0,1}^H`` and joint energy
``E(v, h) = −bᵀv − cᵀh − vᵀWh``, summing out ``h`` in closed form gives the free energy

    F(v) = −bᵀv − Σ_j softplus(c_j + (Wᵀv)_j),

which is the ``energy_fn`` (density of ``v`` ∝ exp(−F)). Symmetrically
``F_h(h) = −cᵀh − Σ_i softplus(b_i + (Wh)_i)``, and
``log Z = logsumexp_v(−F(v)) = logsumexp_h(−F_h(h))``: the smaller side is enumerated,
so ``log Z`` is exact whenever ``min(V, H) ≤ ~20``.

**Ising.** Spins ``s = 2x − 1 ∈ {−1, +1}^n`` and
``E(x) = −½ sᵀJs − hᵀs`` with ``J`` symmetric, zero diagonal (the energy symmetrises
its ``coupling`` parameter and drops the diagonal, so any square matrix is a valid
parameter). :func:`lattice_couplings` builds nearest-neighbour couplings of a lattice.

**Potts.** ``E(x) = −½ Σ_{i≠j} J_ij x_iᵀx_j − Σ_i h_iᵀx_i``: ``x_iᵀx_j = 1`` when sites
``i`` and ``j`` share a colour.

References:
  Smolensky, P. (1986). Information processing in dynamical systems: foundations of
  harmony theory. In Parallel Distributed Processing, vol. 1, 194–281.

  Hinton, G. E. (2002). Training products of experts by minimizing contrastive
  divergence. Neural Computation 14(8), 1771–1800. (RBM free energy)

  Ising, E. (1925). Beitrag zur Theorie des Ferromagnetismus. Z. Physik 31, 253–258.

  Potts, R. B. (1952). Some generalized order-disorder transformations. Proc.
  Cambridge Phil. Soc. 48(1), 106–109.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jebm._validate import check_float, check_int
from jebm.energies.analytic import AnalyticEnergy, check_event_shape
from jebm.types import Array, EnergyFn, PRNGKey, PyTree

__all__ = [
    "MAX_ENUMERATED_STATES",
    "binary_states",
    "categorical_states",
    "enumerate_log_z",
    "rbm_free_energy",
    "rbm_hidden_free_energy",
    "rbm_log_z",
    "rbm_init",
    "bernoulli_rbm",
    "lattice_couplings",
    "ising",
    "potts",
]

# 2^24 states: beyond this an enumeration is no longer a test oracle one can afford.
MAX_ENUMERATED_STATES = 1 << 24
_CHUNK = 1 << 12  # states per chunk of a chunked enumeration


# ------------------------------------------------------------------ enumeration


def binary_states(num_units: int, start: int | Array = 0, num: int | None = None) -> Array:
    """The binary states with integer codes ``start … start + num − 1``, float32 ``(num, n)``.

    State ``k`` has unit ``i`` equal to bit ``i`` of ``k`` (unit 0 is the least
    significant bit). By default all ``2^n`` states.

    Args:
      num_units: ``n``, the number of binary units.
      start: the integer code of the first state.
      num: the number of states; ``None`` for ``2^n``.

    Returns:
      A float32 array ``(num, n)`` of 0/1 states.

    Examples:
      >>> binary_states(2)
      Array([[0., 0.],
             [1., 0.],
             [0., 1.],
             [1., 1.]], dtype=float32)
    """
    num_units = check_int("num_units", num_units)
    if num is None:
        num = 2**num_units
    codes = start + jnp.arange(num, dtype=jnp.int32)
    bits = (codes[:, None] >> jnp.arange(num_units, dtype=jnp.int32)[None, :]) & 1
    return bits.astype(jnp.float32)


def categorical_states(num_sites: int, num_categories: int) -> Array:
    """All ``q^n`` one-hot states of ``n`` sites with ``q`` categories, float32 ``(q^n, n, q)``.

    Site ``i`` of state ``k`` has colour digit ``i`` of ``k`` in base ``q``.

    Args:
      num_sites: ``n``, the number of sites.
      num_categories: ``q ≥ 2``, the number of categories per site.

    Returns:
      A float32 array ``(q^n, n, q)`` of one-hot states.

    Raises:
      ValueError: if ``q^n`` exceeds ``MAX_ENUMERATED_STATES``.
    """
    num_sites = check_int("num_sites", num_sites)
    num_categories = check_int("num_categories", num_categories, minimum=2)
    _check_enumerable(num_categories**num_sites, "categorical_states")
    codes = np.arange(num_categories**num_sites)
    digits = (codes[:, None] // num_categories ** np.arange(num_sites)[None, :]) % num_categories
    return jax.nn.one_hot(jnp.asarray(digits), num_categories, dtype=jnp.float32)


def _check_enumerable(num_states: int, where: str) -> None:
    if num_states > MAX_ENUMERATED_STATES:
        raise ValueError(
            f"{where} would enumerate {num_states} states, more than MAX_ENUMERATED_STATES = "
            f"{MAX_ENUMERATED_STATES}; exact log Z is for small models only."
        )


def _chunked_logsumexp(neg_energy_of_chunk: Callable[[Array], Array], num_states: int) -> Array:
    """``logsumexp`` of ``−E`` over ``num_states`` states, ``_CHUNK`` at a time.

    ``neg_energy_of_chunk(start)`` returns ``−E`` of the ``_CHUNK`` states from code
    ``start`` (codes past ``num_states`` are masked to −inf).
    """
    num_chunks = -(-num_states // _CHUNK)

    def chunk(start):
        values = neg_energy_of_chunk(start)
        valid = start + jnp.arange(_CHUNK) < num_states
        return jax.nn.logsumexp(jnp.where(valid, values, -jnp.inf))

    starts = jnp.arange(num_chunks, dtype=jnp.int32) * _CHUNK
    return jax.nn.logsumexp(jax.lax.map(chunk, starts))


def enumerate_log_z(energy_fn: EnergyFn, params: PyTree, states: Array) -> Array:
    """``log Σ_x exp(−E(params, x))`` over the given states ``(num_states, *event)``.

    Args:
      energy_fn: ``E(params, x)`` for one state ``x``.
      params: the energy's parameters.
      states: the states to sum over, ``(num_states, *event)``.

    Returns:
      The scalar ``log Z`` over ``states``.
    """
    return jax.nn.logsumexp(-jax.vmap(energy_fn, in_axes=(None, 0))(params, states))


def _enumerated_sampler(log_probs: Array, states: Array) -> Callable[[PRNGKey, int], Array]:
    """An exact sampler: a categorical draw over the enumerated states."""

    def sample(key: PRNGKey, n: int) -> Array:
        index = jax.random.categorical(key, log_probs, shape=(n,))
        return states[index]

    return sample


def _binary_code_sampler(log_probs: Array, num_units: int) -> Callable[[PRNGKey, int], Array]:
    """An exact sampler over binary states from their log-probabilities by integer code."""

    def sample(key: PRNGKey, n: int) -> Array:
        codes = jax.random.categorical(key, log_probs, shape=(n,)).astype(jnp.int32)
        bits = (codes[:, None] >> jnp.arange(num_units, dtype=jnp.int32)[None, :]) & 1
        return bits.astype(jnp.float32)

    return sample


def _chunked_neg_energy(free_energy: EnergyFn, params: PyTree, num_units: int) -> Array:
    """``−F`` of all ``2^n`` binary states by code, ``_CHUNK`` at a time, ``(2^n,)``."""
    num_states = 2**num_units
    size = min(_CHUNK, num_states)
    starts = jnp.arange(-(-num_states // size), dtype=jnp.int32) * size
    chunk = lambda start: -jax.vmap(free_energy, in_axes=(None, 0))(
        params, binary_states(num_units, start, size)
    )
    return jax.lax.map(chunk, starts).reshape(-1)[:num_states]


# -------------------------------------------------------------------------- RBM


def rbm_free_energy(params: PyTree, v: Array) -> Array:
    """``F(v) = −bᵀv − Σ_j softplus(c_j + (Wᵀv)_j)`` for one visible vector ``v`` ``(V,)``.

    ``params`` is ``{"weights": (V, H), "visible_bias": (V,), "hidden_bias": (H,)}``.

    Args:
      params: the RBM's parameters.
      v: one visible vector, shape ``(V,)``.

    Returns:
      The scalar free energy ``F(v)``.
    """
    check_event_shape(v, params["visible_bias"].shape, "rbm_free_energy")
    pre = params["hidden_bias"] + v @ params["weights"]
    return -(v @ params["visible_bias"]) - jnp.sum(jax.nn.softplus(pre))


def rbm_hidden_free_energy(params: PyTree, h: Array) -> Array:
    """``F_h(h) = −cᵀh − Σ_i softplus(b_i + (Wh)_i)``: the free energy of the hidden units.

    Args:
      params: the RBM's parameters (as in :func:`rbm_free_energy`).
      h: one hidden vector, shape ``(H,)``.

    Returns:
      The scalar free energy ``F_h(h)``.
    """
    check_event_shape(h, params["hidden_bias"].shape, "rbm_hidden_free_energy")
    pre = params["visible_bias"] + params["weights"] @ h
    return -(h @ params["hidden_bias"]) - jnp.sum(jax.nn.softplus(pre))


def rbm_log_z(params: PyTree) -> Array:
    """Exact ``log Z`` of an RBM by enumerating the smaller layer (chunked, memory-flat).

    Args:
      params: the RBM's parameters (as in :func:`rbm_free_energy`).

    Returns:
      The scalar ``log Z = log Σ_v exp(−F(v))``.

    Raises:
      ValueError: if the smaller layer has more than 24 units.
    """
    num_visible, num_hidden = params["weights"].shape
    if num_visible <= num_hidden:
        n, free_energy = num_visible, rbm_free_energy
    else:
        n, free_energy = num_hidden, rbm_hidden_free_energy
    _check_enumerable(2**n, "rbm_log_z")

    def neg_energy_of_chunk(start):
        states = binary_states(n, start, _CHUNK)
        return -jax.vmap(free_energy, in_axes=(None, 0))(params, states)

    return _chunked_logsumexp(neg_energy_of_chunk, 2**n)


def rbm_init(
    key: PRNGKey, num_visible: int, num_hidden: int, *, scale: float = 0.01
) -> dict[str, Array]:
    """RBM parameters: weights ``N(0, scale²)``, zero biases (Hinton's practical guide).

    Args:
      key: a PRNG key for the weights.
      num_visible: ``V``, the number of visible units.
      num_hidden: ``H``, the number of hidden units.
      scale: the standard deviation of the weights.

    Returns:
      ``{"weights": (V, H), "visible_bias": (V,), "hidden_bias": (H,)}``.

    References:
      Hinton, G. E. (2012). A practical guide to training restricted Boltzmann
      machines. In Neural Networks: Tricks of the Trade, 599–619.
    """
    num_visible = check_int("num_visible", num_visible)
    num_hidden = check_int("num_hidden", num_hidden)
    scale = check_float("scale", scale, allow_zero=True)
    return {
        "weights": scale * jax.random.normal(key, (num_visible, num_hidden), jnp.float32),
        "visible_bias": jnp.zeros(num_visible, jnp.float32),
        "hidden_bias": jnp.zeros(num_hidden, jnp.float32),
    }


def bernoulli_rbm(weights: Array, visible_bias: Array, hidden_bias: Array) -> AnalyticEnergy:
    """A Bernoulli–Bernoulli RBM over its visible units, with exact ``log Z`` and sampler.

    Args:
      weights: ``W``, ``(V, H)``.
      visible_bias: ``b``, ``(V,)``.
      hidden_bias: ``c``, ``(H,)``.

    Returns:
      An :class:`AnalyticEnergy` whose ``energy_fn`` is the free energy
      :func:`rbm_free_energy` on ``v`` of shape ``(V,)``. ``sample`` is exact: when
      ``V ≤ H`` a categorical draw over all visible states; otherwise ``h`` is drawn
      from its exact marginal ``∝ exp(−F_h(h))`` and then ``v ~ p(v | h)``.

    Raises:
      ValueError: for mismatched shapes, or when ``min(V, H) > 24`` (no exact ``log Z``;
        use :func:`rbm_init` and :func:`rbm_free_energy` for larger RBMs).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jebm.energies.discrete import bernoulli_rbm
      >>> rbm = bernoulli_rbm(jnp.zeros((3, 2)), jnp.zeros(3), jnp.zeros(2))
      >>> float(rbm.log_z)  # 2^3 visible states times 2^2 hidden ones
      3.4657...
    """
    params = {
        "weights": jnp.asarray(weights, jnp.float32),
        "visible_bias": jnp.asarray(visible_bias, jnp.float32),
        "hidden_bias": jnp.asarray(hidden_bias, jnp.float32),
    }
    if params["weights"].ndim != 2:
        raise ValueError(f"weights must be (V, H), got shape {params['weights'].shape}.")
    num_visible, num_hidden = params["weights"].shape
    if params["visible_bias"].shape != (num_visible,):
        raise ValueError(
            f"visible_bias must have shape {(num_visible,)}, got {params['visible_bias'].shape}."
        )
    if params["hidden_bias"].shape != (num_hidden,):
        raise ValueError(
            f"hidden_bias must have shape {(num_hidden,)}, got {params['hidden_bias'].shape}."
        )
    log_z = rbm_log_z(params)
    if num_visible <= num_hidden:
        log_probs = _chunked_neg_energy(rbm_free_energy, params, num_visible) - log_z
        sample = _binary_code_sampler(log_probs, num_visible)
    else:
        log_probs = _chunked_neg_energy(rbm_hidden_free_energy, params, num_hidden) - log_z
        draw_hidden = _binary_code_sampler(log_probs, num_hidden)

        def sample(key: PRNGKey, n: int) -> Array:
            k_h, k_v = jax.random.split(key)
            h = draw_hidden(k_h, n)
            logits = params["visible_bias"][None] + h @ params["weights"].T
            return jax.random.bernoulli(k_v, jax.nn.sigmoid(logits)).astype(jnp.float32)

    return AnalyticEnergy(rbm_free_energy, params, log_z, sample, (num_visible,))


# ------------------------------------------------------------------ Ising, Potts


def lattice_couplings(
    shape: tuple[int, ...], strength: float | Array = 1.0, *, periodic: bool = False
) -> Array:
    """Nearest-neighbour couplings of a lattice, ``(n, n)`` with ``n = prod(shape)``.

    Sites are numbered in C order; ``J_ij = strength`` for neighbours along any axis
    (wrapping around with ``periodic``), else 0.

    Args:
      shape: the lattice shape.
      strength: the coupling ``J`` between neighbours.
      periodic: whether the lattice wraps around along each axis.

    Returns:
      A float32 symmetric matrix ``(n, n)`` with zero diagonal.
    """
    shape = tuple(check_int("shape", s) for s in shape)
    n = int(np.prod(shape))
    index = np.arange(n).reshape(shape)
    adjacency = np.zeros((n, n), np.float32)
    for axis, size in enumerate(shape):
        if size < 2:
            continue
        src = np.take(index, np.arange(size - 1), axis=axis).ravel()
        dst = np.take(index, np.arange(1, size), axis=axis).ravel()
        if periodic:
            src = np.concatenate([src, np.take(index, [size - 1], axis=axis).ravel()])
            dst = np.concatenate([dst, np.take(index, [0], axis=axis).ravel()])
        adjacency[src, dst] = 1.0
        adjacency[dst, src] = 1.0
    return jnp.asarray(strength, jnp.float32) * jnp.asarray(adjacency)


def _symmetric_offdiagonal(coupling: Array) -> Array:
    n = coupling.shape[0]
    return 0.5 * (coupling + coupling.T) * (1.0 - jnp.eye(n, dtype=coupling.dtype))


def _ising_energy(params: PyTree, x: Array) -> Array:
    check_event_shape(x, params["field"].shape, "ising energy")
    s = 2.0 * x - 1.0
    coupling = _symmetric_offdiagonal(params["coupling"])
    return -0.5 * s @ coupling @ s - params["field"] @ s


def _potts_energy(params: PyTree, x: Array) -> Array:
    check_event_shape(x, params["field"].shape, "potts energy")
    coupling = _symmetric_offdiagonal(params["coupling"])
    same = x @ x.T  # (n, n): 1 where two sites share a colour
    return -0.5 * jnp.sum(coupling * same) - jnp.sum(params["field"] * x)


def _check_coupling(coupling: Array, n: int | None = None) -> Array:
    coupling = jnp.asarray(coupling, jnp.float32)
    if coupling.ndim != 2 or coupling.shape[0] != coupling.shape[1]:
        raise ValueError(f"coupling must be a square (n, n) matrix, got shape {coupling.shape}.")
    if n is not None and coupling.shape[0] != n:
        raise ValueError(f"coupling must be ({n}, {n}) to match the field, got {coupling.shape}.")
    return coupling


def ising(coupling: Array, field: Array | float = 0.0) -> AnalyticEnergy:
    """An Ising model on ``x ∈ {0, 1}^n``: ``E = −½ sᵀJs − hᵀs``, ``s = 2x − 1``.

    Args:
      coupling: ``(n, n)``; symmetrised, diagonal dropped (e.g. :func:`lattice_couplings`).
      field: ``h``, a scalar or ``(n,)``.

    Returns:
      An :class:`AnalyticEnergy` with params ``{"coupling", "field"}``, exact ``log_z``
      by enumerating the ``2^n`` states and an exact sampler.

    Examples:
      >>> from jebm.energies.discrete import ising, lattice_couplings
      >>> model = ising(lattice_couplings((3, 3), 0.3))
      >>> model.event_shape
      (9,)
    """
    coupling = _check_coupling(coupling)
    n = coupling.shape[0]
    _check_enumerable(2**n, "ising")
    field = jnp.broadcast_to(jnp.asarray(field, jnp.float32), (n,))
    params = {"coupling": coupling, "field": field}
    states = binary_states(n)
    neg_energy = -jax.vmap(_ising_energy, in_axes=(None, 0))(params, states)
    log_z = jax.nn.logsumexp(neg_energy)
    return AnalyticEnergy(
        _ising_energy, params, log_z, _enumerated_sampler(neg_energy - log_z, states), (n,)
    )


def potts(coupling: Array, field: Array | float, num_categories: int) -> AnalyticEnergy:
    """A ``q``-state Potts model on one-hot ``x`` ``(n, q)``: ``E = −½ Σ J_ij x_iᵀx_j − Σ h_iᵀx_i``.

    Args:
      coupling: ``(n, n)``; symmetrised, diagonal dropped.
      field: ``h``, a scalar, ``(q,)`` or ``(n, q)``.
      num_categories: ``q >= 2`` (static).

    Returns:
      An :class:`AnalyticEnergy` with params ``{"coupling", "field"}``, exact ``log_z``
      by enumerating the ``q^n`` states and an exact sampler.
    """
    num_categories = check_int("num_categories", num_categories, minimum=2)
    coupling = _check_coupling(coupling)
    n = coupling.shape[0]
    field = jnp.broadcast_to(jnp.asarray(field, jnp.float32), (n, num_categories))
    params = {"coupling": coupling, "field": field}
    states = categorical_states(n, num_categories)
    neg_energy = -jax.vmap(_potts_energy, in_axes=(None, 0))(params, states)
    log_z = jax.nn.logsumexp(neg_energy)
    return AnalyticEnergy(
        _potts_energy,
        params,
        log_z,
        _enumerated_sampler(neg_energy - log_z, states),
        (n, num_categories),
    )
