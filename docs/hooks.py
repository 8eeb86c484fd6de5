"""mkdocs hooks for rhlens's docs (listed under ``hooks:`` in mkdocs.yml).

- Tutorials run at build time at the size ``RHLENS_TUTORIAL_SIZE`` says; the default here is
  ``tiny`` so a build takes a minute or two. Build with ``RHLENS_TUTORIAL_SIZE=full`` to publish
  the full-size outputs (several minutes per tutorial on a CPU).
- ``cli.md``: the marker ``<!-- rhlens-cli-help -->`` becomes every subcommand's ``--help``, taken
  from the parser itself, so the page cannot drift from the code.
- ``api.md``: the marker ``<!-- rhlens-api -->`` becomes one mkdocstrings block per public name of
  ``rhlens`` (``rhlens.__all__``), grouped by layer and resolved to where each name is defined.
"""

import io
import os
from contextlib import redirect_stdout

os.environ.setdefault("RHLENS_TUTORIAL_SIZE", "tiny")
os.environ.setdefault("TQDM_DISABLE", "1")
# the tutorials' kernels inherit this: no "IProgress not found" warning cell from tqdm.auto
os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:IProgress not found"]))

# public names by section, in reading order; names not listed land in "Other"
SECTIONS = {
    "Heads": ["Head", "HeadSet"],
    "Tasks and data": ["Example", "generate", "niah_grid", "TASKS", "VARIANTS"],
    "Models": ["load_base", "tiny_llama", "tiny_gpt2", "load_hf_checkpoint", "load_bridge", "as_bridge",
               "save_model", "load_model", "word_level_tokenizer", "default_tokenizer"],
    "Encoding and decoding": ["encode_example", "greedy_decode"],
    "Retrieval scores": ["retrieval_scores", "HeadScores"],
    "Head detectors": ["compare_detectors", "DetectorComparison", "knockout_curves", "KnockoutCurves"],
    "Evaluation": ["evaluate", "EvalResult", "RunOptions"],
    "Knockout and blocking": ["knockout", "knockout_effect", "KnockoutEffect", "random_heads", "block_attention"],
    "Cross-model patching": ["check_compatible", "IncompatibleModelsError", "patch_heads", "PatchResult",
                             "patching_table", "PatchingTable", "patch_sweep", "PatchSweep", "attribution_sweep", "AttributionSweep"],
    "Across processes": ["run_sharded"],
    "Training": ["train", "TrainConfig", "TrainResult", "NonFiniteLossError", "extend_context"],
    "Tools: the whole study, the embedded base": ["Study", "StudyConfig", "pretrain_base"],
}
MODULE_PAGES = [
    ("Figures (`rhlens.plot`)", "rhlens.plot"),
    ("Quickstart (`rhlens.tools.quickstart`)", "rhlens.tools.quickstart"),
]


def _cli_help() -> str:
    from rhlens.cli import build_parser

    parser = build_parser()
    out = ["```text", parser.format_help().rstrip(), "```"]
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sub in subparsers.choices.items():
        out += [f"### rhlens {name}", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(out)


def _api() -> str:
    import rhlens

    public = [n for n in rhlens.__all__ if not n.startswith("_")]
    listed = {n for names in SECTIONS.values() for n in names}
    sections = {**SECTIONS, "Other": [n for n in public if n not in listed]}
    out = []
    for title, names in sections.items():
        names = [n for n in names if n in public]
        if not names:
            continue
        out += [f"## {title}", ""]
        for name in names:
            obj = getattr(rhlens, name)
            module = getattr(obj, "__module__", None)
            qual = getattr(obj, "__qualname__", None)
            if module and qual and not isinstance(obj, (tuple, list, dict, str)):
                out += [f"::: {module}.{qual}", ""]
            else:  # constants such as TASKS: show the value
                out += [f"### `rhlens.{name}`", "", "```python", f"{name} = {obj!r}", "```", ""]
    for title, module in MODULE_PAGES:
        out += [f"## {title}", "", f"::: {module}", "    options:", "      show_root_heading: false",
                "      heading_level: 3", ""]
    return "\n".join(out)


def on_page_markdown(markdown, page, config, files, **kwargs):
    if "<!-- rhlens-cli-help -->" in markdown:
        buf = io.StringIO()
        with redirect_stdout(buf):
            text = _cli_help()
        markdown = markdown.replace("<!-- rhlens-cli-help -->", text)
    if "<!-- rhlens-api -->" in markdown:
        markdown = markdown.replace("<!-- rhlens-api -->", _api())
    return markdown
