"""The paper's five findings, each restated with the measured numbers, their 95% intervals and a
verdict computed from them by the rule stated next to it (nothing here is a fixed conclusion).

A verdict is ``agrees``, ``partly``, ``disagrees`` or ``undetermined``; an effect whose interval
holds 0 is *within noise* and does not count as a case that agrees. The numbers come from a task
entry of ``results.json`` with its ``uncertainty`` (:func:`rhlens.tools.study.uncertainty.task_uncertainty`).

>>> verdict_from(3, 3), verdict_from(1, 3), verdict_from(0, 3), verdict_from(0, 0)
('agrees', 'partly', 'disagrees', 'undetermined')
"""

from typing import Any

REAL, LIMITED = "real", "real-limited"
#: the paper's figure for each finding, set beside the miniature's in the reports (numbers as quoted
#: in rhlens's issue 24 from Zhao, Yin and Durrett, ICML 2025; no number is given where none was quoted)
PAPER_FIGURES = {
    "gap": "MDQA: real-data model 0.83 against the best synthetic set's 0.49 (F1)",
    "overlap": "MuSiQue: 129 retrieval heads in the real-data model against 112 and 39 in two synthetic-data models; "
               "synthetic-data heads are mostly a subset of the real-data ones",
    "correlation": "a strong positive correlation across training sets (the paper's headline)",
    "knockout": "a sharp drop with the top retrieval heads knocked out; random heads barely matter (no number quoted here)",
    "patching": "part of the gap recovered, more than random heads (no number quoted here)",
}
RANDOM_COST = 0.1  # "as many random heads barely matter": a random knockout costs at most this much
ALPHA = 0.05  # a correlation is told apart from none when its permutation p-value is below this


def verdict_from(hits: int, total: int) -> str:
    """``agrees`` when all of ``total`` cases match the paper, ``partly`` when some, else
    ``disagrees``; ``undetermined`` with no case."""
    if total == 0:
        return "undetermined"
    return "agrees" if hits == total else ("partly" if hits else "disagrees")


def iv_text(iv: dict[str, Any] | None, signed: bool = False) -> str:
    """``0.84 [0.74, 0.94]`` (``+`` signs with ``signed``); ``n/a`` for ``None``.

    >>> iv_text({"estimate": -0.5, "low": -0.7, "high": -0.3}, signed=True)
    '-0.50 [-0.70, -0.30]'
    """
    if iv is None:
        return "n/a"
    f = "{:+.2f}" if signed else "{:.2f}"
    return f"{f.format(iv['estimate'])} [{f.format(iv['low'])}, {f.format(iv['high'])}]"


def below_zero(iv: dict[str, Any] | None) -> bool:
    return iv is not None and iv["high"] < 0


def above_zero(iv: dict[str, Any] | None) -> bool:
    return iv is not None and iv["low"] > 0


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def finding_gap(unc: dict[str, Any], variants: list[str]) -> dict[str, Any]:
    """Finding 1. Every synthetic model below the real one, by more than noise."""
    models = unc["models"]
    gaps = {v: models[v]["gap"] for v in variants}
    clearly = [v for v in variants if below_zero(gaps[v])]
    below = [v for v in variants if gaps[v]["estimate"] < 0]
    verdict = verdict_from(len(clearly), len(variants))
    if not clearly and below:
        verdict = "undetermined"
    best = max(variants, key=lambda v: models[v]["accuracy"]["estimate"])
    noise = [v for v in below if v not in clearly]
    return {
        "id": "gap", "title": "Synthetic data falls short of real data",
        "paper": "every synthetic training set scores below the real one on the real task",
        "rule": "agrees when every synthetic model's score minus the real model's has a 95% interval below 0, partly "
                "when some do; undetermined when some are lower only within noise and none clearly",
        "verdict": verdict, "within_noise": noise,
        "text": (f"The real-data model scores {iv_text(models[REAL]['accuracy'])} and the limited real subset "
                 f"{iv_text(models[LIMITED]['accuracy'])}; {len(clearly)} of {len(variants)} synthetic models score clearly "
                 f"lower, {len(noise)} lower within noise ({', '.join(noise) or 'none'}). Gaps (synthetic minus real): "
                 + "; ".join(f"{v} {iv_text(gaps[v], True)}" for v in variants)
                 + f". Best synthetic: {best} at {iv_text(models[best]['accuracy'])}."),
    }


