"""Attention supervision: designated previous-token and retrieval heads, and anti-supervision.

Trained on next-token loss alone, rhlens's tiny models (a 2,400-word vocabulary) learn
fixed-offset copying long before content-based induction heads form, and when copying does form
it spreads over most heads of a layer (redundant heads: knocking out a few changes nothing). The
models rhlens stands in for keep retrieval in a few heads (Wu et al.: under 5%). An auxiliary loss
on attention patterns engineers that sparsity:

- every *previous-token head* is pulled to position ``t - 1`` (the first half of the induction
  circuit; several such heads make it robust to losing one);
- every *retrieval head* is pulled to the *retrieval targets*: the position right after the most
  recent earlier occurrence of the current token (induction), and at the answer positions of a
  question-answer example the prompt positions that hold the answer token being predicted (the
  token Wu et al.'s score checks);
- with ``copy_weight > 0`` each supervised head's value/output circuit is trained to copy: the
  value at every position, through the head's output matrix, the final norm and the unembedding,
  gets a cross-entropy loss against the token at that position. A head attending to a token then
  writes that token, without waiting for the rest of the model (a circuit trained on next-token
  loss alone needs the attention and the copying to appear together, which takes hundreds of steps);
- with ``anti_weight > 0`` every other head is pushed away from the same targets
  (``-log(1 - attention mass on them)``), so no other head learns to copy from context;
- with ``cue_heads`` (cue -> heads, :mod:`rhlens.tools.pretrain.cues`) the answer positions of a
  row are the business of its cues' heads alone: they are pulled to the answer, every other head
  (the plain retrieval heads too) is pushed off it, and outside answers the cue heads are left
  alone; the plain retrieval heads keep the induction targets and the answers of rows with no cue.
  At answers the push is its own term, a sum over the heads pushed at each answer position and a
  mean over answer positions (inside the mean over every pushed position an answer weighs ~1/50,
  and a mean over heads lets a few heads that learned to copy keep copying at a small cost);
- with ``reach > 0`` an answer copy more than ``reach`` tokens back pulls no head and pushes
  every head off it (each head with the full weight, the larger of ``weight`` and
  ``anti_weight``): the base's retrieval reaches back at most ``reach`` tokens, latent beyond
  until fine-tuning at a longer context extends it.

Everything else (value/output circuits, the rest of the model) is learned from the next-token loss.

>>> import torch
>>> tokens = torch.tensor([[1, 7, 8, 9, 7, 8, 0]])   # BOS, "7 8 9 7 8", one pad
>>> induction_targets(tokens, pad_id=0).tolist()
[[-1, -1, -1, -1, 2, 3, -1]]
>>> previous_token_targets(tokens, pad_id=0).tolist()
[[-1, 0, 1, 2, 3, 4, -1]]
"""

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from rhlens.adapter import Model, architecture, head_output_weight, hook_name, hooks, logits_from_residual
from rhlens.heads import Head
from rhlens.tools.pretrain.cues import CUES, cue_table

IGNORE_INDEX = -100


def _heads(value: Any, *, source: str, key: str) -> tuple[Head, ...]:
    items = [value] if isinstance(value, str) else list(value)
    try:
        return tuple(Head.parse(h) for h in items)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}.{key}: {err}; give head labels like \"L0H0\"") from None


