"""A configurable MLP energy for vectors, ``E_θ : ℝ^d → ℝ``, density ∝ exp(−E_θ).

``MLPEnergy`` is an ``nnx.Module`` mapping a batch ``(n, d)`` to energies ``(n,)``:
``Linear → act → … → Linear(·, 1)``. Cross into pure JAX once with
:func:`jebm.energy.from_nnx` (or :func:`mlp_energy`, which does both steps), then
use only ``(energy_fn, params)``.

Smooth activations (``silu``/``swish``, ``softplus``, ``elu``, ``gelu``, ``tanh``)
are the usual choice for energies: samplers and score-matching objectives use
``∇ₓE`` (and sometimes ``∇ₓ²E``), which ``relu`` makes piecewise constant (zero).

**Random Fourier features.** An MLP on raw coordinates learns low frequencies first and
sharp features (a ring 0.08 wide, the edges of a checkerboard) slowly. With
``fourier_features=m`` the input goes through a fixed random map first,

    γ(x) = [sin(Bᵀx), cos(Bᵀx)],   B ∈ ℝ^{d×m},  B_ij ~ N(0, s²),

with ``s = fourier_scale`` (angular frequency, radians per unit of ``x``). ``B`` is drawn
once at construction from the ``params`` stream and is *not* a parameter: it is an
``nnx.Variable`` closed over by :func:`jebm.energy.from_nnx`, so optimizers never move it
and it is re-created from the same key on restore. ``γ`` is bounded, so the energy stays
bounded too; the base or domain must make ``exp(−E)`` integrable (on ℝ^d, add a base
energy).

**Mixed precision.** With ``dtype=jnp.bfloat16`` the parameters stay float32
(``param_dtype``), the linear layers and activations compute in bfloat16, and the energy is
cast back to float32, so ``∇ₓE``, ``∇_θE`` and a sampler's state stay float32. The Fourier
map ``γ`` is computed in float32 (``sin`` of large angles needs more than bfloat16's
8 significant bits) and rounded on entering the first layer.

References:
  Du, Y. and Mordatch, I. (2019). Implicit generation and generalization in
  energy-based models. NeurIPS.

  Ramachandran, P., Zoph, B. and Le, Q. V. (2017). Searching for activation
  functions. arXiv:1710.05941 (swish/SiLU).

  Tancik, M., Srinivasan, P. P., Mildenhall, B., Fridovich-Keil, S., Raghavan, N.,
  Singhal, U., Ramamoorthi, R., Barron, J. T. and Ng, R. (2020). Fourier features let
  networks learn high frequency functions in low dimensional domains. NeurIPS.
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jebm._validate import check_float, check_float_dtype, check_int
from jebm.energy import from_nnx
from jebm.types import Array, EnergyFn, PRNGKey, PyTree

__all__ = ["ACTIVATIONS", "MLPEnergy", "mlp_energy"]

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,  # the same function under its other name
    "softplus": jax.nn.softplus,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,  # jax.nn's default tanh approximation
    "tanh": jax.nn.tanh,
    "relu": jax.nn.relu,
}


def _check_config(in_features: int, hidden: Sequence[int], activation: str,
                  fourier_features: int = 0, fourier_scale: float = 1.0) -> tuple[int, ...]:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")
    check_int("in_features", in_features)
    if isinstance(hidden, int):
        raise ValueError(
            f"hidden must be a sequence of layer widths, e.g. ({hidden},), got {hidden}."
        )
    hidden = tuple(hidden)
    for i, h in enumerate(hidden):
        check_int(f"hidden[{i}]", h)
    check_int("fourier_features", fourier_features, minimum=0)
    check_float("fourier_scale", fourier_scale)
    return hidden


class MLPEnergy(nnx.Module):
    """An MLP energy ``(n, in_features) → (n,)``, or one example ``(in_features,) → ()``.

    The unbatched form is what :func:`mlp_energy` adapts (``from_nnx(..., batched=False)``):
    ``jax.vmap`` of it over a batch compiles to the same ``(n, d) @ (d, h)`` products as the
    batched call, where ``vmap`` of a call on ``x[None]`` carries a size-1 axis through every
    layer (``(n, 1, h)`` activations, and transposes of them in every weight gradient).

    Args:
      in_features: dimension ``d`` of one example.
      hidden: widths of the hidden layers, e.g. ``(128, 128)``; ``()`` gives a
        linear energy (not normalisable on ℝ^d: use it only on bounded domains).
      activation: one of ``"silu"``, ``"swish"``, ``"softplus"``, ``"elu"``,
        ``"gelu"``, ``"tanh"``, ``"relu"`` (see :data:`ACTIVATIONS`).
      fourier_features: ``m``, the number of random frequencies of the input map
        ``γ(x) = [sin(Bᵀx), cos(Bᵀx)]`` (see the module docstring); 0 feeds ``x`` as is.
      fourier_scale: ``s``, the standard deviation of the frequencies ``B``.
      dtype: the dtype the layers compute in (``jnp.float32`` or ``jnp.bfloat16``, see
        the module docstring); parameters and the returned energies are float32.
      rngs: ``nnx.Rngs`` for the weight initialisation (and ``B``).

    Raises:
      ValueError: for an unknown activation, a non-positive width or a ``dtype`` that
        is not a floating-point type; at call
        time, for input that is neither ``(n, in_features)`` nor ``(in_features,)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jebm.energies.mlp import MLPEnergy
      >>> model = MLPEnergy(2, hidden=(32, 32), rngs=nnx.Rngs(0))
      >>> model(jnp.ones((5, 2))).shape
      (5,)
      >>> graphdef, params = nnx.split(model, nnx.Param)  # pure from here on
      >>> energies = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))(params, jnp.ones((5, 2)))
      >>> energies.shape
      (5,)
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (128, 128),
        activation: str = "silu",
        *,
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
        dtype: jax.typing.DTypeLike = jnp.float32,
        rngs: nnx.Rngs,
    ):
        hidden = _check_config(in_features, hidden, activation, fourier_features, fourier_scale)
        self.dtype = check_float_dtype("dtype", dtype)
        precision = {"dtype": self.dtype, "param_dtype": jnp.float32}
        # fixed random frequencies: an nnx.Variable, not an nnx.Param
        self.fourier = nnx.Variable(
            fourier_scale * jax.random.normal(rngs.params(), (in_features, fourier_features))
        ) if fourier_features else None
        widths = (2 * fourier_features if fourier_features else in_features, *hidden)
        self.in_features = in_features
        self.activation = activation
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs, **precision)
             for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.head = nnx.Linear(widths[-1], 1, rngs=rngs, **precision)

    def __call__(self, x: Array) -> Array:
        if x.ndim not in (1, 2) or x.shape[-1] != self.in_features:
            raise ValueError(
                f"MLPEnergy expects a batch of shape (n, {self.in_features}) or one example "
                f"of shape ({self.in_features},), got {tuple(x.shape)}."
            )
        act = ACTIVATIONS[self.activation]
        h = x
        if self.fourier is not None:
            angles = x @ self.fourier[...]
            h = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
        for layer in self.layers:
            h = act(layer(h))
        return self.head(h)[..., 0].astype(jnp.float32)  # float32 energies whatever self.dtype


