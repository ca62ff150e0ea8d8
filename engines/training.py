"""The training loop shared by every engine; what a step trains on is the engine's family's objective.

The loop owns the settings, the seed, the optimizer (Adam, default: fast convergence on CPU, or SGD),
gradient clipping by the global norm, progress and cancellation, validation every ``eval_every`` steps
and at the end, and the checkpoints. The family's objective (:class:`~lstmviz.engines.families.Objective`)
arranges the data, gives the loss of each step and the validation loss: for the ``language-model``
family, stateful truncated BPTT on the token stream (``engines/families/language_model/objective.py``).
A model with a method ``after_optimizer_step()`` has it called after every optimiser step (a projection
onto a constraint set: ``rkhs-reg``'s spectral-norm constraint). A model with ``clip_groups()`` has each
group's gradients clipped by that group's own norm (two players sharing one optimiser: ``pf-gru``).

Mollifying networks (``mollify=N``, ``mollify_c``; engines built on ``engines/recurrent/stack.py``): the
first N steps train a mollified network whose noise level / skip probability ``p`` is annealed from 1 to 0
(``engines/recurrent/mollify.py``); every checkpoint's metrics hold the annealing state (``metrics["mollify"]``).

Optimizers and privacy: ``optimizer=kfac|ekfac`` preconditions every ``nn.Linear``'s gradient in its
Kronecker-factored eigenbasis before an SGD step (``engines/ekfac.py``; ``ekfac_damping``, ``ekfac_refresh``,
``ekfac_fisher``); ``privacy=dpsgd`` replaces the batch gradient by DP-SGD's clipped, noised per-example sum over
a Poisson-sampled lot (``engines/dpsgd.py``; ``dp_clip``, ``dp_noise``, ``dp_rate``, ``dp_delta``), with ε in the
progress line and the metrics; the shared ``clip`` is not applied under DP.

Cancellation (``task.cancel()``): :class:`~lstmviz.tasks.Cancelled` propagates at the next step and
nothing more is written: the file at ``out`` is either untouched (a previous file stays as it was),
or holds the last *periodic* checkpoint (``checkpoint_every``), which is complete and loads cleanly.
No temporary file is left behind. Every write is atomic (temporary name, then rename).

Several checkpoints of one run (``keep_checkpoints=True``): besides ``out``, the weights before the
first step, every periodic checkpoint and the final one are kept as ``<out stem>-step<NNNNNN><suffix>``
beside ``out`` (``run.pt`` -> ``run-step000000.pt``, ``run-step000200.pt``, ...), so that
``lstmviz record run-step*.pt`` can record the states of each over the same items (probe curves over
training). A cancelled run keeps the ones written so far.

Determinism: with the same seed, data and settings (and the same torch thread count) two runs give
identical weights and metrics. The caller's global RNG state is restored afterwards.
"""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lstmviz.tasks import Task, ensure_task

from . import registry
from .checkpoint import check_output_path, save_checkpoint
from .dpsgd import DPSGD
from .ekfac import KroneckerPreconditioner
from .families import Family
from .recurrent import mollify as mollify_mod
from .recurrent.stack import RecurrentStack
from .spec import ConfigError

