"""The speed-only pieces keep the semantics: fast losses equal PyTorch's, roll-back copies are
exact, the optimiser is fused and built lazily, thread and malloc settings behave."""
import importlib.util
import sys
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from clipvae_studio.core import Trainer, preset
from clipvae_studio.core.events import ErrorEvent
from clipvae_studio.core.fast_losses import bce_with_logits, inverse_multiquadratic, symmetric_infonce
from clipvae_studio.core.losses import MMD_SCALES, prior_mmd
from clipvae_studio.core.speed import all_finite, apply_thread_policy, copy_state, keep_freed_memory

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def small(**changes):
    return preset("studio").with_values(width=32, depth=1, batch_size=64, snapshot_size=100,
                                        eval_every_steps=10**6, **changes)


@pytest.mark.parametrize("scale", [0.1, 3.0, 40.0, 300.0])
def test_fast_bce_equals_pytorch_in_value_and_gradient(scale):
    torch.manual_seed(0)
    logits = (torch.randn(32, 1, 28, 28) * scale).requires_grad_()
    target = torch.rand(32, 1, 28, 28)
    target[:10] = (target[:10] > 0.5).float()  # binary and fractional targets
    for ours, theirs in (
        (lambda l: bce_with_logits(l, target, "mean"), lambda l: F.binary_cross_entropy_with_logits(l, target)),
        (lambda l: bce_with_logits(l, target, "batch_sum"),
         lambda l: F.binary_cross_entropy_with_logits(l, target, reduction="none").flatten(1).sum(1).mean()),
    ):
        a, b = ours(logits), theirs(logits)
        (ga,), (gb,) = torch.autograd.grad(a, logits), torch.autograd.grad(b, logits)
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-6)
        assert torch.allclose(ga, gb, rtol=1e-5, atol=1e-9)


def test_fast_losses_pass_gradcheck_in_double():
    logits = torch.randn(4, 7, dtype=torch.double, requires_grad=True)
    target = torch.rand(4, 7, dtype=torch.double)
    assert torch.autograd.gradcheck(lambda l: bce_with_logits(l, target, "batch_sum"), (logits,))
    square = torch.randn(6, 6, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(symmetric_infonce, (square,))


def test_symmetric_infonce_equals_two_cross_entropies():
    torch.manual_seed(1)
    logits = (torch.randn(50, 50) * 14).requires_grad_()
    target = torch.arange(50)
    a = symmetric_infonce(logits)
    b = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    (ga,), (gb,) = torch.autograd.grad(a, logits), torch.autograd.grad(b, logits)
    assert torch.allclose(a, b, rtol=1e-6) and torch.allclose(ga, gb, atol=1e-7)


def naive_prior_mmd(z, prior):
    """The textbook estimate, written out with cdist and a mask, to compare the fast one with."""
    n, d = z.shape

    def kernel(a, b):
        d2 = torch.cdist(a, b).pow(2)
        return sum(c / (c + d2) for c in (2.0 * d * s for s in MMD_SCALES))

    off = 1.0 - torch.eye(n)
    return ((kernel(z, z) * off).sum() + (kernel(prior, prior) * off).sum()) / (n * (n - 1)) - 2 * kernel(z, prior).mean()


@pytest.mark.parametrize("spread, shift", [(1.0, 0.0), (0.1, 0.0), (0.5, 1.5)])
def test_fast_prior_mmd_equals_the_textbook_estimate_in_value_and_gradient(spread, shift):
    g = torch.Generator().manual_seed(3)
    z = (torch.randn(200, 20, generator=g) * spread + shift).requires_grad_()
    prior = torch.randn(200, 20, generator=g)
    a, b = prior_mmd(z, prior), naive_prior_mmd(z, prior)
    (ga,), (gb,) = torch.autograd.grad(a, z), torch.autograd.grad(b, z)
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    assert torch.allclose(ga, gb, rtol=1e-3, atol=1e-6 * gb.abs().max().item())


def test_inverse_multiquadratic_passes_gradcheck_in_double():
    a = torch.randn(5, 3, dtype=torch.double, requires_grad=True)
    b = torch.randn(4, 3, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: inverse_multiquadratic(a, b, (0.5, 2.0, 8.0)), (a, b))


def test_copy_state_refills_the_same_buffers_and_takes_new_plain_values():
    src = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(5)}}, "param_groups": [{"lr": 0.1}]}
    first = copy_state(None, src)
    assert first["state"][0]["exp_avg"] is not src["state"][0]["exp_avg"]
    src["state"][0]["exp_avg"].add_(1.0)
    src["param_groups"][0]["lr"] = 0.05
    second = copy_state(first, src)
    assert second["state"][0]["exp_avg"] is first["state"][0]["exp_avg"]  # no new allocation
    assert torch.equal(second["state"][0]["exp_avg"], src["state"][0]["exp_avg"])
    assert second["param_groups"][0]["lr"] == 0.05
    src["state"][1] = {"step": torch.tensor(1.0)}  # structure changed: a fresh clone
    third = copy_state(second, src)
    assert 1 in third["state"] and third["state"][1]["step"] is not src["state"][1]["step"]


