"""Inpainting 8×8 digits by Langevin dynamics on a masked energy, checked in closed form.

``jebm.tasks.inpaint`` samples the free pixels of ``E(where(mask, z, image))`` with any
sampler factory, here ``jebm.samplers.by_name("ula", ...)``; observed pixels come back
unchanged. The energy is the Gaussian fitted to the training digits
(``jebm.energies.gaussian``), whose conditional mean given the top half is known
exactly; the average of the final states of many chains started from uniform noise
should approach it, within its Monte Carlo error (ULA's O(h) bias leaves a Gaussian's
mean unchanged).
Swap in a trained image EBM (e.g. ``jebm.experiment.load_model``) for the real thing.

    python examples/inpainting.py           # about a minute on a CPU
    python examples/inpainting.py --smoke   # seconds (or JEBM_SMOKE=1)
"""


import jax
import jax.numpy as jnp
import numpy as np
from _args import example_parser

import jebm
from jebm.datasets import digits


def main(argv=None):
    args = example_parser(__doc__, num_images=16).parse_args(argv)
    num_images, num_repeats, num_steps = (2, 8, 200) if args.smoke else (args.num_images, 256, 2000)

    split = digits.load_digits()
    key = jax.random.key(0)
    train = digits.dequantize(key, split.train_counts).reshape(-1, 64)
    test = digits.dequantize(jax.random.fold_in(key, 1), split.test_counts).reshape(-1, 64)
    mean, cov = np.mean(train, 0), np.cov(train, rowvar=False) + 1e-3 * np.eye(64)
    target = jebm.energies.gaussian(mean, cov)
    mask = jnp.arange(64) >= 32  # fill in the bottom four rows

    # Coupled ULA (x + h∇log p + √(2h)ξ) samples p(x_m | x_o) up to an O(h) bias; h is
    # below 2/λ_max of the conditional precision (about 800) and 2000 steps mix its slowest
    # direction (λ_min about 2.6).
    sampler = jebm.samplers.by_name("ula", (64,), step_size=1e-3)

    @jax.jit
    def fill(key, image):  # num_repeats independent completions of one image
        def one(k):
            k_init, k_run = jax.random.split(k)
            noise = jax.random.uniform(k_init, (64,))  # chains start from uniform noise
            return jebm.tasks.inpaint(k_run, target.energy_fn, target.params, image, mask,
                                      sampler=sampler, num_steps=num_steps, init=noise)

        return jax.vmap(one)(jax.random.split(key, num_repeats))

    # The exact conditional mean μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o) and covariance of the Gaussian.
    m, o = np.asarray(mask), ~np.asarray(mask)
    gain = cov[np.ix_(m, o)] @ np.linalg.inv(cov[np.ix_(o, o)])
    cond_cov = cov[np.ix_(m, m)] - gain @ cov[np.ix_(o, m)]
    mc_error = np.sqrt(np.trace(cond_cov) / 32 / num_repeats)  # RMS std of a mean of draws
    errors = []
    for i in range(num_images):
        image = test[i]
        samples = fill(jax.random.fold_in(key, 2 + i), image)
        observed = np.broadcast_to(image[o], (num_repeats, 32))
        assert np.array_equal(np.asarray(samples[:, o]), observed)  # observed pixels kept
        exact = mean[m] + gain @ (np.asarray(image)[o] - mean[o])
        errors.append(np.sqrt(np.mean((np.asarray(samples[:, m]).mean(0) - exact) ** 2)))
    print(f"{num_images} digits, bottom half inpainted by {num_repeats} ULA chains of "
          f"{num_steps} steps: RMS error of their mean vs the exact conditional mean "
          f"{np.mean(errors):.3f}; its Monte Carlo error {mc_error:.3f} (pixels in [0, 1])")


if __name__ == "__main__":
    main()