@dataclass(frozen=True)
class AttentionSupervision:
    """Which heads to supervise and how strongly.

    The loss is ``weight`` times (the mean negative log-attention on the targets of the
    previous-token heads + that of the retrieval heads) plus ``anti_weight`` times the mean
    ``-log(1 - attention on the retrieval targets)`` of every other head.

    >>> sup = AttentionSupervision.from_dict({"previous_token_heads": ["L0H0", "L0H1"], "retrieval_heads": "L2H0"})
    >>> sup.to_dict()["retrieval_heads"], sup.anti_weight
    (['L2H0'], 0.0)
    """

    previous_token_heads: tuple[Head, ...]
    retrieval_heads: tuple[Head, ...]
    weight: float = 0.5
    anti_weight: float = 0.0
    copy_weight: float = 0.0
    cue_heads: tuple[tuple[str, tuple[Head, ...]], ...] = ()
    """``(cue, heads)`` pairs: at an answer the row's cues' heads retrieve (see the module docstring)."""
    reach: int = 0
    """Answer copies farther back than this many tokens are pushed off (0: no limit)."""

    KEYS = ("previous_token_heads", "retrieval_heads", "weight", "anti_weight", "copy_weight", "cue_heads", "reach")

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "supervision") -> "AttentionSupervision":
        unknown = set(data) - set(cls.KEYS)
        if unknown or not {"previous_token_heads", "retrieval_heads"} <= set(data):
            raise ValueError(
                f"{source}: expected keys {list(cls.KEYS)} (the weights optional), got {sorted(data)}"
            )
        cues = data.get("cue_heads", {})
        if not isinstance(cues, dict):
            raise ValueError(f"{source}.cue_heads: expected a table of cue = [heads], got {cues!r}")
        unknown = sorted(set(cues) - set(CUES))
        if unknown:
            raise ValueError(f"{source}.cue_heads: unknown cue(s) {unknown}; use {', '.join(CUES)}")
        reach = data.get("reach", 0)
        if isinstance(reach, bool) or not isinstance(reach, int) or reach < 0:
            raise ValueError(f"{source}.reach: expected a whole number of tokens >= 0 (0: no limit), got {reach!r}")
        sup = cls(
            _heads(data["previous_token_heads"], source=source, key="previous_token_heads"),
            _heads(data["retrieval_heads"], source=source, key="retrieval_heads"),
            float(data.get("weight", 0.5)),
            float(data.get("anti_weight", 0.0)),
            float(data.get("copy_weight", 0.0)),
            tuple((cue, _heads(heads, source=source, key=f"cue_heads.{cue}")) for cue, heads in cues.items()),
            reach,
        )
        if not sup.previous_token_heads or not sup.retrieval_heads:
            raise ValueError(f"{source}: name at least one previous-token head and one retrieval head")
        if set(sup.previous_token_heads) & (set(sup.retrieval_heads) | set(sup.cue_head_set)):
            raise ValueError(f"{source}: a head cannot be both a previous-token and a retrieval head")
        if set(sup.retrieval_heads) & set(sup.cue_head_set):
            raise ValueError(f"{source}: a cue head cannot also be a plain retrieval head (it retrieves for its cues only)")
        first_prev = min(h.layer for h in sup.previous_token_heads)
        if min(h.layer for h in sup.retrieval_heads + sup.cue_head_set) <= first_prev:
            raise ValueError(
                f"{source}: every retrieval head must sit in a later layer than the first previous-token head "
                f"(layer {first_prev}): induction composes with it"
            )
        if min(sup.weight, sup.anti_weight, sup.copy_weight) < 0:
            raise ValueError(f"{source}: weight, anti_weight and copy_weight must be >= 0")
        return sup

    @property
    def cue_head_set(self) -> tuple[Head, ...]:
        """Every head some cue names, once, in the order first named."""
        return tuple(dict.fromkeys(h for _, heads in self.cue_heads for h in heads))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"previous_token_heads": [str(h) for h in self.previous_token_heads],
                               "retrieval_heads": [str(h) for h in self.retrieval_heads],
                               "weight": self.weight, "anti_weight": self.anti_weight, "copy_weight": self.copy_weight}
        if self.cue_heads:
            out["cue_heads"] = {cue: [str(h) for h in heads] for cue, heads in self.cue_heads}
        if self.reach:
            out["reach"] = self.reach
        return out

    def describe(self) -> str:
        """One line for the model card."""
        text = (f"{', '.join(map(str, self.previous_token_heads))} previous-token; "
                f"{', '.join(map(str, self.retrieval_heads))} retrieval (weight {self.weight:g})")
        if self.copy_weight:
            text += f"; their value/output circuits trained to copy (weight {self.copy_weight:g})"
        if self.cue_heads:
            text += "; at answers, cue-keyed heads: " + ", ".join(
                f"{cue} {' '.join(map(str, heads))}" for cue, heads in self.cue_heads)
        if self.reach:
            text += f"; answers more than {self.reach} tokens back pushed off (latent reach)"
        return text + (f"; all other heads pushed off the retrieval targets (weight {self.anti_weight:g})"
                       if self.anti_weight else "")


def previous_token_targets(tokens: Int[Tensor, "batch pos"], *, pad_id: int) -> Int[Tensor, "batch pos"]:
    """``t - 1`` at every real position after the first; ``-1`` elsewhere (and at padding)."""
    pos = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens) - 1
    return torch.where((tokens != pad_id) & (pos >= 0), pos, torch.full_like(pos, -1))