def test_all_finite_sees_nan_and_inf():
    good = [torch.ones(3), torch.zeros(2, 2)]
    assert all_finite(good)
    assert not all_finite(good + [torch.tensor([1.0, float("nan")])])
    assert not all_finite(good + [torch.tensor([float("-inf")])])


def test_optimizer_is_fused_and_built_on_first_use(mnist5k):
    trainer = Trainer(small(), mnist5k, eval_size=100)
    assert trainer._optimizer is None  # a window showing an untrained model does not pay for it
    trainer.step()
    group = trainer.optimizer.param_groups[0]
    assert group.get("fused") or group.get("foreach")
    assert trainer.step_count == 1 and trainer.optimizer.state_dict()["state"]


def test_divergence_before_the_first_saved_weights_restores_a_fresh_start(mnist5k):
    events = []
    trainer = Trainer(small(lr=1e4), mnist5k, listener=events.append, eval_size=100)
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    summary = trainer.run(max_steps=19)  # no roll-back copy is taken before step 20
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    if not errors:
        pytest.skip("this learning rate did not diverge within 19 steps")
    assert summary["state"] == "error" and errors[0].restored_step == 0 and trainer.step_count == 0
    assert all(torch.equal(v, start[k]) for k, v in trainer.model.state_dict().items())
    assert trainer.history["total"] == []
    trainer.config = trainer.config.with_values(lr=1e-3)
    assert trainer.step() is not None and trainer.optimizer.state_dict()["state"][0]["step"] == 1


def test_thread_policy_sets_the_calling_thread_and_zero_leaves_it():
    seen = {}

    def work():
        seen["auto"] = apply_thread_policy(torch.device("cpu"), None)
        seen["after_auto"] = torch.get_num_threads()
        torch.set_num_threads(2)
        seen["zero"] = apply_thread_policy(torch.device("cpu"), 0)
        seen["one"] = apply_thread_policy(torch.device("cpu"), 1)
        seen["after_one"] = torch.get_num_threads()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen["auto"] == seen["after_auto"] >= 1
    assert seen["zero"] == 2  # 0 leaves torch's setting alone
    assert seen["one"] == seen["after_one"] == 1


def test_keep_freed_memory_is_idempotent():
    first = keep_freed_memory()
    assert keep_freed_memory() == first
    if sys.platform.startswith("linux"):
        assert first is True


def _load(name):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_reference_loop_serves_tensors_per_sample_and_trains(mnist5k):
    ref = _load("reference_loop")
    from torchvision import transforms

    dataset = ref.MNISTLike(mnist5k.train_images, mnist5k.train_labels, transforms.ToTensor())
    image, label = dataset[3]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    assert torch.equal((image * 255).round().to(torch.uint8), mnist5k.train_images[3])
    assert label == int(mnist5k.train_labels[3])
    steps = ref.reference_steps(mnist5k)
    (t1, n1, model), (t2, n2, _) = next(steps), next(steps)
    assert (n1, n2) == (64, 128) and 0 < t1 < t2
    assert model.shared_blocks and model.noise == "uniform"  # the reference preset's model


def test_run_all_marks_targets_met_and_not_met():
    run_all = _load("run_all")
    report = {"throughput": {"large_batch": 1024, "baseline": 1000.0, "ratio_batch_64": 2.0, "ratio_batch_1024": 6.0,
                             "samples_per_second": {"studio_trainer_batch_64": 2000.0,
                                                    "studio_trainer_batch_1024": 6000.0}},
              "memory": {"peak_rss_mib": 800.0, "peak_met": True, "growth_mib": 70.0, "growth_met": False, "minutes": 10}}
    table = {target: met for target, _, _, met in run_all.rows(report)}
    assert table["Headless throughput, reference model in the studio trainer (batch 1024, in memory) >= 5x reference loop"] is True
    assert table["Same at the reference's batch 64 (information, not the target's measure)"] == run_all.INFO
    assert table["Peak RSS training on 60,000 images < 1.5 GiB"] is True
    assert table["RSS growth after warm-up < 50 MiB (10-minute run)"] is False
    assert table["Start-up: window shown < 3 s (warm disk)"] is None  # not run: not measured, not "met"
    info = {"machine": {"cpu": "x", "cores": 2, "torch": "t", "python": "p", "load_avg_1min": 0.1},
            "date": "d", "wall_s": 1.0}
    md = run_all.markdown(report, info)
    assert md.count("**not met**") == 1 and "not measured" in md and "| information |" in md
