"""`clipvae-studio train --run-dir DIR`, and any `train` launched by torchrun (docs/distributed.md).

Kept apart from cli.py: the same command, plus a process group, a run folder that a restarted
attempt resumes from, and rank 0 alone writing and printing."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

SHARED_STORE_HINT = ("torchrun shares its rendezvous store with the workers; after a killed worker, gloo's "
                     "re-rendezvous can fail (\"connectFullMesh failed\"). Launch with "
                     "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 (docs/distributed.md).")


def add_run_arguments(train) -> None:
    """The run-folder options of `train` (torchrun itself needs no option: it sets the environment)."""
    train.add_argument("--run-dir", metavar="DIR",
                       help="keep the run in this folder (config.json, metrics.jsonl, last.pt, status.json, "
                            "TensorBoard events); a folder holding last.pt is resumed")
    train.add_argument("--checkpoint-every", type=int, default=200, metavar="STEPS",
                       help="steps between checkpoints in the run folder (default 200)")
    train.add_argument("--keep-checkpoints", type=int, default=3, metavar="N",
                       help="periodic step-N.pt files kept besides last.pt (default 3; 0: last.pt only)")
    train.add_argument("--log-every", type=int, default=1, metavar="STEPS",
                       help="steps between records in metrics.jsonl (default 1)")
    train.add_argument("--no-tensorboard", action="store_true",
                       help="write no TensorBoard events even when tensorboard is installed")


def cmd_train_run(args, dataset, config, model, payload, error_type) -> int:
    """Train `config` on `dataset` (as cmd_train built them); a run folder holding last.pt supplies
    the weights, optimiser state and step instead of `model`/`payload` (the command line stays the
    source of the settings: a restarted attempt passes the same arguments)."""
    from tqdm import tqdm

    from .core.checkpoint import load_checkpoint, save_trainer
    from .core.config import MODEL_FIELDS
    from .core.distributed_train import launched_by_torchrun, restart_count
    from .core.events import ErrorEvent, StepEvent

    for name in ("checkpoint_every", "log_every"):
        if getattr(args, name) < 1:
            raise error_type(f"--{name.replace('_', '-')} must be at least 1")
    if args.keep_checkpoints < 0:
        raise error_type("--keep-checkpoints must be 0 or more")
    distributed = launched_by_torchrun()
    if distributed and args.time_budget:
        raise error_type("--time-budget is not supported under torchrun (the ranks must agree on the last step); "
                         "give --epochs")
    dist, device, main = None, None, True
    if distributed:
        import torch.distributed as dist

        from .core.distributed_train import init_process_group

        device = init_process_group(config.device)
        main = dist.get_rank() == 0
        if main and int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0") or 0) > 0 \
                and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            print(f"warning: {SHARED_STORE_HINT}", file=sys.stderr)
    try:
        last = Path(args.run_dir) / "last.pt" if args.run_dir else None
        resuming = last is not None and last.is_file()
        if resuming:
            ckpt = load_checkpoint(last, dataset.image_shape, dataset.num_labels)
            differ = [k for k in MODEL_FIELDS if getattr(ckpt.config, k) != getattr(config, k)]
            if differ:
                raise error_type(f"{last} holds a model with other {', '.join(differ)} than this command asks for; "
                                 f"use another --run-dir")
            model, payload = ckpt.model, ckpt.payload()
        writer = None
        if main and args.run_dir:
            from .core.run_folder import RunFolderError, RunFolderWriter

            try:
                writer = RunFolderWriter(args.run_dir, keep_checkpoints=args.keep_checkpoints)
            except RunFolderError as exc:
                raise error_type(str(exc)) from None
        if distributed:
            from .core.distributed_train import DistributedTrainer

            trainer = DistributedTrainer(config, dataset, model=model, device=device)
        else:
            from .core.trainer import Trainer

            trainer = Trainer(config, dataset, model=model)
        if payload:
            trainer.restore(payload)
        world = getattr(trainer, "world_size", 1)
        logger = None
        if writer:
            from .core.run_logger import RunLogger

            writer.write_config({"config": trainer.config.to_dict(), "dataset": dataset.name, "world_size": world,
                                 "argv": sys.argv[1:], "preset": args.preset})
            logger = RunLogger(writer, trainer, checkpoint_every=args.checkpoint_every, log_every=args.log_every,
                               tensorboard=not args.no_tensorboard, samples_scale=world)
            trainer.add_listener(logger)
        if main and resuming:
            print(f"resuming from {last} at step {trainer.step_count} (attempt {writer.attempt if writer else '?'}, "
                  f"torchrun restart {restart_count()})", file=sys.stderr, flush=True)
        errors: list[str] = []
        bar = tqdm(total=None if args.time_budget else trainer.total_steps, initial=trainer.step_count,
                   disable=args.quiet or not main, unit="step", dynamic_ncols=True, file=sys.stderr)

        def progress(event):
            if isinstance(event, StepEvent):
                bar.update(1)
            elif isinstance(event, ErrorEvent):
                errors.append(event.message)

        trainer.add_listener(progress)
        try:
            summary = trainer.run(time_budget=args.time_budget)
        except KeyboardInterrupt:
            trainer.stop()
            summary = trainer.summary()
            if main:
                print("\ninterrupted: saving what was trained", file=sys.stderr)
        except BaseException as exc:
            # A failed collective (another rank died): no checkpoint of a step that may not have
            # completed everywhere; the restarted attempt resumes from the last periodic one.
            if logger:
                logger.fail(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            bar.close()
        if args.time_budget and not args.epochs and trainer.state == "finished":
            # as cmd_train: record the epochs the budget took, not the 10**6 placeholder
            import math

            trainer.config = trainer.config.with_values(epochs=max(1, math.ceil(trainer.epoch)))
        from .cli_checks import training_problems

        problems = training_problems(trainer, summary)  # as cmd_train: never save non-finite weights
        errors += [problem + ("; nothing was saved" if args.out else "") for problem in problems]
        if logger:
            logger.finish("error" if problems else trainer.state if trainer.state != "running" else "stopped")
        if main and args.out and not problems:
            save_trainer(args.out, trainer)
            summary["checkpoint"] = args.out
        if main:
            summary.update(dataset=dataset.name, run_dir=args.run_dir, world_size=world)
            if args.json:
                print(json.dumps(summary), flush=True)
            else:
                m = summary["metrics"]
                print(f"{summary['steps']} steps in {summary['seconds']:.1f} s "
                      f"({summary['samples_per_second']:,.0f} samples/s, {world} process(es)); "
                      f"zero-shot accuracy {m.get('zero_shot_accuracy', float('nan')):.3f}", file=sys.stderr)
            if errors:
                print(f"clipvae-studio train: error: {errors[0]}", file=sys.stderr)
        return 1 if errors else 0
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()