#: the training settings every family shares, and their defaults; a family adds its own
#: (``Family.train_settings``), an engine's ``train_defaults`` overrides both
SHARED_TRAIN_SETTINGS: dict[str, Any] = {
    "steps": 1000,  # optimisation steps
    "batch_size": 32,  # items (or parallel streams) per step
    "lr": 1e-3,
    "optimizer": "adam",  # "adam" or "sgd"
    "momentum": 0.0,  # SGD only
    "weight_decay": 0.0,
    "clip": 5.0,  # max global gradient norm; 0 or None: no clipping
    "dropout": None,  # passed to the engine's build() when not None
    "eval_every": 200,  # validation every N steps (0: only at the end)
    "checkpoint_every": 0,  # also save a checkpoint to `out` every N steps (0: only at the end)
    "keep_checkpoints": False,  # also keep step 0, every periodic and the final checkpoint as <out stem>-stepNNNNNN<suffix>
    "seed": 0,
    "device": "cpu",
    "threads": None,  # torch intra-op threads during training (None: leave torch's setting)
    "mollify": 0,  # mollifying networks (engines/recurrent/mollify.py): anneal p from 1 to 0 over N steps (0: off)
    "mollify_c": 1.0,  # the mollifier's noise scale c (noise std p * c * sigmoid(x))
    # optimizer=kfac|ekfac (engines/ekfac.py): damping added to the eigenvalues, eigenbasis refresh interval,
    # and whose labels give the curvature statistics (empirical: the training labels; sampled: the model's)
    "ekfac_damping": 1e-3,
    "ekfac_refresh": 20,
    "ekfac_fisher": "empirical",
    # privacy=dpsgd (engines/dpsgd.py): per-example clip C, noise multiplier sigma, Poisson sampling rate q
    # (None: batch_size / examples) and the delta at which epsilon is reported
    "privacy": "none",
    "dp_clip": 1.0,
    "dp_noise": 1.0,
    "dp_rate": None,
    "dp_delta": 1e-5,
}


def train_settings_for(family: Family) -> dict[str, Any]:
    """Every training setting of an engine of ``family`` and its default."""
    return {**SHARED_TRAIN_SETTINGS, **family.train_settings}


_OPTIMIZERS = ("adam", "sgd", "kfac", "ekfac")
_PRIVACY = ("none", "dpsgd")


# ---------------------------------------------------------------------------------------------- settings


def resolve_train_settings(family: Family, engine_defaults: dict, overrides: dict) -> dict:
    """The family's settings <- the engine's defaults <- ``overrides``, checked (ConfigError when wrong)."""
    table = train_settings_for(family)
    known = sorted(table)
    for source, values in (("engine train_defaults", engine_defaults), ("training", overrides)):
        unknown = sorted(set(values) - set(table))
        if unknown:
            raise ConfigError(
                f"unknown {source} setting {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
            )
    s = {**table, **engine_defaults, **overrides}

    def need(key: str, ok: bool, expected: str) -> None:
        if not ok:
            raise ConfigError(f"training setting {key!r}: expected {expected}, got {s[key]!r}")

    def is_int(v) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    def is_number(v) -> bool:
        return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)

    for key in ("steps", "batch_size"):
        need(key, is_int(s[key]) and s[key] >= 1, "a positive int")
    for key in ("eval_every", "checkpoint_every"):
        need(key, is_int(s[key]) and s[key] >= 0, "an int >= 0")
    need("seed", is_int(s["seed"]), "an int")
    need("lr", is_number(s["lr"]) and s["lr"] > 0, "a positive number")
    need("momentum", is_number(s["momentum"]) and s["momentum"] >= 0, "a number >= 0")
    need("weight_decay", is_number(s["weight_decay"]) and s["weight_decay"] >= 0, "a number >= 0")
    need("clip", s["clip"] is None or (is_number(s["clip"]) and s["clip"] >= 0), "a number >= 0 or None")
    need("dropout", s["dropout"] is None or (is_number(s["dropout"]) and 0 <= s["dropout"] < 1),
         "a probability in [0, 1) or None")
    need("optimizer", s["optimizer"] in _OPTIMIZERS, f"one of {', '.join(_OPTIMIZERS)}")
    need("device", isinstance(s["device"], str), "a device name such as 'cpu' or 'cuda'")
    need("threads", s["threads"] is None or (is_int(s["threads"]) and s["threads"] >= 1), "a positive int or None")
    need("mollify", isinstance(s["mollify"], (int, np.integer)) and not isinstance(s["mollify"], bool)
         and s["mollify"] >= 0, "an int >= 0 (annealing steps; 0: off)")
    need("mollify_c", is_number(s["mollify_c"]) and s["mollify_c"] >= 0 and math.isfinite(s["mollify_c"]),
         "a finite number >= 0")
    need("keep_checkpoints", isinstance(s["keep_checkpoints"], bool) or (is_int(s["keep_checkpoints"])
                                                                       and s["keep_checkpoints"] in (0, 1)),
         "a bool (true/false or 1/0)")
    s["keep_checkpoints"] = bool(s["keep_checkpoints"])
    _check_optimizer_and_privacy(s, need, is_int, is_number)
    family.objective_class().check_settings(s, need, is_int)
    for key in ("steps", "batch_size", "eval_every", "checkpoint_every", "seed", "mollify"):
        s[key] = int(s[key])
    for key in ("lr", "momentum", "weight_decay", "mollify_c"):
        s[key] = float(s[key])
    s["clip"] = None if not s["clip"] else float(s["clip"])
    s["dropout"] = None if s["dropout"] is None else float(s["dropout"])
    return s


