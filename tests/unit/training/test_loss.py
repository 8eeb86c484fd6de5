import torch
import torch.nn.functional as F

from rhlens.encoding import encode_examples
from rhlens.training.data import collate
from rhlens.training.loss import answer_token_losses, heldout_answer_loss


def _reference_losses(model, encoded):
    """Per answer token cross-entropy from unpadded single-example forwards with full logits."""
    out = []
    for enc in encoded:
        logits = model(torch.tensor([enc.tokens]), prepend_bos=False)[0]
        a0, a1 = enc.completion_span
        out.append(F.cross_entropy(logits[a0 - 1 : a1 - 1], torch.tensor(enc.answer_tokens), reduction="none"))
    return torch.cat(out)


def test_answer_loss_matches_unpadded_reference_both_padding_sides(build_model, kv_tokenizer, examples):
    model = build_model(n_key_value_heads=2)
    encoded = encode_examples(kv_tokenizer, examples[:5])
    reference = _reference_losses(model, encoded)
    for side in ("left", "right"):
        batch = collate(encoded, pad_id=kv_tokenizer.pad_token_id, padding_side=side)
        got = answer_token_losses(model, batch)
        assert torch.allclose(got, reference, atol=1e-5), side


def test_soft_capped_models_use_full_logits(build_model, kv_tokenizer, examples):
    model = build_model(output_logits_soft_cap=5.0)
    encoded = encode_examples(kv_tokenizer, examples[:3])
    batch = collate(encoded, pad_id=0, padding_side="left")
    assert torch.allclose(answer_token_losses(model, batch), _reference_losses(model, encoded), atol=1e-5)


def test_only_answer_tokens_carry_gradient_signal(build_model, kv_tokenizer, examples):
    """Changing the last prompt token's *target* changes nothing: prompt tokens are not targets."""
    model = build_model()
    enc = encode_examples(kv_tokenizer, examples[:1])[0]
    batch = collate([enc], pad_id=0)
    assert answer_token_losses(model, batch).numel() == len(enc.answer_tokens)


def test_heldout_loss_is_the_mean(build_model, kv_tokenizer, examples):
    model = build_model()
    encoded = encode_examples(kv_tokenizer, examples[:4])
    batches = [collate(encoded[:2], pad_id=0), collate(encoded[2:], pad_id=0)]
    expected = _reference_losses(model, encoded).mean()
    assert abs(heldout_answer_loss(model, batches) - float(expected.detach())) < 1e-5
