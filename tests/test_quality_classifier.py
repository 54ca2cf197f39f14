"""The judge classifier: training, saving as plain data, loading, and the CLI around it."""
import json

import pytest
import torch

from clipvae_studio.cli import main
from clipvae_studio.core.classifier import (ClassifierError, DigitClassifier, accuracy, load_classifier,
                                            save_classifier, train_classifier)
from clipvae_studio.core.data import ImageDataset


def _small(dataset: ImageDataset, per_class: int = 40) -> ImageDataset:
    keep = torch.cat([torch.nonzero(dataset.train_labels == c).flatten()[:per_class] for c in range(10)])
    return ImageDataset("small", dataset.train_images[keep], dataset.train_labels[keep],
                        dataset.test_images[:300], dataset.test_labels[:300], dataset.label_names)


def test_training_beats_chance_and_round_trips_as_plain_data(mnist5k, tmp_path):
    small = _small(mnist5k)
    clf, info = train_classifier(small, epochs=8, width=6, seed=1)
    assert info["epochs"] == 8 and 0 <= info["test_accuracy"] <= 1
    assert info["test_accuracy"] > 0.4  # 400 images, 32 steps: well above chance (0.1); measured 0.61
    path = save_classifier(tmp_path / "clf.pt", clf, info, "small")
    raw = torch.load(path, weights_only=True)  # plain tensors and plain data only
    assert raw["format"] == "clipvae-studio-classifier" and raw["dataset"] == "small"
    loaded, loaded_info = load_classifier(path)
    assert loaded_info["test_accuracy"] == pytest.approx(info["test_accuracy"])
    x = mnist5k.test_images[:50].float() / 255
    assert torch.allclose(loaded.probabilities(x), clf.probabilities(x), atol=1e-6)
    assert accuracy(loaded, small.test_images, small.test_labels) == pytest.approx(info["test_accuracy"])


def test_accuracy_is_one_for_a_classifier_that_reads_the_answer():
    # A DigitClassifier whose last layer is rigged to output the label stored in pixel (0, 0).
    clf = DigitClassifier((1, 8, 8), 4, width=2)
    images = torch.zeros(40, 1, 8, 8, dtype=torch.uint8)
    labels = torch.arange(40) % 4
    clf.probabilities = lambda x, batch_size=1000: torch.nn.functional.one_hot(
        (x[:, 0, 0, 0] * 255).round().long(), 4).float()
    images[:, 0, 0, 0] = labels.to(torch.uint8)
    assert accuracy(clf, images, labels) == 1.0
    assert accuracy(clf, images, (labels + 1) % 4) == 0.0


def test_loading_refuses_files_that_are_not_classifiers(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(ClassifierError, match="not a classifier"):
        load_classifier(other)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ClassifierError, match="not a readable"):
        load_classifier(junk)
    with pytest.raises(ClassifierError, match="no such file"):
        load_classifier(tmp_path / "missing.pt")


def test_cli_train_classifier_then_eval_with_it(mnist5k, tmp_path, capsys):
    from clipvae_studio.core import Trainer, preset, save_trainer

    clf_path = tmp_path / "clf.pt"
    assert main(["train-classifier", "--epochs", "1", "--width", "4", "--out", str(clf_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["classifier"] == str(clf_path) and summary["epochs"] == 1
    assert load_classifier(clf_path)[0].num_labels == 10

    trainer = Trainer(preset("reference").with_values(eval_every_steps=10**6), mnist5k, eval_size=100)
    trainer.run(max_steps=3)
    ckpt = save_trainer(tmp_path / "model.pt", trainer)
    assert main(["eval", str(ckpt), "--classifier", str(clf_path), "--samples-per-label", "5",
                 "--noise-samples", "50", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("conditional_accuracy", "conditional_diversity", "real_test_diversity",
                "unconditional_confident_share", "classifier_test_accuracy"):
        assert 0.0 <= result[key] <= 1.0, key
    assert len(result["generation_per_label"]) == 10
    assert result["zero_shot_accuracy"] >= 0  # the plain eval figures are still there

    # a classifier for other images is refused with a readable error, exit code 2
    other = tmp_path / "other-clf.pt"
    save_classifier(other, DigitClassifier((1, 8, 8), 10, width=2))
    assert main(["eval", str(ckpt), "--classifier", str(other)]) == 2
    assert "classifier knows" in capsys.readouterr().err