def induction_targets(tokens: Int[Tensor, "batch pos"], *, pad_id: int) -> Int[Tensor, "batch pos"]:
    """Position after the most recent earlier occurrence of ``tokens[b, t]`` (when that is before
    ``t``); ``-1`` where the token has not occurred before, and at padding."""
    out = torch.full_like(tokens, -1)
    for b, row in enumerate(tokens.tolist()):
        last: dict[int, int] = {}
        for t, token in enumerate(row):
            if token == pad_id:
                continue
            if token in last and last[token] + 1 < t:
                out[b, t] = last[token] + 1
            last[token] = t
    return out


def retrieval_target_mask(
    tokens: Int[Tensor, "batch pos"], labels: Int[Tensor, "batch pos_minus_1"] | None, *, pad_id: int,
    answer: Bool[Tensor, "batch pos"] | None = None,
) -> Bool[Tensor, "batch query key"]:
    """Key positions a retrieval head should attend to from each query position.

    The induction target (:func:`induction_targets`) everywhere, except at the answer positions of
    a question-answer row (a row whose first labelled position is past the first word, unlike
    whole-text rows) where the targets are the earlier positions holding the labelled next token.
    ``labels[b, t]`` is the token to predict at ``t`` (``-100``: none), as in ``TrainBatch.targets``;
    ``answer`` is :func:`answer_positions` of them when the caller has it already.

    >>> tokens = torch.tensor([[1, 5, 9, 6, 3, 9, 0]])     # "5 9 6 ?" answer "9", then pad
    >>> labels = torch.tensor([[-100, -100, -100, -100, 9, -100]])
    >>> retrieval_target_mask(tokens, labels, pad_id=0)[0, 4].nonzero().flatten().tolist()
    [2]
    """
    batch, pos = tokens.shape
    ind = induction_targets(tokens, pad_id=pad_id)
    mask = torch.zeros(batch, pos, pos, dtype=torch.bool, device=tokens.device)
    b, q = (ind >= 0).nonzero(as_tuple=True)
    mask[b, q, ind[b, q]] = True
    if labels is None:
        return mask
    lab = _padded_labels(tokens, labels)
    answer = answer_positions(tokens, labels) if answer is None else answer
    causal = torch.ones(pos, pos, dtype=torch.bool, device=tokens.device).tril()
    copy = (tokens[:, None, :] == lab[:, :, None]) & causal & (tokens != pad_id)[:, None, :]
    return torch.where(answer[:, :, None], copy, mask)


def _padded_labels(tokens: Int[Tensor, "batch pos"], labels: Int[Tensor, "batch pos_minus_1"]) -> Int[Tensor, "batch pos"]:
    lab = torch.full_like(tokens, IGNORE_INDEX)
    lab[:, : labels.shape[1]] = labels
    return lab


def answer_positions(tokens: Int[Tensor, "batch pos"], labels: Int[Tensor, "batch pos_minus_1"]) -> Bool[Tensor, "batch pos"]:
    """The labelled positions of question-answer rows (a row whose first labelled position is past
    the first word; whole-text rows are labelled from position 1).

    >>> tokens = torch.tensor([[1, 5, 9, 6, 9, 8, 0], [1, 5, 6, 5, 6, 0, 0]])
    >>> labels = torch.tensor([[-100, -100, -100, -100, 9, -100], [-100, 6, 5, 6, -100, -100]])
    >>> answer_positions(tokens, labels).nonzero().tolist()
    [[0, 4]]
    """
    lab = _padded_labels(tokens, labels)
    has = lab != IGNORE_INDEX
    first = torch.where(has.any(1), has.int().argmax(1), torch.zeros_like(has[:, 0], dtype=torch.long))
    return has & (first > 1)[:, None]


def _mass(pattern: Float[Tensor, "batch head query key"], mask: Bool[Tensor, "batch query key"]) -> Float[Tensor, "batch head query"]:
    return torch.einsum("bhqk,bqk->bhq", pattern, mask.to(pattern.dtype))


