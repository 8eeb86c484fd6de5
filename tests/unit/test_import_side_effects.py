"""Importing rhlens leaves the process's settings alone (issue 20 item 7: the adapter filtered a
DeprecationWarning for every caller at import)."""

import subprocess
import sys


def test_importing_the_adapter_and_models_keeps_the_warning_filters():
    # the libraries rhlens builds on add filters of their own when imported: import them first
    # (TransformerLens 4 adds its own when its model_bridge package loads, so load it first too)
    code = ("import warnings, torch, transformer_lens, transformers, tokenizers, safetensors, plotly\n"
            "try:\n    import transformer_lens.model_bridge\nexcept ImportError:\n    pass\n"
            "before = list(warnings.filters); "
            "import rhlens.adapter, rhlens.models, rhlens.tools.study; "
            "added = [f for f in warnings.filters if f not in before]; "
            "assert not added, added")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
