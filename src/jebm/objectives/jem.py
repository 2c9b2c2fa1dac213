"""Joint Energy Models: a classifier's logits read as an energy, trained jointly.

With class logits ``g(x)``, JEM reads ``E(x, y) = −g(x)[y]`` and ``E(x) =
−logsumexp_y g(x)[y]``, so ``p(y | x) = softmax g(x)`` and ``log p(x, y) = log p(y | x) +
log p(x)``. :func:`jem` adds the classifier's cross-entropy to a generative objective on
the marginal energy (e.g. :func:`jebm.objectives.pcd` built on
:func:`jebm.energies.conv.joint_energy_fns`' ``energy_fn``).

References:
  Grathwohl, W., Wang, K.-C., Jacobsen, J.-H., Duvenaud, D., Norouzi, M. and
  Swersky, K. (2020). Your classifier is secretly an energy based model and you
  should treat it like one. ICLR.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from jebm.objectives.base import Objective
from jebm.types import Array, PRNGKey, PyTree

__all__ = ["jem"]

LogitsFn = Callable[[PyTree, Array], Array]


def jem(
    generative: Objective, logits_fn: LogitsFn, *, generative_weight: float | Array = 1.0
) -> Objective:
    """Joint Energy Model training: cross-entropy of ``p(y|x)`` plus a generative objective.

    ``loss = mean CE(g(x), y) + generative_weight · generative.loss(params, key, x)``, the
    JEM factorisation ``log p(x, y) = log p(y | x) + log p(x)``. Batches are pairs
    ``(x (n, *event), y (n,))``.

    Args:
      generative: the :class:`~jebm.objectives.base.Objective` for ``p(x)``, built on the
        marginal energy ``E(x) = −logsumexp_y g(x)[y]``.
      logits_fn: ``logits_fn(params, x) -> (num_classes,)`` for one ``x``.
      generative_weight: weight of the generative term (traced).

    Returns:
      An :class:`~jebm.objectives.base.Objective`; metrics are the generative
      objective's plus ``cross_entropy``, ``train_accuracy`` and ``generative_loss``.

    References:
      Grathwohl et al. (2020), Eq. (8).
    """

    def init(key: PRNGKey, batch):
        return generative.init(key, batch[0])

    def loss(params, key, batch, state):
        x, y = batch
        logits = jax.vmap(logits_fn, in_axes=(None, 0))(params, x)
        ce = jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(logits, y))
        gen_loss, (metrics, state) = generative.loss(params, key, x, state)
        train_acc = jnp.mean((jnp.argmax(logits, -1) == y).astype(jnp.float32))
        total = ce + generative_weight * gen_loss
        metrics = {**metrics, "cross_entropy": ce, "train_accuracy": train_acc,
                   "generative_loss": gen_loss, "loss": total}
        return total, (metrics, state)

    return Objective(init=init, loss=loss)
