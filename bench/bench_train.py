"""Speed of rhlens's trainer: ``train`` against a bare PyTorch loop, fused against eager attention.

Run from the repository root::

    python bench/bench_train.py              # defaults: 1 thread, tiny Llama, CPU
    python bench/bench_train.py --threads 2 --steps 30

Prints tokens/s and ratios:

- ``train / bare loop``: :func:`rhlens.train` against a hand-written loop (pre-padded batches,
  full-logit cross-entropy on the answer tokens, AdamW, clipping, schedule) on the same model,
  examples and batch order, both with fused attention. Target >= 0.9.
- ``eager / fused`` at 256 and 1024 tokens, forward + backward: the attention core (TransformerLens's
  own score, mask, softmax and weighted-sum steps against one SDPA call; target >= 2.5), one whole
  attention layer (with the Q/K/V/O projections and rotary, which both paths share), and the whole
  model, through :func:`rhlens.adapter.fused.fused_attention`.
"""

import argparse
import contextlib
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore", category=DeprecationWarning)

import rhlens  # noqa: E402
from rhlens.adapter.fused import fused_attention  # noqa: E402
from rhlens.encoding import pad_id_of  # noqa: E402
from rhlens.tasks import generate  # noqa: E402
from rhlens.training import TrainConfig, train  # noqa: E402
from rhlens.training.data import IGNORE_INDEX, batch_indices, collate, prepare_examples  # noqa: E402
from rhlens.training.optim import build_optimizer, build_scheduler  # noqa: E402


def _model(tok, args, n_ctx):
    return rhlens.tiny_llama(
        tokenizer=tok, n_layers=args.layers, d_model=args.d_model, n_heads=args.heads,
        n_key_value_heads=args.kv_heads, d_mlp=args.d_model * 4, n_ctx=n_ctx, seed=0,
    )


def bare_loop(model, encoded, config, pad_id, steps):
    """The loop a user would write by hand; returns tokens/s."""
    batches = [
        collate([encoded[i] for i in batch_indices(s, batch_size=config.batch_size, n_examples=len(encoded),
                                                   seed=config.seed, shuffle=config.shuffle)],
                pad_id=pad_id, padding_side="right")
        for s in range(steps)
    ]
    params = list(model.parameters())
    opt = build_optimizer(params, config)
    sched = build_scheduler(opt, config, steps)
    model.train()
    tokens = 0
    with fused_attention(model):
        start = time.perf_counter()
        for batch in batches:
            logits = model(batch.tokens, prepend_bos=False, padding_side="right")
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORE_INDEX)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            opt.step()
            sched.step()
            float(loss.detach())  # the trainer reads the loss each step too
            tokens += batch.n_tokens
        elapsed = time.perf_counter() - start
    return tokens / elapsed


def bench_trainer(args):
    examples = generate("kv", "symbolic", n=64, context_tokens=args.context, seed=0)
    tok = rhlens.word_level_tokenizer([e.prompt + e.completion for e in examples])
    n_ctx = 2 * args.context
    config = TrainConfig(steps=args.steps, batch_size=args.batch, lr=1e-3, progress=False)
    encoded = prepare_examples(examples, tokenizer=tok, n_ctx=n_ctx)
    pad_id = pad_id_of(tok)
    results = {"train": [], "bare": []}
    for _ in range(args.repeats):
        model = _model(tok, args, n_ctx)
        start = time.perf_counter()
        res = train(model, examples, config)
        results["train"].append(res.tokens_seen / (time.perf_counter() - start))
        model = _model(tok, args, n_ctx)
        results["bare"].append(bare_loop(model, encoded, config, pad_id, args.steps))
    train_tps, bare_tps = statistics.median(results["train"]), statistics.median(results["bare"])
    print(f"trainer: {args.steps} steps x {args.batch} examples of ~{len(encoded[0].tokens)} tokens")
    print(f"  train     {train_tps:10,.0f} tokens/s  (whole call: encoding, setup, steps)")
    print(f"  bare loop {bare_tps:10,.0f} tokens/s")
    print(f"  ratio train / bare = {train_tps / bare_tps:.2f}  (target >= 0.9)")


def _time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_attention(args):
    tok = rhlens.default_tokenizer()
    for n_tokens in (256, 1024):
        model = _model(tok, args, n_tokens)
        model.train()
        attn = model.blocks[0].attn
        x = torch.randn(args.attn_batch, n_tokens, args.d_model, requires_grad=True)
        tokens = torch.randint(4, model.cfg.d_vocab, (args.attn_batch, n_tokens))

        def layer():
            attn(x, x, x).sum().backward()

        # the attention core alone: TransformerLens's own eager steps against one SDPA call
        d_head = args.d_model // args.heads
        q = torch.randn(args.attn_batch, n_tokens, args.heads, d_head, requires_grad=True)
        k = torch.randn(args.attn_batch, n_tokens, args.kv_heads, d_head, requires_grad=True)
        v = torch.randn(args.attn_batch, n_tokens, args.kv_heads, d_head, requires_grad=True)

        def core_eager():
            scores = attn.hook_attn_scores(attn.apply_causal_mask(attn.calculate_attention_scores(q, k)))
            pattern = scores.softmax(-1)
            pattern = torch.where(torch.isnan(pattern), torch.zeros_like(pattern), pattern)
            attn.hook_pattern(pattern)
            attn.calculate_z_scores(v, pattern).sum().backward()

        def core_fused():
            F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, scale=1 / attn.attn_scale,
                enable_gqa=args.kv_heads != args.heads,
            ).sum().backward()

        ce, cf = _time(core_eager, args.repeats * 2), _time(core_fused, args.repeats * 2)

        def whole():
            model(tokens, prepend_bos=False, padding_side="right").logsumexp(-1).mean().backward()

        row = {}
        for name, fn in (("layer", layer), ("model", whole)):
            eager = _time(fn, args.repeats * 2)
            with fused_attention(model):
                fused = _time(fn, args.repeats * 2)
            row[name] = (eager, fused)
        (le, lf), (me, mf) = row["layer"], row["model"]
        print(f"attention at {n_tokens} tokens (batch {args.attn_batch}, forward + backward), eager -> fused:")
        print(f"  core (scores..z)  {ce * 1e3:8.1f} ms -> {cf * 1e3:8.1f} ms  ratio {ce / cf:5.2f}x  (target >= 2.5)")
        print(f"  layer (with QKVO) {le * 1e3:8.1f} ms -> {lf * 1e3:8.1f} ms  ratio {le / lf:5.2f}x")
        print(f"  whole model       {me * 1e3:8.1f} ms -> {mf * 1e3:8.1f} ms  ratio {me / mf:5.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--context", type=int, default=256, help="prompt tokens of the trainer benchmark")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--attn-batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-trainer", action="store_true")
    parser.add_argument("--skip-attention", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), tiny Llama {args.layers}x{args.d_model}, "
          f"{args.heads} heads / {args.kv_heads} kv heads")
    if not args.skip_trainer:
        bench_trainer(args)
    if not args.skip_attention:
        bench_attention(args)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
