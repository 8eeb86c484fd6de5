"""Cues: which kind of token a question-answer row copies, for cue-keyed retrieval heads.

A base whose every retrieval head retrieves everything gives fine-tuning nothing to choose: any
training set reuses the same heads (issue 24). With *cue-keyed* supervision
(:class:`rhlens.tools.pretrain.supervision.AttentionSupervision` ``cue_heads``) each answer
row pulls only the heads of its cues to the answer, and every other head is pushed off it, so
each head learns to retrieve one kind of answer. A row's cues are read from the first token it
must answer with; a token can carry one cue of each family:

- needle realism: ``realistic`` (real-world names, places, occupations), ``fictional``
  (syllable-made ones), ``symbolic`` (the symbolic alphabet's chunks);
- answer type: ``place`` (cities and countries of both realisms), ``agent`` (people,
  organisations and occupations of both realisms), ``year``.

The word lists are :mod:`rhlens.tasks.wordlists` (the generators' own), so a cue names a fact of
the generated world, not a guess.

>>> CUES["year"][:2], "Italy" in CUES["realistic"] and "Italy" in CUES["place"]
(('1800', '1801'), True)
>>> from rhlens.models import word_level_tokenizer
>>> from rhlens.tasks import vocabulary
>>> tok = word_level_tokenizer(vocabulary())
>>> table = cue_table(tok, ("realistic", "year"))
>>> ids = tok(["Italy 1999 Zorani"], add_special_tokens=False)["input_ids"][0]
>>> table[ids].tolist()
[[True, False], [False, True], [False, False]]
"""

from typing import Any

import torch
from jaxtyping import Bool
from torch import Tensor

from rhlens.tasks import wordlists as W


def _words(*lists: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(w for words in lists for text in words for w in text.split()))


_REAL_AGENTS = (W.FIRST_NAMES, W.SURNAMES, W.OCCUPATIONS, W.ORG_STEMS, W.ORG_SUFFIXES)
_FICT_AGENTS = (W.FICT_FIRST_NAMES, W.FICT_SURNAMES, W.FICT_OCCUPATIONS, W.FICT_ORG_STEMS, W.FICT_ORG_SUFFIXES)

CUES: dict[str, tuple[str, ...]] = {
    "realistic": _words(W.CITIES, W.COUNTRIES, *_REAL_AGENTS),
    "fictional": _words(W.FICT_CITIES, W.FICT_COUNTRIES, *_FICT_AGENTS),
    "symbolic": _words(W.SYMBOL_CHUNKS),
    "place": _words(W.CITIES, W.COUNTRIES, W.FICT_CITIES, W.FICT_COUNTRIES),
    "agent": _words(*_REAL_AGENTS, *_FICT_AGENTS),
    "year": _words(W.YEARS),
}
"""Cue name -> the words whose rows carry it (one place: recipes, cards and tests read it)."""


def cue_table(tokenizer: Any, cues: tuple[str, ...]) -> Bool[Tensor, "vocab cue"]:
    """``table[token_id, i]``: whether a row answering with ``token_id`` carries ``cues[i]``.

    Words the tokenizer splits or does not know are skipped (they cannot start an answer as one token).
    """
    unknown = [c for c in cues if c not in CUES]
    if unknown:
        raise ValueError(f"unknown cue(s) {unknown}; use {', '.join(CUES)}")
    vocab = tokenizer.get_vocab()
    table = torch.zeros(max(vocab.values()) + 1, len(cues), dtype=torch.bool)
    for i, cue in enumerate(cues):
        for word in CUES[cue]:
            ids = tokenizer(word, add_special_tokens=False)["input_ids"]
            if len(ids) == 1 and ids[0] != getattr(tokenizer, "unk_token_id", None):
                table[ids[0], i] = True
    return table
