"""``train(config, run_dir)``: teacher forcing, Adam, validation, checkpoints, exact resume.

Re-running the same command on the same run folder continues a killed run where its last
checkpoint left it: the weights, Adam's moments, the torch RNG (dropout, modality dropout)
and the loop position are restored, the data order is a pure function of (seed, epoch), and
``metrics.jsonl`` is cut back to the checkpoint's step, so the loss log of a killed and
resumed run equals the uninterrupted run's.

The same code runs as one process or as N ranks under ``torchrun`` (:mod:`fusion.distributed`):
``train.batch_size`` is the global batch (:mod:`fusion.training.step`), validation decoding is
sharded over the ranks and scored once on rank 0, and rank 0 alone writes the run folder
(checkpoints, ``metrics.jsonl``, TensorBoard, ``config.yaml``, the verifier) while the others
wait for it at sync points. Each rank's RNG state is checkpointed: relaunched with the same world
size a killed job resumes exactly; with another world size it resumes the same weights, optimizer and
data position, and only the dropout streams restart (seeded from the run seed, step and rank).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fusion import distributed as dist
from fusion.checkpoint import (
    LEARNED_VERIFIER,
    VERIFIER_FILE,
    checkpoint_meta,
    load_trainer_state,
    load_weights,
    read_pointer,
    resume_candidates,
    save_checkpoint,
)
from fusion.errors import CheckpointError, DataError
from fusion.progress import progress_bar
from fusion.training.config import learning_rate
from fusion.training.metrics_log import MetricsLog
from fusion.training.setup import (
    TrainingData,
    check_run_config,
    check_run_vocab,
    prepare_data,
    resolve_data_paths,
    resolve_device,
    run_lock,
)
from fusion.training.step import StepRunner, rng_state, seed_rank, set_rng_state
from fusion.training.validation import validate

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes:
        run_dir: the run folder.
        steps: optimizer steps taken in total (resumed steps included).
        epochs: full epochs completed.
        best: ``{"name", "metric", "value", "step"}`` of the best checkpoint, or None.
        stop_reason: "max_epochs", "max_steps", "early_stopping" or "already_finished".
        last_validation: the last validation's scores.
        train_seconds: wall time of the optimizer steps and validations, all sessions together.
    """

    run_dir: Path
    steps: int
    epochs: int
    best: dict[str, Any] | None
    stop_reason: str
    last_validation: dict[str, Any] | None
    train_seconds: float = 0.0


