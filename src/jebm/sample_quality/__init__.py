"""Sample quality: feature networks jebm trains itself, and the metrics built on them.

Three modules: :mod:`~jebm.sample_quality.features` (the feature network),
:mod:`~jebm.sample_quality.metrics` (the metrics) and :mod:`~jebm.sample_quality.report`
(scores of samples and baselines); this package re-exports their names.

Image EBMs are judged by their samples. This module gives jebm its own scorer for every
labelled image data set (:data:`jebm.experiment.LABELLED_DATASETS`: digits, MNIST,
Fashion-MNIST, CIFAR-10), and generic two-sample and goodness-of-fit tests for vectors:

* :func:`train_features` trains a small classifier on flattened images, an MLP
  ``d → h₁ → h₂ → 10`` (:func:`hidden_widths`: ``64 → 128 → 32 → 10`` for the 8×8
  digits, ``784 → 256 → 64 → 10`` for MNIST, ``3072 → 256 → 64 → 10`` for CIFAR-10),
  deterministically from a seed on the run's own *training* split, with freshly
  dequantised images every step. Its penultimate activations are the features.
  :func:`load_or_train_features` caches the weights per (data set, seed) as a numpy
  ``.npz`` file (read with ``allow_pickle=False``) in a directory the caller gives, e.g.
  the run directory. No weights are shipped.
* :func:`frechet_distance` is the recipe of Heusel et al. (2017) on those features,
  ``‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2})``, in float64 with both
  matrix square roots by symmetric eigendecomposition. It is the **Fréchet distance in
  jebm's <data set> features** (e.g. jebm's MNIST features), not FID: the features are
  not Inception's, the numbers are not comparable with published FIDs, and in the
  features of a weak classifier (an MLP on CIFAR-10) they are a relative measure, to rank
  models and baselines of one data set scored in the same features.
* :func:`mmd` is the unbiased estimator of the squared kernel maximum mean discrepancy
  (Gretton et al. 2012) with a jackknife standard error; it works on features or on raw
  vectors.
* :func:`class_coverage` (the histogram of predicted classes and its entropy, to catch
  dropped modes) and :func:`confidence` (the fraction classified with ``p > 0.9``).
* :func:`kernel_stein_discrepancy` needs only the score ``∇ log p`` of a model
  (Liu et al. 2016; Chwialkowski et al. 2016; Gorham & Mackey 2017).
* :func:`score_samples` scores one set of samples against a reference set;
  :func:`baseline_report` scores the baselines that belong beside every model (training
  vs test images, the floor; and any ``sample(key, n)`` callables such as a
  full-covariance Gaussian, a logit-Gaussian and uniform noise).

All metrics run on the host in float64 numpy; the feature network is a pure JAX function of
``(graphdef, params)``; callers jit it if they want.

References:
  Heusel, M., Ramsauer, H., Unterthiner, T., Nessler, B. and Hochreiter, S. (2017). GANs
  trained by a two time-scale update rule converge to a local Nash equilibrium. NeurIPS.

  Gretton, A., Borgwardt, K. M., Rasch, M. J., Schölkopf, B. and Smola, A. (2012). A kernel
  two-sample test. JMLR 13, 723–773.

  Liu, Q., Lee, J. and Jordan, M. (2016). A kernelized Stein discrepancy for
  goodness-of-fit tests. ICML.

  Chwialkowski, K., Strathmann, H. and Gretton, A. (2016). A kernel test of goodness of
  fit. ICML.

  Gorham, J. and Mackey, L. (2017). Measuring sample quality with kernels. ICML.

  Efron, B. and Stein, C. (1981). The jackknife estimate of variance. Annals of
  Statistics 9(3), 586–596.
"""

from jebm.datasets.labels import NUM_CLASSES
from jebm.sample_quality import features, metrics, report
from jebm.sample_quality.features import (
    FeatureNetwork,
    classifier_accuracy,
    hidden_widths,
    image_features,
    image_logits,
    load_features,
    load_or_train_features,
    save_features,
    train_features,
)
from jebm.sample_quality.metrics import (
    CONFIDENCE_THRESHOLD,
    Estimate,
    class_coverage,
    confidence,
    frechet_distance,
    frechet_distance_from_moments,
    kernel_stein_discrepancy,
    median_bandwidth,
    mmd,
)
from jebm.sample_quality.report import baseline_report, score_draws, score_samples

__all__ = [
    "features",
    "metrics",
    "report",
    "FeatureNetwork",
    "Estimate",
    "hidden_widths",
    "train_features",
    "load_or_train_features",
    "save_features",
    "load_features",
    "image_features",
    "image_logits",
    "classifier_accuracy",
    "frechet_distance",
    "frechet_distance_from_moments",
    "mmd",
    "median_bandwidth",
    "class_coverage",
    "confidence",
    "kernel_stein_discrepancy",
    "score_samples",
    "score_draws",
    "baseline_report",
    "CONFIDENCE_THRESHOLD",
    "NUM_CLASSES",
]
