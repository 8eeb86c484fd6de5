"""Fit a prompt to a target token count by adding haystack units, then fine steps.

A generator describes its prompt as ``render(k, f)``: the prompt with the first
``k`` haystack units (sentences, key-value pairs) and ``f`` fine steps (words of
unit ``k``, or small growths), both of which only add tokens.
:func:`fit_length` binary-searches the largest ``k``, then the largest ``f``,
with ``count(render(k, f)) <= target``.

>>> words = "one two three four five six seven eight nine ten".split()
>>> render = lambda k, f: " ".join(words[:k] + words[k:k + f])
>>> k, f, n = fit_length(render, 7, lambda t: len(t.split()), fine_steps=lambda k: 1)
>>> (k, f, n)
(7, 0, 7)
"""

TOLERANCE = 0.05
SLACK = 0.025
MAX_UNITS = 1 << 20


class ContextTooShortError(ValueError):
    """The fixed part of a prompt (question, needles, headers) exceeds the target length."""


def _fits(render, count, target: int, k: int) -> bool:
    """Whether ``k`` whole units fit ``target`` tokens (False when ``render`` runs out of units)."""
    try:
        return count(render(k, 0)) <= target
    except IndexError:
        return False


def fit_length(render, target: int, count, *, fine_steps, what: str = "prompt",
               slack: float = SLACK):
    """Return ``(k, f, n_tokens)`` with the largest ``k`` then ``f`` such that
    ``count(render(k, f)) <= target``; raises when the result is not within
    :data:`TOLERANCE` of ``target``. Fine steps (which may cut a sentence) are
    used only when whole units leave a gap over ``slack * target``.

    ``fine_steps(k)`` is the number of fine steps available at ``k`` units.
    ``render`` may raise ``IndexError`` when ``k`` exceeds the available units
    (for sources that run dry).
    """
    if target < 1:
        raise ValueError(f"context_tokens must be positive, got {target}")
    base = count(render(0, 0))
    if base > target * (1 + TOLERANCE):
        raise ContextTooShortError(
            f"the fixed part of the {what} is {base} tokens, more than context_tokens={target} "
            f"(+{TOLERANCE:.0%}); raise context_tokens or use fewer documents, hops or shorter "
            f"instructions (instruction=False)")

    lo, hi = 0, 1
    while _fits(render, count, target, hi):
        lo, hi = hi, hi * 2
        if hi > MAX_UNITS:
            raise ValueError(f"could not reach {target} tokens with {MAX_UNITS} haystack units")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _fits(render, count, target, mid):
            lo = mid
        else:
            hi = mid
    k = lo
    flo, fhi = 0, fine_steps(k) + 1
    if target - count(render(k, 0)) <= slack * target:
        fhi = 1
    while fhi - flo > 1:
        mid = (flo + fhi) // 2
        try:
            good = count(render(k, mid)) <= target
        except IndexError:
            good = False
        if good:
            flo = mid
        else:
            fhi = mid
    n = count(render(k, flo))
    if abs(n - target) > target * TOLERANCE:
        raise ContextTooShortError(
            f"could only reach {n} tokens for context_tokens={target} with this {what}; "
            f"the haystack units are too coarse: lower n_docs or raise context_tokens")
    return k, flo, n
