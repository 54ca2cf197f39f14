"""CLIPVAE: an image VAE and a label VAE sharing one latent space, tied by CLIP."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import augment, losses
from .architecture import reconstruction_scale, resolve_arch
from .config import TrainConfig
from .networks import IMAGE_NETWORKS, LabelDecoder, LabelEncoder

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clamps the temperature at 100
RERANK_PIXELS = 1 << 24  # pixels of heads' pictures decode_reranked holds at once


class CLIPVAE(nn.Module):
    def __init__(self, image_shape, num_labels: int, *, arch: str = "mlp", z_dim: int = 16, width: int = 64,
                 depth: int = 6, shared_blocks: bool = False, noise: str = "gaussian", label_names=None,
                 decoder_heads: bool = False):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.num_labels = int(num_labels)
        arch = resolve_arch(arch, self.image_shape)  # "auto": the network that serves this shape
        self.arch, self.z_dim, self.width, self.depth = arch, z_dim, width, depth
        self.shared_blocks, self.noise = shared_blocks, noise
        self.decoder_heads = bool(decoder_heads)
        self.label_names = list(label_names) if label_names else [str(i) for i in range(num_labels)]
        encoder_cls, decoder_cls = IMAGE_NETWORKS[arch]
        self.image_encoder = encoder_cls(self.image_shape, z_dim, width, depth, shared_blocks)
        self.label_encoder = LabelEncoder(num_labels, z_dim, width)
        heads = {"heads": self.num_labels} if self.decoder_heads else {}
        self.image_decoder = decoder_cls(self.image_shape, z_dim, width, depth, shared_blocks, **heads)
        self.label_decoder = LabelDecoder(num_labels, z_dim, width)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @classmethod
    def from_config(cls, config: TrainConfig, image_shape, num_labels: int, label_names=None) -> "CLIPVAE":
        return cls(image_shape, num_labels, arch=config.arch, z_dim=config.z_dim, width=config.width,
                   depth=config.depth, shared_blocks=config.shared_blocks, noise=config.noise,
                   label_names=label_names, decoder_heads=config.decoder_heads)

    def architecture(self) -> dict:
        """Everything needed to rebuild this module before loading its state_dict."""
        return dict(image_shape=list(self.image_shape), num_labels=self.num_labels, arch=self.arch,
                    z_dim=self.z_dim, width=self.width, depth=self.depth, shared_blocks=self.shared_blocks,
                    noise=self.noise, label_names=self.label_names, decoder_heads=self.decoder_heads)

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    # --- the public API ---------------------------------------------------
    def encode_image(self, x: torch.Tensor):
        """x: float in [0, 1], N x C x H x W -> (mu, logvar)."""
        return self.image_encoder(x)

    def encode_label(self, y: torch.Tensor):
        return self.label_encoder(y)

    def decode_image_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Pixel logits. With routed decoder heads, each row comes out of the head of `labels`
        (given when generating from a label), else of the label CLIP scores highest at z."""
        if not self.decoder_heads:
            return self.image_decoder(z)
        if labels is None:
            with torch.no_grad():
                labels = self.clip_logits(z).argmax(1)
        return self.image_decoder(z, labels.to(z.device))

    @torch.no_grad()
    def decode_reranked(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel means, N x C x H x W, for samples from noise. With routed heads every head
        draws its picture at each point, CLIP scores each picture encoded again, and the picture
        kept is the one whose head's label CLIP recognises best in it: CLIP reranking of
        candidates, as DALL-E reranks its samples, with the ten heads as the candidates. Between
        two classes the head of CLIP's label at the point itself draws, about one time in six,
        what the independent judge reads as another digit (README "Quality"). Without heads:
        decode_image."""
        if not self.decoder_heads:
            return self.decode_image(z)
        # every head's picture of every point at once: in chunks of RERANK_PIXELS (64 MB of floats)
        chunk = max(1, RERANK_PIXELS // (self.num_labels * math.prod(self.image_shape)))
        if len(z) > chunk:
            return torch.cat([self.decode_reranked(part) for part in z.split(chunk)])
        every = torch.sigmoid(self.image_decoder.every_head(z))
        n, k = every.shape[:2]
        mu, _ = self.encode_image(every.flatten(0, 1))
        own = self.clip_logits(mu).view(n, k, k).log_softmax(2).diagonal(dim1=1, dim2=2)
        return every[torch.arange(n, device=z.device), own.argmax(1)]

    def decode_image(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """N x C x H x W pixel means in [0, 1] (labels: see decode_image_logits)."""
        return torch.sigmoid(self.decode_image_logits(z, labels))

    def decode_label(self, z: torch.Tensor) -> torch.Tensor:
        """Label logits, N x num_labels."""
        return self.label_decoder(z)

    def label_latents(self) -> torch.Tensor:
        """mu of every label, num_labels x z_dim (the CLIP prototypes)."""
        return self.label_encoder(torch.arange(self.num_labels, device=self.device))[0]

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()

    def clip_logits(self, z: torch.Tensor, label_latents: torch.Tensor | None = None) -> torch.Tensor:
        """label_latents: this model's label_latents(), when the caller already has them."""
        protos = F.normalize(self.label_latents() if label_latents is None else label_latents, dim=1)
        return self.scale() * F.normalize(z, dim=1) @ protos.t()

    def clip_scores(self, z: torch.Tensor, label_latents: torch.Tensor | None = None) -> torch.Tensor:
        """p(label | z) = softmax over labels of exp(logit_scale) * cos(z, mu_label)."""
        return self.clip_logits(z, label_latents).softmax(dim=1)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        std = torch.exp(0.5 * logvar)
        # The reference draws uniform noise by mistake; kept for its preset only.
        eps = torch.rand_like(std) if self.noise == "uniform" else torch.randn_like(std)
        return mu + eps * std

    # --- training ---------------------------------------------------------
    def loss_terms(self, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, across=None,
                   shift_margins: tuple | None = None) -> dict:
        """The five loss terms (unweighted) for a batch, plus label_match and prior_mmd when weighted.

        across: for a batch split over ranks, a core.clip_gather.AcrossRanks; CLIP and the prior
        MMD then see the whole global batch (the other terms are per-sample means).
        shift_margins: (background colours, content margins) of the batch's images, as
        augment.background / content_margins give them, when the caller keeps them."""
        if getattr(config, "augment_px", 0.0) > 0 and self.training:
            fill, margins = shift_margins if shift_margins is not None else (None, None)
            x = augment.jitter(x, config.augment_px, fill=fill, margins=margins)
        mu_x, logvar_x = self.encode_image(x)
        z_x = self.reparameterize(mu_x, logvar_x)
        mu_y, logvar_y = self.encode_label(y)
        z_y = self.reparameterize(mu_y, logvar_y)
        logit_scale = self.logit_scale.clamp(max=MAX_LOGIT_SCALE)
        if config.clip_mode == "batch":
            clip = losses.clip_batch(z_x, z_y, logit_scale) if across is None else across.clip_batch(z_x, z_y, logit_scale)
        else:
            clip_prototype = losses.clip_prototype if across is None else across.clip_prototype
            clip = clip_prototype(z_x, y, self.label_latents(), logit_scale)
        terms = {
            "clip": clip,
            "kld_image": losses.kl_divergence(mu_x, logvar_x, config.kld_reduction, config.free_bits),
            "kld_label": losses.kl_divergence(mu_y, logvar_y, config.kld_reduction, config.free_bits),
            # routed heads learn from their own label's images only (CLIP picks the head later)
            "rec_image": losses.reconstruction(self.decode_image_logits(z_x, y if self.decoder_heads else None),
                                               x, config.rec_reduction)
                         * reconstruction_scale(self.image_shape, getattr(config, "rec_reference_pixels", 0)),
            "ce_label": F.cross_entropy(self.decode_label(z_y), y),
        }
        if getattr(config, "w_prior_mmd", 0.0) > 0:  # optional, absent for the reference
            terms["prior_mmd"] = losses.prior_mmd(z_x) if across is None else across.prior_mmd(z_x)
        if getattr(config, "w_label_match", 0.0) > 0:  # optional sixth term, absent for the reference
            terms["label_match"] = losses.label_match(mu_x, logvar_x, mu_y, logvar_y,
                                                        getattr(config, "label_pull", 0.0),
                                                        getattr(config, "label_match_reverse", 0.0))
        return terms


def weighted_total(terms: dict, config: TrainConfig, kl_factor: float = 1.0) -> torch.Tensor:
    total = (config.w_clip * terms["clip"]
             + kl_factor * config.w_kld_image * terms["kld_image"]
             + kl_factor * config.w_kld_label * terms["kld_label"]
             + config.w_rec_image * terms["rec_image"]
             + config.w_ce_label * terms["ce_label"])
    if "label_match" in terms:
        total = total + getattr(config, "w_label_match", 0.0) * terms["label_match"]
    if "prior_mmd" in terms:
        total = total + getattr(config, "w_prior_mmd", 0.0) * terms["prior_mmd"]
    return total
