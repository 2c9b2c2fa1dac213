"""Does a change keep every shipped config's training bit for bit? A SHA-256 per config.

Each ``configs/*.yaml`` is built with :func:`jebm.experiment.build_run` and trained for 12
updates by :func:`jebm.experiment.train_run` (chunks of 4, no periodic evaluation, sample
quality off); the digest covers every numeric leaf of the final train state (parameters,
EMA, optimizer and objective state, key data excluded). MNIST and CIFAR-10 configs read
small files written here in their formats (300 + 60 random images), so nothing has to
be downloaded. Run it on two checkouts and compare the JSON files::

    PYTHONPATH=OLD/src python benchmarks/bit_identity.py --out before.json
    PYTHONPATH=NEW/src python benchmarks/bit_identity.py --out after.json
    python benchmarks/bit_identity.py --compare before.json after.json

A file that already holds a config's digest skips it, so an interrupted run goes on.
On 2 CPU cores the whole set takes about 40 minutes (the CIFAR-10 configs most of it).
"""

import argparse
import hashlib
import json
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _fake_files(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    mnist, cifar = root / "mnist", root / "cifar"
    mnist.mkdir()
    cifar.mkdir()
    for part, n in (("train", 300), ("t10k", 60)):
        (mnist / f"{part}-images-idx3-ubyte").write_bytes(_idx(rng.integers(0, 256, (n, 28, 28))))
        (mnist / f"{part}-labels-idx1-ubyte").write_bytes(_idx(rng.integers(0, 10, n)))
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        records = np.concatenate([rng.integers(0, 10, (60, 1)), rng.integers(0, 256, (60, 3072))],
                                 axis=1)
        (cifar / name).write_bytes(records.astype(np.uint8).tobytes())
    return {"mnist": mnist, "cifar": cifar}


def digest(name: str, files: dict[str, Path], num_steps: int = 12) -> str:
    import jax

    from jebm import experiment
    from jebm.config import load_config

    overrides = [f"train.num_steps={num_steps}", "eval.sample_quality=false"]
    for prefix, folder in files.items():
        if name.startswith(prefix):
            overrides += [f"data.path={folder}", "data.num_test=60"]
    run = experiment.build_run(load_config(str(CONFIGS / f"{name}.yaml"), overrides))
    state = experiment.train_run(run, None, num_steps=num_steps, chunk_size=4, log_every=4,
                                 eval_every=None)
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(state):
        if hasattr(leaf, "dtype") and getattr(leaf.dtype, "kind", "") in "fiub":
            h.update(np.asarray(leaf).tobytes())
    return h.hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="JSON file of {config: digest}")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    parser.add_argument("configs", nargs="*", help="config names (default: all)")
    args = parser.parse_args(argv)
    if args.compare:
        before, after = (json.loads(p.read_text()) for p in args.compare)
        differ = sorted(n for n in before if n in after and before[n] != after[n])
        missing = sorted(set(before) ^ set(after))
        print(f"{len(before)} configs: {len(before) - len(differ) - len(missing)} identical, "
              f"differ: {differ}, in one file only: {missing}")
        return 1 if differ or missing else 0
    if args.out is None:
        parser.error("--out (or --compare) is required")
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    names = args.configs or sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        files = _fake_files(Path(tmp))
        for name in names:
            if name not in results:
                results[name] = digest(name, files)
                print(name, results[name], flush=True)
                args.out.write_text(json.dumps(results, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
