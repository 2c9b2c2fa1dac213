"""The energy contract, its adapters, derived functions and composition.

**The sign convention, stated once for all of jebm.** An energy is a pure function
``energy_fn(params, x) -> scalar`` evaluated on a *single, unbatched* ``x`` (any
pytree), and it defines the density

    p(x) = exp(−E(params, x)) / Z(params).

Everything else is derived here and nowhere else:

* samplers consume ``logdensity_fn(x) = −E(params, x)`` (BlackJAX's convention);
* the score is ``score_fn(x) = ∇ₓ log p(x) = −∇ₓ E(params, x)``;
* ``log_ratio(x, x′) = log p(x) − log p(x′) = E(x′) − E(x)`` needs no ``Z``.

Variants are built from these adapters, never by writing ``−E`` again: an energy
with a tractable base density ``q`` (:func:`with_base`, ``E − log q``), one with some
coordinates held fixed (:func:`masked`), a normalised log-density with a known or
learned ``log Z`` (``logdensity_fn(energy_fn, params, log_z)``), a noise-conditional
energy ``E(params, x, σ)`` (extra arguments pass through ``logdensity_fn``), and an
energy on the unit box seen in logit coordinates (:func:`logit_energy`).

Batches are the caller's ``jax.vmap`` over axis 0, layout ``(n, *event)``.

Adapters turn NNX modules, Linen modules and plain functions into this contract.
Each checks at trace time that one example gives one scalar and raises a
``ValueError`` naming the shape it got otherwise.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from jebm.types import Array, ArrayTree, EnergyFn, LogDensityFn, PyTree, ScoreFn

__all__ = [
    "from_nnx",
    "from_linen",
    "from_fn",
    "logdensity_fn",
    "BoundLogDensity",
    "score_fn",
    "log_ratio",
    "batch_energy",
    "sum_energies",
    "tempered",
    "conditioned",
    "with_base",
    "masked",
    "logit_energy",
]


def _as_scalar(value: Array, where: str) -> Array:
    """Return ``value`` as a 0-d array, or raise naming the bad shape."""
    value = jnp.asarray(value)
    if value.size != 1:
        raise ValueError(
            f"{where} must return one scalar energy per unbatched example, got shape "
            f"{value.shape}. An energy_fn sees a single x; batch it with jax.vmap."
        )
    return value.reshape(())


def _batched_call(module_call: Callable[[Array], Array], x: ArrayTree, where: str) -> Array:
    """Call a batch-first module on one example (any pytree) and check it returns one scalar."""
    out = module_call(jax.tree.map(lambda leaf: jnp.expand_dims(leaf, 0), x))
    return _as_scalar(out, where)


def _fresh(params: PyTree) -> PyTree:
    """New ``nnx.Variable`` boxes around the same arrays, created in the current trace.

    A module that writes to its own variables when called (``nnx.SpectralNorm`` stores
    the normalised kernel in place) may only do so in the trace its variables were made
    in. ``params`` held from outside (e.g. closed over while differentiating with respect
    to ``x`` only) were made elsewhere; rebuilding the boxes makes the write legal and
    keeps it on a throw-away copy, so the caller's params never change.
    """
    return jax.tree.map(lambda leaf: leaf, params)


def from_nnx(module: nnx.Module, *, batched: bool = True) -> tuple[EnergyFn, PyTree]:
    """Split an NNX module once into a pure ``energy_fn`` and its parameters.

    Args:
      module: an ``nnx.Module`` mapping a batch ``(n, *event)`` to energies of shape
        ``(n,)`` or ``(n, 1)`` (or, with ``batched=False``, one example to a scalar).
      batched: whether the module expects a leading batch axis. A module that also
        accepts one unbatched example (as :class:`~jebm.energies.mlp.MLPEnergy` does) is
        better adapted with ``batched=False``: ``jax.vmap`` of the energy over a batch
        then runs the module's own batched products, where a batch-first call on
        ``x[None]`` carries a size-1 axis through every layer under ``vmap`` (extra
        transposes in the parameter gradients: DSM and NCE ran 15–30 % slower so).

    Returns:
      ``(energy_fn, params)`` where ``params`` is the ``nnx.Param`` state and
      ``energy_fn(params, x)`` is pure; other state (e.g. batch statistics) is
      closed over as constants.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jebm.energy import from_nnx
      >>> model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
      >>> energy_fn, params = from_nnx(model)
      >>> energy_fn(params, jnp.ones(2)).shape
      ()
    """
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    where = f"NNX module {type(module).__name__}"

    def energy_fn(params: PyTree, x: ArrayTree) -> Array:
        model = nnx.merge(graphdef, _fresh(params), rest)
        if batched:
            return _batched_call(model, x, where)
        return _as_scalar(model(x), where)

    return energy_fn, params


def from_linen(module, variables: PyTree, *, batched: bool = True) -> tuple[EnergyFn, PyTree]:
    """Adapt a Linen module and its variables; ``params`` is ``variables["params"]``.

    Args:
      module: a ``flax.linen.Module``.
      variables: the output of ``module.init``; collections other than ``params``
        are closed over as constants.
      batched: whether the module expects a leading batch axis.

    Returns:
      ``(energy_fn, params)``.
    """
    if "params" not in variables:
        raise ValueError(f"Linen variables need a 'params' collection, got {list(variables)}.")
    others = {k: v for k, v in variables.items() if k != "params"}
    where = f"Linen module {type(module).__name__}"

    def energy_fn(params: PyTree, x: ArrayTree) -> Array:
        call = lambda inp: module.apply({**others, "params": params}, inp)
        if batched:
            return _batched_call(call, x, where)
        return _as_scalar(call(x), where)

    return energy_fn, variables["params"]


def from_fn(fn: Callable[[PyTree, ArrayTree], Array]) -> EnergyFn:
    """Wrap a plain ``fn(params, x) -> scalar`` with the scalar check.

    Args:
      fn: ``fn(params, x)`` for one unbatched ``x``, returning a single value (any
        shape of size 1).

    Returns:
      ``energy_fn(params, x)`` returning a 0-d array; it raises a ``ValueError`` naming
      ``fn`` and the shape it got when ``fn`` returns more than one value.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jebm.energy import from_fn
      >>> energy_fn = from_fn(lambda p, x: p * jnp.sum(x**2, keepdims=True))
      >>> energy_fn(2.0, jnp.ones(3)).shape
      ()
    """
    where = f"energy function {getattr(fn, '__name__', repr(fn))}"
    return lambda params, x: _as_scalar(fn(params, x), where)


def logdensity_fn(energy_fn: EnergyFn, params: PyTree, log_z: Array | float = 0.0) -> LogDensityFn:
    """The log-density ``x ↦ −E(params, x) − log_z`` that samplers consume.

    Args:
      energy_fn: ``energy_fn(params, x, *args) -> scalar``.
      params: its parameters.
      log_z: subtracted (default 0, the unnormalised log-density); pass a known or
        learned ``log Z`` for a normalised one.

    Returns:
      ``logdensity(x, *args)``; extra arguments (e.g. a noise level ``σ`` of a
      noise-conditional energy) are passed through to ``energy_fn``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jebm.energy import logdensity_fn
      >>> float(logdensity_fn(lambda p, x: p * jnp.sum(x**2), 0.5)(jnp.ones(2)))
      -1.0
    """
    return BoundLogDensity(energy_fn, params, log_z)


class BoundLogDensity:
    """``x ↦ −E(params, x, *args) − log_z``, remembering the energy and parameters it binds.

    What :func:`logdensity_fn` returns: a plain callable for every sampler, which also
    records ``energy_fn``, ``params`` and ``log_z``, so a sampler that needs the model
    itself (RBM block Gibbs, :func:`jebm.samplers.discrete.block_gibbs`) can take the
    log-density that PCD, AIS or :func:`jebm.samplers.run_chains` hand every sampler.
    """

    __slots__ = ("energy_fn", "params", "log_z")

    def __init__(self, energy_fn: EnergyFn, params: PyTree, log_z: Array | float = 0.0):
        self.energy_fn = energy_fn
        self.params = params
        self.log_z = log_z

    def __call__(self, x: ArrayTree, *args) -> Array:
        value = -self.energy_fn(self.params, x, *args)
        if isinstance(self.log_z, int | float) and self.log_z == 0:
            return value
        return value - self.log_z

    def __repr__(self) -> str:
        name = getattr(self.energy_fn, "__name__", repr(self.energy_fn))
        return f"logdensity_fn({name})"


def score_fn(energy_fn: EnergyFn, params: PyTree) -> ScoreFn:
    """The score ``x ↦ ∇ₓ log p(x) = −∇ₓ E(params, x)``.

    Args:
      energy_fn: ``energy_fn(params, x, *args) -> scalar``.
      params: its parameters.

    Returns:
      ``score(x, *args)``, the gradient of :func:`logdensity_fn` with respect to one
      unbatched ``x`` (a pytree like ``x``); extra arguments pass through.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jebm.energy import score_fn
      >>> score_fn(lambda p, x: 0.5 * p * jnp.sum(x**2), 2.0)(jnp.ones(2))
      Array([-2., -2.], dtype=float32)
    """
    return jax.grad(logdensity_fn(energy_fn, params))


def batch_energy(energy_fn: EnergyFn, params: PyTree, xs: ArrayTree) -> Array:
    """Energies of a batch ``(n, *event)``, shape ``(n,)``.

    Args:
      energy_fn: ``energy_fn(params, x) -> scalar`` for one unbatched ``x``.
      params: its parameters, shared by the batch.
      xs: the batch, a pytree whose leaves have leading axis ``n``.

    Returns:
      ``(n,)`` energies, ``jax.vmap`` of ``energy_fn`` over axis 0 of ``xs``.
    """
    return jax.vmap(energy_fn, in_axes=(None, 0))(params, xs)


def log_ratio(energy_fn: EnergyFn, params: PyTree, x: ArrayTree, x_prime: ArrayTree) -> Array:
    """``log p(x) − log p(x′) = E(x′) − E(x)`` for batches ``(n, *event)``; Z cancels.

    Args:
      energy_fn: ``energy_fn(params, x) -> scalar`` for one unbatched ``x``.
      params: its parameters.
      x: ``(n, *event)`` the numerator points.
      x_prime: ``(n, *event)`` the denominator points.

    Returns:
      ``(n,)`` log-density ratios, one per pair.
    """
    return batch_energy(energy_fn, params, x_prime) - batch_energy(energy_fn, params, x)


def sum_energies(*energy_fns: EnergyFn) -> EnergyFn:
    """Product of experts: ``E(params, x) = Σᵢ Eᵢ(params[i], x)``; params is a tuple.

    Args:
      *energy_fns: one or more energies ``Eᵢ(params_i, x)`` on the same ``x``.

    Returns:
      ``energy_fn(params, x)`` taking a tuple ``params`` with one entry per energy, in
      order; it raises a ``ValueError`` when the tuple has the wrong length.

    Raises:
      ValueError: if no energy is given.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jebm.energy import sum_energies
      >>> energy_fn = sum_energies(lambda p, x: p * x, lambda p, x: p * x**2)
      >>> float(energy_fn((1.0, 2.0), jnp.float32(3.0)))
      21.0
    """
    if not energy_fns:
        raise ValueError("sum_energies needs at least one energy_fn.")

    def energy_fn(params: tuple, x: ArrayTree) -> Array:
        if len(params) != len(energy_fns):
            raise ValueError(f"sum of {len(energy_fns)} energies got {len(params)} params.")
        return sum(e(p, x) for e, p in zip(energy_fns, params, strict=True))

    return energy_fn


def tempered(energy_fn: EnergyFn, temperature: Array | float) -> EnergyFn:
    """``E/T``, the density ``p^(1/T)``; ``temperature`` may be a traced array.

    Args:
      energy_fn: ``energy_fn(params, x) -> scalar``.
      temperature: ``T > 0``, a scalar (not checked); ``T < 1`` sharpens, ``T > 1``
        flattens.

    Returns:
      ``energy_fn(params, x) / temperature``, with the same ``params``.
    """
    return lambda params, x: energy_fn(params, x) / temperature


def with_base(energy_fn: EnergyFn, base) -> EnergyFn:
    """``E(params, x, …) − log q(x)``: the network learns a correction of a tractable density.

    Arguments after ``x`` (e.g. a class ``y`` of a joint energy ``E(params, x, y)``) are
    passed through, so the same ``q`` multiplies every class-conditional density and
    ``p(y | x)`` is unchanged.

    Args:
      energy_fn: the network's energy ``energy_fn(params, x, *args)``.
      base: a :class:`jebm.densities.Density` ``q`` (its ``log_prob``).

    Returns:
      The energy of the density ``∝ q(x) exp(−E(x, …))``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jebm import densities
      >>> from jebm.energy import with_base
      >>> q = densities.fit_gaussian(jnp.array([[0.0], [2.0]]))
      >>> e = with_base(lambda p, x, y: y * jnp.sum(x), q)
      >>> bool(jnp.isclose(e(None, jnp.ones(1), 3.0), 3.0 - q.log_prob(jnp.ones(1))))
      True
    """
    log_q = base.log_prob
    return lambda params, x, *args: energy_fn(params, x, *args) - log_q(x)


def masked(energy_fn: EnergyFn, mask: Array, observed: Array) -> EnergyFn:
    """The energy of the free coordinates ``mask`` with the others fixed to ``observed``.

    ``E_m(params, z) = E(params, where(mask, z, observed))``: its density is the
    conditional ``p(x_m | x_o)`` (up to ``Z``), and coordinates outside ``mask`` never
    influence it (inpainting).

    Args:
      energy_fn: ``energy_fn(params, x) -> scalar``.
      mask: boolean array, broadcasting to the event shape; ``True`` marks a free
        coordinate.
      observed: the values of the fixed coordinates, of the event shape (its entries
        under ``mask`` are ignored).

    Returns:
      ``energy_fn(params, z)`` on full-size ``z`` of the event shape; gradients with
      respect to ``z`` are zero outside ``mask``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jebm.energy import masked
      >>> energy_fn = masked(lambda p, x: jnp.sum(x**2), jnp.array([True, False]),
      ...                    jnp.array([0.0, 3.0]))
      >>> float(energy_fn(None, jnp.array([1.0, 100.0])))
      10.0
    """
    return lambda params, z: energy_fn(params, jnp.where(mask, z, observed))


def _log_abs_dsigmoid(z: Array) -> Array:
    """``log σ′(z) = −softplus(z) − softplus(−z)``, elementwise and overflow-free."""
    return -jax.nn.softplus(z) - jax.nn.softplus(-z)


def logit_energy(energy_fn: EnergyFn) -> EnergyFn:
    """An energy on the unit box in logit coordinates: ``E_z(z) = E(σ(z)) − Σ log σ′(z)``.

    By the change of variables ``x = σ(z)``, ``∫_{ℝ^d} exp(−E_z) dz = ∫_{[0,1]^d} exp(−E)
    dx``: both define the same normalised model, one on ``ℝ^d`` (where AIS needs no
    boundary) and one on the box.

    Args:
      energy_fn: ``energy_fn(params, x) -> scalar`` for ``x`` in the unit box ``[0, 1]^d``.

    Returns:
      ``energy_z(params, z)`` for ``z ∈ ℝ^d`` of the same shape as ``x``, with the same
      partition function as ``energy_fn`` on the box.
    """

    def energy_z(params: PyTree, z: Array) -> Array:
        return energy_fn(params, jax.nn.sigmoid(z)) - jnp.sum(_log_abs_dsigmoid(z))

    return energy_z


def conditioned(
    energy_fn: Callable[[PyTree, ArrayTree, ArrayTree], Array], y: ArrayTree
) -> EnergyFn:
    """Fix the extra argument of ``energy_fn(params, x, y)``, giving ``E(· | y)``.

    Args:
      energy_fn: ``energy_fn(params, x, y) -> scalar``, e.g. a class-conditional or
        noise-conditional energy.
      y: the value to condition on (a label, a noise level, any pytree).

    Returns:
      ``energy_fn(params, x)`` with ``y`` closed over.
    """
    return lambda params, x: energy_fn(params, x, y)
