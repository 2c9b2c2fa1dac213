"""A small convolutional energy for images, with optional class outputs (JEM).

``ConvEnergy`` maps a batch of images ``(n, H, W)`` or ``(n, H, W, C)`` to ``K``
outputs per image. With ``num_outputs=1`` the output *is* the energy. With
``num_outputs=K`` the outputs are class logits ``g(x)`` and the Joint Energy Model
view applies:

    E(x, y) = −g(x)[y],      E(x) = −log Σ_y exp g(x)[y],

so ``p(y | x)`` is the softmax classifier and ``p(x) ∝ exp(−E(x))``.

**Mixed precision.** With ``dtype=jnp.bfloat16`` the parameters stay float32
(``param_dtype``; the optimizer, the EMA and checkpoints see float32), each layer casts its
input and weights to bfloat16 and computes in it, and the outputs are cast back to float32.
So the energy, ``∇ₓE`` and ``∇_θE`` are float32 and a sampler's state (positions,
log-densities, gradients) stays float32; only the network's arithmetic is rounded to
bfloat16's 8-bit significand (relative rounding ``2⁻⁸ ≈ 0.4%`` per operation). Spectral
normalisation runs its power iteration on the float32 weights.

References:
  Grathwohl, W., Wang, K.-C., Jacobsen, J.-H., Duvenaud, D., Norouzi, M. and
  Swersky, K. (2020). Your classifier is secretly an energy based model and you
  should treat it like one. ICLR.
  Du, Y. and Mordatch, I. (2019). Implicit generation and generalization in
  energy-based models. NeurIPS.
  Miyato, T., Kataoka, T., Koyama, M. and Yoshida, Y. (2018). Spectral
  normalization for generative adversarial networks. ICLR.
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jebm._validate import check_float_dtype, check_int
from jebm.energies.mlp import ACTIVATIONS
from jebm.energy import _fresh, from_nnx
from jebm.types import Array, EnergyFn, PRNGKey, PyTree

__all__ = ["ConvEnergy", "conv_energy", "JointEnergy", "joint_energy_fns"]


def check_conv_args(image_shape, features, hidden, activation) -> tuple[int, ...]:
    """Check the arguments shared by the conv energies; return ``features`` as a tuple.

    Raises:
      ValueError: naming the argument: an unknown activation, an image shape that is not
        ``(H, W)`` or ``(H, W, C)``, no or non-positive channel counts, or a bad ``hidden``.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")
    if len(image_shape) not in (2, 3):
        raise ValueError(f"image_shape must be (H, W) or (H, W, C), got {tuple(image_shape)}.")
    features = tuple(features)
    if not features:
        raise ValueError("features must hold at least one channel count, got ().")
    for i, f in enumerate(features):
        check_int(f"features[{i}]", f)
    check_int("hidden", hidden)
    return features


