"""Unadjusted Langevin algorithm (ULA), in its coupled and its decoupled (EBM) form.

**Coupled form** (``noise_scale=None``), the Euler–Maruyama step of the Langevin
diffusion dX = ∇log p(X) dt + √2 dW:

    x′ = x + h ∇log p(x) + √(2h) ξ,   ξ ~ N(0, I).

There is no accept/reject step, so the chain is biased at O(h): for a Gaussian
target with precision P its stationary covariance Σ solves the discrete Lyapunov
equation Σ = (I − hP) Σ (I − hP)ᵀ + 2hI rather than Σ = P⁻¹. MALA
(:mod:`jebm.samplers.mala`) removes the bias.

**Decoupled form** (``noise_scale=σ``), the usual practice for training EBMs,
where the gradient step ``a`` and the noise ``σ`` are chosen separately:

    x′ = x + a ∇log p(x) + σ ξ.

This is the coupled step of the diffusion dX = ∇log p(X) dt + √(2T) dW with
h = a and temperature T = σ² / (2a), so for small ``a`` it samples the tempered
density p^(1/T) ∝ exp(−E/T), not p. EBM practice (e.g. a = 10, σ = 0.005 for
images in [0, 1]) corresponds to T ≪ 1: a noisy gradient descent on the energy.

Options, each static in whether it is applied (``None`` or not) and traced in its
value:

* ``clip_grad=c`` clips the gradient **per element** to [−c, c] before the step
  (the IGEBM choice; it bounds each coordinate's drift by ``a·c``).
* ``bounds=(low, high)`` clamps the new state to the box [low, high] (e.g. the
  pixel range), element-wise; ``low``/``high`` broadcast to each position leaf.

A step that produces a non-finite position, log-density or gradient is not taken:
the chain stays where it was and ``info.is_divergent`` is set. The same holds for a
traced ``step_size`` or ``clip_grad`` that is not finite and positive, or a traced
``noise_scale`` that is negative or not finite (σ = 0, noise-free ascent, is allowed).
ULA does not use the log-density itself, so a chain started where it is not finite (a
NaN start under ``jit``) still moves once its gradient is finite; each step taken from
such a state is flagged in ``info.is_divergent`` too, so the bad start is visible.

References:
  Roberts, G. O. and Tweedie, R. L. (1996). Exponential convergence of Langevin
  distributions and their discrete approximations. Bernoulli 2(4), 341–363.

  Du, Y. and Mordatch, I. (2019). Implicit generation and modeling with energy-based
  models. NeurIPS 2019 (IGEBM).

  Nijkamp, E., Hill, M., Zhu, S.-C. and Wu, Y. N. (2019). Learning non-convergent
  non-persistent short-run MCMC toward energy-based model. NeurIPS 2019.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jebm._validate import check_float, is_static_number
from jebm.samplers.base import (
    GradientState,
    SamplingAlgorithm,
    gradient_state,
    normal_like,
    tree_all_finite,
    tree_broadcast,
    tree_vdot,
    tunables_valid,
)
from jebm.types import Array, ArrayTree, LogDensityFn, PRNGKey

__all__ = ["ULAState", "ULAInfo", "init", "build_kernel", "ula"]


ULAState = GradientState  # position, log p and ∇log p, cached


class ULAInfo(NamedTuple):
    """Diagnostics of one ULA step.

    Attributes:
      grad_norm: the global L2 norm of ``∇log p`` at the old position, before clipping.
      is_divergent: whether the new state was not finite or a traced tunable was bad (the
        step was then not taken), or the step started from a state whose log-density is
        not finite (the step is taken if it lands well).
    """

    grad_norm: Array  # global L2 norm of ∇log p at the old position, before clipping
    # Non-finite new state or bad traced tunable (the step was not taken), or a start from
    # a state whose log-density is not finite (the step is taken if it lands well).
    is_divergent: Array


init = gradient_state


def build_kernel():
    """Return ``kernel(key, state, logdensity_fn, step_size, noise_scale=None, clip_grad=None,
    bounds=None) -> (state, info)``.

    ``noise_scale=None`` gives the coupled step (noise √(2h)); an array gives the
    decoupled step with that noise standard deviation. ``clip_grad`` and ``bounds``
    are applied only when not ``None``; see the module docstring.
    """

    def kernel(
        key: PRNGKey,
        state: ULAState,
        logdensity_fn: LogDensityFn,
        step_size: ArrayTree,
        noise_scale: ArrayTree | None = None,
        clip_grad: Array | None = None,
        bounds: tuple[ArrayTree, ArrayTree] | None = None,
    ) -> tuple[ULAState, ULAInfo]:
        noise = normal_like(key, state.position)
        step = tree_broadcast(step_size, state.position, "step_size")
        if noise_scale is None:
            sigma = jax.tree.map(lambda h: jnp.sqrt(2.0 * h), step)
        else:
            sigma = tree_broadcast(noise_scale, state.position, "noise_scale")
        grad = state.logdensity_grad
        grad_norm = jnp.sqrt(tree_vdot(grad, grad))
        if clip_grad is not None:
            grad = jax.tree.map(lambda g: jnp.clip(g, -clip_grad, clip_grad), grad)
        position = jax.tree.map(
            lambda x, h, g, s, z: x + h * g + s * z, state.position, step, grad, sigma, noise
        )
        if bounds is not None:
            low = tree_broadcast(bounds[0], position, "bounds[0]")
            high = tree_broadcast(bounds[1], position, "bounds[1]")
            position = jax.tree.map(jnp.clip, position, low, high)
        proposal = init(position, logdensity_fn)
        # σ = 0 is allowed (noise-free gradient ascent); the step and clip must be > 0.
        noise_ok = jnp.all(jnp.stack([
            jnp.all(jnp.isfinite(s) & (s >= 0)) for s in jax.tree.leaves(sigma)
        ]))
        valid = tree_all_finite(proposal) & tunables_valid(step) & noise_ok
        if clip_grad is not None:
            valid = valid & tunables_valid(clip_grad)
        new_state = jax.tree.map(lambda a, b: jnp.where(valid, a, b), proposal, state)
        return new_state, ULAInfo(grad_norm, ~valid | ~jnp.isfinite(state.logdensity))

    return kernel


def ula(
    logdensity_fn: LogDensityFn,
    step_size: float | ArrayTree,
    noise_scale: float | ArrayTree | None = None,
    *,
    clip_grad: float | Array | None = None,
    bounds: tuple[float | ArrayTree, float | ArrayTree] | None = None,
) -> SamplingAlgorithm:
    """Unadjusted Langevin as a ``SamplingAlgorithm``.

    With ``noise_scale=None`` the step is ``x + h∇log p + √(2h)ξ`` (samples p up
    to an O(h) bias). With ``noise_scale=σ`` it is ``x + a∇log p + σξ`` with
    ``a = step_size``, which for small ``a`` samples the tempered density
    p^(1/T) with **T = σ²/(2a)**.

    Args:
      logdensity_fn: ``x ↦ log p(x)`` up to a constant (``−E`` for an energy).
      step_size: ``h`` (coupled) or the gradient step ``a`` (decoupled); scalar,
        per-dimension array or pytree like the position; may be traced.
      noise_scale: ``None`` for the coupled form, else the noise standard
        deviation ``σ``; may be traced.
      clip_grad: if not ``None``, clip each gradient element to
        ``[−clip_grad, clip_grad]`` before the step.
      bounds: if not ``None``, a pair ``(low, high)``; the new state is clamped
        element-wise to this box.

    Returns:
      ``SamplingAlgorithm(init, step)``; ``init(position, rng_key=None)`` ignores
      the key (it is accepted for BlackJAX compatibility).

    Raises:
      ValueError: if ``bounds`` is not a pair, or a tunable given as a Python number is
        not finite and positive (``noise_scale`` may be 0; ``low < high`` for bounds).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.samplers import ula
      >>> logdensity = lambda x: -0.5 * jnp.sum(x**2)
      >>> alg = ula(logdensity, step_size=10.0, noise_scale=0.005, clip_grad=0.01,
      ...           bounds=(0.0, 1.0))
      >>> state = alg.init(jnp.full(3, 0.5))
      >>> state, info = alg.step(jax.random.key(0), state)
      >>> bool(jnp.all((state.position >= 0.0) & (state.position <= 1.0)))
      True

    References:
      Roberts and Tweedie (1996); Du and Mordatch (2019); Nijkamp et al. (2019);
      see the module docstring.
    """
    if bounds is not None and (not isinstance(bounds, tuple | list) or len(bounds) != 2):
        raise ValueError(f"bounds must be a pair (low, high) or None, got {bounds!r}.")
    step_size = check_float("step_size", step_size)
    noise_scale = check_float("noise_scale", noise_scale, allow_zero=True, optional=True)
    clip_grad = check_float("clip_grad", clip_grad, optional=True)
    if bounds is not None:
        low = check_float("bounds[0]", bounds[0], positive=False)
        high = check_float("bounds[1]", bounds[1], positive=False)
        if is_static_number(low) and is_static_number(high) and not low < high:
            raise ValueError(f"bounds must satisfy low < high, got {bounds!r}.")
        bounds = (low, high)
    kernel = build_kernel()

    def step(rng_key: PRNGKey, state: ULAState) -> tuple[ULAState, ULAInfo]:
        return kernel(rng_key, state, logdensity_fn, step_size, noise_scale, clip_grad, bounds)

    return SamplingAlgorithm(
        init=lambda position, rng_key=None: init(position, logdensity_fn), step=step
    )
