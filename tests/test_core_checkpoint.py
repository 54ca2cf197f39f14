"""Checkpoints: round trip, resume, the reference format, and refusal of bad files."""
import math
import os
import pickle
import zipfile

import pytest
import torch
import torch.nn.functional as F

from clipvae_studio.core import CheckpointError, Trainer, load_checkpoint, preset, save_checkpoint, save_trainer
from clipvae_studio.core.metrics import to_float


def test_roundtrip_keeps_everything(mnist5k, tmp_path):
    cfg = preset("studio").with_values(width=32, depth=1, eval_every_steps=10)
    trainer = Trainer(cfg, mnist5k, eval_size=100)
    trainer.run(max_steps=20)
    path = save_trainer(tmp_path / "a.pt", trainer)
    ckpt = load_checkpoint(path, mnist5k.image_shape, mnist5k.num_labels)
    assert ckpt.step == 20 and ckpt.config == cfg and ckpt.label_names == mnist5k.label_names
    assert ckpt.history["total"] == pytest.approx(trainer.history["total"])
    for k, v in trainer.model.state_dict().items():  # the file holds CPU tensors; training may be on a GPU
        assert torch.equal(ckpt.model.state_dict()[k], v.cpu())
    # resuming continues exactly where the original would have
    resumed = Trainer(ckpt.config, mnist5k, model=ckpt.model, eval_size=100)
    resumed.restore(ckpt.payload())
    assert resumed.step_count == 20 and len(resumed.history["total"]) == 20
    assert resumed.optimizer.state_dict()["state"][0]["step"] == trainer.optimizer.state_dict()["state"][0]["step"]
    resumed.run(max_steps=5)
    assert resumed.step_count == 25
    assert not list(tmp_path.glob("*.tmp"))


