"""The smoke study's numbers as recorded on TransformerLens 3.9, to compare a run on either major
with (issue 25: the study gives the same numbers on both majors with the same seeds).

``numbers(results)`` flattens a ``results.json`` into ``{path: number}``, leaving out what differs
between runs by nature (timings, versions, dates, digests). Re-record, on TransformerLens 3, after
a change that moves the numbers on purpose::

    rhlens study --preset smoke --out /tmp/smoke && python -m tests.records.smoke_study /tmp/smoke/results.json
"""

import json
import sys
from pathlib import Path
from typing import Any

RECORD = Path(__file__).with_name("smoke_study_tl3.json")
VOLATILE = frozenset({"versions", "timings", "finished", "digest", "seconds"})


def numbers(results: Any, path: str = "") -> dict[str, float]:
    """Every number in ``results`` (bools as 0/1 are left out) keyed by its JSON path."""
    out: dict[str, float] = {}
    if isinstance(results, dict):
        for key, value in results.items():
            if key not in VOLATILE:
                out.update(numbers(value, f"{path}.{key}"))
    elif isinstance(results, list):
        for i, value in enumerate(results):
            out.update(numbers(value, f"{path}[{i}]"))
    elif isinstance(results, (int, float)) and not isinstance(results, bool):
        out[path] = float(results)
    return out


if __name__ == "__main__":
    import importlib.metadata

    found = numbers(json.loads(Path(sys.argv[1]).read_text()))
    RECORD.write_text(json.dumps({"transformer_lens": importlib.metadata.version("transformer-lens"),
                                  "numbers": {k: round(v, 7) for k, v in found.items()}}, indent=0, sort_keys=True) + "\n")
    print(f"{len(found)} numbers recorded in {RECORD}")
