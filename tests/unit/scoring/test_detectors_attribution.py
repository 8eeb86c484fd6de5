"""knockout_attribution: the first-order drop of log P(answer) when a head is zeroed at the answer
rows, against a direct autograd computation on the model's own hooks (no rhlens run code)."""

import torch

from rhlens.models import tiny_llama, word_level_tokenizer
from rhlens.scoring.detectors.attribution import knockout_attribution
from rhlens.tasks.example import Example


def test_equals_direct_autograd():
    exs = [Example("Ann lives in Rome .\nAnswer:", "Rome", ((13, 17),), "niah", "real"),
           Example("Bo went to Oslo and then to Rome .\nAnswer:", "Oslo and", ((11, 15),), "niah", "real")]
    tok = word_level_tokenizer([e.prompt + e.completion for e in exs])
    model = tiny_llama(tokenizer=tok, seed=3)
    got = knockout_attribution(model, exs, batch_size=2, progress=False).per_example
    for n, ex in enumerate(exs):
        ids = [tok.bos_token_id] + tok(ex.prompt + ex.completion, add_special_tokens=False)["input_ids"]
        n_prompt = 1 + len(tok(ex.prompt, add_special_tokens=False)["input_ids"])
        zs = {}

        def keep(z, hook):
            z.retain_grad()
            zs[hook.layer()] = z
            return z

        with torch.enable_grad():
            logits = model.run_with_hooks(torch.tensor([ids]), fwd_hooks=[(lambda name: name.endswith("hook_z"), keep)])
            lp = logits[0, :-1].log_softmax(-1).gather(-1, torch.tensor(ids[1:])[:, None])[n_prompt - 1 :].sum()
            lp.backward()
        for layer, z in zs.items():
            ref = (z * z.grad)[0, n_prompt - 1 : len(ids) - 1].sum(dim=(0, 2))  # drop = -(0 - z) . grad
            torch.testing.assert_close(got[n, layer], ref.detach().float(), atol=1e-5, rtol=1e-4)
    assert got.abs().sum() > 0
