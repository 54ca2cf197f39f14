"""Pieces of tests/test_distributed.py that run in child processes (spawned ranks, torchrun workers)."""
from __future__ import annotations

import os

import torch

from clipvae_studio.core.config import TrainConfig

GLOBAL_BATCH = 8
N_TRAIN, N_TEST, SIDE, LABELS = 64, 16, 6, 3


def tiny_dataset(seed: int = 0):
    """Generated images whose mean brightness depends on the label: small, quick, learnable."""
    from clipvae_studio.core.data import ImageDataset

    g = torch.Generator().manual_seed(seed)

    def split(n):
        labels = torch.randint(0, LABELS, (n,), generator=g)
        base = (labels.float() + 1) / (LABELS + 1) * 255
        images = (base.view(-1, 1, 1, 1) + 40 * torch.randn(n, 1, SIDE, SIDE, generator=g)).clamp(0, 255)
        return images.to(torch.uint8), labels

    train_x, train_y = split(N_TRAIN)
    test_x, test_y = split(N_TEST)
    return ImageDataset("tiny", train_x, train_y, test_x, test_y, [f"c{i}" for i in range(LABELS)])


def tiny_config(**changes) -> TrainConfig:
    values = dict(arch="mlp", z_dim=4, width=16, depth=1, batch_size=GLOBAL_BATCH, epochs=2, lr=1e-2,
                  eval_every_steps=10**6, snapshot_size=4, snapshot_every_s=10**6, device="cpu",
                  w_prior_mmd=1.0, w_label_match=1.0, label_pull=0.5, kld_reduction="sum", rec_reduction="sum")
    values.update(changes)
    return TrainConfig(**values).validate()


class FixedNoise:
    """torch.randn_like replaced by fixed draws of the GLOBAL batch, this rank's rows returned:
    the k-th call of a step gets rows of the k-th fixed matrix, the same ones one process gets."""

    def __init__(self, rank: int, world_size: int):
        self.rank, self.world_size, self.calls = rank, world_size, 0

    def __call__(self, like, **_):
        n, d = like.shape
        g = torch.Generator().manual_seed(1000 + self.calls)
        self.calls += 1
        full = torch.randn(n * self.world_size, d, generator=g, dtype=like.dtype)
        return full[self.rank * n:(self.rank + 1) * n].to(like.device)


CASES = {  # name -> (config changes, gather with gradients?)
    "batch": (dict(clip_mode="batch"), True),
    "prototype": (dict(clip_mode="prototype", decoder_heads=True), True),
    "batch_gather_without_grad": (dict(clip_mode="batch", w_prior_mmd=0.0), False),
}


def one_sgd_step(trainer) -> dict:
    """Loss values, every gradient and the weights after one SGD step of `trainer` (its own step())."""
    trainer._optimizer = torch.optim.SGD(trainer.model.parameters(), lr=0.1)
    losses = trainer.step()
    return {"losses": losses,
            "grads": {k: p.grad.detach().clone() for k, p in trainer.model.named_parameters() if p.grad is not None},
            "weights": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}}


def equivalence_rank(rank: int, world_size: int, store_file: str, out_dir: str) -> None:
    """One rank of the equivalence check: one SGD step per case, results saved per rank."""
    import torch.distributed as dist

    from clipvae_studio.core.clip_gather import AcrossRanks, gather_with_grad, gather_without_grad
    from clipvae_studio.core.distributed_train import DistributedTrainer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store_file}", rank=rank, world_size=world_size)
    torch.randn_like = FixedNoise(rank, world_size)
    dataset = tiny_dataset()
    results = {}
    for name, (changes, with_grad) in CASES.items():
        torch.randn_like.calls = 0
        across = AcrossRanks(gather=gather_with_grad if with_grad else gather_without_grad)
        trainer = DistributedTrainer(tiny_config(**changes), dataset, eval_size=None, num_threads=1, across=across)
        results[name] = {**one_sgd_step(trainer), "indices": trainer.global_batch_indices(0).clone()}
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def single_process_reference(indices: torch.Tensor, changes: dict) -> dict:
    """The same step in one process, on the concatenated global batch."""
    from clipvae_studio.core.trainer import Trainer

    dataset = tiny_dataset()
    trainer = Trainer(tiny_config(**changes), dataset, eval_size=None, num_threads=1)
    rows = indices.clone()
    trainer._next_batch = lambda: (dataset.train_images[rows].float() / 255, dataset.train_labels[rows])
    saved = torch.randn_like
    torch.randn_like = FixedNoise(0, 1)
    try:
        return one_sgd_step(trainer)
    finally:
        torch.randn_like = saved



# The restart test's run: the CLI arguments and the same run built directly (the uninterrupted reference).
RUN_OVERRIDES = {"width": 16, "depth": 1, "z_dim": 4, "batch_size": 32, "eval_every_steps": 10**6,
                 "snapshot_size": 16, "w_prior_mmd": 1.0}
RUN_EPOCHS = 1


def run_arguments() -> list[str]:
    sets = [arg for key, value in RUN_OVERRIDES.items() for arg in ("--set", f"{key}={value}")]
    return ["train", "--preset", "reference", *sets, "--epochs", str(RUN_EPOCHS), "--quiet", "--device", "cpu"]


def uninterrupted_rank(rank: int, world_size: int, store_file: str, out_dir: str) -> None:
    """The restart test's run, trained start to end by DistributedTrainer (as the CLI builds it)."""
    import torch.distributed as dist

    from clipvae_studio.core.config import preset
    from clipvae_studio.core.data import load_dataset
    from clipvae_studio.core.distributed_train import DistributedTrainer

    os.environ["LOCAL_WORLD_SIZE"] = str(world_size)  # the thread policy torchrun's workers get
    dist.init_process_group("gloo", init_method=f"file://{store_file}", rank=rank, world_size=world_size)
    config = preset("reference").with_values(**RUN_OVERRIDES, epochs=RUN_EPOCHS, device="cpu")
    trainer = DistributedTrainer(config, load_dataset("mnist5k"))
    trainer.run()
    if rank == 0:
        torch.save(trainer.model.state_dict(), os.path.join(out_dir, "uninterrupted.pt"))
    dist.destroy_process_group()