def _check_optimizer_and_privacy(s: dict, need, is_int, is_number) -> None:
    """The K-FAC / EKFAC and DP-SGD settings (engines/ekfac.py, engines/dpsgd.py), checked and normalised."""
    need("ekfac_damping", is_number(s["ekfac_damping"]) and s["ekfac_damping"] > 0
         and math.isfinite(s["ekfac_damping"]), "a positive number (added to the curvature eigenvalues)")
    need("ekfac_refresh", is_int(s["ekfac_refresh"]) and s["ekfac_refresh"] >= 1,
         "a positive int (steps between eigenbasis recomputations)")
    need("ekfac_fisher", s["ekfac_fisher"] in ("empirical", "sampled"), "empirical or sampled")
    need("privacy", s["privacy"] in _PRIVACY, f"one of {', '.join(_PRIVACY)}")
    if isinstance(s["dp_clip"], str) and s["dp_clip"].lower() in ("inf", "infinity"):
        s["dp_clip"] = math.inf
    need("dp_clip", is_number(s["dp_clip"]) and s["dp_clip"] > 0, "a positive number (the per-example norm bound C)")
    need("dp_noise", is_number(s["dp_noise"]) and s["dp_noise"] >= 0 and math.isfinite(s["dp_noise"]),
         "a finite number >= 0 (the noise multiplier sigma)")
    need("dp_rate", s["dp_rate"] is None or (is_number(s["dp_rate"]) and 0 < s["dp_rate"] <= 1),
         "a sampling rate in (0, 1] or None (batch_size / training examples)")
    need("dp_delta", is_number(s["dp_delta"]) and 0 < s["dp_delta"] < 1, "a number in (0, 1)")
    if s["privacy"] == "dpsgd":
        need("optimizer", s["optimizer"] in ("sgd", "adam"),
             "sgd or adam with privacy=dpsgd (K-FAC / EKFAC statistics read the raw, unclipped examples, "
             "which the privacy accounting does not cover)")
        need("dp_clip", math.isfinite(s["dp_clip"]) or s["dp_noise"] == 0,
             "a finite number when dp_noise > 0 (dp_clip=inf, no clipping, only with dp_noise=0: no privacy)")
    s["ekfac_damping"], s["ekfac_refresh"] = float(s["ekfac_damping"]), int(s["ekfac_refresh"])
    s["dp_clip"], s["dp_noise"], s["dp_delta"] = float(s["dp_clip"]), float(s["dp_noise"]), float(s["dp_delta"])
    s["dp_rate"] = None if s["dp_rate"] is None else float(s["dp_rate"])


# ---------------------------------------------------------------------------------------------- data


def _dataset_name(dataset) -> str | None:
    name = getattr(dataset, "name", None)
    if not name and hasattr(dataset, "provenance"):
        name = (dataset.provenance() or {}).get("name")
    return None if name is None else str(name)


def _perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf


# ---------------------------------------------------------------------------------------------- training