def _reference_state_dict(torch_seed=0):
    """A state_dict in the published reference layout (docs/architecture.md, "The reference model"), built by hand."""
    g = torch.Generator().manual_seed(torch_seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.1  # noqa: E731
    sd = {"logit_scale": torch.tensor(math.log(1 / 0.07)),
          "image_encoder.stem.weight": r(64, 784), "image_encoder.stem.bias": r(64)}
    ln_w, ln_b, w, b = torch.ones(64) + r(64), r(64), r(64, 64), r(64)
    for part in ("image_encoder", "image_decoder"):
        for i in range(6):  # the reference reuses one block: all six entries hold the same tensors
            sd.update({f"{part}.blocks.{i}.0.weight": ln_w, f"{part}.blocks.{i}.0.bias": ln_b,
                       f"{part}.blocks.{i}.1.weight": w, f"{part}.blocks.{i}.1.bias": b})
    sd.update({"image_encoder.to_mu.weight": r(16, 64), "image_encoder.to_mu.bias": r(16),
               "image_encoder.to_log_var.weight": r(16, 64), "image_encoder.to_log_var.bias": r(16),
               "label_encoder.net.0.weight": r(10, 64),
               "label_encoder.net.1.weight": torch.ones(64), "label_encoder.net.1.bias": r(64),
               "label_encoder.net.2.weight": r(64, 64), "label_encoder.net.2.bias": r(64),
               "label_encoder.to_mu.weight": r(16, 64), "label_encoder.to_mu.bias": r(16),
               "label_encoder.to_log_var.weight": r(16, 64), "label_encoder.to_log_var.bias": r(16),
               "image_decoder.stem.weight": r(64, 16), "image_decoder.stem.bias": r(64),
               "image_decoder.out.weight": r(784, 64), "image_decoder.out.bias": r(784),
               "label_decoder.stem.weight": r(64, 16), "label_decoder.stem.bias": r(64),
               "label_decoder.net.0.weight": torch.ones(64), "label_decoder.net.0.bias": r(64),
               "label_decoder.net.1.weight": r(64, 64), "label_decoder.net.1.bias": r(64),
               "label_decoder.out.weight": r(10, 64), "label_decoder.out.bias": r(10)})
    return sd


def _direct_reference_forward(sd, x):
    """The reference computation written out by hand from the state_dict."""
    h = F.linear(x.flatten(1), sd["image_encoder.stem.weight"], sd["image_encoder.stem.bias"])
    for i in range(6):
        p = f"image_encoder.blocks.{i}."
        n = F.layer_norm(h, (64,), sd[p + "0.weight"], sd[p + "0.bias"])
        h = h + F.gelu(F.linear(n, sd[p + "1.weight"], sd[p + "1.bias"]))
    mu = F.linear(h, sd["image_encoder.to_mu.weight"], sd["image_encoder.to_mu.bias"])
    e = sd["label_encoder.net.0.weight"]
    e = F.layer_norm(e, (64,), sd["label_encoder.net.1.weight"], sd["label_encoder.net.1.bias"])
    e = F.gelu(F.linear(e, sd["label_encoder.net.2.weight"], sd["label_encoder.net.2.bias"]))
    label_mu = F.linear(e, sd["label_encoder.to_mu.weight"], sd["label_encoder.to_mu.bias"])
    logits = sd["logit_scale"].exp() * F.normalize(mu, dim=1) @ F.normalize(label_mu, dim=1).t()
    return logits.softmax(1)


def test_reference_state_dict_loads_and_scores_match(mnist5k, tmp_path):
    sd = _reference_state_dict()
    path = tmp_path / "weight.pt"
    torch.save(sd, path)
    ckpt = load_checkpoint(path, mnist5k.image_shape, 10)
    assert ckpt.source == "reference"
    model = ckpt.model.eval()
    assert (model.z_dim, model.width, model.depth, model.shared_blocks) == (16, 64, 6, True)
    x = to_float(mnist5k.test_images[:8])
    with torch.no_grad():
        ours = model.clip_scores(model.encode_image(x)[0])
    assert torch.allclose(ours, _direct_reference_forward(sd, x), atol=1e-5)
    assert torch.allclose(ours.sum(1), torch.ones(8))


def test_cuda_saved_style_file_opens_on_cpu(tmp_path):
    # map_location="cpu" is what makes GPU-saved files open here; a CPU file must of course too.
    sd = _reference_state_dict()
    path = tmp_path / "w.pt"
    torch.save(sd, path)
    assert load_checkpoint(path).model.device.type == "cpu"


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_bad_files_are_refused_and_never_executed(tmp_path):
    target = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Evil(str(target))}, evil)
    assert not target.exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    assert not target.exists()
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Evil(str(target))))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not target.exists()

    good = tmp_path / "good.pt"
    torch.save(_reference_state_dict(), good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: os.path.getsize(good) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(truncated)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(text)
    foreign = tmp_path / "list.pt"
    torch.save([1, 2, 3], foreign)
    with pytest.raises(CheckpointError, match="not a CLIP-VAE checkpoint"):
        load_checkpoint(foreign)
    zipped = tmp_path / "zip.pt"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("a.txt", "x")
    with pytest.raises(CheckpointError):
        load_checkpoint(zipped)


def test_wrong_architecture_and_shape_mismatch(mnist5k, tmp_path):
    sd = _reference_state_dict()
    del sd["image_decoder.out.bias"]
    broken = tmp_path / "broken.pt"
    torch.save(sd, broken)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(broken)
    from clipvae_studio.core import CLIPVAE
    model = CLIPVAE((3, 8, 8), 4, width=8, depth=1)
    path = save_checkpoint(tmp_path / "rgb.pt", model, preset("studio"))
    with pytest.raises(CheckpointError, match="shape 3x8x8 but the dataset has 1x28x28"):
        load_checkpoint(path, mnist5k.image_shape, 4)
    with pytest.raises(CheckpointError, match="4 labels but the dataset has 10"):
        load_checkpoint(path, (3, 8, 8), 10)


def test_save_failure_keeps_the_old_file(tmp_path, monkeypatch):
    from clipvae_studio.core import CLIPVAE
    model = CLIPVAE((1, 8, 8), 2, width=8, depth=1)
    path = save_checkpoint(tmp_path / "m.pt", model, preset("studio"))
    before = path.read_bytes()

    def failing_save(obj, fh, *a, **k):
        fh.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(CheckpointError, match="No space left"):
        save_checkpoint(path, model, preset("studio"))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
