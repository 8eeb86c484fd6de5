"""Issue 22 item 21: a disk that fills during a checkpoint or model save gives an error naming the
path, and leaves nothing partial behind (no ``.tmp-step-*`` or ``.<name>.tmp-*`` folder).

The full disk is simulated at the one place bytes go to disk for tensors: ``safetensors``'s
``save_file`` writes part of the file, then fails as it does on a full disk.
"""

import errno
import os

import pytest
import safetensors.torch
from safetensors import SafetensorError

from rhlens.models import load_model, save_model
from rhlens.training import TrainConfig, latest_checkpoint, train
from rhlens.training import checkpoint as ck

FAST = dict(progress=False, batch_size=4, lr=3e-3, warmup_steps=2)


def _filling_disk(real, when):
    """``save_file`` that, for a file whose path contains ``when``, writes half of it and fails."""

    def save_file(tensors, filename, metadata=None):
        real(tensors, filename, metadata=metadata)
        if when in str(filename):
            with open(filename, "r+b") as f:
                f.truncate(os.path.getsize(filename) // 2)
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    return save_file


def _leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name or p.name.startswith(".old-"))


@pytest.mark.parametrize("writer", ["model", "optimizer"])
def test_a_full_disk_during_a_checkpoint_names_it_and_leaves_no_temporary_folder(build_model, examples, tmp_path,
                                                                                 monkeypatch, writer):
    real = safetensors.torch.save_file
    if writer == "model":  # the model's weights (rhlens.save_model imports save_file when it runs)
        monkeypatch.setattr(safetensors.torch, "save_file", _filling_disk(real, "step-00000004"))
    else:  # the optimizer state
        monkeypatch.setattr(ck, "save_file", _filling_disk(real, "step-00000004"))
    config = TrainConfig(steps=6, save_every=2, **FAST)
    final = tmp_path / "checkpoints" / "step-00000004"
    with pytest.raises(OSError, match=rf"could not write the checkpoint {final}: the disk is full .*No space left on "
                       r"device.*nothing partial was left behind; the earlier checkpoints are intact") as err:
        train(build_model(), examples, config, out_dir=tmp_path)
    assert err.value.errno == errno.ENOSPC and str(err.value).count("the disk is full") == 1
    assert _leftovers(tmp_path) == [] and latest_checkpoint(tmp_path).step == 2 and not final.exists()

    monkeypatch.setattr(safetensors.torch, "save_file", real)
    monkeypatch.setattr(ck, "save_file", real)
    resumed = train(build_model(), examples, config.replace(resume=True), out_dir=tmp_path)
    assert resumed.steps == 6 and latest_checkpoint(tmp_path).step == 6


def test_a_full_disk_during_save_model_names_the_folder_and_keeps_the_old_one(kv_tokenizer, tmp_path, monkeypatch):
    from rhlens.models import tiny_llama

    folder = save_model(tiny_llama(tokenizer=kv_tokenizer, seed=1), tmp_path / "model")
    before = (folder / "model.safetensors").read_bytes()
    monkeypatch.setattr(safetensors.torch, "save_file", _filling_disk(safetensors.torch.save_file, ".tmp-"))
    with pytest.raises(OSError, match=rf"could not write the model folder {folder}: the disk is full"):
        save_model(tiny_llama(tokenizer=kv_tokenizer, seed=2), folder)
    assert _leftovers(tmp_path) == [] and (folder / "model.safetensors").read_bytes() == before
    load_model(folder)
