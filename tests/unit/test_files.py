"""rhlens.files: atomic writes that leave no temporary file and respect the umask."""

import os
import stat

import pytest

from rhlens.files import atomic_path, write_json_atomic, write_text_atomic


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "a.txt", "hello")
        write_json_atomic(tmp_path / "sub" / "b.json", {"a": 1})
    finally:
        os.umask(old)
    for path in (tmp_path / "a.txt", tmp_path / "sub" / "b.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    write_text_atomic(path, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_safetensors_files_respect_the_umask(tmp_path, umask):
    """Issue 22 item 21: safetensors writes 0o600 whatever the umask; every .safetensors rhlens
    writes (a saved model, head scores, a checkpoint's weights) gets 0o666 minus the umask."""
    import torch

    from rhlens.models import save_model, tiny_llama
    from rhlens.scoring import HeadScores
    from rhlens.training.checkpoint import save_model_files

    old = os.umask(umask)
    try:
        model = tiny_llama(n_layers=1, d_model=16, n_heads=2, d_mlp=32, n_ctx=16)
        save_model(model, tmp_path / "model")
        HeadScores(torch.zeros(1, 1, 2)).save(tmp_path / "scores.safetensors")
        save_model_files(tmp_path / "ckpt", model)
    finally:
        os.umask(old)
    written = sorted(tmp_path.rglob("*.safetensors"))
    assert len(written) == 3, written
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
