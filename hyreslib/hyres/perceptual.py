"""VGG16 perceptual loss for the refinement stage, with pretrained weights or not at all.

A perceptual loss computed with randomly initialised VGG features is noise dressed up as a
metric, so :func:`load_vgg_features` either returns ImageNet-trained features (through
torchvision's normal weight mechanism: the local cache under ``$TORCH_HOME``, else a download)
or ``None`` with the reason, and the caller trains with the MSE term only and says so.

Data flow::

    x, y in [0,1] --ImageNet normalisation--> VGG16 conv1_2 .. conv4_3 (frozen)
        --> mean |f(x) - f(y)| per tap --> average over taps
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TAPS = (3, 8, 15, 22)  # outputs of relu1_2, relu2_2, relu3_3, relu4_3 in torchvision's vgg16.features


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether the download host answers at all (offline, a download would only fail, slowly)."""
    import socket
    from urllib.parse import urlparse

    host = urlparse(url)
    try:
        socket.create_connection((host.hostname, host.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_vgg_features() -> tuple[nn.Module | None, str]:
    """(frozen VGG16 feature extractor up to relu4_3, how it was obtained) or (None, why not)."""
    from pathlib import Path

    from torchvision.models import VGG16_Weights, vgg16

    url = VGG16_Weights.IMAGENET1K_V1.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not cached.is_file() and not _reachable(url):
        return None, (f"pretrained VGG16 weights are not cached and {url.split('/')[2]} is unreachable "
                      f"(offline; no download tried); put {cached.name} in {cached.parent} "
                      f"to enable the perceptual term")
    try:
        model = vgg16(weights=VGG16_Weights.IMAGENET1K_V1, progress=False)
    except Exception as exc:  # no cache and no network: URLError, OSError, RuntimeError...
        return None, (f"pretrained VGG16 weights unavailable ({type(exc).__name__}: {exc}); "
                      f"put {VGG16_Weights.IMAGENET1K_V1.url.rsplit('/', 1)[-1]} in "
                      f"{torch.hub.get_dir()}/checkpoints to enable the perceptual term")
    features = model.features[: TAPS[-1] + 1].eval()
    for p in features.parameters():
        p.requires_grad_(False)
    return features, "ImageNet-pretrained VGG16 (torchvision IMAGENET1K_V1)"


class PerceptualLoss(nn.Module):
    """Mean absolute difference of VGG16 activations at :data:`TAPS`, averaged over the taps."""

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.features.eval()  # frozen: never in training mode
        return self

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        a, b = (x - self.mean) / self.std, (y - self.mean) / self.std
        total, taps = x.new_zeros(()), 0
        for i, layer in enumerate(self.features):
            a, b = layer(a), layer(b)
            if i in TAPS:
                total = total + (a - b).abs().mean()
                taps += 1
        return total / taps
