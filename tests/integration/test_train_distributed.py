"""Two data-parallel CPU processes (torchrun, gloo) train the same weights as one process."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

import rhlens
from rhlens.tasks import generate
from rhlens.training import TrainConfig, train

SCRIPT = textwrap.dedent(
    """
    import json
    import os
    import sys
    import torch
    import rhlens
    from rhlens.tasks import generate
    from rhlens.training import TrainConfig, train

    torch.set_num_threads(1)
    examples = generate("kv", "symbolic", n=32, context_tokens=40, seed=0, key_chunks=1, value_chunks=1)
    tok = rhlens.word_level_tokenizer([e.prompt + e.completion for e in examples])
    model = rhlens.tiny_llama(tokenizer=tok, n_layers=1, d_model=32, n_heads=4, d_mlp=64, n_ctx=64, seed=0)
    config = TrainConfig(**{CONFIG})
    result = train(model, examples, config, out_dir=sys.argv[1])
    rank = int(os.environ.get("RANK", 0))  # train() has torn the process group down by now
    # each rank writes its own file: printed lines of concurrent processes can interleave
    with open(f"{sys.argv[2]}/rank{rank}.json", "w") as f:
        json.dump(result.loss_curve, f)
    """
)
CONFIG = dict(steps=4, batch_size=8, lr=3e-3, save_every=2, progress=False)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_equal_one(tmp_path):
    script = tmp_path / "train_dp.py"
    script.write_text(SCRIPT.replace("{CONFIG}", repr(CONFIG)))
    out = tmp_path / "run"
    results = tmp_path / "results"
    results.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(out),
           str(results)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in results.iterdir()) == ["rank0.json", "rank1.json"]

    examples = generate("kv", "symbolic", n=32, context_tokens=40, seed=0, key_chunks=1, value_chunks=1)
    tok = rhlens.word_level_tokenizer([e.prompt + e.completion for e in examples])
    single = rhlens.tiny_llama(tokenizer=tok, n_layers=1, d_model=32, n_heads=4, d_mlp=64, n_ctx=64, seed=0)
    reference = train(single, examples, TrainConfig(**CONFIG), out_dir=tmp_path / "single")

    # only rank 0 wrote checkpoints: one set, at steps 2 and 4
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002", "step-00000004"]
    parallel = rhlens.load_model(out / "checkpoints" / "step-00000004" / "model")
    parallel_state = parallel.state_dict()
    for name, p in single.state_dict().items():
        assert torch.allclose(p, parallel_state[name], atol=1e-5), name
    losses = json.loads((results / "rank0.json").read_text())
    assert losses == pytest.approx(reference.loss_curve, abs=1e-5)
