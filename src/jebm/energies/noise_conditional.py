"""A noise-conditional convolutional energy ``E(params, x, σ)`` for NCSN-style training.

Multi-σ denoising score matching (:func:`jebm.objectives.denoising_score_matching_loss` with
``sigmas=``), annealed Langevin (:func:`jebm.samplers.annealed_langevin` through
:func:`jebm.samplers.annealed.noise_conditional_logdensity`) and the recovery-likelihood
ladder (:func:`jebm.objectives.recovery_likelihood_loss` with ``sigmas=``) all take an energy
of one image *and* a noise level. This module gives one:

* the conv stack of :class:`jebm.energies.conv.ConvEnergy` (3×3 convs, every layer after
  the first with stride 2, a dense layer and a scalar head);
* each conv and the dense layer's activations are modulated by the noise level (FiLM:
  ``h ← (1 + γ(σ)) ⊙ h + β(σ)`` per channel), with ``γ, β`` linear in fixed sinusoidal
  features of ``log σ``; the FiLM layers start at zero, so at initialisation the network
  ignores σ apart from the output scaling below;
* the output is divided by ``σ``: ``E(x, σ) = f(x, σ) / σ``. The score of the data smoothed
  at level σ has magnitude ``≈ 1/σ`` (it is ``−ε/σ`` in expectation for ``x̃ = x + σε``), so
  this lets ``f`` work at one scale across the ladder (the ``s(x)/σ`` parameterisation of
  Song and Ermon 2020, applied to the energy).

Images are ``(H, W)`` or ``(H, W, C)``, channels last.

References:
  Song, Y. and Ermon, S. (2019). Generative modeling by estimating gradients of the data
  distribution. NeurIPS. (noise-conditional networks, annealed Langevin)

  Song, Y. and Ermon, S. (2020). Improved techniques for training score-based generative
  models. NeurIPS. (the 1/σ output scaling)

  Perez, E., Strub, F., de Vries, H., Dumoulin, V. and Courville, A. (2018). FiLM: visual
  reasoning with a general conditioning layer. AAAI.
"""

from collections.abc import Callable, Sequence

import jax.numpy as jnp
from flax import nnx

from jebm._validate import check_int
from jebm.energies.conv import check_conv_args
from jebm.energies.mlp import ACTIVATIONS
from jebm.types import Array, PRNGKey, PyTree

__all__ = ["NoiseConditionalConvEnergy", "noise_conditional_conv_energy"]


def _sigma_features(sigma: Array, dim: int) -> Array:
    """``[sin(2^k log σ), cos(2^k log σ)]``, ``k = 0 … dim/2 − 1``, for ``σ`` of shape ``(n,)``."""
    freqs = 2.0 ** jnp.arange(dim // 2, dtype=sigma.dtype)
    angles = jnp.log(sigma)[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class NoiseConditionalConvEnergy(nnx.Module):
    """Conv energy with FiLM conditioning on ``log σ`` and a ``1/σ`` output scale.

    Args:
      image_shape: ``(H, W)`` or ``(H, W, C)`` of one image.
      features: channels of each conv layer (each after the first halves the resolution).
      hidden: width of the dense layer before the head.
      activation: a name from :data:`jebm.energies.mlp.ACTIVATIONS`.
      embedding_dim: number of sinusoidal features of ``log σ`` (even).
      rngs: ``nnx.Rngs``.

    Call with a batch ``x`` of shape ``(n, *image_shape)`` and ``sigma`` of shape ``(n,)`` (or a
    scalar); returns energies ``(n,)``.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        features: Sequence[int] = (32, 64),
        hidden: int = 128,
        activation: str = "swish",
        *,
        embedding_dim: int = 16,
        rngs: nnx.Rngs,
    ):
        features = check_conv_args(image_shape, features, hidden, activation)
        embedding_dim = check_int("embedding_dim", embedding_dim, minimum=2)
        if embedding_dim % 2:
            raise ValueError(f"embedding_dim must be even, got {embedding_dim}.")
        self.image_shape = tuple(image_shape)
        self.embedding_dim = embedding_dim
        self.activation = ACTIVATIONS[activation]
        zeros = nnx.initializers.zeros_init()
        channels = self.image_shape[2] if len(self.image_shape) == 3 else 1
        convs, films, size = [], [], list(self.image_shape[:2])
        for i, out in enumerate(features):
            stride = 1 if i == 0 else 2
            convs.append(nnx.Conv(channels, out, (3, 3), strides=stride, rngs=rngs))
            films.append(nnx.Linear(embedding_dim, 2 * out, kernel_init=zeros, rngs=rngs))
            channels, size = out, [-(-s // stride) for s in size]
        self.convs = nnx.List(convs)
        self.films = nnx.List(films)
        self.dense = nnx.Linear(channels * size[0] * size[1], hidden, rngs=rngs)
        self.dense_film = nnx.Linear(embedding_dim, 2 * hidden, kernel_init=zeros, rngs=rngs)
        self.head = nnx.Linear(hidden, 1, rngs=rngs)

    @staticmethod
    def _film(h: Array, film: nnx.Linear, emb: Array) -> Array:
        gamma, beta = jnp.split(film(emb), 2, axis=-1)
        shape = (h.shape[0],) + (1,) * (h.ndim - 2) + (h.shape[-1],)
        return (1.0 + gamma.reshape(shape)) * h + beta.reshape(shape)

    def __call__(self, x: Array, sigma: Array) -> Array:
        accepted = [self.image_shape]
        if len(self.image_shape) == 2:
            accepted.append(self.image_shape + (1,))
        if tuple(x.shape[1:]) not in accepted:
            raise ValueError(
                "NoiseConditionalConvEnergy expects images of shape "
                f"(n, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}."
            )
        sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), (x.shape[0],))
        emb = _sigma_features(sigma, self.embedding_dim)
        h = x if x.ndim == 4 else x[..., None]
        for conv, film in zip(self.convs, self.films, strict=True):
            h = self.activation(self._film(conv(h), film, emb))
        h = self.activation(self._film(self.dense(h.reshape(h.shape[0], -1)), self.dense_film,
                                       emb))  # fmt: skip
        return self.head(h)[:, 0] / sigma


def noise_conditional_conv_energy(
    key: PRNGKey, image_shape: Sequence[int], **kwargs
) -> tuple[Callable[[PyTree, Array, Array], Array], PyTree]:
    """Build a :class:`NoiseConditionalConvEnergy`; return ``(energy_fn, params)``.

    Args:
      key: PRNG key for the initial weights.
      image_shape: ``(H, W)`` or ``(H, W, C)``.
      **kwargs: other options of :class:`NoiseConditionalConvEnergy`.

    Returns:
      ``energy_fn(params, x, sigma)``: the scalar energy of one image ``x`` at the scalar
      noise level ``sigma`` (density ∝ exp(−E)); ``params`` is the ``nnx.Param`` state.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.energies import noise_conditional_conv_energy
      >>> energy_fn, params = noise_conditional_conv_energy(jax.random.key(0), (8, 8),
      ...                                                   features=(8,), hidden=16)
      >>> energy_fn(params, jnp.zeros((8, 8)), 0.1).shape
      ()
    """
    model = NoiseConditionalConvEnergy(image_shape, rngs=nnx.Rngs(key), **kwargs)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def energy_fn(params: PyTree, x: Array, sigma: Array) -> Array:
        out = nnx.merge(graphdef, params, rest)(jnp.expand_dims(x, 0),
                                                jnp.reshape(jnp.asarray(sigma), (1,)))  # fmt: skip
        return out.reshape(())

    return energy_fn, params