class Trainer:
    """One training run (see :func:`train`)."""

    def __init__(self, config: Any, run_dir: str | Path, data: TrainingData, progress: bool = True) -> None:
        from fusion.models.deep_fusion import build_captioner

        self.cfg, self.tc, self.data = config, config.train, data
        self.run_dir = Path(run_dir)
        self.device = dist.setup(resolve_device(self.tc.device))
        self.progress = progress and dist.is_main()  # progress bars and logs on rank 0 only
        if self.tc.num_threads:
            torch.set_num_threads(self.tc.num_threads)
        torch.manual_seed(self.tc.seed)
        dims = {"vocab_size": len(data.vocab), "frame_dim": data.frame_dim, "audio_dim": data.audio_dim}
        with dist.together():
            self.model = build_captioner(config, data.vocab, dims)  # S2VT, or S2VT with early / deep LM fusion
            self.model.set_input_stats(*data.train.feature_stats())
            self.model.to(self.device)
        if dist.rank() > 0:  # same initial weights everywhere; each rank its own dropout stream
            seed_rank(self.tc.seed, 0, dist.rank())
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.tc.lr, weight_decay=self.tc.weight_decay)
        self.runner = StepRunner(self.model, self.optimizer, self.device, self.tc.precision)
        self.state: dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "best_value": None, "bad_validations": 0,
                                      "finished": None, "last_validation": None, "last_val_step": -1,
                                      "train_seconds": 0.0}
        epochs_steps = len(data.sampler) * self.tc.max_epochs
        self.total_steps = epochs_steps if self.tc.max_steps is None else min(self.tc.max_steps, epochs_steps)
        self.log = MetricsLog(self.run_dir / "metrics.jsonl")
        self.writer = None

    # ------------------------------------------------------------------ checkpoints
    def _trainer_state(self) -> dict[str, Any]:
        """Optimizer, loop position and every rank's RNG state (a collective: all ranks call it)."""
        ranks = dist.all_gather(rng_state())
        return {"optimizer": self.optimizer.state_dict(), "rng": ranks[0], "rng_ranks": ranks,
                "world_size": dist.world_size(), "scaler": self.runner.state_dict(), "loop": dict(self.state)}

    def _save(self, best: bool = False) -> None:
        """Write a checkpoint from rank 0 (every rank calls it; the others wait for it)."""
        trainer_state = self._trainer_state()
        with dist.together():
            if dist.is_main():
                meta = checkpoint_meta(self.cfg, self.data.vocab, self.data.dims, epoch=self.state["epoch"],
                                       validation=self.state["last_validation"], finished=self.state["finished"])
                info = None
                if best:
                    value = self.state["best_value"]
                    info = {"metric": self.tc.val_metric, "value": value, "step": self.state["step"]}
                save_checkpoint(self.run_dir, self.state["step"], self.model, meta, trainer_state, best=info)

    def _intact_checkpoint(self) -> tuple[Path, dict[str, Any], dict[str, Any]] | None:
        """The newest checkpoint whose weights and trainer state load: (folder, weights, state); None if none.

        Raises:
            CheckpointError: checkpoints exist but none of them is intact (naming the newest's bad file).
        """
        candidates = resume_candidates(self.run_dir)
        errors: list[CheckpointError] = []
        for ckpt in candidates:
            try:
                found = ckpt, load_weights(ckpt, self.device), load_trainer_state(ckpt)
            except CheckpointError as err:
                errors.append(err)
                continue
            if errors:
                log.warning("%s; resuming from %s, the newest intact checkpoint", errors[0], ckpt.name)
            return found
        if errors:
            raise CheckpointError(f"{errors[0]}; no older checkpoint is intact either: delete "
                                  f"{self.run_dir / 'checkpoints'} to start over, or give another --out")
        return None

    def resume(self) -> bool:
        """Restore the newest intact checkpoint if the run folder has one (``last``, else an older
        one, saying so). Returns whether it did."""
        found = self._intact_checkpoint()
        if found is None:
            return False
        ckpt, weights, saved = found
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.runner.load_state_dict(saved.get("scaler"))
        self.state.update(saved["loop"])
        saved_world = int(saved.get("world_size", 1))
        if saved_world == dist.world_size():
            set_rng_state(saved.get("rng_ranks", [saved["rng"]])[dist.rank()])
        else:  # global batches make the step sequence world-size free; only dropout streams restart
            seed_rank(self.tc.seed, self.state["step"], dist.rank())
            log.warning("%s was checkpointed by %d processes, resumed by %d: same weights, optimizer and data "
                        "order; dropout masks now differ from an uninterrupted run", self.run_dir, saved_world,
                        dist.world_size())
        if dist.is_main():
            self.log.truncate_after(self.state["step"])
        log.info("resumed %s at step %d (epoch %d, batch %d)", self.run_dir, self.state["step"],
                 self.state["epoch"], self.state["batch"])
        return True

    # ------------------------------------------------------------------ steps
    def _train_step(self, indices: Any) -> tuple[float, float]:
        """One teacher-forced optimizer step on the global batch ``indices``. Returns (loss, grad norm)."""
        lr = learning_rate(self.tc, self.state["step"], self.total_steps)
        return self.runner.step(self.data.train, indices, (self.data.frame_dim, self.data.audio_dim),
                                pad_id=self.data.vocab.pad_id, lr=lr, label_smoothing=self.tc.label_smoothing,
                                grad_clip=self.tc.grad_clip)

    def _validate(self) -> None:
        """Validate, log, keep the best checkpoint, count validations without improvement."""
        t0 = time.perf_counter()
        dc = self.cfg.decode
        scores = validate(self.model, self.data.val, self.data.vocab, self.tc.val_metric, beam_size=self.tc.val_beam,
                          max_len=dc.max_len, batch_size=self.tc.batch_size, limit=self.cfg.data.max_val_videos,
                          device=self.device)
        value, best = scores["value"], self.state["best_value"]
        improved = best is None or (value > best if self.tc.higher_is_better else value < best)
        self.state["bad_validations"] = 0 if improved else self.state["bad_validations"] + 1
        if improved:
            self.state["best_value"] = value
        self.state["last_validation"] = scores
        self.state["last_val_step"] = self.state["step"]
        self.state["train_seconds"] += time.perf_counter() - t0
        if dist.is_main():
            self.log.append({"type": "val", "step": self.state["step"], "epoch": self.state["epoch"], **scores})
        if self.writer is not None:
            for key, v in scores.items():
                if isinstance(v, float):
                    self.writer.add_scalar(f"val/{key}", v, self.state["step"])
        log.info("step %d validation %s=%.4f (best %.4f)%s", self.state["step"], self.tc.val_metric, value,
                 self.state["best_value"], f" | {scores['sample']}" if "sample" in scores else "")
        self._save(best=improved)

    def _stop_reason(self) -> str | None:
        if self.tc.patience and self.state["bad_validations"] >= self.tc.patience:
            return "early_stopping"
        if self.tc.max_steps is not None and self.state["step"] >= self.tc.max_steps:
            return "max_steps"
        if self.state["epoch"] >= self.tc.max_epochs:
            return "max_epochs"
        return None

    # ------------------------------------------------------------------ main loop
    def fit(self, on_step: Callable[[int, float], None] | None = None) -> TrainResult:
        """Train until max_epochs / max_steps / early stopping; returns the result."""
        if self.state["finished"]:
            return self._result("already_finished")
        if self.tc.tensorboard and dist.is_main():
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.state["step"] + 1)
        sampler, tc = self.data.sampler, self.tc
        total = len(sampler) * tc.max_epochs if tc.max_steps is None else min(tc.max_steps, len(sampler) * tc.max_epochs)
        bar = progress_bar(total=total, initial=self.state["step"], desc=f"train {self.run_dir.name}", unit="step",
                   disable=not self.progress, dynamic_ncols=True)
        reason = self._stop_reason()
        try:
            while reason is None:
                batches = sampler.epoch_batches(self.state["epoch"])
                while self.state["batch"] < len(batches) and reason is None:
                    t0 = time.perf_counter()
                    indices = batches[self.state["batch"]]
                    loss, grad_norm = self._train_step(indices)
                    elapsed = time.perf_counter() - t0
                    self.state["train_seconds"] += elapsed
                    speed = len(indices) / max(elapsed, 1e-9)  # global samples per second
                    self.state["step"] += 1
                    self.state["batch"] += 1
                    step = self.state["step"]
                    if dist.is_main():
                        self.log.append({"type": "train", "step": step, "epoch": self.state["epoch"], "loss": loss,
                                         "grad_norm": grad_norm, "lr": self.optimizer.param_groups[0]["lr"],
                                         "samples_per_s": round(speed, 1)})
                    if self.writer is not None:
                        self.writer.add_scalar("train/loss", loss, step)
                        self.writer.add_scalar("train/samples_per_s", speed, step)
                    # the postfix shows at the next redraw (update's): forcing one per step would flood a log
                    bar.set_postfix(epoch=self.state["epoch"], loss=f"{loss:.3f}", samples_s=f"{speed:.0f}", refresh=False)
                    bar.update(1)
                    if on_step is not None:
                        on_step(step, loss)
                    if tc.val_every_steps and step % tc.val_every_steps == 0:
                        self._validate()
                    elif step % tc.checkpoint_every_steps == 0:
                        self._save()
                    reason = self._stop_reason()
                if self.state["batch"] >= len(batches):
                    self.state["epoch"] += 1
                    self.state["batch"] = 0
                    if not tc.val_every_steps:
                        self._validate()
                    reason = self._stop_reason()
            if self.state["last_val_step"] != self.state["step"]:
                self._validate()  # every run ends with a validated checkpoint
            self.state["finished"] = reason
            self._save()
        finally:
            bar.close()
            if self.writer is not None:
                self.writer.close()
        return self._result(reason)

    def _result(self, reason: str) -> TrainResult:
        return TrainResult(self.run_dir, self.state["step"], self.state["epoch"], read_pointer(self.run_dir, "best"),
                           reason, self.state["last_validation"], round(self.state.get("train_seconds", 0.0), 1))


