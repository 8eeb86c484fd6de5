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


def test_saved_weights_load_back_into_a_fresh_base(tmp_path):
    """What resuming a fine-tune of the base does (rhlens study's checkpoints): on 4.x the saved MLP
    biases convert to zero up/gate biases that the bridge was built without, which was refused."""
    from rhlens.training.checkpoint import load_model_weights

    model = load_base()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.01)
    save_model(model, tmp_path / "scaled")
    fresh = load_base()
    load_model_weights(tmp_path / "scaled", fresh)
    tokens = torch.tensor([[1, 5, 9, 13, 17, 21]])
    with torch.no_grad():
        assert torch.allclose(fresh(tokens), model(tokens), atol=1e-5)
        assert not torch.allclose(load_base()(tokens), model(tokens), atol=1e-3)