def _copy_loss(model: Model, vs: dict[int, Tensor], heads: tuple[Head, ...], tokens: Tensor, pad_id: int) -> Tensor:
    """Mean cross-entropy of each head's value at every real position after the first, through the
    head's output matrix, the final norm and the unembedding, against the token at that position."""
    where = tokens != pad_id
    where[:, 0] = False
    if not where.any():
        return tokens.new_zeros((), dtype=torch.float32)
    n_heads = model.cfg.n_heads
    losses = []
    for h in heads:
        v = vs[h.layer]  # [batch, pos, kv_head, d_head]
        value = v[:, :, h.head * v.shape[2] // n_heads][where]  # [n, d_head]
        logits = logits_from_residual(model, (value @ head_output_weight(model, h.layer, h.head))[None])[0]
        losses.append(torch.nn.functional.cross_entropy(logits, tokens[where]))
    return torch.stack(losses).mean()


def _pulls_and_pushes(
    supervision: AttentionSupervision, n_heads: int, n_layers: int, mask: Bool[Tensor, "batch query key"],
    answer: Bool[Tensor, "batch query"], row_cues: Bool[Tensor, "batch cue"], reach: int,
) -> tuple[Bool[Tensor, "batch query key"], dict[Head, Bool[Tensor, "batch query"]], dict[Head, Bool[Tensor, "batch query"]]]:
    """Where each head is pulled to the near targets, and where pushed off every target.

    Returns ``(near, pull, push)``: ``near`` is ``mask`` less the answer copies more than ``reach``
    tokens back; ``pull[h]`` / ``push[h]`` are the query positions where head ``h`` is pulled /
    pushed (previous-token heads are neither).
    """
    pos = mask.shape[1]
    near = mask
    if reach:
        distance = torch.arange(pos, device=mask.device)[:, None] - torch.arange(pos, device=mask.device)[None, :]
        near = mask & ~(answer[:, :, None] & (distance > reach)[None])
    valid, near_valid = mask.any(-1), near.any(-1)
    cued = answer & row_cues.any(-1)[:, None]  # answer positions that belong to cue heads
    pull: dict[Head, Tensor] = {h: near_valid & ~cued for h in supervision.retrieval_heads}
    for i, (_, heads) in enumerate(supervision.cue_heads):
        for h in heads:
            here = near_valid & answer & row_cues[:, i : i + 1]
            pull[h] = pull[h] | here if h in pull else here
    push: dict[Head, Tensor] = {}
    if supervision.anti_weight > 0:
        cue_only = set(supervision.cue_head_set)
        skip = set(supervision.previous_token_heads)
        for layer in range(n_layers):
            for index in range(n_heads):
                h = Head(layer, index)
                if h in skip:
                    continue
                scope = answer if h in cue_only else torch.ones_like(valid)
                push[h] = valid & scope & ~pull.get(h, torch.zeros_like(valid))
    return near, pull, push


def _push_terms(
    supervision: AttentionSupervision, patterns: dict[int, Tensor], mask: Bool[Tensor, "batch query key"],
    near: Bool[Tensor, "batch query key"], answer: Bool[Tensor, "batch query"], push: dict[Head, Tensor],
) -> list[Tensor]:
    """The loss terms that push heads off targets: outside cue-keyed answers, at them, and past reach."""
    terms: list[Tensor] = []
    outside = ~answer if supervision.cue_heads else torch.ones_like(answer)
    away = [torch.log1p(-_mass(patterns[h.layer][:, h.head : h.head + 1], mask)[:, 0].clamp(max=1 - 1e-6))[where & outside]
            for h, where in push.items() if (where & outside).any()]
    if away:
        terms.append(-supervision.anti_weight * torch.cat(away).mean())
    if supervision.cue_heads and push:
        # cue-keyed answers: a sum over the heads pushed at each answer position, a mean over answer positions
        # (within the mean over every pushed position above, the few answer positions of a row weigh ~1/50,
        # and a mean over ~all heads would let a few heads that copy well keep copying every cue's answers)
        pushed = torch.stack([torch.where(where & answer, torch.log1p(-_mass(patterns[h.layer][:, h.head : h.head + 1], mask)[:, 0]
                                                                         .clamp(max=1 - 1e-6)), 0.0) for h, where in push.items()])
        at = torch.stack(list(push.values())).any(0) & answer
        if at.any():
            terms.append(-supervision.anti_weight * pushed.sum(0)[at].mean())
    far = mask & ~near
    if supervision.reach and far.any():
        # past reach every head is pushed with its full weight (a sum over heads, not a mean, so that
        # no single head can answer far copies at the cost of 1/n_heads of the anti term)
        where = far.any(-1)
        beyond = [torch.log1p(-_mass(pattern, far).clamp(max=1 - 1e-6)).sum(1)[where] for pattern in patterns.values()]
        terms.append(-max(supervision.anti_weight, supervision.weight) * torch.stack(beyond).sum(0).mean())
    return terms


@contextlib.contextmanager
def supervise_attention(model: Model, supervision: AttentionSupervision, *, pad_id: int) -> Iterator[Callable[[Any, Any], Tensor]]:
    """Hooks that record the heads' patterns; yields the ``extra_loss`` for :func:`rhlens.train`.

    The hooks make the trainer run TransformerLens's eager attention for this stage (the fused
    path computes no patterns). They are removed on exit, also when training raises.
    """
    arch = architecture(model)
    retrieval = supervision.retrieval_heads + supervision.cue_head_set
    for head in supervision.previous_token_heads + retrieval:
        if head.layer >= arch.n_layers or head.head >= arch.n_heads:
            raise ValueError(f"supervised head {head} is outside a model with {arch.n_layers} layers x {arch.n_heads} heads")
    anti = supervision.anti_weight > 0
    layers = sorted({h.layer for h in supervision.previous_token_heads + retrieval}
                    | (set(range(arch.n_layers)) if anti or supervision.reach else set()))
    cues = cue_table(model.tokenizer, tuple(c for c, _ in supervision.cue_heads)) if supervision.cue_heads else None
    store: dict[int, Tensor] = {}

    def capture(layer: int) -> Callable:
        def hook(pattern: Tensor, hook: Any) -> None:  # pattern [batch, head, q, k]
            store[layer] = pattern

        return hook

    fwd = [(hook_name("pattern", layer), capture(layer)) for layer in layers]
    all_supervised = supervision.previous_token_heads + retrieval
    v_layers = sorted({h.layer for h in all_supervised}) if supervision.copy_weight > 0 else []
    v_store: dict[int, Tensor] = {}

    def capture_v(layer: int) -> Callable:
        def hook(v: Tensor, hook: Any) -> None:  # v [batch, pos, kv_head, d_head]
            v_store[layer] = v

        return hook

    fwd += [(hook_name("v", layer), capture_v(layer)) for layer in v_layers]

    def row_cues(tokens: Tensor, labels: Tensor | None, answer: Tensor) -> Tensor:
        """[batch, cue]: the cues of each row's first answer token (none for whole-text rows)."""
        if cues is None or labels is None:
            return torch.zeros(tokens.shape[0], 0, dtype=torch.bool, device=tokens.device)
        lab = _padded_labels(tokens, labels)
        first = lab.gather(1, answer.int().argmax(1, keepdim=True))[:, 0].clamp(min=0, max=cues.shape[0] - 1)
        return cues.to(tokens.device)[first] & answer.any(1, keepdim=True)

    def extra_loss(model: Any, batch: Any) -> Tensor:
        patterns = {layer: store.pop(layer) for layer in layers}
        vs = {layer: v_store.pop(layer) for layer in v_layers}
        prev_t = previous_token_targets(batch.tokens, pad_id=pad_id)
        b, q = (prev_t >= 0).nonzero(as_tuple=True)
        prev_terms = [torch.log(patterns[h.layer][b, h.head, q, prev_t[b, q]] + 1e-6).mean()
                      for h in supervision.previous_token_heads if b.numel()]
        labels = getattr(batch, "targets", None)
        answer = (answer_positions(batch.tokens, labels) if labels is not None
                  else torch.zeros_like(batch.tokens, dtype=torch.bool))
        mask = retrieval_target_mask(batch.tokens, labels, pad_id=pad_id, answer=answer)
        near, pull, push = _pulls_and_pushes(supervision, arch.n_heads, arch.n_layers, mask, answer,
                                             row_cues(batch.tokens, labels, answer), supervision.reach)
        terms = []
        if prev_terms:
            terms.append(-supervision.weight * torch.stack(prev_terms).mean())
        ret = [torch.log(_mass(patterns[h.layer][:, h.head : h.head + 1], near)[:, 0][where] + 1e-6).mean()
               for h in retrieval if (where := pull.get(h)) is not None and where.any()]
        if ret:
            terms.append(-supervision.weight * torch.stack(ret).mean())
        terms += _push_terms(supervision, patterns, mask, near, answer, push)
        if vs:
            terms.append(supervision.copy_weight * _copy_loss(model, vs, all_supervised, batch.tokens, pad_id))
        if not terms:
            return batch.tokens.new_zeros((), dtype=torch.float32)
        return torch.stack(terms).sum()

    with hooks(model, fwd):
        yield extra_loss
