"""The embedded base model shipped with rhlens (made by ``rhlens pretrain-base``)."""

from importlib import resources
from pathlib import Path

from rhlens.adapter.core import Model

BASE_ASSET = "base"


def base_dir() -> Path:
    """The folder of the shipped base: ``model/`` (weights, config, tokenizer), ``CARD.md``,
    ``training_log.jsonl``, ``abilities.json``, ``recipe.json``."""
    return Path(str(resources.files("rhlens") / "assets" / BASE_ASSET))


def load_base() -> Model:
    """The shipped base model (in eval mode) with its word-level tokenizer: a ``HookedTransformer``
    on TransformerLens 3, a ``TransformerBridge`` with the same weights on 4.

    >>> model = load_base()
    >>> model.cfg.n_layers >= 2, model.training, model.tokenizer.padding_side
    (True, False, 'left')
    >>> model.to_tokens("Question: Where does Ann live?").shape
    torch.Size([1, 8])
    """
    from rhlens.models.folder import load_folder

    path = base_dir() / "model"
    if not path.is_dir():
        raise FileNotFoundError(
            f"The shipped base model is missing at {path}; reinstall rhlens, or train one with "
            "`rhlens pretrain-base --out DIR` and load it with rhlens.tools.pretrain.load_base_from(DIR)"
        )
    model = load_folder(path)  # an rhlens.save_model folder or a Hugging Face checkpoint
    model.eval()
    return model


def base_card() -> str:
    """The shipped base's model card (Markdown)."""
    return (base_dir() / "CARD.md").read_text()