def train(
    engine: str,
    dataset_train,
    dataset_valid=None,
    *,
    out,
    steps: int | None = None,
    seed: int | None = None,
    task: Task | None = None,
    config: dict | None = None,
    **train_overrides,
) -> dict:
    """Train engine ``engine`` by its family's objective on ``dataset_train`` and save a checkpoint at ``out``.

    Args:
        engine: registry name (``"lstm"``, ``"gru"``, ...).
        dataset_train, dataset_valid: the data, as the engine's family reads it (``language-model``:
            objects with ``.vocab`` (list of token strings) and ``.token_stream()`` (1-D int ids); the
            validation set must use the same vocabulary).
        out: checkpoint path, written atomically at the end (and every ``checkpoint_every`` steps); with
            ``keep_checkpoints`` also ``<out stem>-step<NNNNNN><suffix>`` for step 0, every periodic
            checkpoint and the final one (:func:`kept_checkpoint_path`).
        steps, seed: shortcuts for the settings of the same name (None: the engine's default).
        task: progress ``task.progress(step, steps, "loss 1.234 | valid ppl 3.21 | 41,200 tok/s")`` and
            cancellation.
        config: engine hyperparameters overriding ``spec.default_config`` (dropout is a training setting).
        **train_overrides: any key of :func:`train_settings_for` the engine's family.

    A model with a ``prepare_training(dataset_train)`` method gets it called once, after it is built and
    before the first step (an engine fixed by statistics of its training data: ``label-embed``'s table).

    Returns:
        metrics: ``steps``, ``tokens``, ``seconds``, ``tokens_per_s`` (training tokens per second of
        training, validation excluded; another family names what it counts), ``first_train_loss`` (step 1),
        ``train_loss`` (mean of the last min(20, steps) steps), ``valid_loss``/``valid_ppl`` (final),
        ``best_valid_loss``/``best_valid_ppl``/``best_valid_step`` (None without validation data). Losses
        are in nats per token.

    Raises:
        UnknownName (unknown engine), ConfigError (unknown or bad setting / hyperparameter),
        ValueError (dataset too small or ids outside the vocabulary), Cancelled (see module docstring).
    """
    task = ensure_task(task)
    check_output_path(out)  # before any work: --out /dev/null must not cost a training run, nor the device
    spec = registry.get(engine)
    family = spec.family_spec
    config = dict(config or {})
    if "dropout" in config:
        raise ConfigError("dropout is a training setting: pass dropout=... to train(), not in config")
    if steps is not None:
        train_overrides["steps"] = steps
    if seed is not None:
        train_overrides["seed"] = seed
    settings = resolve_train_settings(family, spec.train_defaults, train_overrides)
    model_config = spec.resolve_config(config)
    if settings["dropout"] is not None:
        model_config["dropout"] = settings["dropout"]

    data = family.describe_dataset(dataset_train)
    vocab = [str(token) for token in getattr(dataset_train, "vocab", ())]
    device = torch.device(settings["device"])
    objective = family.make_objective()
    objective.prepare(dataset_train, dataset_valid, settings, device)

    task.check()
    out = Path(out)
    dataset_name = _dataset_name(dataset_train)
    dataset_options = dict(getattr(dataset_train, "options", None) or {}) or None
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    threads = torch.get_num_threads()
    if settings["threads"]:
        torch.set_num_threads(settings["threads"])
    try:
        with torch.random.fork_rng(devices=rng_devices):
            return _run(spec, data, model_config, settings, vocab, objective, out, dataset_name, device, task,
                        dataset_options, dataset_train)
    finally:
        torch.set_num_threads(threads)


def kept_checkpoint_path(out, step: int) -> Path:
    """Where ``keep_checkpoints`` keeps the checkpoint of ``step``: ``run.pt`` -> ``run-step000200.pt``."""
    out = Path(out)
    return out.with_name(f"{out.stem}-step{int(step):06d}{out.suffix}")