def finding_overlap(compare: dict[str, Any], unc: dict[str, Any], variants: list[str]) -> dict[str, Any]:
    """Finding 2. Synthetic models' heads are mostly among the real model's."""
    ref = compare["reference_heads"]
    with_heads = [v for v in variants if compare["models"][v]["n_heads"]]
    prec = [compare["models"][v]["precision"] for v in with_heads if compare["models"][v]["precision"] is not None]
    mostly_subsets = [p for p in prec if p >= 0.5]
    counts = ", ".join(f"{v} {compare['models'][v]['n_heads']}" for v in variants)
    recalls = "; ".join(f"{v} {iv_text(unc['models'][v]['recall'])}" for v in variants)
    return {
        "id": "overlap", "title": "Synthetic models' retrieval heads overlap the real model's",
        "paper": "retrieval heads learned on synthetic data overlap highly with (are mostly subsets of) the real-data heads",
        "rule": "agrees when, in every synthetic model with retrieval heads, at least half of them are also the real model's",
        "verdict": verdict_from(len(mostly_subsets), len(prec)) if ref else "undetermined",
        "text": (f"The real-data model has {len(ref)} retrieval heads ({' '.join(ref) or 'none'}); the synthetic models have "
                 f"{counts}. Recall of the real heads: {recalls}. {len(mostly_subsets)} of {len(prec)} models have at least "
                 f"half of their heads among the real ones (mean share {'n/a' if not prec else f'{_mean(prec):.2f}'})."),
    }


def finding_correlation(unc: dict[str, Any]) -> dict[str, Any]:
    """Finding 3. Recall of the real model's heads predicts accuracy."""
    corr = unc["correlation"]
    rho, r = corr["spearman"], corr["pearson"]
    reps = unc.get("correlation_replicates")
    decides = reps["spearman"] if reps and reps["spearman"]["estimate"] is not None else rho
    est, p = decides["estimate"], decides["p_value"]
    if est is None:
        verdict = "undetermined"
    elif est > 0.5 and p < ALPHA:
        verdict = "agrees"
    else:
        verdict = "partly" if est > 0 else "disagrees"

    def one(c: dict[str, Any], name: str, over: str = "models") -> str:
        if c["estimate"] is None:
            return f"{name} undefined ({c.get('why', 'no spread')})"
        iv = c["interval"]
        return (f"{name} {c['estimate']:.2f} (bootstrap 95% interval over {over} [{iv['low']:.2f}, {iv['high']:.2f}], "
                f"{'within-seed ' if c.get('stratified') else ''}permutation p = {c['p_value']:.3f})")

    text = f"Across the {len(corr['models'])} non-real models: {one(rho, 'Spearman rho')}; {one(r, 'Pearson r')}."
    if reps:
        n_seeds = unc.get("n_seeds", "several")
        text += (f" Over every (seed, model) point ({n_seeds} seeds; this decides the verdict): "
                 f"{one(reps['spearman'], 'Spearman rho', 'points')}; {one(reps['pearson'], 'Pearson r', 'points')}.")

    noise = est is not None and est > 0 and p >= ALPHA
    return {
        "id": "correlation", "title": "Recall of the real model's heads predicts accuracy",
        "paper": "strong positive correlation between retrieval-head recall and downstream accuracy across variants",
        "rule": f"agrees when Spearman's rho > 0.5 with a two-sided permutation p < {ALPHA}, partly when rho > 0 otherwise "
                "(within noise when p >= 0.05), disagrees when rho <= 0, undetermined when undefined; with several seeds "
                "rho and p are those over every (seed, model) point, permuted within each seed",
        "verdict": verdict, "within_noise": noise,
        "text": text + (" The correlation is within noise." if noise else ""),
    }


