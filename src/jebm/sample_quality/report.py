"""Reports: one set of samples, or several equal draws, scored against reference images in a
feature network's features, and the baselines that belong beside every model.
"""

from collections.abc import Callable, Mapping

import jax
import numpy as np
from jaxtyping import Float

from jebm._validate import check_int
from jebm.sample_quality.features import FeatureNetwork, image_features, image_logits
from jebm.sample_quality.metrics import class_coverage, confidence, frechet_distance, mmd
from jebm.types import Array, PRNGKey

__all__ = [
    "score_samples",
    "score_draws",
    "baseline_report",
]


# --------------------------------------------------------------------------- reports


def score_samples(
    net: FeatureNetwork,
    samples: Float[Array, "n ..."],
    reference: Float[Array, "m ..."],
    *,
    bandwidth: float | None = None,
) -> dict[str, object]:
    """Score image ``samples`` against ``reference`` images (usually the test split).

    Args:
      net: the feature network of the images' data set (:func:`load_or_train_features`).
      samples: ``(n, *event)`` images; non-finite rows are counted and dropped before
        scoring.
      reference: ``(m, *event)`` images.
      bandwidth: MMD kernel width in feature space; ``None``: median heuristic.

    Returns:
      ``{"num_samples", "num_nonfinite", "frechet_distance", "mmd2", "mmd2_stderr",
      "class_coverage" (see :func:`class_coverage`), "confidence"}``.
    """
    samples = np.asarray(samples, np.float32).reshape(len(samples), -1)
    finite = np.all(np.isfinite(samples), axis=1)
    samples = samples[finite]
    feats = np.asarray(image_features(net, samples))
    ref = np.asarray(image_features(net, reference))
    estimate = mmd(feats, ref, bandwidth=bandwidth)
    logits = image_logits(net, samples)
    return {
        "num_samples": int(len(samples)),
        "num_nonfinite": int((~finite).sum()),
        "frechet_distance": frechet_distance(feats, ref),
        "mmd2": estimate.value,
        "mmd2_stderr": estimate.stderr,
        "class_coverage": class_coverage(logits),
        "confidence": confidence(logits),
    }


def score_draws(
    net: FeatureNetwork,
    samples: Float[Array, "n ..."],
    reference: Float[Array, "m ..."],
    num_draws: int = 1,
) -> dict[str, object]:
    """:func:`score_samples` of ``num_draws`` independent equal draws stacked in ``samples``.

    The Fréchet distance of a few hundred samples is biased upwards and noisy (about ±1
    at 360 digits); its mean over independent draws of the same size keeps the bias (so it
    stays comparable with one draw's figure) and shrinks the noise. The other scores (MMD,
    class coverage, confidence) are of the pooled samples.

    Args:
      net: the feature network.
      samples: ``(num_draws * k, *event)`` images, draw ``i`` in rows ``[i k, (i + 1) k)``.
      reference: ``(m, *event)`` images.
      num_draws: the number of draws.

    Returns:
      :func:`score_samples` of the pooled samples with ``frechet_distance`` the mean over
      the draws, plus ``frechet_distance_draws`` (each draw's) and ``frechet_distance_sd``
      (their sample standard deviation; 0 for one draw).

    Raises:
      ValueError: if ``len(samples)`` is not a multiple of ``num_draws``.
    """
    num_draws = check_int("num_draws", num_draws)
    if len(samples) % num_draws:
        raise ValueError(f"{len(samples)} samples do not split into {num_draws} equal draws.")
    scores = score_samples(net, samples, reference)
    if num_draws > 1:
        per_draw = [score_samples(net, part, reference)["frechet_distance"]
                    for part in np.split(np.asarray(samples), num_draws)]
    else:
        per_draw = [scores["frechet_distance"]]
    return {**scores, "frechet_distance": float(np.mean(per_draw)),
            "frechet_distance_draws": per_draw,
            "frechet_distance_sd": float(np.std(per_draw, ddof=1)) if num_draws > 1 else 0.0}


def baseline_report(
    key: PRNGKey,
    net: FeatureNetwork,
    train_sample: Callable[[PRNGKey, int], Array],
    reference: Float[Array, "m ..."],
    samplers: Mapping[str, Callable[[PRNGKey, int], Array]],
    *,
    num_samples: int = 360,
    include_uniform: bool = True,
    num_draws: int = 1,
) -> dict[str, dict[str, object]]:
    """The baselines to print beside any image model, all against ``reference``.

    Rows:

    * ``"train_vs_test"`` — ``num_samples`` draws of ``train_sample`` (freshly
      dequantised training images): the floor that a perfect model reaches at this
      sample size;
    * one row per entry of ``samplers`` (e.g. ``{"gaussian": g.sample, "logit_gaussian":
      lg.sample}`` from densities fitted to the training split);
    * ``"uniform"`` — uniform noise on the unit box of the reference's shape (with
      ``include_uniform``).

    Args:
      key: PRNG key for the draws.
      net: the feature network.
      train_sample: ``sample(key, n) -> (n, *event)`` training images (``Data.sample``).
      reference: ``(m, *event)`` images, usually the test split.
      samplers: name → ``sample(key, n) -> (n, *event)``.
      num_samples: samples per row (the digits figures use 360, about its test size).
      include_uniform: add the uniform-noise row.
      num_draws: independent draws of ``num_samples`` per row (:func:`score_draws`).

    Returns:
      name → :func:`score_draws` dict.
    """
    num_samples = check_int("num_samples", num_samples, minimum=3)
    n = num_samples * check_int("num_draws", num_draws)
    k_train, k_rest = jax.random.split(key)
    rows = {"train_vs_test": train_sample(k_train, n)}
    for i, (name, sample) in enumerate(samplers.items()):
        rows[name] = sample(jax.random.fold_in(k_rest, i), n)
    if include_uniform:
        rows["uniform"] = jax.random.uniform(
            jax.random.fold_in(k_rest, len(samplers)), (n, *np.shape(reference)[1:])
        )
    return {name: score_draws(net, x, reference, num_draws) for name, x in rows.items()}