def _run(spec, data, model_config, settings, vocab, objective, out, dataset_name, device, task,
         dataset_options=None, dataset_train=None) -> dict:
    """The loop itself (inside train()'s RNG fork); see train()."""
    total_steps = settings["steps"]
    torch.manual_seed(settings["seed"])
    model = spec.build_model(data, **model_config).to(device)
    prepare = getattr(model, "prepare_training", None)
    if callable(prepare) and dataset_train is not None:
        prepare(dataset_train)  # an engine fixed by statistics of its training data (label-embed's label table)
    optimizer = _make_optimizer(model, settings)
    preconditioner = _make_preconditioner(model, settings, spec.name)
    private = DPSGD(model, objective, settings, spec.name) if settings["privacy"] == "dpsgd" else None
    anneal = settings["mollify"]
    stacks = [m for m in model.modules() if isinstance(m, RecurrentStack)] if anneal else []
    if anneal and not stacks:
        raise ConfigError(f"training setting 'mollify': engine {spec.name!r} has no recurrent stack "
                          "(engines/recurrent/stack.py) to mollify; use mollify=0")
    mollify_layers = max((len(stack) for stack in stacks), default=0)
    last_step = [0]
    losses: list[float] = []
    best = {"loss": math.inf, "step": None}
    valid_loss = None
    counted, train_seconds = 0, 0.0
    started = time.perf_counter()
    run = uuid.uuid4().hex  # every checkpoint of this run carries it (checkpoint.py, "run")
    count_name = objective.count_name
    # exp(loss) is a perplexity only for a next-token loss; a classification loss is printed as it is
    perplexity = getattr(objective, "reports_perplexity", True)

    def save(step: int, *, main: bool = True) -> dict:
        metrics = _metrics(step)
        targets = ([out] if main else []) + ([kept_checkpoint_path(out, step)] if settings["keep_checkpoints"] else [])
        for target in targets:
            save_checkpoint(
                target, model, engine=spec.name, config=model_config, vocab=vocab, dataset=dataset_name,
                step=step, metrics=metrics, train_settings=settings, run=run, family=spec.family,
                data=dataclasses.asdict(data),
                dataset_options=dataset_options,
            )
        return metrics

    def _metrics(step: int) -> dict:
        has_valid = best["step"] is not None
        return {
            "steps": step,
            count_name: counted,
            "seconds": round(time.perf_counter() - started, 3),
            f"{count_name}_per_s": round(counted / train_seconds, 1) if train_seconds > 0 else None,
            "first_train_loss": losses[0] if losses else None,
            "train_loss": float(np.mean(losses[-20:])) if losses else None,  # None: before the first step
            "valid_loss": valid_loss,
            "valid_ppl": None if valid_loss is None or not perplexity else _perplexity(valid_loss),
            "best_valid_loss": best["loss"] if has_valid else None,
            "best_valid_ppl": _perplexity(best["loss"]) if has_valid and perplexity else None,
            "best_valid_step": best["step"],
            # a family's own measures (the graph family's valid_accuracy); additive, never a shared key
            **{k: v for k, v in (objective.metrics() if hasattr(objective, "metrics") else {}).items()},
            # the annealing state of the mollifier (engines/recurrent/mollify.py) at this checkpoint
            **({"mollify": mollify_mod.describe(last_step[0], anneal, mollify_layers, settings["mollify_c"])}
               if anneal else {}),
            # K-FAC / EKFAC: which parameters were preconditioned; DP-SGD: epsilon so far and the clipping record
            **(preconditioner.metrics() if preconditioner is not None else {}),
            **(private.metrics() if private is not None else {}),
        }

    def gradients() -> tuple[Tensor, int]:
        """This step's loss and count, with the gradient to step along in every ``.grad``."""
        optimizer.zero_grad(set_to_none=True)
        if private is not None:
            return private.step(model)  # writes the privatised gradient
        loss, count = objective.train_step(model)
        loss.backward()
        if preconditioner is not None:
            if settings["ekfac_fisher"] == "sampled":
                preconditioner.collect_sampled(lambda: _fisher_sample_loss(objective, model, spec.name))
            preconditioner.step()
        return loss, count

    if settings["keep_checkpoints"]:
        save(0, main=False)  # the initial weights: the first point of a curve over training
    model.train()
    after_step = getattr(model, "after_optimizer_step", None)  # optional: model.after_optimizer_step()
    try:
        for step in range(1, total_steps + 1):
            tick = time.perf_counter()
            last_step[0] = step
            if anneal:
                mollifier = mollify_mod.Mollifier(mollify_mod.schedule(step, anneal, mollify_layers),
                                                  settings["mollify_c"])
                with mollify_mod.mollifying(mollifier):
                    loss, count = gradients()
            else:
                loss, count = gradients()
            if settings["clip"] and private is None:  # under DP the per-example clip replaces the global one
                for group in clip_groups(model):
                    nn.utils.clip_grad_norm_(group, settings["clip"])
            optimizer.step()
            if after_step is not None:
                after_step()  # e.g. a projection of the weights onto a constraint set (rkhs-reg's spectral constraint)
            counted += count
            if private is None or count:  # an empty Poisson lot has no loss to show
                losses.append(loss.item())
            train_seconds += time.perf_counter() - tick

            if step == total_steps or (settings["eval_every"] and step % settings["eval_every"] == 0):
                checked = objective.evaluate(model)
                if checked is not None:
                    valid_loss = checked
                    if valid_loss < best["loss"]:
                        best.update(loss=valid_loss, step=step)
            message = f"loss {np.mean(losses[-20:]):.3f}" if losses else "loss -"
            if valid_loss is not None:
                message += (f" | valid ppl {_perplexity(valid_loss):.3f}" if perplexity
                            else f" | valid loss {valid_loss:.3f}")
            if train_seconds > 0:
                message += f" | {counted / train_seconds:,.0f} {objective.rate_unit}"
            if private is not None:
                message += f" | {private.progress()}"  # the privacy spent so far
            task.progress(step, total_steps, message)  # raises Cancelled when cancelled
            if settings["checkpoint_every"] and step % settings["checkpoint_every"] == 0 and step < total_steps:
                save(step)

        return save(total_steps)  # the metrics in the checkpoint are the ones returned
    finally:
        if preconditioner is not None:
            preconditioner.remove()  # the hooks go with the run