def train(
    config: Any,
    run_dir: str | Path,
    *,
    manifest: str | Path | None = None,
    features: str | Path | None = None,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    strict: bool = False,
) -> TrainResult:
    """Train an S2VT captioner; resume if ``run_dir`` holds a checkpoint of the same config.

    Args:
        config: the ExperimentConfig.
        run_dir: output folder (created); re-running on it continues the run.
        manifest: overrides ``config.data.manifest``.
        features: overrides ``config.data.features`` (feature store folder).
        progress: show a tqdm bar (loss, samples/s).
        on_step: called after every optimizer step with (step, loss).
        strict: fail when some videos have no features (unreadable or missing files) instead of
            training without them (a warning says how many; the store's ``failures.jsonl`` says why).

    Raises:
        ConfigError: no manifest, or the run folder holds a run of another config.
        DataError: unusable manifest / features, or another process trains into ``run_dir``.
    """
    resolve_data_paths(config, manifest, features)
    dist.setup(resolve_device(config.train.device))  # under torchrun: join the job before any collective
    with ExitStack() as stack:
        with dist.together():  # rank 0 owns the run folder (lock, config.yaml); every rank checks it
            stack.enter_context(run_lock(run_dir))
            check_run_config(config, run_dir)
        with dist.together():
            data = prepare_data(config, progress=progress, strict=strict)
            check_run_vocab(run_dir, data.vocab)
        trainer = Trainer(config, run_dir, data, progress=progress)
        with dist.together():
            trainer.resume()
        result = trainer.fit(on_step)
        if config.decode.verifier == LEARNED_VERIFIER:
            with dist.together():
                if dist.is_main():
                    fit_run_verifier(config, run_dir, data)
        if dist.is_main():  # what the run knows: RUN/run_card.json + training_profile.safetensors (never raises)
            from fusion.runcard import write_for_training

            write_for_training(config, run_dir, data)
        return result


