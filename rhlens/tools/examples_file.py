"""What ``rhlens generate`` does: synthetic examples written to the JSONL file that ``--examples``
of ``rhlens scores / knockout / patch`` reads."""

from pathlib import Path


def write_examples(task: str, variant: str, out: "str | Path", *, n: int = 40, context_tokens: int = 256,
                   tokenizer_dir: "str | Path | None" = None, seed: int = 0, overwrite: bool = False) -> int:
    """Generate ``n`` examples (:func:`rhlens.generate`), counting tokens with the tokenizer of
    ``tokenizer_dir`` (a model folder; default: the embedded base's), and write them to ``out``
    (:func:`rhlens.tasks.save_jsonl`); returns how many. Refuses a folder, and an existing file
    unless ``overwrite``, before any work."""
    from rhlens.models import base_dir
    from rhlens.models.hf.tokenizer import load_local_tokenizer
    from rhlens.tasks import generate, save_jsonl

    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; give the path of a .jsonl file to write")
    if out.exists() and not overwrite:
        raise FileExistsError(f"--out {out} exists; choose a new file or pass --overwrite")
    tokenizer = load_local_tokenizer(base_dir() / "model" if tokenizer_dir is None else tokenizer_dir)
    examples = generate(task, variant, n, context_tokens=context_tokens, tokenizer=tokenizer, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_jsonl(examples, out)
    return len(examples)
