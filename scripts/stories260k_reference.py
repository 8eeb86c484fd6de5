"""Write stories260K's retrieval scores (decode and forced) and greedy predictions to a JSON file.

Run it once with TransformerLens 3 (the model loads as a HookedTransformer) to (re)make the stored
reference that ``tests/integration/test_scoring_bridge.py::test_stories260k_equals_the_stored_reference``
compares against on either major (on TransformerLens 4 the model is a TransformerBridge)::

    python scripts/stories260k_reference.py ../shared/realdata/models/stories260K tests/records/stories260k_tl3.json

Both the test and this script call :func:`stories260k_results`, so the numbers come from the same
library calls; only the installed TransformerLens (and so the model class) differs.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.records.stories260k import stories260k_results  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    out = stories260k_results(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(out, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{sys.argv[2]}: {out['model_class']} on transformer-lens {out['transformer_lens']}")