def fit_run_verifier(config: Any, run_dir: str | Path, data: Any) -> Path:
    """``decode.verifier: learned``: fit the audio-noun verifier on the run's train / val clips.

    Writes ``RUN/verifier.safetensors`` (and its ``.report.json``) once; a run that has one
    keeps it. It reads the SoundNet features of the run's feature store, also for a video-only
    captioner (then the verifier is the only thing that hears). Where it cannot be fitted (too few
    paired clips, no audio at all) the file holds the zero-shot verifier and the report says why.
    """
    from fusion.verifier.training import train_verifier, write_report

    path = Path(run_dir) / VERIFIER_FILE
    if path.is_file():
        return path
    # The verifier fits on split "train" and calibrates on "val", whatever the run's splits are named.
    entries = [dataclasses.replace(e, split=split) for split, ds in (("train", data.train), ("val", data.val))
               for e in ds.entries]
    try:
        verifier, report = train_verifier(entries, data.store)
        report["fitted"] = True
        log.info("fitted the audio-noun verifier on %d train / %d val clips: %s", report["train_clips"],
                 report["val_clips"], path)
    except DataError as err:  # too few paired clips (or none with audio): zero-shot evidence, said so
        from fusion.verifier import AudioNounVerifier

        log.warning("%s; %s keeps the zero-shot evidence (SoundNet posteriors)", err, path)
        verifier, report = AudioNounVerifier(), {"fitted": False, "reason": str(err)}
    verifier.save(path, extra={"manifest": str(config.data.manifest)})
    write_report(Path(f"{path}.report.json"), report)
    return path
