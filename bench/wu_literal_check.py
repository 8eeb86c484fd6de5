"""How much do ``rule="rhlens"`` and ``rule="wu-literal"`` differ on a real model? (issue 21 item 2)

On stories260K (``--model``, default ``../shared/realdata/models/stories260K``), float32, for four
sets of examples: 40 name-copy prompts (the model continues with a name from the context), 10
generated kv prompts, 10 lost-in-the-middle kv prompts (UUID values in JSON quotes) and Wu et al.'s
own needles (``retrieval_head/needles.jsonl``) in a short haystack; and the name-copy prompts on
the same model with its tokenizer's EOS moved onto ``▁the`` (an exact relabelling: Wu's loop does
not stop at EOS). Prints per set, with
``rouge_gate=None`` (every trial counts, so hits are compared) and with the default gate:

- ``span``: examples whose scored prompt positions differ (Wu's window against the answer spans),
  ``no_window``: examples where Wu's window finds nothing;
- ``response``: examples whose decoded response differs (Wu's loop stops only at a line feed);
- ``hits``: examples whose hits differ in any head; ``heads``: heads whose mean score differs
  (by more than 1e-6), of ``n_heads``; ``retrieval``: heads over 0.1 under each rule;
- ``gate_differs``: examples the two gates decide differently; ``counted``: examples counted under each.

Run: ``python bench/wu_literal_check.py`` (CPU, a few minutes; needs ``rouge_score``: ``pip
install "rhlens[wu]"``). Times are not measured.
"""

import argparse
import gzip
import json
import shutil
import tempfile
from pathlib import Path

HAYSTACK = ("Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog. "
            "One day, the sun was warm and the sky was blue. ")


def name_copy():
    import importlib.util

    spec = importlib.util.spec_from_file_location("observe_check", Path(__file__).with_name("observe_check.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.examples()


def wu_needles(realdata: Path):
    from rhlens.tasks import Example

    out = []
    for line in (realdata / "retrieval_head" / "needles.jsonl").read_text().splitlines():
        rec = json.loads(line)
        needle, real = rec["needle"].strip(), rec["real_needle"].strip()
        prompt = f"{HAYSTACK}{needle} {HAYSTACK}\nBased on the content of the book, Question: {rec['question']}\nAnswer:"
        n0 = prompt.index(needle)
        s = prompt.lower().find(real.lower().rstrip("."), n0)
        if s < 0:
            continue
        out.append(Example(prompt=prompt, answer=real, needles=((n0, n0 + len(needle)),), task="niah", variant="real",
                           answer_spans=((s, s + len(real.rstrip("."))),)))
    return out


def compare(model, examples, gate):
    import torch

    from rhlens.scoring import retrieval_scores
    from rhlens.scoring.answer_spans import encode_for_scoring
    from rhlens.scoring.wu_literal import WuLiteral

    kw = dict(max_new_tokens=50, rouge_gate=0.5 if gate else None, progress=False, batch_size=8)
    a = retrieval_scores(model, examples, **kw)
    b = retrieval_scores(model, examples, rule="wu-literal", **kw)
    mine = encode_for_scoring(model, examples, method="decode", max_new_tokens=50)
    wu = WuLiteral(max_new_tokens=50).prepare(model, examples)
    return {
        "n": len(examples),
        "span": sum(not x.answer_mask.equal(y.answer_mask) for x, y in zip(mine, wu)),
        "no_window": sum(not bool(y.answer_mask.any()) for y in wu),
        "response": sum(x != y for x, y in zip(a.trials.responses, b.trials.responses)),
        "hits": int((a.trials.hits != b.trials.hits).flatten(1).any(1).sum()),
        "heads": int(((a.scores - b.scores).abs() > 1e-6).sum()),
        "n_heads": a.scores.numel(),
        "retrieval": (len(a.above(0.1)), len(b.above(0.1))),
        "counted": (a.n_counted, b.n_counted),
        "gate_differs": int((a.counted != b.counted).sum()) if gate else None,
        "max_abs_diff": round(float((a.scores - b.scores).abs().max()), 4) if torch.isfinite(a.scores).all() else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realdata", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "realdata"))
    args = ap.parse_args()
    realdata = Path(args.realdata)
    if not (realdata / "models" / "stories260K").is_dir():
        raise SystemExit(f"{realdata}/models/stories260K is absent")
    import warnings

    from rhlens.models import load_hf_checkpoint
    from rhlens.tasks import generate, load_lost_in_the_middle_kv

    model = load_hf_checkpoint(realdata / "models" / "stories260K")
    tok = model.tokenizer
    kv_file = realdata / "lost_in_the_middle" / "kv-retrieval-75_keys.jsonl.gz"
    assert gzip.open(kv_file).read(1)
    sets = {
        "name_copy": name_copy(),
        "kv_generated": generate("kv", "symbolic", n=10, context_tokens=200, tokenizer=tok, seed=0),
        "lim_kv": list(load_lost_in_the_middle_kv(kv_file, n_pairs=3))[:10],
        "wu_needles": wu_needles(realdata),
    }
    warnings.simplefilter("ignore")
    for name, exs in sets.items():
        for gate in (False, True):
            print(json.dumps({"set": name, "gate": "rouge 0.5" if gate else "none", **compare(model, exs, gate)}))
    with tempfile.TemporaryDirectory() as tmp:  # EOS moved onto '▁the': the same model, relabelled
        shutil.copytree(realdata / "models" / "stories260K", Path(tmp) / "m")
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(Path(tmp) / "m"), eos_token="\u2581the").save_pretrained(Path(tmp) / "m")
        relabelled = load_hf_checkpoint(Path(tmp) / "m")
        for gate in (False, True):
            print(json.dumps({"set": "name_copy, EOS relabelled to '▁the'", "gate": "rouge 0.5" if gate else "none",
                              **compare(relabelled, sets["name_copy"], gate)}))


if __name__ == "__main__":
    main()
