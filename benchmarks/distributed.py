"""Data-parallel training throughput: 1 and 2 gloo processes on the CPU (and nccl on CUDA when a
GPU is present), against the single-process Trainer, and the all-gather's share of a step.

Every rank runs DistributedTrainer on the same global batch (each rank a slice of it). The
all-gather's share is measured by difference: the same step with the gather replaced by a local
stand-in of the same shape (no communication) against the real one, alternating in rounds.

    python benchmarks/distributed.py [--preset studio] [--steps 30] [--warmup 5] [--rounds 2]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import _common  # noqa: F401
import torch
import torch.multiprocessing as mp
from _common import emit, machine, median


def _local_stand_in(t, group=None):
    """A gather's output shape and autograd graph, without communication."""
    import torch.distributed as dist

    return torch.cat([t] + [t.detach().clone() for _ in range(dist.get_world_size(group) - 1)])


def _rank(rank: int, world: int, store: str, options: dict, out: str) -> None:
    import torch.distributed as dist

    from clipvae_studio.core import load_dataset, preset
    from clipvae_studio.core.clip_gather import AcrossRanks, gather_with_grad
    from clipvae_studio.core.distributed_train import DistributedTrainer

    os.environ["LOCAL_WORLD_SIZE"] = str(world)
    cuda = options["device"] == "cuda"
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    config = preset(options["preset"]).with_values(eval_every_steps=10**9, snapshot_every_s=1e9, epochs=10**4,
                                                   device=options["device"])
    dataset = load_dataset("mnist5k")
    trainers = {name: DistributedTrainer(config, dataset, device=device, across=AcrossRanks(gather=gather))
                for name, gather in (("gather", gather_with_grad), ("stand_in", _local_stand_in))}
    rates = {name: [] for name in trainers}
    for trainer in trainers.values():
        for _ in range(options["warmup"]):
            trainer.step()
    for _ in range(options["rounds"]):
        for name, trainer in trainers.items():
            dist.barrier()
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(options["steps"]):
                trainer.step()
            if cuda:
                torch.cuda.synchronize()
            dist.barrier()
            rates[name].append(options["steps"] * config.batch_size / (time.perf_counter() - start))
    if rank == 0:
        torch.save({name: median(r) for name, r in rates.items()}, out)
    dist.destroy_process_group()


def distributed_rate(world: int, options: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rates.pt")
        mp.spawn(_rank, args=(world, os.path.join(tmp, "store"), options, out), nprocs=world, join=True)
        return torch.load(out)


def single_process_rate(options: dict) -> float:
    from clipvae_studio.core import Trainer, load_dataset, preset

    config = preset(options["preset"]).with_values(eval_every_steps=10**9, snapshot_every_s=1e9, epochs=10**4,
                                                   device=options["device"])
    trainer = Trainer(config, load_dataset("mnist5k"))
    for _ in range(options["warmup"]):
        trainer.step()
    rates = []
    for _ in range(options["rounds"]):
        start = time.perf_counter()
        for _ in range(options["steps"]):
            trainer.step()
        if options["device"] == "cuda":
            torch.cuda.synchronize()
        rates.append(options["steps"] * config.batch_size / (time.perf_counter() - start))
    return median(rates)


def measure(options: dict, worlds) -> dict:
    result = {"single_process_trainer_samples_per_s": round(single_process_rate(options), 1)}
    for world in worlds:
        rates = distributed_rate(world, options)
        share = 1 - rates["gather"] / rates["stand_in"]
        result[f"processes_{world}"] = {"samples_per_s": round(rates["gather"], 1),
                                        "samples_per_s_without_gather_communication": round(rates["stand_in"], 1),
                                        "all_gather_share_of_step": round(share, 4)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="studio")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    options = {"preset": args.preset, "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds}
    result = {"benchmark": "distributed", "machine": machine(), "preset": args.preset,
              "gloo_cpu": measure({**options, "device": "cpu"}, (1, 2))}
    if torch.cuda.is_available():
        result["nccl_cuda_1_gpu"] = measure({**options, "device": "cuda"}, (1,))
    else:
        result["nccl_cuda_1_gpu"] = "not measured: no CUDA device on this machine"
    result["note"] = ("all_gather_share_of_step = 1 - rate / rate with a local stand-in of the gather (same shapes, "
                      "no communication); both include DDP's gradient all-reduce")
    emit(result)


if __name__ == "__main__":
    main()
