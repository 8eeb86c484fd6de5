"""A run killed with SIGKILL (also in the middle of writing a checkpoint) resumes exactly."""

import signal
import subprocess
import sys
import textwrap

import pytest
import torch

import rhlens
from rhlens.tasks import generate
from rhlens.training import TrainConfig, latest_checkpoint, train

CONFIG = dict(steps=8, batch_size=4, lr=3e-3, warmup_steps=2, weight_decay=0.01, save_every=2, progress=False)
SETUP = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    import rhlens
    from rhlens.tasks import generate
    from rhlens.training import TrainConfig, train

    def build():
        examples = generate("kv", "symbolic", n=32, context_tokens=40, seed=0, key_chunks=1, value_chunks=1)
        tok = rhlens.word_level_tokenizer([e.prompt + e.completion for e in examples])
        model = rhlens.tiny_llama(tokenizer=tok, n_layers=1, d_model=32, n_heads=4, d_mlp=64, n_ctx=64, seed=0)
        return model, examples
    """
)
KILL_IN_STEP = SETUP + textwrap.dedent(
    """
    torch.set_num_threads(1)
    model, examples = build()

    def die(m):
        os.kill(os.getpid(), signal.SIGKILL)

    train(model, examples, TrainConfig(**{CONFIG}, eval_every=5), out_dir=sys.argv[1], eval_fn=die)
    """
)
KILL_IN_WRITE = SETUP + textwrap.dedent(
    """
    torch.set_num_threads(1)
    from rhlens.training import checkpoint as ck
    real_write_json = ck.write_json

    def write_json(path, data):
        if path.name == "state.json" and "step-00000006" in str(path):
            os.kill(os.getpid(), signal.SIGKILL)  # the model and optimizer files are already written
        real_write_json(path, data)

    ck.write_json = write_json
    model, examples = build()
    train(model, examples, TrainConfig(**{CONFIG}), out_dir=sys.argv[1])
    """
)


def _build():
    examples = generate("kv", "symbolic", n=32, context_tokens=40, seed=0, key_chunks=1, value_chunks=1)
    tok = rhlens.word_level_tokenizer([e.prompt + e.completion for e in examples])
    return rhlens.tiny_llama(tokenizer=tok, n_layers=1, d_model=32, n_heads=4, d_mlp=64, n_ctx=64, seed=0), examples


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    model, examples = _build()
    return model, train(model, examples, TrainConfig(**CONFIG), out_dir=tmp_path_factory.mktemp("reference"))


@pytest.mark.slow
@pytest.mark.parametrize("script, last_complete", [(KILL_IN_STEP, 4), (KILL_IN_WRITE, 4)], ids=["in-step", "in-write"])
def test_killed_run_resumes_like_uninterrupted(tmp_path, uninterrupted, script, last_complete):
    path = tmp_path / "run.py"
    path.write_text(script.replace("{CONFIG}", repr(CONFIG)))
    proc = subprocess.run([sys.executable, str(path), str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert latest_checkpoint(tmp_path / "out").step == last_complete

    ref_model, reference = uninterrupted
    model, examples = _build()
    resumed = train(model, examples, TrainConfig(**CONFIG, resume=True), out_dir=tmp_path / "out")
    assert resumed.loss_curve == pytest.approx(reference.loss_curve, abs=1e-6)
    for (name, p), q in zip(model.named_parameters(), ref_model.parameters()):
        assert torch.allclose(p, q, atol=1e-6), name
    assert latest_checkpoint(tmp_path / "out").step == 8
    assert not list((tmp_path / "out" / "checkpoints").glob(".tmp-*"))  # stale temp dirs cleared
    steps_logged = [line for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(steps_logged) == 8  # steps repeated after the kill are logged once
