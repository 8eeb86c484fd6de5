"""Each list of allowed values is written once, in the module that owns the behaviour, and the
command line, the study config and the tests derive from it (issue 20 item 1).

The static check reads the source with ``ast``: a tuple, list or set literal, a dict's keys, or a
``Literal[...]`` holding several values of one list is a definition of that list.
"""

import ast
from pathlib import Path

import pytest

import rhlens.tasks
from rhlens import cli
from rhlens.dtypes import DTYPE_NAMES
from rhlens.interventions.options import KNOCKOUT_MODES, KNOCKOUT_SCOPES, PATCH_POSITIONS
from rhlens.tasks import TASKS, studied_tasks, task_names
from rhlens.tools.study.sections import PRESETS
from rhlens.training.config import TRAINABLE

REPO = Path(__file__).resolve().parents[2]

# list -> (its values, how many of them make a literal a definition, where the one definition
# lives, the folders searched). Tasks are registered one call per task (rhlens/tasks/builtin.py),
# so no literal lists them, in the package or its tests. Tests of one knockout mode or scoring
# method may still name the values they exercise.
LISTS = {
    "tasks": (set(TASKS), 3, [], ("rhlens", "tests")),
    "score methods": ({"decode", "forced"}, 2, ["rhlens/scoring/answer_spans.py"], ("rhlens",)),
    "score rules": ({"rhlens", "wu-literal"}, 2, ["rhlens/scoring/answer_spans.py"], ("rhlens",)),
    "score gates": ({"rouge", "exact"}, 2, ["rhlens/scoring/rouge_gate.py"], ("rhlens",)),
    "knockout modes": (set(KNOCKOUT_MODES), 3, ["rhlens/interventions/options.py"], ("rhlens",)),
    "knockout scopes": (set(KNOCKOUT_SCOPES), 2, ["rhlens/interventions/options.py"], ("rhlens",)),
    "patch positions": (set(PATCH_POSITIONS), 3, ["rhlens/interventions/options.py"], ("rhlens", "tests")),
    "weight dtypes": (set(DTYPE_NAMES), 3, ["rhlens/dtypes.py"], ("rhlens",)),
    "trainable modes": (set(TRAINABLE), 2, ["rhlens/training/config.py"], ("rhlens",)),
    "study presets": (set(PRESETS), 2, ["rhlens/tools/study/sections.py"], ("rhlens",)),
}


def _string_groups(tree: ast.AST):
    """The set of string constants of every collection literal, dict's keys and Literal[...]."""
    for node in ast.walk(tree):
        items = None
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        if items is not None:
            strings = {e.value for e in items if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if strings:
                yield strings


def _definitions(values: set, at_least: int, folders: tuple[str, ...]) -> list[str]:
    found = []
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            for strings in _string_groups(ast.parse(path.read_text(), filename=rel)):
                if strings <= values and len(strings) >= at_least:
                    found.append(rel)
    return found


@pytest.mark.parametrize("name", list(LISTS))
def test_each_allowed_value_list_is_defined_once(name):
    values, at_least, where, folders = LISTS[name]
    assert _definitions(values, at_least, folders) == where


def test_tasks_are_registered_once_and_the_study_uses_those_with_a_loader():
    assert task_names()[: len(TASKS)] == TASKS
    assert studied_tasks() == tuple(t for t in TASKS if rhlens.tasks.get_task(t).loader is not None)
    assert "niah" in TASKS and "niah" not in studied_tasks()  # synthetic only


def test_the_cli_offers_what_the_library_accepts():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    choices = {(cmd, a.dest): tuple(a.choices) for cmd, p in sub.items() for a in p._actions if a.choices}
    assert choices[("study", "task")] == (*studied_tasks(), "all")
    assert choices[("knockout", "mode")] == KNOCKOUT_MODES
    assert choices[("patch", "positions")] == PATCH_POSITIONS


def test_a_patching_position_the_study_accepts_is_one_the_library_accepts():
    """Issue 20 bug: ``positions = "last"`` passed the study config and the CLI, then failed in
    rhlens.patch_heads after every fine-tune had run. The study now takes the library's list."""
    from dataclasses import replace

    from rhlens.interventions.patching import check_positions
    from rhlens.tools.study import StudyConfig

    tiny = StudyConfig.preset("tiny")
    for position in PATCH_POSITIONS:
        check_positions(position)  # the library accepts it
        assert tiny.replace(patching=replace(tiny.patching, positions=position)).patching.positions == position
    with pytest.raises(ValueError, match=r"\[patching\] positions='last'"):
        tiny.replace(patching=replace(tiny.patching, positions="last"))
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["patch", "--source", "a", "--target", "b", "--examples", "e.jsonl",
                                       "--out", "o", "--positions", "last"])



def test_dtype_trainable_and_preset_names_come_from_their_owner():
    """Issue 20: the dtype names, the trainable modes and the presets were each written twice (the CLI,
    the study config); now the CLI and the config take the owner's list, and a preset is a shipped file."""
    from dataclasses import replace

    from rhlens.tools.study import StudyConfig

    shipped = sorted(p.stem.removeprefix("study_") for p in (REPO / "rhlens" / "recipes").glob("study_*.toml"))
    assert sorted(PRESETS) == shipped
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    choices = {(cmd, a.dest): tuple(a.choices) for cmd, p in sub.items() for a in p._actions if a.choices}
    assert choices[("study", "preset")] == PRESETS
    assert {v for (cmd, dest), v in choices.items() if dest == "dtype"} == {DTYPE_NAMES}
    smoke = StudyConfig.preset("smoke")
    with pytest.raises(ValueError, match=r"\[model\] dtype='float64': use one of float32, bfloat16, float16"):
        smoke.replace(model=replace(smoke.model, dtype="float64"))
    with pytest.raises(ValueError, match=r"\[finetune\] trainable='heads': use one of all, attention, lora"):
        smoke.replace(finetune=replace(smoke.finetune, trainable="heads"))
