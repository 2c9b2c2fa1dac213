import dataclasses

import pytest

from jebm.config import (
    Config,
    apply_overrides,
    config_diff,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
)


def test_defaults_are_the_default_job():
    config = Config()
    assert (config.data.name, config.objective.name) == ("8gaussians", "pcd")
    assert config.model.hidden == (128, 128) and config.model.activation == "silu"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.num_steps = 3  # type: ignore[misc]


def test_yaml_round_trip(tmp_path):
    config = apply_overrides(Config(), ["model.hidden=[64, 32]", "sampler.noise_scale=0.01"])
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(config))
    assert load_config(str(path)) == config


def test_partial_yaml_takes_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("objective:\n  name: dsm\n  sigma: 0.2\ntrain:\n  num_steps: 10\n")
    config = load_config(str(path))
    assert (config.objective.name, config.objective.sigma, config.train.num_steps) == (
        "dsm",
        0.2,
        10,
    )
    assert config.optimizer == Config().optimizer


def test_dotted_overrides_parse_yaml_values():
    config = apply_overrides(
        Config(),
        [
            "train.num_steps=500",
            "optimizer.learning_rate=1e-3",
            "model.hidden=[64,64]",
            "optimizer.clip_norm=null",
            "objective.variance_reduced=false",
            "sampler.name=mala",
        ],
    )
    assert config.train.num_steps == 500
    assert config.optimizer.learning_rate == 1e-3  # YAML 1.1 reads 1e-3 as a string
    assert config.model.hidden == (64, 64)
    assert config.optimizer.clip_norm is None
    assert config.objective.variance_reduced is False
    assert config.sampler.name == "mala"


