"""The perceptual loss uses pretrained VGG16 weights or reports that it cannot — never random ones."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision.models as tvm

from hyreslib.hyres import perceptual


def test_offline_without_cached_weights_returns_none_with_the_reason(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline)  # what weights use
    monkeypatch.setattr(perceptual, "_reachable", lambda url: True)  # the host answers, the download fails
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    features, why = perceptual.load_vgg_features()
    assert features is None
    assert "unavailable" in why and "vgg16-397923af.pth" in why and str(tmp_path) in why


def test_offline_no_download_is_tried(monkeypatch, tmp_path):
    def download(*args, **kwargs):
        raise AssertionError("tried to download while offline")

    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", download)
    monkeypatch.setattr("socket.create_connection", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    features, why = perceptual.load_vgg_features()
    assert features is None and "no download tried" in why and str(tmp_path) in why


def _stand_in_weights() -> dict[str, torch.Tensor]:
    """A complete VGG16 state dict, built cheaply: random features, a zero classifier (unused)."""
    torch.manual_seed(0)
    features = tvm.vgg.make_layers(tvm.vgg.cfgs["D"])  # VGG16's features alone: no 120M-parameter classifier
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    for name, shape in (("0", (4096, 25088)), ("3", (4096, 4096)), ("6", (1000, 4096))):
        state[f"classifier.{name}.weight"], state[f"classifier.{name}.bias"] = torch.zeros(shape), torch.zeros(shape[0])
    return state


def test_weights_from_torchvisions_mechanism_give_a_frozen_loss(monkeypatch):
    state = _stand_in_weights()  # stands in for the cached ImageNet file
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", lambda *a, **k: state)
    monkeypatch.setattr(perceptual, "_reachable", lambda url: True)
    features, how = perceptual.load_vgg_features()
    assert features is not None and "ImageNet" in how
    torch.testing.assert_close(features[0].weight, state["features.0.weight"])
    loss = perceptual.PerceptualLoss(features).train()
    assert not features.training and not any(p.requires_grad for p in features.parameters())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    assert float(loss(x, x.detach()).detach()) == 0.0
    value = loss(x, torch.rand(1, 3, 32, 32))
    value.backward()
    assert value > 0 and x.grad is not None and x.grad.abs().sum() > 0
