"""Two CPU processes (torchrun, gloo) score, evaluate and sweep shards of the examples; rank 0's
gathered results equal one process's."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

import rhlens
from rhlens.distributed_eval import merge_shards, run_sharded
from rhlens.evaluation import EvalResult
from rhlens.interventions.attribution import AttributionSweep

SETUP = textwrap.dedent(
    """
    import rhlens
    from rhlens.tasks import generate

    examples = generate("kv", "symbolic", n=7, context_tokens=40, seed=0, key_chunks=1, value_chunks=1)
    tok = rhlens.word_level_tokenizer([e.prompt + e.completion for e in examples])
    model = rhlens.tiny_llama(tokenizer=tok, n_layers=2, d_model=32, n_heads=4, d_mlp=64, n_ctx=64, seed=0)
    other = rhlens.tiny_llama(tokenizer=tok, n_layers=2, d_model=32, n_heads=4, d_mlp=64, n_ctx=64, seed=1)
    ANALYZERS = {
        "evaluate": lambda ex: rhlens.evaluate(model, ex, max_new_tokens=4, batch_size=2, progress=False),
        "scores": lambda ex: rhlens.retrieval_scores(model, ex, max_new_tokens=4, rouge_gate=None, batch_size=2,
                                                     progress=False),
        "sweep": lambda ex: rhlens.patch_sweep(other, model, ex, batch_size=2, progress=False),
        "attribution": lambda ex: rhlens.attribution_sweep(other, model, ex, batch_size=2, gradient_dropout=True,
                                                           progress=False),
    }
    """
)

SCRIPT = SETUP + textwrap.dedent(
    """
    import json, sys, torch
    from rhlens.distributed_eval import run_sharded
    from rhlens.training.distributed import setup, teardown

    torch.set_num_threads(1)
    info = setup()
    out = {name: run_sharded(fn, examples, info) for name, fn in ANALYZERS.items()}
    if info.is_main:
        with open(sys.argv[1], "w") as f:
            json.dump({
                "evaluate": [out["evaluate"].per_example.tolist(), out["evaluate"].predictions],
                "scores": [out["scores"].per_example.tolist(), out["scores"].trials.responses, out["scores"].trials.hits.tolist()],
                "sweep": [out["sweep"].baseline.tolist(), out["sweep"].patched.tolist()],
                "attribution": [out["attribution"].patched.tolist(), out["attribution"].dropped.tolist()],
            }, f)
    else:
        assert all(v is None for v in out.values())
    teardown(info)
    """
)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_equal_one(tmp_path):
    script = tmp_path / "score_dp.py"
    script.write_text(SCRIPT)
    result = tmp_path / "rank0.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(result)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    got = json.loads(result.read_text())

    scope: dict = {}
    exec(SETUP, scope)  # the same models and examples, one process
    one = {name: fn(scope["examples"]) for name, fn in scope["ANALYZERS"].items()}
    close = dict(rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.tensor(got["evaluate"][0]), one["evaluate"].per_example, **close)
    assert got["evaluate"][1] == one["evaluate"].predictions
    torch.testing.assert_close(torch.tensor(got["scores"][0]), one["scores"].per_example, **close)
    assert got["scores"][1] == one["scores"].trials.responses and got["scores"][2] == one["scores"].trials.hits.tolist()
    torch.testing.assert_close(torch.tensor(got["sweep"][0]), one["sweep"].baseline, **close)
    torch.testing.assert_close(torch.tensor(got["sweep"][1]), one["sweep"].patched, **close)
    torch.testing.assert_close(torch.tensor(got["attribution"][0]), one["attribution"].patched, **close)
    torch.testing.assert_close(torch.tensor(got["attribution"][1]), one["attribution"].dropped, **close)


def test_merge_puts_strided_shards_back_in_order():
    # 5 items over 2 ranks: rank 0 had items 0, 2, 4 and rank 1 items 1, 3
    parts = [EvalResult(per_example=torch.tensor([0.0, 2.0, 4.0]), predictions=["a", "c", "e"]),
             EvalResult(per_example=torch.tensor([1.0, 3.0]), predictions=["b", "d"])]
    merged = merge_shards(parts, 2, 5)
    assert merged.per_example.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0] and merged.predictions == list("abcde")
    sweeps = [rhlens.PatchSweep(baseline=torch.tensor([0.0, 2.0]), patched=torch.tensor([[[10.0, 12.0]]])),
              rhlens.PatchSweep(baseline=torch.tensor([1.0]), patched=torch.tensor([[[11.0]]]))]
    merged = merge_shards(sweeps, 2, 3)
    assert merged.baseline.tolist() == [0.0, 1.0, 2.0] and merged.patched.tolist() == [[[10.0, 11.0, 12.0]]]
    assert run_sharded(lambda shard: len(shard), [1, 2, 3]) == 3  # one process: everything at once


def test_merge_puts_attribution_sweeps_back_in_order_on_their_example_axes():
    # AttributionSweep's patched [layer, head, example] and dropped [drop, layer, head, example]
    # carry the examples last; merging by class-name lookup concatenated them on axis 0 and failed
    def part(examples):
        e = torch.tensor(examples, dtype=torch.float)
        return AttributionSweep(baseline=e, patched=(10 + e).expand(2, 1, -1).clone(),
                                dropped=(100 + e).expand(2, 2, 1, -1).clone())

    merged = merge_shards([part([0, 2, 4]), part([1, 3])], 2, 5)
    assert merged.baseline.tolist() == [0, 1, 2, 3, 4]
    assert merged.patched.shape == (2, 1, 5) and merged.patched[1, 0].tolist() == [10, 11, 12, 13, 14]
    assert merged.dropped.shape == (2, 2, 1, 5) and merged.dropped[1, 0, 0].tolist() == [100, 101, 102, 103, 104]
    plain = merge_shards([AttributionSweep(baseline=torch.zeros(1), patched=torch.zeros(1, 1, 1))] * 2, 2, 2)
    assert plain.dropped is None and plain.patched.shape == (1, 1, 2)


def test_merge_and_pack_keep_nested_trials_in_order():
    from rhlens.distributed_eval import _pack, _unpack
    from rhlens.scoring import HeadScores, RetrievalTrials

    def part(values, texts):
        t = torch.tensor(values, dtype=torch.float32)[:, None, None]
        return HeadScores(per_example=t, trials=RetrievalTrials(responses=texts, hits=t.long(), rouge=t[:, 0, 0]))

    parts = [part([0.0, 2.0], ["a", "c"]), part([1.0], ["b"])]
    tensors, rest = _pack(parts[1])
    assert sorted(tensors) == ["counted", "per_example", "trials.hits", "trials.rouge"]
    back = _unpack(parts[0], {**rest, **tensors})
    assert back.trials.responses == ["b"] and back.trials.hits.equal(parts[1].trials.hits)
    merged = merge_shards(parts, 2, 3)
    assert merged.per_example.flatten().tolist() == [0.0, 1.0, 2.0] and merged.trials.responses == ["a", "b", "c"]
    assert merged.trials.hits.flatten().tolist() == [0, 1, 2] and merged.trials.answer_tokens is None
