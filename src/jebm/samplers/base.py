"""The sampler contract shared by every jebm kernel (BlackJAX's, field for field).

An algorithm is ``SamplingAlgorithm(init, step)``:

* ``state = init(position)`` caches what the kernel needs (the log-density and,
  for gradient samplers, its gradient), so each step costs one ``value_and_grad``;
* ``state, info = step(rng_key, state)`` is one Markov transition; the key is an
  argument, never stored. The step's first parameter is named ``rng_key``, as in
  BlackJAX's ``UpdateFn`` protocol, so keyword calls work too (``init`` accepts and
  ignores an ``rng_key`` for the same reason, except where noted).

Each kernel module also exposes ``init(position, logdensity_fn)`` and
``build_kernel() -> kernel(key, state, logdensity_fn, *tunables)``. Tunables are
traced arguments, so ``jax.vmap(kernel, in_axes=(0, 0, None, 0))`` gives per-chain
step sizes and schedules never recompile.

Randomness: a kernel draws everything one step needs (Gaussian noise for every
leaf and the Metropolis uniform) from *one* counter-mode hash of its key; see
:func:`normal_and_uniform`. No key is split inside a step, and for threefry keys
both 32-bit words of each Threefry-2x32 block are used (``jax.random.uniform``
keeps one word per block), which halves the hashing. On cheap targets randomness
costs as much as the target itself (``benchmarks/samplers.py``).

Validation, the same in every kernel:

* tunables given as Python numbers are checked at construction
  (:func:`jebm._validate.check_float`: finite and > 0);
* a *traced* tunable that turns out non-finite or non-positive at run time makes the
  step a divergence: the state is kept and ``info.is_divergent`` is set (never a NaN
  acceptance, never a silently stuck chain); see :func:`tunables_valid`;
* a state whose own log-density is not finite (a NaN start under ``jit``, where
  ``run_chains`` cannot check it) is reported as divergent at every step;
* a log-density that is not a scalar for one unbatched position raises jebm's own
  ``ValueError`` at trace time (:func:`logdensity_and_grad`);
* ``init`` stores positions with a strong dtype (:func:`strong_dtype`), so a state made
  from a Python float (JAX's weakly typed ``~float32``) has the same type before and
  after a step, and a jitted step compiles once.

**Why jebm has its own** :class:`SamplingAlgorithm`. BlackJAX is only a development
dependency of jebm, so the library cannot return BlackJAX's type without importing it.
The two are interchangeable by duck typing: both are NamedTuples with fields ``init`` and
``step`` in that order, so ``blackjax.util.run_inference_algorithm`` runs a jebm
algorithm and :func:`jebm.samplers.run_chains` runs a BlackJAX one
(``tests/samplers/test_interop.py``). Only an ``isinstance`` check against BlackJAX's
class fails; check for the ``init``/``step`` attributes instead.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import threefry_2x32
from jax.flatten_util import ravel_pytree

from jebm._tree import tree_all_finite
from jebm.types import Array, ArrayTree, PRNGKey

__all__ = [
    "SamplingAlgorithm",
    "logdensity_and_grad",
    "GradientState",
    "gradient_state",
    "MetropolisInfo",
    "logdensity_value",
    "strong_dtype",
    "tunables_valid",
    "scalar_tunable",
    "MassMatrix",
    "mass_matrix",
    "normal_and_uniform",
    "normal_like",
    "metropolis_select",
    "tree_vdot",
    "tree_all_finite",
    "tree_broadcast",
]


class SamplingAlgorithm(NamedTuple):
    """A pair of pure functions: ``init(position)`` and ``step(key, state)``."""

    init: Callable
    step: Callable


def _check_scalar(value: Array, logdensity_fn) -> None:
    if jnp.shape(value) != ():
        name = getattr(logdensity_fn, "__name__", repr(logdensity_fn))
        raise ValueError(
            f"logdensity_fn ({name}) must return a scalar for one unbatched position, got "
            f"shape {jnp.shape(value)}. Samplers vmap over chains themselves: pass a function "
            "of one position (for an energy, jebm.energy.logdensity_fn(energy_fn, params)), "
            "and sum over the event if it returns one value per coordinate."
        )


def strong_dtype(tree: ArrayTree) -> ArrayTree:
    """Every leaf as an array of its own dtype with JAX's weak type dropped.

    ``init(1.0)`` would otherwise store a weakly typed ``~float32[]`` that the first step
    turns into ``float32[]``, and a jitted step would compile twice.

    Args:
      tree: a pytree of arrays or Python numbers.

    Returns:
      The same pytree with every leaf a strongly typed array.
    """
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(x)), tree)


def logdensity_value(logdensity_fn, position: ArrayTree) -> Array:
    """``logdensity_fn(position)``, checked to be a scalar (jebm's error otherwise).

    Args:
      logdensity_fn: ``x ↦ log p(x)``.
      position: the point ``x`` (a pytree of arrays).

    Returns:
      ``log p(x)`` as a strongly typed scalar array.

    Raises:
      ValueError: if ``logdensity_fn`` does not return a scalar.
    """
    value = jnp.asarray(logdensity_fn(position))
    _check_scalar(value, logdensity_fn)
    return strong_dtype(value)


def logdensity_and_grad(logdensity_fn, position: ArrayTree) -> tuple[Array, ArrayTree]:
    """``(log p(x), ∇log p(x))`` in one pass, with jebm's error for a non-scalar ``log p``.

    ``jax.value_and_grad`` would fail on a vector with a generic ``TypeError``; here the
    shape is checked between the forward pass and the pullback (``jax.vjp``), so the
    cost is the same one ``value_and_grad``.

    Args:
      logdensity_fn: ``x ↦ log p(x)``.
      position: the point ``x`` (a pytree of arrays).

    Returns:
      ``(log p(x), ∇log p(x))``; the gradient has the structure of ``position``.

    Raises:
      ValueError: if ``logdensity_fn`` does not return a scalar.
    """
    value, pullback = jax.vjp(logdensity_fn, position)
    _check_scalar(value, logdensity_fn)
    (grad,) = pullback(jnp.ones_like(value))
    return strong_dtype(value), grad


class GradientState(NamedTuple):
    """A chain state that caches ``log p`` and ``∇log p`` at its position: the state of MALA,
    HMC and ULA (``MALAState``, ``HMCState`` and ``ULAState`` are this class).

    Attributes:
      position: the current position (a pytree of arrays).
      logdensity: ``log p(position)``, cached.
      logdensity_grad: ``∇log p(position)``, cached; same structure as ``position``.
    """

    position: ArrayTree
    logdensity: Array
    logdensity_grad: ArrayTree


def gradient_state(position: ArrayTree, logdensity_fn) -> GradientState:
    """The :class:`GradientState` at ``position``: the ``init`` of MALA, HMC and ULA.

    Args:
      position: the starting position (a pytree of arrays); Python and weakly typed
        scalars are made strongly typed.
      logdensity_fn: ``x ↦ log p(x)`` up to a constant.

    Returns:
      The state holding the position, its log-density and its gradient.
    """
    position = strong_dtype(position)
    logdensity, grad = logdensity_and_grad(logdensity_fn, position)
    return GradientState(position, logdensity, grad)


class MetropolisInfo(NamedTuple):
    """Diagnostics of one Metropolis–Hastings transition (MALA's and RWMH's).

    Attributes:
      acceptance_rate: the Metropolis–Hastings acceptance probability.
      is_accepted: whether the proposal was accepted.
      is_divergent: whether the proposal or current state was not finite, or a traced
        tunable (step size or preconditioner) was bad; the proposal is then rejected.
    """

    acceptance_rate: Array
    is_accepted: Array
    is_divergent: Array


def tunables_valid(*tunables: ArrayTree) -> Array:
    """True when every entry of every tunable is finite and ``> 0`` (a traced check).

    Kernels fold this into their validity test: a bad traced step size (or friction,
    scale …) rejects the step and shows up as ``info.is_divergent``.

    Args:
      *tunables: arrays or pytrees of arrays.

    Returns:
      A scalar bool array; ``True`` when no tunables are given.
    """
    leaves = [jnp.asarray(v) for t in tunables for v in jax.tree.leaves(t)]
    if not leaves:
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(v) & (v > 0)) for v in leaves]))


def scalar_tunable(value, name: str) -> Array:
    """A scalar tunable; a size-1 array (BlackJAX's ``(1,)`` for a scalar) is reshaped.

    Args:
      value: a scalar or a size-1 array.
      name: the tunable's name, for the error message.

    Returns:
      ``value`` as an array of shape ``()``.

    Raises:
      ValueError: naming ``name`` for any other shape.
    """
    value = jnp.asarray(value)
    if value.size != 1:
        raise ValueError(
            f"{name} must be a scalar (per chain: vmap the kernel over it), got shape "
            f"{value.shape}. For per-dimension scales, MALA and HMC take an "
            "inverse_mass_matrix."
        )
    return value.reshape(())


class MassMatrix(NamedTuple):
    """Linear maps of a diagonal or dense inverse mass matrix ``M⁻¹ = L Lᵀ`` (flat vectors).

    ``sample_momentum(z)`` has covariance ``M`` for ``z ~ N(0, I)``; ``scale(z)`` has
    covariance ``M⁻¹``; ``inverse(v) = M⁻¹ v``; ``quadratic(v) = vᵀ M v``; ``valid`` is
    a traced bool (finite and positive definite as far as cheaply checkable).
    """

    sample_momentum: Callable
    scale: Callable
    inverse: Callable
    quadratic: Callable
    valid: Array


def mass_matrix(inverse_mass_matrix: Array, dim: int) -> MassMatrix:
    """The :class:`MassMatrix` maps for ``M⁻¹`` of shape ``(dim,)`` or ``(dim, dim)``.

    Args:
      inverse_mass_matrix: ``M⁻¹``, diagonal ``(dim,)`` or dense ``(dim, dim)``.
      dim: the number of elements of the flattened position.

    Returns:
      A ``MassMatrix`` of the maps for this ``M⁻¹``.

    Raises:
      ValueError: for any other shape.
    """
    inv_mass = jnp.asarray(inverse_mass_matrix)
    if inv_mass.shape == (dim,):
        sqrt = jnp.sqrt(inv_mass)
        return MassMatrix(
            sample_momentum=lambda z: z / sqrt,  # Var = 1 / M⁻¹ = M
            scale=lambda z: sqrt * z,
            inverse=lambda v: inv_mass * v,
            quadratic=lambda v: jnp.sum(v * v / inv_mass),
            valid=jnp.all(jnp.isfinite(inv_mass) & (inv_mass > 0)),
        )
    if inv_mass.shape == (dim, dim):
        chol = jnp.linalg.cholesky(inv_mass)  # M⁻¹ = L Lᵀ, so M = L⁻ᵀ L⁻¹

        def whiten(v):  # L⁻¹ v, so vᵀ M v = |L⁻¹ v|²
            return jax.scipy.linalg.solve_triangular(chol, v, lower=True)

        return MassMatrix(
            sample_momentum=lambda z: jax.scipy.linalg.solve_triangular(chol.T, z, lower=False),
            scale=lambda z: chol @ z,
            inverse=lambda v: inv_mass @ v,
            quadratic=lambda v: jnp.sum(whiten(v) ** 2),
            valid=jnp.all(jnp.isfinite(chol)),  # Cholesky of a non-PD matrix gives NaN
        )
    raise ValueError(
        f"inverse_mass_matrix must have shape ({dim},) (diagonal) or ({dim}, {dim}) "
        f"(dense) for a position with {dim} elements, got {inv_mass.shape}."
    )


def _uniform_to_normal(u: Array) -> Array:
    # u is uniform on (-1, 1): sqrt(2) erfinv(u) is standard normal (as in jax.random.normal).
    return np.sqrt(2.0).astype(u.dtype) * jax.lax.erf_inv(u)


def _symmetric_uniform(key: PRNGKey, n: int, dtype) -> Array:
    """``n`` draws uniform on (−1, 1) in ``dtype``.

    For float32 and threefry keys, ``n`` counters are hashed as ``⌈n/2⌉`` Threefry-2x32
    blocks and both output words are kept; each word's top 23 bits fill a float32
    mantissa in [1, 2). Otherwise ``jax.random.uniform`` is used.
    """
    tiny = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype))
    if dtype != jnp.float32 or str(jax.random.key_impl(key)) != "threefry2x32":
        return jax.random.uniform(key, (n,), dtype, minval=tiny, maxval=1.0)
    bits = threefry_2x32(jax.random.key_data(key), jnp.arange(n, dtype=jnp.uint32))
    one_two = jax.lax.bitcast_convert_type((bits >> 9) | np.uint32(0x3F800000), jnp.float32)
    return jnp.maximum(tiny, 2.0 * one_two - 3.0)


def _normals(key: PRNGKey, position: ArrayTree, num_uniforms: int) -> tuple[ArrayTree, Array]:
    """N(0, 1) noise shaped like ``position`` and ``num_uniforms`` U(−1, 1) draws, one hash."""
    leaves, treedef = jax.tree.flatten(position)
    dtype = jnp.result_type(*leaves)
    sizes = [leaf.size for leaf in leaves]
    u = _symmetric_uniform(key, sum(sizes) + num_uniforms, dtype)
    splits = np.cumsum(sizes)[:-1]
    noise = [
        _uniform_to_normal(chunk).reshape(leaf.shape).astype(leaf.dtype)
        for chunk, leaf in zip(jnp.split(u[: sum(sizes)], splits), leaves, strict=True)
    ]
    return jax.tree.unflatten(treedef, noise), u[sum(sizes) :]


def normal_and_uniform(key: PRNGKey, position: ArrayTree) -> tuple[ArrayTree, Array]:
    """Standard normal noise shaped like ``position`` and one log-uniform, from one draw.

    Args:
      key: a PRNG key (any implementation; threefry keys take the fast path).
      position: a pytree of floating arrays.

    Returns:
      ``(noise, log_u)``: a pytree of N(0, 1) draws like ``position`` and
      ``log u`` for ``u ~ U(0, 1)``, for a Metropolis–Hastings test.

    References:
      Salmon, J. K., Moraes, M. A., Dror, R. O. and Shaw, D. E. (2011). Parallel
      random numbers: as easy as 1, 2, 3. SC '11. (Threefry, counter mode)
    """
    noise, u = _normals(key, position, 1)
    log_u = jnp.log1p(u[0]) - jnp.log(2.0).astype(u.dtype)  # (u + 1) / 2 is U(0, 1)
    return noise, log_u


def normal_like(key: PRNGKey, position: ArrayTree) -> ArrayTree:
    """Standard normal noise shaped like ``position`` (no uniform is drawn).

    Args:
      key: a PRNG key.
      position: a pytree of arrays giving the shapes and dtypes.

    Returns:
      A pytree like ``position`` of ``N(0, 1)`` draws.
    """
    return _normals(key, position, 0)[0]


def metropolis_select(
    state: ArrayTree, proposal: ArrayTree, log_ratio: Array, log_u: Array, valid: Array
) -> tuple[ArrayTree, Array, Array]:
    """The Metropolis–Hastings test in log space, and the state it keeps.

    Args:
      state: the current kernel state.
      proposal: the proposed state (same structure).
      log_ratio: the log acceptance ratio; a NaN ratio rejects.
      log_u: ``log u`` for ``u ~ U(0, 1)``.
      valid: False for a proposal that must be rejected whatever the ratio (a
        non-finite position, log-density or gradient; an HMC divergence).

    Returns:
      ``(new_state, acceptance_rate, is_accepted)``; the rate is
      ``min(1, exp(log_ratio))`` for a valid proposal and 0 otherwise.
    """
    accept = valid & (log_u < log_ratio)
    new_state = jax.tree.map(lambda a, b: jnp.where(accept, a, b), proposal, state)
    rate = jnp.where(valid, jnp.exp(jnp.minimum(log_ratio, 0.0)), 0.0)
    return new_state, rate, accept


def tree_vdot(a: ArrayTree, b: ArrayTree) -> Array:
    """Σ over leaves of the elementwise product.

    Args:
      a: a pytree of arrays.
      b: a pytree with the structure and shapes of ``a``.

    Returns:
      The scalar ``Σ_leaves vdot(a_leaf, b_leaf)``.
    """
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _broadcast_to_leaves(value: Array, leaves, treedef) -> ArrayTree:
    """One array broadcast to every leaf (``ValueError`` when it does not broadcast)."""
    value = jnp.asarray(value)
    out = [
        jnp.broadcast_to(value, jnp.shape(leaf)).astype(jnp.result_type(leaf)) for leaf in leaves
    ]
    return jax.tree.unflatten(treedef, out)


def tree_broadcast(value: ArrayTree, tree: ArrayTree, name: str = "value") -> ArrayTree:
    """Broadcast a tunable to every leaf of ``tree``.

    A pytree with the structure of ``tree`` is matched leaf by leaf; a single array
    (or scalar) is used for every leaf. Each result is ``jnp.broadcast_to`` the leaf's
    shape, so a per-dimension array must broadcast against the leaf explicitly.
    As in BlackJAX, a single 1-D array with one entry per element of the *flattened*
    position (``jax.flatten_util.ravel_pytree`` order) is also accepted, e.g. shape
    ``(1,)`` for a scalar position, or ``(3,)`` for ``{"a": (2,), "b": ()}``.

    Args:
      value: the tunable; a scalar, an array, or a pytree shaped like ``tree``.
      tree: the position whose leaves give the target shapes and dtypes.
      name: the tunable's name, for error messages.

    Returns:
      A pytree like ``tree``, each leaf ``value`` broadcast to the leaf's shape and dtype.

    Raises:
      ValueError: naming ``name`` when the structures or shapes do not fit.
    """
    leaves, treedef = jax.tree.flatten(tree)
    value_leaves, value_def = jax.tree.flatten(value)
    total = sum(int(np.prod(jnp.shape(leaf))) for leaf in leaves)
    single = len(value_leaves) == 1
    if single and jnp.ndim(value_leaves[0]) == 1 and jnp.size(value_leaves[0]) == total:
        try:
            return _broadcast_to_leaves(value_leaves[0], leaves, treedef)
        except ValueError:
            flat, unravel = ravel_pytree(tree)
            flat_value = jnp.asarray(value_leaves[0]).astype(flat.dtype)
            return unravel(flat_value)
    if value_def == treedef:
        pairs = zip(value_leaves, leaves, strict=True)
    elif len(value_leaves) == 1:
        pairs = ((value_leaves[0], leaf) for leaf in leaves)
    else:
        raise ValueError(
            f"{name} must be one array or a pytree shaped like the position; got structure "
            f"{value_def} for position structure {treedef}."
        )
    out = []
    for v, leaf in pairs:
        v = jnp.asarray(v)
        try:
            out.append(jnp.broadcast_to(v, jnp.shape(leaf)).astype(jnp.result_type(leaf)))
        except ValueError as err:
            raise ValueError(
                f"{name} of shape {v.shape} does not broadcast to a position leaf of shape "
                f"{jnp.shape(leaf)}."
            ) from err
    return jax.tree.unflatten(treedef, out)