def test_overrides_apply_after_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  num_steps: 10\n")
    assert load_config(str(path), ["train.num_steps=20"]).train.num_steps == 20


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "train.num_stepz=5",
            r"Unknown config field train\.num_stepz\. Did you mean "
            r"train\.num_steps\?",
        ),
        ("trian.seed=1", r"Unknown config field trian\. Did you mean train\?"),
        ("train.num_steps=many", r"train\.num_steps must be of type int, got 'many'"),
        ("train.num_steps=1.5", r"train\.num_steps must be of type int, got 1\.5"),
        ("train.num_steps=true", r"train\.num_steps must be of type int, got True"),
        ("optimizer.learning_rate=fast", r"optimizer\.learning_rate must be of type float"),
        ("model.hidden=64", r"model\.hidden must be a list of int"),
        ("model.hidden=[64, x]", r"model\.hidden\[1\] must be of type int"),
        ("optimizer.learning_rate=-1", r"optimizer\.learning_rate must be > 0"),
        ("objective.name=mle", r"objective\.name must be one of"),
        ("objective.reinit_prob=2", r"objective\.reinit_prob must be in \[0, 1\]"),
        ("eval.grid_low=7", r"eval\.grid_low must be < eval\.grid_high"),
        ("train.num_steps", r"must look like section\.field=value"),
        ("num_steps=3", r"the key must be section\.field"),
    ],
)
def test_bad_override_names_the_field(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(Config(), [override])


def test_bad_yaml_field_names_the_field_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  num_stepz: 5\n")
    with pytest.raises(ValueError, match=r"train\.num_stepz.* in .*bad\.yaml"):
        load_config(str(path))
    path.write_text("train:\n  num_steps: [1]\n")
    with pytest.raises(ValueError, match=r"train\.num_steps must be of type int"):
        load_config(str(path))
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(str(path))


def test_section_must_be_a_mapping():
    with pytest.raises(ValueError, match="config section train must be a mapping"):
        config_from_dict({"train": 5})


def test_config_diff_names_fields():
    a = Config()
    b = apply_overrides(a, ["train.num_steps=7", "model.hidden=[8]"])
    assert config_diff(a, b) == [
        "model.hidden: [128, 128] -> [8]",
        f"train.num_steps: {a.train.num_steps} -> 7",
    ]
    assert config_diff(a, b, ignore=["train.num_steps"]) == ["model.hidden: [128, 128] -> [8]"]
    assert config_to_dict(a)["model"]["hidden"] == [128, 128]


def test_shipped_configs_load_and_pcd_is_the_default():
    from pathlib import Path

    configs = Path(__file__).resolve().parents[1] / "configs"
    names = sorted(p.stem for p in configs.glob("*.yaml"))
    toys = ["cd", "dsm", "ed", "esm", "nce", "pcd", "ssm"]
    recipes = {"digits_pcd", "digits_nce", "digits_jem", "digits_ncsn", "digits_drl",
               "digits_ed"}
    assert set(toys) | recipes <= set(names)
    for name in toys:
        config = load_config(str(configs / f"{name}.yaml"))
        assert config.objective.name == name and config.data.name == "8gaussians"
        assert config.model.kind == "mlp" and config.sampler.bounds is None
    aliases = {"dsm": ("dsm", "ncsn")}  # NCSN is DSM over a noise ladder
    for name in set(names) - set(toys):  # <data>_<objective>[_<variant>].yaml
        config = load_config(str(configs / f"{name}.yaml"))
        objective = config.objective.name
        stems = [f"{config.data.name}_{o}" for o in aliases.get(objective, (objective,))]
        assert any(name == s or name.startswith(s + "_") for s in stems), name
    assert load_config(str(configs / "digits_ncsn.yaml")).objective.ladder is not None
    assert load_config(str(configs / "pcd.yaml")) == Config()
    digits = load_config(str(configs / "digits_pcd.yaml"))
    assert (digits.data.name, digits.objective.name, digits.model.kind) == ("digits", "pcd", "conv")
    assert digits.sampler.bounds == (0.0, 1.0)
    assert (digits.objective.init_low, digits.objective.init_high) == (0.0, 1.0)


def test_sampler_space_and_adaptation_need_their_context():
    base = ["objective.name=pcd", "sampler.name=mala"]
    with pytest.raises(ValueError, match=r"sampler\.space.*set sampler\.bounds to null"):
        apply_overrides(Config(), ["sampler.space=logit", "sampler.bounds=[0, 1]"])
    with pytest.raises(ValueError, match=r"target_acceptance needs a Metropolis-adjusted"):
        apply_overrides(Config(), ["sampler.name=ula", "sampler.target_acceptance=0.6"])
    with pytest.raises(ValueError, match=r"objective\.name in \('pcd', 'jem'\) only \(set it "
                                         r"to null for nce"):
        apply_overrides(Config(), [*base, "objective.name=nce", "sampler.target_acceptance=0.6"])
    adapted = apply_overrides(Config(), [*base, "sampler.target_acceptance=0.6"])
    assert adapted.sampler.target_acceptance == 0.6
    jem = ["objective.name=jem", "model.kind=joint_conv", "model.hidden=[8]", "data.name=digits",
           "model.base=logit_gaussian", "sampler.space=logit"]
    adapted = apply_overrides(Config(), [*base, *jem, "sampler.target_acceptance=0.6"])
    assert (adapted.objective.name, adapted.sampler.target_acceptance) == ("jem", 0.6)


def test_new_fields_default_to_the_old_behaviour():
    config = Config()
    assert config.model.kind == "mlp" and config.sampler.bounds is None
    assert config.data.classes is None and config.eval.ais_base == "logit_gaussian"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.kind=resnet", r"model\.kind must be one of"),
        ("model.features=[]", r"model\.features must be a non-empty list"),
        ("sampler.bounds=[1, 0]", r"sampler\.bounds must be null or \[low, high\]"),
        ("sampler.bounds=[0, 1, 2]", r"sampler\.bounds must be null or \[low, high\]"),
        ("sampler.bounds=0", r"sampler\.bounds must be a list of float"),
        ("data.test_fraction=1.5", r"data\.test_fraction must be in \(0, 1\)"),
        ("data.classes=[3, 12]", r"data\.classes must be null or a non-empty list"),
        ("eval.ais_chains=1", r"eval\.ais_chains must be >= 2"),
        ("eval.ais_base=normal", r"eval\.ais_base must be one of"),
        ("model.spectral_norm=3", r"model\.spectral_norm must be of type bool"),
        ("model.base=flow", r"model\.base must be one of"),
        ("objective.noise=uniform", r"objective\.noise must be one of"),
        ("model.fourier_features=-1", r"model\.fourier_features must be >= 0"),
        ("model.fourier_scale=0", r"model\.fourier_scale must be > 0"),
        ("sampler.space=pixels", r"sampler\.space must be one of"),
        ("sampler.target_acceptance=1.0", r"sampler\.target_acceptance must be null or in"),
        ("model.spectral_norm_steps=0", r"model\.spectral_norm_steps must be > 0"),
        ("model.dtype=float64", r"model\.dtype must be one of \('float32', 'bfloat16'\)"),
        ("train.ema_decay=1", r"train\.ema_decay must be 0 \(off\) or in \(0, 1\)"),
        ("train.devices=-1", r"train\.devices must be >= 0"),
    ],
)
def test_bad_image_field_names_the_field(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(Config(), [override])


def test_cross_field_checks_for_images():
    with pytest.raises(ValueError, match=r"model\.hidden must hold one width"):
        apply_overrides(Config(), ["model.kind=conv"])
    with pytest.raises(ValueError, match=r"sampler\.bounds is supported by sampler\.name=ula"):
        apply_overrides(Config(), ["sampler.name=mala", "sampler.bounds=[0, 1]"])
    with pytest.raises(ValueError, match=r"model\.fourier_features is supported by model\.kind"):
        apply_overrides(Config(), ["model.kind=conv", "model.hidden=[64]",
                                   "model.fourier_features=8"])
    config = apply_overrides(Config(), ["model.kind=conv", "model.hidden=[64]",
                                        "data.classes=[0, 1]", "sampler.bounds=[0, 1]"])
    assert config.data.classes == (0, 1) and config.sampler.bounds == (0.0, 1.0)


@pytest.mark.parametrize("override", ["optimizer.learning_rate=inf", "sampler.step_size=inf",
                                      "optimizer.learning_rate=nan", "objective.num_chains=0"])
def test_non_finite_or_zero_values_are_refused_by_their_field(override):
    field = override.split("=")[0]
    with pytest.raises(ValueError, match=f"{field} must be > 0 and finite"):
        apply_overrides(Config(), [override])


def test_num_chains_null_means_the_batch_size():
    from jebm.experiment import training_devices

    config = apply_overrides(Config(), ["objective.num_chains=null", "train.devices=1"])
    assert config.objective.num_chains is None and training_devices(config) == 1


def test_a_data_path_the_data_set_does_not_read_is_an_error():
    with pytest.raises(ValueError, match="data.name=8gaussians does not read files"):
        apply_overrides(Config(), ["data.path=pts5.npy"])
    assert apply_overrides(Config(), ["data.name=mnist", "data.path=somewhere"]).data.path
