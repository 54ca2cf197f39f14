"""Generation quality of a CLIP-VAE, judged by an independent classifier.

- conditional: decode samples of each label's posterior q(z | label) (generation.sample_label);
  the share the classifier names as that label, per label and overall. With routed decoder
  heads the label's head decodes them; clip_routed_accuracy gives the same latents decoded by
  the head CLIP picks at each point (what the latent map shows there).
- diversity: mean pairwise RMS pixel distance between the samples of one label (0 when all
  samples are identical), next to the same figure for real test images of that label.
- unconditional: decode z ~ N(0, I) (with routed heads, reranked by CLIP over the heads'
  pictures: generation.sample_noise); the share the classifier names with confidence >= 0.9,
  and how the predicted labels spread over the classes. clip_routed_confident_share gives the
  same latents decoded by the head of CLIP's label at each point, without reranking.
"""
from __future__ import annotations

import math

import torch

from .generation import sample_label, sample_noise

CONFIDENT = 0.9


def mean_pairwise_distance(images: torch.Tensor) -> float:
    """Mean over all pairs i < j of the RMS pixel difference (images in [0, 1]); 0 for < 2 images."""
    flat = images.detach().flatten(1).double()
    n = len(flat)
    if n < 2:
        return 0.0
    d = torch.cdist(flat, flat)  # Euclidean; the diagonal is 0
    return (d.sum() / (n * (n - 1))).item() / math.sqrt(flat.shape[1])


def label_accuracy(probabilities: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of rows whose most probable label is the given one."""
    if len(labels) == 0:
        return float("nan")
    return (probabilities.argmax(1) == labels.to(probabilities.device)).double().mean().item()


def confidence_summary(probabilities: torch.Tensor, threshold: float = CONFIDENT) -> dict:
    """How sure a classifier is about a set of images (rows of class probabilities)."""
    top, predicted = probabilities.max(1)
    counts = torch.bincount(predicted, minlength=probabilities.shape[1]).double()
    share = counts / counts.sum().clamp(min=1)
    nonzero = share[share > 0]
    return {
        "confident_share": (top >= threshold).double().mean().item(),
        "mean_confidence": top.double().mean().item(),
        "predicted_label_share": [round(v, 4) for v in share.tolist()],
        # exp(entropy) of the predicted labels: 1 = one class only, num_labels = all equally often
        "effective_labels": math.exp(-(nonzero * nonzero.log()).sum().item()),
    }


@torch.no_grad()
def conditional_generation(model, classifier, per_label: int = 100, seed: int = 0,
                           real_images: torch.Tensor | None = None,
                           real_labels: torch.Tensor | None = None) -> dict:
    """Per-label recognition and diversity of samples of q(z | label).

    real_images (uint8 N x C x H x W) / real_labels, when given, add the diversity of real
    images of each label (the first `per_label` of each) for comparison.
    """
    generator = torch.Generator().manual_seed(seed)
    model_was = model.training
    model.eval()
    per = []
    correct = 0
    routed = getattr(model, "decoder_heads", False)
    for label in range(model.num_labels):
        state = generator.get_state()
        images = sample_label(model, label, per_label, generator)
        p = classifier.probabilities(images)
        acc = label_accuracy(p, torch.full((per_label,), label))
        correct += round(acc * per_label)
        row = {"label": model.label_names[label], "accuracy": acc,
               "mean_confidence": p[:, label].double().mean().item(),
               "diversity": mean_pairwise_distance(images)}
        if routed:  # the same latents, each decoded by the head CLIP picks there instead of the label's
            after = generator.get_state()
            generator.set_state(state)
            clip_images = sample_label(model, label, per_label, generator, route_by_label=False)
            generator.set_state(after)
            row["clip_routed_accuracy"] = label_accuracy(classifier.probabilities(clip_images),
                                                         torch.full((per_label,), label))
        if real_images is not None and real_labels is not None:
            real = real_images[real_labels.cpu() == label][:per_label].float().div(255.0)
            row["real_diversity"] = mean_pairwise_distance(real)
        per.append(row)
    model.train(model_was)
    result = {"accuracy": correct / (per_label * model.num_labels),
              "min_label_accuracy": min(r["accuracy"] for r in per),
              "diversity": sum(r["diversity"] for r in per) / len(per),
              "per_label": per}
    if routed:
        result["clip_routed_accuracy"] = sum(r["clip_routed_accuracy"] for r in per) / len(per)
    if per and "real_diversity" in per[0]:
        result["real_diversity"] = sum(r["real_diversity"] for r in per) / len(per)
    return result


@torch.no_grad()
def unconditional_generation(model, classifier, n: int = 1000, seed: int = 0,
                             threshold: float = CONFIDENT) -> dict:
    """Classifier confidence on decoded z ~ N(0, I), and how the samples spread over labels."""
    generator = torch.Generator().manual_seed(seed)
    model_was = model.training
    model.eval()
    state = generator.get_state()
    images = sample_noise(model, n, generator)
    if getattr(model, "decoder_heads", False):
        generator.set_state(state)  # the same latents, without reranking
        plain = sample_noise(model, n, generator, rerank=False)
    model.train(model_was)
    summary = confidence_summary(classifier.probabilities(images), threshold)
    if getattr(model, "decoder_heads", False):
        summary["clip_routed_confident_share"] = confidence_summary(classifier.probabilities(plain),
                                                                    threshold)["confident_share"]
    summary["n"] = n
    summary["threshold"] = threshold
    return summary


def generation_report(model, classifier, dataset=None, per_label: int = 100, n_noise: int = 1000,
                      seed: int = 0) -> dict:
    """Both generation figures in one dict (real-image diversity from dataset's test split if given)."""
    real = (dataset.test_images, dataset.test_labels) if dataset is not None else (None, None)
    cond = conditional_generation(model, classifier, per_label, seed, *real)
    uncond = unconditional_generation(model, classifier, n_noise, seed + 1)
    return {"conditional": cond, "unconditional": uncond}


@torch.no_grad()
def sample_grid(model, per_label: int = 10, noise_rows: int = 2, seed: int = 0) -> torch.Tensor:
    """Images for a sample sheet: one row of q(z | label) samples per label, then `noise_rows`
    rows of z ~ N(0, I) samples; (num_labels + noise_rows) * per_label x C x H x W."""
    generator = torch.Generator().manual_seed(seed)
    was = model.training
    model.eval()
    rows = [sample_label(model, label, per_label, generator) for label in range(model.num_labels)]
    rows.append(sample_noise(model, noise_rows * per_label, generator))
    model.train(was)
    return torch.cat(rows)
