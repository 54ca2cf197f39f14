"""The generation-quality metric code on cases whose answers are known in advance."""
import math

import pytest
import torch

from clipvae_studio.core.quality import (confidence_summary, conditional_generation, label_accuracy,
                                         mean_pairwise_distance, sample_grid, unconditional_generation)

K = 10


class OracleModel(torch.nn.Module):
    """A stand-in generator whose latents and images spell out the label.

    q(z | label) = N(scale * onehot(label), exp(logvar)); the decoded image is a 1 x 1 x K
    strip holding sigmoid(z / 4), so the brightest pixel is the label (for any scale >> noise)."""

    def __init__(self, scale=20.0, logvar=-30.0):
        super().__init__()
        self.num_labels, self.z_dim, self.scale, self.logvar = K, K, scale, logvar
        self.label_names = [f"c{i}" for i in range(K)]
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    @property
    def device(self):
        return self.anchor.device

    def encode_label(self, y):
        mu = self.scale * torch.nn.functional.one_hot(y, K).float()
        return mu, torch.full_like(mu, self.logvar)

    def decode_image(self, z, labels=None):
        return torch.sigmoid(z / 4).view(-1, 1, 1, K)


class BrightestPixel:
    """A perfect judge for OracleModel: the label is the brightest pixel."""

    num_labels = K

    def probabilities(self, images):
        return torch.nn.functional.one_hot(images.flatten(1).argmax(1), K).float()


class CoinFlip:
    """A judge that ignores the image: random labels, uniform confidence 1/K."""

    num_labels = K

    def __init__(self, seed=0):
        self.generator = torch.Generator().manual_seed(seed)

    def probabilities(self, images):
        noise = torch.rand(len(images), K, generator=self.generator) * 1e-3
        return (torch.full((len(images), K), 1.0 / K) + noise).softmax(1)


def test_pairwise_distance_is_zero_for_identical_images_and_one_for_opposites():
    same = torch.full((5, 1, 4, 4), 0.3)
    assert mean_pairwise_distance(same) == pytest.approx(0.0, abs=1e-12)
    assert mean_pairwise_distance(same[:1]) == 0.0
    black_white = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])
    assert mean_pairwise_distance(black_white) == pytest.approx(1.0)
    # three images: pairs (0,1)=1, (0,2)=0.5, (1,2)=0.5 in RMS -> mean 2/3
    three = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2), torch.full((1, 2, 2), 0.5)])
    assert mean_pairwise_distance(three) == pytest.approx(2 / 3)


def test_label_accuracy_perfect_and_chance():
    labels = torch.arange(1000) % K
    perfect = torch.nn.functional.one_hot(labels, K).float()
    assert label_accuracy(perfect, labels) == 1.0
    wrong = torch.nn.functional.one_hot((labels + 1) % K, K).float()
    assert label_accuracy(wrong, labels) == 0.0
    random = torch.rand(20000, K, generator=torch.Generator().manual_seed(1))
    assert label_accuracy(random, torch.arange(20000) % K) == pytest.approx(1 / K, abs=0.01)


def test_confidence_summary_of_sure_and_unsure_judges():
    sure = torch.nn.functional.one_hot(torch.arange(100) % K, K).float()
    s = confidence_summary(sure)
    assert s["confident_share"] == 1.0 and s["mean_confidence"] == 1.0
    assert s["effective_labels"] == pytest.approx(K)  # every label equally often
    assert s["predicted_label_share"] == [0.1] * K
    unsure = torch.full((50, K), 1.0 / K)
    u = confidence_summary(unsure)
    assert u["confident_share"] == 0.0 and u["mean_confidence"] == pytest.approx(0.1)
    one_label = torch.nn.functional.one_hot(torch.full((30,), 3), K).float() * 0.95 + 0.005
    o = confidence_summary(one_label)
    assert o["confident_share"] == 1.0 and o["effective_labels"] == pytest.approx(1.0)
    assert o["predicted_label_share"][3] == 1.0
    # the threshold is inclusive and adjustable
    assert confidence_summary(torch.tensor([[0.9, 0.1], [0.8, 0.2]]))["confident_share"] == 0.5
    assert confidence_summary(torch.tensor([[0.9, 0.1], [0.8, 0.2]]), threshold=0.8)["confident_share"] == 1.0


def test_conditional_generation_perfect_generator_and_judge():
    result = conditional_generation(OracleModel(), BrightestPixel(), per_label=20)
    assert result["accuracy"] == 1.0 and result["min_label_accuracy"] == 1.0
    assert [row["label"] for row in result["per_label"]] == [f"c{i}" for i in range(K)]
    # posterior variance exp(-30): every sample of a label decodes to the same image
    assert result["diversity"] == pytest.approx(0.0, abs=1e-6)


def test_conditional_generation_noisy_posterior_is_diverse_and_random_judge_is_at_chance():
    noisy = OracleModel(scale=20.0, logvar=0.0)  # unit noise: images differ, label still obvious
    result = conditional_generation(noisy, BrightestPixel(), per_label=50)
    assert result["accuracy"] == 1.0
    assert result["diversity"] > 0.01
    chance = conditional_generation(OracleModel(), CoinFlip(), per_label=200)
    assert chance["accuracy"] == pytest.approx(1 / K, abs=0.04)


def test_conditional_generation_reports_real_image_diversity():
    images = torch.zeros(2 * K, 1, 1, K, dtype=torch.uint8)
    labels = torch.arange(2 * K) % K
    images[labels == 0] = 255  # label 0: two identical white images; the others identical black
    images[K] = 0  # ... except the second image of label 0 is black: RMS distance 1
    result = conditional_generation(OracleModel(), BrightestPixel(), per_label=2, real_images=images,
                                    real_labels=labels)
    assert result["per_label"][0]["real_diversity"] == pytest.approx(1.0)
    assert result["per_label"][1]["real_diversity"] == pytest.approx(0.0)
    assert result["real_diversity"] == pytest.approx(0.1)


def test_unconditional_generation_confidence_and_spread():
    sure = unconditional_generation(OracleModel(), BrightestPixel(), n=500)
    assert sure["confident_share"] == 1.0 and sure["n"] == 500
    # z ~ N(0, I) decodes to sigmoid(z / 4): its brightest pixel is a uniformly random label
    assert sure["effective_labels"] > 9.5
    unsure = unconditional_generation(OracleModel(), CoinFlip(), n=500)
    assert unsure["confident_share"] == 0.0
    assert unsure["mean_confidence"] == pytest.approx(0.1, abs=0.01)


def test_sample_grid_rows_follow_the_labels():
    grid = sample_grid(OracleModel(), per_label=4, noise_rows=2)
    assert grid.shape == ((K + 2) * 4, 1, 1, K)
    brightest = grid.flatten(1).argmax(1)
    assert brightest[:K * 4].tolist() == [i // 4 for i in range(K * 4)]
    # the noise rows are N(0, I) draws: pixels near sigmoid(0) = 0.5, not a label's 0.99
    assert math.isclose(grid[K * 4:].mean().item(), 0.5, abs_tol=0.05)