def finding_knockout(ko: dict[str, Any], unc: dict[str, Any]) -> dict[str, Any]:
    """Finding 4. Knocking out retrieval heads hurts more than random heads, which barely matter."""
    tested = {m: u["knockout"] for m, u in unc["models"].items() if ko.get(m, {}).get("retrieval") is not None}
    missing = [m for m, k in tested.items() if k is None]
    tested = {m: k for m, k in tested.items() if k is not None}
    hurts = [m for m, k in tested.items() if below_zero(k["retrieval_minus_random"]) and below_zero(k["retrieval_delta"])]
    cheap = [m for m, k in tested.items() if k["random_delta"]["estimate"] >= -RANDOM_COST]
    reach = [m for m in cheap if tested[m]["random_delta"]["low"] < -RANDOM_COST]
    both = [m for m in hurts if m in cheap]
    real = tested.get(REAL)
    real_txt = (f"Real-data model: retrieval heads out {iv_text(real['retrieval_delta'], True)}, as many random heads out "
                f"{iv_text(real['random_delta'], True)} (score changes, per-example mean over the random draws). "
                if real else "The real-data model has no retrieval head to knock out. ")
    costly = [m for m in tested if m not in cheap]
    return {
        "id": "knockout", "title": "Knocking out retrieval heads hurts more than random heads",
        "paper": "knocking out the top retrieval heads drops performance sharply; as many random heads barely matter",
        "rule": "agrees when, in every model with retrieval heads, the retrieval knockout's change and its difference from "
                f"the random knockout both have 95% intervals below 0, and random heads cost at most {RANDOM_COST} "
                "(point estimate); partly when some models do",
        "verdict": verdict_from(len(both), len(tested)) if not missing else "undetermined",
        "within_noise": [m for m in tested if m not in hurts],
        "text": (real_txt + f"The retrieval knockout hurts clearly more than random in {len(hurts)} of {len(tested)} "
                 f"models; random heads cost at most {RANDOM_COST} in {len(cheap)} of {len(tested)}"
                 + (f" (more in {', '.join(costly)})" if costly else "")
                 + (f"; the interval of {', '.join(reach)} reaches past {RANDOM_COST}" if reach else "") + "."
                 + (f" No per-example values for {', '.join(missing)} (records from an older run)." if missing else "")),
    }


def _patch_case(m: str, rec: dict[str, Any], u: dict[str, Any]) -> tuple[bool, str]:
    rows, pu = rec["rows"], u["patching"]
    original, source = rows["original"]["score"], rec["source_score"]
    head_rows = [k for k in ("intersection", "complement") if len(rows[k]["heads"])]
    notes = [f"{k} has 0 heads (nothing patched)" for k in ("intersection", "complement") if not len(rows[k]["heads"])]
    over = [k for k in head_rows if original < source <= rows[k]["score"]]
    if over:
        one = len(over) == 1
        notes.append(f"{' and '.join(over)} reach{'es' if one else ''} or pass{'es' if one else ''} the real model "
                     f"({source:.2f}): overshoot")
    best = max(head_rows, key=lambda k: pu[k]["delta"]["estimate"]) if head_rows and pu else None
    rand = max((pu[k]["delta"]["estimate"] for k in pu if k.startswith("random") and max(pu[k]["n_heads"]) > 0),
               default=0.0) if pu else 0.0
    ok = best is not None and above_zero(pu[best]["delta"]) and pu[best]["delta"]["estimate"] > rand
    text = (f"{m} {original:.2f} (real {source:.2f}): " + ", ".join(
        f"{k} ({len(rows[k]['heads'])} head{'' if len(rows[k]['heads']) == 1 else 's'}) {iv_text(pu[k]['delta'], True) if pu else 'n/a'}" for k in ("intersection", "complement"))
        + f", best random {rand:+.2f}" + (f" [{'; '.join(notes)}]" if notes else ""))
    return ok, text


def finding_patching(pt: dict[str, Any], unc: dict[str, Any]) -> dict[str, Any]:
    """Finding 5. Patching the real model's heads recovers part of the gap (more than random heads)."""
    lines, recovered, cases = [], 0, 0
    for m, rec in pt.items():
        if not rec.get("rows"):
            continue
        u = unc["models"][m]
        ok, text = _patch_case(m, rec, u)
        lines.append(text)
        if u["gap"]["estimate"] < 0:
            cases += 1
            recovered += int(ok)
    return {
        "id": "patching", "title": "Patching the real model's heads recovers part of the gap",
        "paper": "patching the real-data model's retrieval-head outputs into a synthetic model recovers part of its gap, "
                 "more than random heads (necessary, not fully sufficient)",
        "rule": "agrees when, in every model that trails the real model, patching the intersection or the complement "
                "gains more than 0 (95% interval above 0) and more than the best random row; a patch that reaches the "
                "real model's score is noted as overshoot, a row with 0 heads as nothing patched",
        "verdict": verdict_from(recovered, cases),
        "text": (f"In {recovered} of {cases} models that trail the real model, patching its retrieval heads gains clearly "
                 "more than 0 and more than random heads. " + ("; ".join(lines) + "." if lines else "No model could be patched.")),
    }


def findings(entry: dict[str, Any], variants: list[str], method: str) -> list[dict[str, Any]]:
    """The paper's five findings for one task entry (with its ``uncertainty``)."""
    unc, compare = entry["uncertainty"], entry["compare"]["methods"][method]
    out = [
        finding_gap(unc, variants),
        finding_overlap(compare, unc, variants),
        finding_correlation(unc),
        finding_knockout(entry["knockout"], unc),
        finding_patching(entry["patching"], unc),
    ]
    return [{**f, "paper_figure": PAPER_FIGURES[f["id"]]} for f in out]