def mlp_energy(
    key: PRNGKey,
    in_features: int,
    hidden: Sequence[int] = (128, 128),
    activation: str = "silu",
    *,
    fourier_features: int = 0,
    fourier_scale: float = 1.0,
    dtype: jax.typing.DTypeLike = jnp.float32,
) -> tuple[EnergyFn, PyTree]:
    """Build an :class:`MLPEnergy` and return the pure ``(energy_fn, params)`` pair.

    Args:
      key: PRNG key (``jax.random.key``) for the initialisation.
      in_features: dimension ``d`` of one example.
      hidden: hidden-layer widths.
      activation: an activation name (see :data:`ACTIVATIONS`).
      fourier_features: random Fourier input features (0: none); see :class:`MLPEnergy`.
      fourier_scale: their frequency scale.
      dtype: the compute dtype (``jnp.float32`` or ``jnp.bfloat16``); parameters and
        energies are float32 either way.

    Returns:
      ``(energy_fn, params)``: ``energy_fn(params, x)`` is the scalar energy of one
      ``x`` of shape ``(in_features,)``; ``params`` is the ``nnx.Param`` state, a
      pytree to differentiate and optimise.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.energies.mlp import mlp_energy
      >>> energy_fn, params = mlp_energy(jax.random.key(0), 2, hidden=(16,))
      >>> energy_fn(params, jnp.zeros(2)).shape
      ()
    """

    def create(k):
        return MLPEnergy(in_features, hidden, activation, fourier_features=fourier_features,
                         fourier_scale=fourier_scale, dtype=dtype, rngs=nnx.Rngs(k))

    # Adapted unbatched: vmap over a batch then gives plain (n, d) matmuls (see MLPEnergy).
    if fourier_features:  # eagerly: under jit XLA folds fourier_scale into the normal's
        return from_nnx(create(key), batched=False)  # constants: B would differ in its last bits
    return from_nnx(_initialised(create, key), batched=False)


def _initialised(create: Callable[[PRNGKey], nnx.Module], key: PRNGKey) -> nnx.Module:
    """``create(key)`` with its random initialisation run as one XLA program.

    Eagerly, every initialiser (one truncated normal and one ``zeros`` per layer) is a
    separate small program that XLA compiles on first use; under one ``jax.jit`` the
    whole initialisation compiles once. The module's structure comes from an abstract
    trace (``nnx.eval_shape``), its state from the jitted one: the same values.
    """
    graphdef, *_ = nnx.split(nnx.eval_shape(lambda: create(key)), nnx.Param, ...)
    states = jax.jit(lambda k: tuple(nnx.split(create(k), nnx.Param, ...)[1:]))(key)
    return nnx.merge(graphdef, *states)
