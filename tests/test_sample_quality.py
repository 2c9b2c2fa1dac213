"""Tests of jebm.sample_quality: Fréchet distance, MMD, KSD, coverage and the feature networks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jebm import sample_quality as sq

# --------------------------------------------------------------------------- Fréchet


def test_frechet_moments_commuting_closed_form():
    # Diagonal covariances commute: FD = ‖Δμ‖² + Σ (√aᵢ − √bᵢ)².
    mean_a, mean_b = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 1.0])
    var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    got = sq.frechet_distance_from_moments(mean_a, np.diag(var_a), mean_b, np.diag(var_b))
    assert got == pytest.approx(expected, abs=1e-10)  # float64 round-off only


def test_frechet_moments_match_scipy_sqrtm():
    # Non-commuting covariances; oracle: tr(A + B − 2 sqrtm(A B)) with scipy's (Schur) sqrtm.
    rng = np.random.default_rng(0)
    la, lb = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    a, b = la @ la.T + 0.1 * np.eye(4), lb @ lb.T + 0.1 * np.eye(4)
    mean_a, mean_b = rng.normal(size=4), rng.normal(size=4)
    oracle = np.sum((mean_a - mean_b) ** 2) + np.trace(a + b - 2 * scipy.linalg.sqrtm(a @ b).real)
    got = sq.frechet_distance_from_moments(mean_a, a, mean_b, b)
    assert got == pytest.approx(oracle, rel=1e-8)  # both exact up to float64 round-off
    assert sq.frechet_distance_from_moments(mean_a, a, mean_a, a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_samples_of_two_gaussians():
    # Samples from N(μa, Σa) and N(μb, Σb): the sample FD's mean over R replicates must match
    # the closed form. The estimator is biased up by tr(Σa)/n + tr(Σb)/n from the means
    # (exact) plus an O(d/n) covariance term; we subtract the first and allow for the rest
    # in the tolerance. Tolerance: 4 × sd/√R (replicate sd measured here) + 2·d/n.
    rng = np.random.default_rng(1)
    d, n, num_reps = 3, 4000, 40
    la = rng.normal(size=(d, d))
    cov_a, cov_b = la @ la.T + 0.5 * np.eye(d), np.diag([0.5, 2.0, 1.0])
    mean_a, mean_b = np.zeros(d), np.array([1.0, -0.5, 0.0])
    truth = sq.frechet_distance_from_moments(mean_a, cov_a, mean_b, cov_b)
    values = np.array([
        sq.frechet_distance(rng.multivariate_normal(mean_a, cov_a, n),
                            rng.multivariate_normal(mean_b, cov_b, n))
        for _ in range(num_reps)
    ])  # fmt: skip
    bias = (np.trace(cov_a) + np.trace(cov_b)) / n
    tol = 4 * values.std(ddof=1) / math.sqrt(num_reps) + 2 * d / n
    assert abs(values.mean() - bias - truth) < tol


def test_frechet_rejects_mismatched_dimensions():
    with pytest.raises(ValueError, match="dimensions"):
        sq.frechet_distance(np.zeros((5, 2)), np.zeros((5, 3)))


# --------------------------------------------------------------------------- MMD


def _brute_mmd(a, b, h):
    k = lambda x, y: math.exp(-np.sum((x - y) ** 2) / (2 * h**2))
    n, m = len(a), len(b)
    kaa = sum(k(a[i], a[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kbb = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kab = sum(k(a[i], b[j]) for i in range(n) for j in range(m)) / (n * m)
    return kaa + kbb - 2 * kab


def test_mmd_matches_brute_force_and_jackknife():
    # Oracle: the U-statistic summed pair by pair, and the jackknife by recomputing each
    # leave-one-out estimate from scratch. Exact up to float64 round-off.
    rng = np.random.default_rng(2)
    a, b, h = rng.normal(size=(7, 2)), rng.normal(size=(6, 2)) + 0.3, 0.8
    est = sq.mmd(a, b, bandwidth=h)
    assert est.value == pytest.approx(_brute_mmd(a, b, h), abs=1e-12)
    loo_a = np.array([_brute_mmd(np.delete(a, i, 0), b, h) for i in range(len(a))])
    loo_b = np.array([_brute_mmd(a, np.delete(b, j, 0), h) for j in range(len(b))])
    var = (6 / 7) * np.sum((loo_a - loo_a.mean()) ** 2) + (5 / 6) * np.sum(
        (loo_b - loo_b.mean()) ** 2
    )
    assert est.stderr == pytest.approx(math.sqrt(var), rel=1e-9)


def test_mmd_unbiased_for_one_distribution():
    # a, b both N(0, I₂): MMD² = 0, and the U-statistic is unbiased, so the mean of R
    # replicates lies within 4 × (replicate sd)/√R of 0 (false-failure rate ≈ 6e-5). The
    # jackknife SE must be calibrated: its mean square within a factor 2 of the replicate
    # variance (the ratio's own MC error at R = 300 is ≈ 0.1).
    rng = np.random.default_rng(3)
    num_reps, n = 300, 60
    ests = [sq.mmd(rng.normal(size=(n, 2)), rng.normal(size=(n + 5, 2)), bandwidth=1.0)
            for _ in range(num_reps)]  # fmt: skip
    values = np.array([e.value for e in ests])
    assert abs(values.mean()) < 4 * values.std(ddof=1) / math.sqrt(num_reps)
    ratio = np.mean([e.stderr**2 for e in ests]) / values.var(ddof=1)
    assert 0.5 < ratio < 2.0


def test_mmd_of_shifted_gaussians_matches_closed_form():
    # a ~ N(0, I_d), b ~ N(δ, I_d), Gaussian kernel of width h: differences of independent
    # draws are N(0, 2I) or N(δ, 2I), so E k = (h²/(h²+2))^{d/2} · exp(−‖δ‖²/(2(h²+2)))
    # for the cross term (δ = 0 within a sample), and
    # MMD² = 2 (h²/(h²+2))^{d/2} (1 − exp(−‖δ‖²/(2(h²+2)))) ≈ 0.189 here.
    # Tolerance 4 SE (the jackknife SE, calibrated in the test above); and the shift is
    # detected: the estimate is > 5 SE from 0.
    rng = np.random.default_rng(4)
    d, h, delta = 2, 1.0, np.ones(2)
    truth = 2 * (h**2 / (h**2 + 2)) ** (d / 2) * (1 - math.exp(-delta @ delta / (2 * (h**2 + 2))))
    est = sq.mmd(rng.normal(size=(400, d)), rng.normal(size=(400, d)) + delta, bandwidth=h)
    assert abs(est.value - truth) < 4 * est.stderr
    assert est.value > 5 * est.stderr


# --------------------------------------------------------------------------- KSD


def _stein_kernel_oracle(score, kernel, x, y):
    """u(x, y) by automatic differentiation of the base kernel (independent of the closed form)."""
    sx, sy = score(x), score(y)
    grad_x = jax.grad(kernel, 0)(x, y)
    grad_y = jax.grad(kernel, 1)(x, y)
    cross = jax.jacfwd(jax.grad(kernel, 0), 1)(x, y)  # ∂²k/∂x∂y
    return sx @ sy * kernel(x, y) + sx @ grad_y + sy @ grad_x + jnp.trace(cross)


@pytest.mark.parametrize("kernel_name", ["imq", "rbf"])
def test_ksd_matches_autodiff_stein_kernel(kernel_name):
    # Oracle: the Stein kernel from jax derivatives of k, averaged over i ≠ j (float64).
    with jax.enable_x64(True):
        score = lambda x: -(x - 0.3) / 2.0
        h = 1.3
        if kernel_name == "imq":
            kernel = lambda x, y: (h**2 + jnp.sum((x - y) ** 2)) ** -0.5
        else:
            kernel = lambda x, y: jnp.exp(-jnp.sum((x - y) ** 2) / (2 * h**2))
        x = jax.random.normal(jax.random.key(5), (6, 3), jnp.float64)
        u = np.array([[float(_stein_kernel_oracle(score, kernel, x[i], x[j])) for j in range(6)]
                      for i in range(6)])  # fmt: skip
        oracle = (u.sum() - np.trace(u)) / 30
        got = sq.kernel_stein_discrepancy(score, x, kernel=kernel_name, bandwidth=h)
    assert got.value == pytest.approx(oracle, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("kernel_name", ["imq", "rbf"])
def test_ksd_zero_for_true_density_positive_otherwise(kernel_name):
    # Model N(0, I₂) (score −x). Samples from it: KSD² = 0 and the U-statistic is unbiased,
    # so |estimate| < 4 SE (measured: 0.13 SE). Samples from N(0.7·1, I) or N(0, 4 I): KSD² > 0,
    # demand 5 SE at n = 500 (measured: 11 SE and 10 SE for both kernels).
    score = lambda x: -x
    k1, k2, k3 = jax.random.split(jax.random.key(6), 3)
    same = sq.kernel_stein_discrepancy(score, jax.random.normal(k1, (500, 2)), kernel=kernel_name)
    assert abs(same.value) < 4 * same.stderr
    shifted = sq.kernel_stein_discrepancy(score, jax.random.normal(k2, (500, 2)) + 0.7,
                                          kernel=kernel_name)  # fmt: skip
    wide = sq.kernel_stein_discrepancy(score, 2.0 * jax.random.normal(k3, (500, 2)),
                                       kernel=kernel_name)  # fmt: skip
    assert shifted.value > 5 * shifted.stderr
    assert wide.value > 5 * wide.stderr


def test_ksd_rejects_bad_arguments():
    x = jnp.zeros((5, 2))
    with pytest.raises(ValueError, match="kernel"):
        sq.kernel_stein_discrepancy(lambda v: -v, x, kernel="laplace")
    with pytest.raises(ValueError, match="beta"):
        sq.kernel_stein_discrepancy(lambda v: -v, x + jnp.arange(5.0)[:, None], beta=0.5)


# --------------------------------------------------------------------------- coverage


def test_class_coverage_and_confidence():
    logits = np.full((4, 3), -10.0)
    logits[[0, 1, 2, 3], [0, 0, 1, 2]] = 10.0  # classes 0, 0, 1, 2
    logits[3] = [0.0, 0.0, 0.5]  # class 2, with p ≈ 0.45: not confident
    cov = sq.class_coverage(logits)
    assert cov["fractions"] == [0.5, 0.25, 0.25]
    entropy = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert cov["entropy"] == pytest.approx(entropy)
    assert cov["normalized_entropy"] == pytest.approx(entropy / math.log(3))
    assert cov["min_fraction"] == 0.25
    assert sq.confidence(logits) == 0.75


# --------------------------------------------------------------------------- the network


def _digits():
    from jebm import experiment
    from jebm.config import load_config

    return experiment.build_data(load_config(None, ["data.name=digits"]), jax.random.key(0))


@pytest.mark.slow  # two compiled trainings: ~10 s of CPU
def test_training_is_deterministic():
    # The same seed gives bit-identical weights; another seed another initialisation (and,
    # by construction, another minibatch stream).
    data = _digits()
    a = sq.train_features(data, 3, num_steps=20)
    b = sq.train_features(data, 3, num_steps=20)
    same = jax.tree.map(lambda u, v: bool(jnp.array_equal(u, v)), a.params, b.params)
    assert all(jax.tree.leaves(same))
    init_3, init_4 = sq.features._split_model(3, 64)[1], sq.features._split_model(4, 64)[1]
    for layer in ("head", "layers"):  # weight matrices differ (biases start at zero)
        kernels_3 = [v for p, v in jax.tree_util.tree_leaves_with_path(init_3[layer])
                     if "kernel" in jax.tree_util.keystr(p)]  # fmt: skip
        kernels_4 = [v for p, v in jax.tree_util.tree_leaves_with_path(init_4[layer])
                     if "kernel" in jax.tree_util.keystr(p)]  # fmt: skip
        assert kernels_3 and not any(
            bool(jnp.array_equal(u, v)) for u, v in zip(kernels_3, kernels_4, strict=True)
        )


def test_cache_round_trip_and_bad_files(tmp_path, monkeypatch):
    from types import SimpleNamespace

    net = sq.FeatureNetwork(*sq.features._split_model(1, 64), dataset="digits", input_width=64,
                            seed=1, test_accuracy=0.5)  # untrained
    digits = SimpleNamespace(name="digits", event_shape=(8, 8))
    monkeypatch.setattr(sq.features, "train_features", lambda data, seed: net)
    first = sq.load_or_train_features(tmp_path, digits, 1)  # trains (the stub) and saves
    path = tmp_path / "digits_features_seed1.npz"
    assert path.exists()
    monkeypatch.setattr(sq.features, "train_features", lambda data, seed: pytest.fail("retrained"))
    second = sq.load_or_train_features(tmp_path, digits, 1)  # must read the cache
    same = jax.tree.map(lambda u, v: bool(jnp.array_equal(u, v)), first.params, second.params)
    assert all(jax.tree.leaves(same)) and (second.seed, second.dataset) == (1, "digits")
    images = jnp.linspace(0.0, 1.0, 3 * 64).reshape(3, 8, 8)
    np.testing.assert_array_equal(sq.image_features(first, images),
                                  sq.image_features(second, images))  # fmt: skip
    # a file of the digits-only scorer (format 1: no data set name or input width) reads
    with np.load(path) as stored:
        old = {k: stored[k] for k in stored.files if k not in ("dataset", "input_width")}
    old["format_version"] = np.asarray(1)
    np.savez(tmp_path / "digit_features_seed1.npz", **old)
    legacy = sq.load_features(tmp_path / "digit_features_seed1.npz")
    assert (legacy.dataset, legacy.input_width, legacy.seed) == ("digits", 64, 1)
    np.testing.assert_array_equal(sq.image_features(legacy, images),
                                  sq.image_features(first, images))  # fmt: skip
    # another data set's cache file under this name is refused, naming the file
    mnist = SimpleNamespace(name="mnist", event_shape=(28, 28))
    (tmp_path / "mnist_features_seed1.npz").write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match="mnist_features_seed1.*digits features"):
        sq.load_or_train_features(tmp_path, mnist, 1)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(ValueError, match="digits_features_seed1"):
        sq.load_or_train_features(tmp_path, digits, 1)


def test_mnist_features_train_and_score(tmp_path):
    # A tiny labelled set in MNIST's byte format (28×28, dark images with one bright row
    # per class), 20 training steps: the plumbing and the metrics' known answers.
    from jebm import experiment
    from jebm.config import load_config
    from jebm.datasets.mnist import MNIST_FILES
    from test_mnist import idx_bytes

    rng = np.random.default_rng(0)
    for split, n in (("train", 200), ("test", 100)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 40, (n, 28, 28))
        images[np.arange(n), 2 * labels + 4] = 230  # class y lights row 2y + 4
        (tmp_path / MNIST_FILES[f"{split}_images"]).write_bytes(idx_bytes(images))
        (tmp_path / MNIST_FILES[f"{split}_labels"]).write_bytes(idx_bytes(labels))
    config = load_config(None, ["data.name=mnist", f"data.path={tmp_path}"])
    data = experiment.build_data(config, jax.random.key(0))
    net = sq.train_features(data, 0, num_steps=20, batch_size=32)
    assert (net.dataset, net.input_width, sq.hidden_widths(784)) == ("mnist", 784, (256, 64))
    feats = sq.image_features(net, data.test)
    assert feats.shape == (100, 64) and bool(jnp.all(jnp.isfinite(feats)))
    assert 0.0 <= net.test_accuracy <= 1.0
    sq.save_features(net, tmp_path / "net.npz")
    assert sq.load_features(tmp_path / "net.npz").dataset == "mnist"
    # a set against itself: FD = 0 up to float64 round-off in the eigendecompositions
    # (~1e-12 per eigenvalue of 64); uniform noise, unlike these dark images, far above it
    itself = sq.score_samples(net, data.test, data.test)
    assert abs(itself["frechet_distance"]) < 1e-6 and itself["num_samples"] == 100
    noise = sq.score_samples(net, rng.uniform(size=(100, 28, 28)), data.test)
    assert noise["frechet_distance"] > 1.0 and noise["mmd2"] > 3 * noise["mmd2_stderr"]
    for row in (itself, noise):
        assert 0.0 <= row["confidence"] <= 1.0
        assert sum(row["class_coverage"]["fractions"]) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def trained_net():
    return sq.train_features(_digits(), 0)


@pytest.mark.slow
def test_classifier_accuracy_on_digits_test(trained_net):
    # Logistic regression reaches 0.967 on this split; a working MLP must reach 0.9.
    assert trained_net.test_accuracy >= 0.9


@pytest.mark.slow
def test_baseline_report_orders_the_baselines(trained_net):
    from jebm.densities import fit_gaussian

    data = _digits()
    gaussian = fit_gaussian(data.train)
    report = sq.baseline_report(jax.random.key(2), trained_net, data.sample, data.test,
                                {"gaussian": gaussian.sample})
    assert list(report) == ["train_vs_test", "gaussian", "uniform"]
    fd = {name: row["frechet_distance"] for name, row in report.items()}
    # The floor is below the Gaussian, and uniform noise is far off (measured: 3.7, 7.3, 185).
    assert fd["train_vs_test"] < fd["gaussian"] < fd["uniform"] / 5
    # The floor's MMD² is 0 within its noise; uniform noise is many SE away.
    floor = report["train_vs_test"]
    assert abs(floor["mmd2"]) < 4 * floor["mmd2_stderr"]
    assert report["uniform"]["mmd2"] > 10 * report["uniform"]["mmd2_stderr"]
    # Real digits cover every class (each ≥ 5 % of 360 samples; the split has ≈10 % each).
    assert floor["class_coverage"]["min_fraction"] >= 0.05


@pytest.mark.slow
def test_score_draws_averages_the_frechet_distance_of_equal_draws(trained_net):
    data = _digits()
    x = np.asarray(data.sample(jax.random.key(4), 3 * 120))
    scores = sq.score_draws(trained_net, x, data.test, 3)
    per_draw = [sq.score_samples(trained_net, part, data.test)["frechet_distance"]
                for part in (x[:120], x[120:240], x[240:])]
    assert scores["frechet_distance_draws"] == per_draw
    assert scores["frechet_distance"] == pytest.approx(np.mean(per_draw), rel=1e-12)
    assert scores["frechet_distance_sd"] == pytest.approx(np.std(per_draw, ddof=1), rel=1e-12)
    # The other scores are those of the pooled samples.
    pooled = sq.score_samples(trained_net, x, data.test)
    assert (scores["mmd2"], scores["num_samples"]) == (pooled["mmd2"], 360)
    one = sq.score_draws(trained_net, x, data.test)
    assert one["frechet_distance"] == pooled["frechet_distance"] and one["frechet_distance_sd"] == 0
    with pytest.raises(ValueError, match="361 samples do not split into 3"):
        sq.score_draws(trained_net, np.concatenate([x, x[:1]]), data.test, 3)
    report = sq.baseline_report(jax.random.key(2), trained_net, data.sample, data.test, {},
                                num_samples=120, num_draws=3, include_uniform=False)
    assert len(report["train_vs_test"]["frechet_distance_draws"]) == 3