def clip_groups(model: nn.Module) -> list:
    """The parameter groups whose gradients are clipped each by its own global norm: the model's
    ``clip_groups()`` when it has one (a generator and its discriminator: ``pf-gru``), else all parameters."""
    own = getattr(model, "clip_groups", None)
    return [list(g) for g in own()] if callable(own) else [list(model.parameters())]


def _make_optimizer(model: nn.Module, settings: dict) -> torch.optim.Optimizer:
    """Adam, or SGD (also for kfac / ekfac: the preconditioned gradients then take a plain SGD step)."""
    if settings["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
    return torch.optim.SGD(
        model.parameters(), lr=settings["lr"], momentum=settings["momentum"], weight_decay=settings["weight_decay"]
    )


def _make_preconditioner(model: nn.Module, settings: dict, engine: str):
    """The K-FAC / EKFAC preconditioner (engines/ekfac.py) for optimizer=kfac|ekfac, else None."""
    if settings["optimizer"] not in ("kfac", "ekfac"):
        return None
    pre = KroneckerPreconditioner(model, mode=settings["optimizer"], damping=settings["ekfac_damping"],
                                  refresh=settings["ekfac_refresh"], fisher=settings["ekfac_fisher"])
    if not pre.layers:
        pre.remove()
        raise ConfigError(f"training setting 'optimizer': engine {engine!r} has no trainable nn.Linear layer, so "
                          f"optimizer={settings['optimizer']} would precondition nothing; use sgd or adam")
    return pre


def _fisher_sample_loss(objective, model: nn.Module, engine: str) -> Tensor:
    """The objective's loss of labels sampled from the model on the batch just trained (ekfac_fisher=sampled)."""
    sample = getattr(objective, "fisher_sample_loss", None)
    if not callable(sample):
        raise ConfigError(f"training setting 'ekfac_fisher': the objective of engine {engine!r} "
                          f"({type(objective).__name__}) cannot sample labels from the model; use ekfac_fisher=empirical")
    try:
        return sample(model)
    except ValueError as exc:
        raise ConfigError(f"training setting 'ekfac_fisher': {exc}; use ekfac_fisher=empirical") from None