class ConvEnergy(nnx.Module):
    """Conv → (strided conv)* → dense head; smooth activations by default.

    Args:
      image_shape: ``(H, W)`` or ``(H, W, C)`` of one image.
      features: channels of each conv layer; every layer after the first halves
        the resolution with stride 2.
      hidden: width of the dense layer before the head.
      num_outputs: 1 for a plain energy, ``K`` for class logits.
      activation: a name from ``jebm.energies.mlp.ACTIVATIONS``.
      spectral_norm: wrap every layer in ``nnx.SpectralNorm`` (Miyato et al., 2018),
        dividing each weight by an estimate of its largest singular value. The
        functional adapters close over the power-iteration vector as a constant
        (``update_stats=False``), so every call runs ``spectral_norm_steps``
        iterations from the stored random vector; the estimate is then a pure,
        differentiable function of the weights.
      spectral_norm_steps: power iterations per call.
      dtype: the dtype the layers compute in (``jnp.float32`` or ``jnp.bfloat16``, see
        the module docstring); parameters are float32 and the outputs are cast to float32
        whatever it is.
      rngs: ``nnx.Rngs``.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        features: Sequence[int] = (32, 64),
        hidden: int = 128,
        num_outputs: int = 1,
        activation: str = "swish",
        *,
        spectral_norm: bool = False,
        spectral_norm_steps: int = 5,
        dtype: jax.typing.DTypeLike = jnp.float32,
        rngs: nnx.Rngs,
    ):
        features = check_conv_args(image_shape, features, hidden, activation)
        check_int("num_outputs", num_outputs)
        self.dtype = check_float_dtype("dtype", dtype)
        precision = {"dtype": self.dtype, "param_dtype": jnp.float32}
        self.image_shape = tuple(image_shape)
        channels = self.image_shape[2] if len(self.image_shape) == 3 else 1
        self.activation = ACTIVATIONS[activation]

        def wrap(layer):
            if not spectral_norm:
                return layer
            return nnx.SpectralNorm(
                layer, n_steps=spectral_norm_steps, update_stats=False, rngs=rngs
            )

        convs, size = [], list(self.image_shape[:2])
        for i, out in enumerate(features):
            stride = 1 if i == 0 else 2
            convs.append(wrap(nnx.Conv(channels, out, (3, 3), strides=stride, rngs=rngs,
                                       **precision)))
            channels, size = out, [-(-s // stride) for s in size]
        self.convs = nnx.List(convs)
        self.dense = wrap(nnx.Linear(channels * size[0] * size[1], hidden, rngs=rngs,
                                     **precision))
        self.head = wrap(nnx.Linear(hidden, num_outputs, rngs=rngs, **precision))
        self.num_outputs = num_outputs

    def __call__(self, x: Array) -> Array:
        accepted = [self.image_shape]
        if len(self.image_shape) == 2:
            accepted.append(self.image_shape + (1,))
        if tuple(x.shape[1:]) not in accepted:
            raise ValueError(
                f"ConvEnergy expects images of shape (n, {', '.join(map(str, self.image_shape))}), "
                f"got {tuple(x.shape)}."
            )
        h = x if x.ndim == 4 else x[..., None]
        for conv in self.convs:
            h = self.activation(conv(h))
        h = self.activation(self.dense(h.reshape(h.shape[0], -1)))
        out = self.head(h).astype(jnp.float32)  # float32 energies whatever self.dtype
        return out[:, 0] if self.num_outputs == 1 else out


def conv_energy(key: PRNGKey, image_shape: Sequence[int], **kwargs) -> tuple[EnergyFn, PyTree]:
    """Build a one-output :class:`ConvEnergy` and return ``(energy_fn, params)``.

    Args:
      key: PRNG key for the initial weights.
      image_shape: ``(H, W)`` or ``(H, W, C)``.
      **kwargs: options of :class:`ConvEnergy` (not ``num_outputs``).

    Returns:
      ``(energy_fn, params)`` from :func:`jebm.energy.from_nnx`: ``energy_fn(params, x)``
      is the scalar energy of one image ``x`` of shape ``image_shape``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.energies.conv import conv_energy
      >>> energy_fn, params = conv_energy(jax.random.key(0), (8, 8), features=(8, 16))
      >>> energy_fn(params, jnp.zeros((8, 8))).shape
      ()
    """
    if kwargs.get("num_outputs", 1) != 1:
        raise ValueError(
            "conv_energy builds a plain energy; use joint_energy_fns for class logits."
        )
    return from_nnx(ConvEnergy(image_shape, rngs=nnx.Rngs(key), **kwargs))


class JointEnergy(NamedTuple):
    """The Joint Energy Model view of one classifier ``g``.

    Attributes:
      energy_fn: ``E(params, x) = −logsumexp_y g(x)[y]``, the marginal energy.
      conditional_energy_fn: ``E(params, x, y) = −g(x)[y]``; fix ``y`` with
        :func:`jebm.energy.conditioned` to sample one class.
      logits_fn: ``logits_fn(params, x) -> (num_classes,)``, the logits ``g(x)`` of one image.
      params: the classifier's ``nnx.Param`` state.
    """

    energy_fn: EnergyFn
    conditional_energy_fn: Callable[[PyTree, Array, Array], Array]
    logits_fn: Callable[[PyTree, Array], Array]
    params: PyTree


def joint_energy_fns(
    key: PRNGKey, image_shape: Sequence[int], num_classes: int, **kwargs
) -> JointEnergy:
    """JEM energies from one :class:`ConvEnergy` classifier with ``num_classes`` outputs.

    ``p(y | x) = softmax(g(x))[y]`` is the classifier; ``p(x) ∝ exp(−E(x))`` with
    ``E(x) = −logsumexp_y g(x)[y]``; ``p(x, y) ∝ exp(g(x)[y])``. With
    ``dtype=jnp.bfloat16`` the network computes in bfloat16 and the logits, hence the
    ``logsumexp`` and every energy, are float32.

    Args:
      key: PRNG key for the initial weights.
      image_shape: ``(H, W)`` or ``(H, W, C)``.
      num_classes: number of classes ``K >= 2``.
      **kwargs: other options of :class:`ConvEnergy` (e.g. ``dtype``, ``spectral_norm``).

    Returns:
      A :class:`JointEnergy` ``(energy_fn, conditional_energy_fn, logits_fn, params)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.energies.conv import joint_energy_fns
      >>> jem = joint_energy_fns(jax.random.key(0), (8, 8), 10, features=(8,))
      >>> x = jnp.zeros((8, 8))
      >>> jem.logits_fn(jem.params, x).shape
      (10,)
      >>> bool(jnp.allclose(jem.energy_fn(jem.params, x),
      ...                   -jax.nn.logsumexp(jem.logits_fn(jem.params, x))))
      True

    References:
      Grathwohl et al. (2020), Sec. 3.
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}.")
    if "num_outputs" in kwargs:
        raise ValueError("joint_energy_fns sets num_outputs = num_classes; do not pass it.")
    model = ConvEnergy(image_shape, num_outputs=num_classes, rngs=nnx.Rngs(key), **kwargs)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def logits_fn(params: PyTree, x: Array) -> Array:
        return nnx.merge(graphdef, _fresh(params), rest)(jnp.expand_dims(x, 0))[0]

    def energy_fn(params: PyTree, x: Array) -> Array:
        return -jax.nn.logsumexp(logits_fn(params, x))

    def conditional_energy_fn(params: PyTree, x: Array, y: Array) -> Array:
        return -logits_fn(params, x)[y]

    return JointEnergy(energy_fn, conditional_energy_fn, logits_fn, params)
