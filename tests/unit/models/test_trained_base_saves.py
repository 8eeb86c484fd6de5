"""A trained embedded base saves exactly on either TransformerLens major (on 4.x the bridge's Hugging
Face MLP had up/gate biases that training moved and that have no TransformerLens form, so
``rhlens quickstart`` failed at its last step)."""

import torch

from rhlens.models import load_base, load_model, save_model


def test_a_trained_base_saves_and_loads_back(tmp_path):
    model = load_base()
    tokens = torch.tensor([[1, 5, 9, 13, 17, 21]])
    model.train()
    loss = model(tokens).float().logsumexp(-1).mean()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 1e-2 * p.grad.sign()
    model.eval()
    save_model(model, tmp_path / "trained")
    loaded = load_model(tmp_path / "trained")
    with torch.no_grad():
        assert torch.allclose(loaded(tokens), model(tokens), atol=1e-4)
