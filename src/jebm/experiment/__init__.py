"""Recipes: a :class:`~jebm.config.Config` turned into the objects of a run, and run.

The data flow of a run is dataset → energy → sampler → objective → optimizer → train
state → evaluation. Each step is one module of this package, one job each, importing only
the modules above it in this list:

* :mod:`~jebm.experiment.data` — :data:`DATASETS`: ``data.name`` → :class:`Data`;
* :mod:`~jebm.experiment.components` — :data:`ENERGIES`, fitted densities
  (:data:`jebm.densities.DENSITIES`), :func:`build_sampler` (through
  :func:`jebm.samplers.by_name`) and :data:`OPTIMIZERS`;
* :mod:`~jebm.experiment.devices` — the devices chains and batches are spread over;
* :mod:`~jebm.experiment.recipes` — :data:`OBJECTIVES`: how each objective is built and
  how its trained model is sampled (:class:`ObjectiveRecipe`);
* :mod:`~jebm.experiment.sections` and :mod:`~jebm.experiment.config` — the config,
  validated against those registries (there is no second list of choices);
* :mod:`~jebm.experiment.run` — :func:`build_run` composes a :class:`Run`;
* :mod:`~jebm.experiment.sampling` — draws of a trained run (:func:`sample_trained`);
* :mod:`~jebm.experiment.training` — :func:`train_run`, :func:`restore_state`;
* :mod:`~jebm.experiment.evaluate` — a run's numbers (:func:`summary`);
* :mod:`~jebm.experiment.records` — JSON and versions;
* :mod:`~jebm.experiment.workdir` — ``jebm train`` and ``jebm evaluate``
  (:func:`train_workdir`, :func:`evaluate_workdir`, :func:`load_model`);
* :mod:`~jebm.experiment.targets` — ``jebm sample`` (:func:`sample_job`).

Any part can be replaced, e.g. a user-written energy::

    run = build_run(config, energy=(my_energy_fn, my_params))
    step = jebm.train.make_train_step(run.objective, run.optimizer,
                                      ema_decay=config.train.ema_decay)
    result = jebm.train.train_loop(run.train_key, run.initial_state, step,
                                   run.data.sample, num_steps=100, batch_size=256)

:func:`train_run` is that call with the config's loop settings; :func:`load_model`
rebuilds a trained run from its workdir. The parameters a trained state is evaluated,
sampled and loaded with are :func:`jebm.train.model_params` of it: the moving average
``ema_params`` when ``train.ema_decay > 0``, else the raw ``params``. The command line is
:mod:`jebm.cli`, a shell over :func:`train_workdir`, :func:`sample_job` and
:func:`evaluate_workdir`.
"""

from jebm.densities import AIS_BASES, DENSITIES
from jebm.experiment.components import (
    ENERGIES,
    JOINT_MODELS,
    NOISE_CONDITIONAL_MODELS,
    OPTIMIZERS,
    build_energy,
    build_optimizer,
    build_sampler,
    fit_density,
)
from jebm.experiment.data import DATASETS, LABELLED_DATASETS, Data, build_data
from jebm.experiment.devices import chain_spread, most_devices, training_devices
from jebm.experiment.evaluate import (
    MAX_REFERENCE,
    box_ais,
    conditional_sample_quality,
    density_grid,
    grid_log_z,
    image_sample_quality,
    periodic_eval_fn,
    summary,
)
from jebm.experiment.recipes import (
    OBJECTIVES,
    ObjectiveRecipe,
    build_objective,
    initial_density,
    initial_positions,
)
from jebm.experiment.records import dumps_json, jsonable, versions, write_json
from jebm.experiment.run import Run, build_run
from jebm.experiment.sampling import (
    adapted_step_size,
    replay_samples,
    sample_conditional,
    sample_conditional_trained,
    sample_model,
    sample_trained,
    sampling_label,
    trained_sampler,
)
from jebm.experiment.targets import (
    TARGETS,
    ChainSetup,
    SamplingTarget,
    chain_setup,
    retuned_sampler,
    sample_job,
    sampling_target,
)
from jebm.experiment.training import RESUMABLE, health_config, restore_state, train_run
from jebm.experiment.workdir import (
    check_same_config,
    evaluate_workdir,
    load_model,
    save_figures,
    stored_config,
    train_workdir,
)

__all__ = [
    "Data",
    "Run",
    "ObjectiveRecipe",
    "JOINT_MODELS",
    "NOISE_CONDITIONAL_MODELS",
    "LABELLED_DATASETS",
    "DATASETS",
    "ENERGIES",
    "OBJECTIVES",
    "OPTIMIZERS",
    "DENSITIES",
    "AIS_BASES",
    "build_data",
    "build_energy",
    "build_sampler",
    "retuned_sampler",
    "build_objective",
    "build_optimizer",
    "fit_density",
    "build_run",
    "initial_density",
    "initial_positions",
    "trained_sampler",
    "adapted_step_size",
    "replay_samples",
    "sample_trained",
    "sample_model",
    "sample_conditional",
    "sample_conditional_trained",
    "sampling_label",
    "RESUMABLE",
    "health_config",
    "most_devices",
    "chain_spread",
    "training_devices",
    "train_run",
    "restore_state",
    "MAX_REFERENCE",
    "grid_log_z",
    "periodic_eval_fn",
    "box_ais",
    "density_grid",
    "image_sample_quality",
    "conditional_sample_quality",
    "summary",
    "SamplingTarget",
    "TARGETS",
    "sampling_target",
    "ChainSetup",
    "chain_setup",
    "sample_job",
    "stored_config",
    "load_model",
    "jsonable",
    "versions",
    "dumps_json",
    "write_json",
    "check_same_config",
    "save_figures",
    "train_workdir",
    "evaluate_workdir",
]
