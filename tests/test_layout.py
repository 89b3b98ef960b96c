"""The package's shape: imports point one way (models/data -> config -> loops -> run -> api -> cli/serve/sweep),
no module takes part in an import cycle, nothing imports the command line, and the README's Python example
runs as written."""

import ast
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, make_items

PACKAGE = ROOT / "src" / "makemore"


def module_name(path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports, at the top or inside a function."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package, up level - 1
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def cycles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), and self-imports."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_takes_part_in_an_import_cycle():
    graph = imports()
    assert {"makemore.cli", "makemore.run", "makemore.config", "makemore.jax.train"} <= set(graph)  # it read them
    assert "makemore.config" in graph["makemore.run"]  # and their imports
    assert cycles(graph) == []


def test_nothing_imports_the_command_line():
    graph = imports()
    importers = sorted(m for m, targets in graph.items() if "makemore.cli" in targets)
    assert importers == ["makemore.__main__"]  # `python -m makemore`, the program itself


# Every module's floor: it imports from its own floor and the ones below, never above. A new module is given one here.
FLOORS = [
    ["errors", "files", "ranks", "scratch", "optim"],  # nothing of the package
    # lists and models
    ["fields", "lists", "data", "pattern", "distance", "style", "plots", "callbacks", "jax", "models", "models.*"],
    ["config"],  # fields, presets, TOML files, a run's description
    ["auto", "recipes"],  # the default recipe; resolving what a run is
    ["loop", "train", "jax.models", "jax.train", "sample", "draw", "score"],  # the loops; generation and scoring
    ["checkpoint", "runfolder", "export", "run", "trainers", "ensembles", "training"],  # runs, on disk and training
    ["api", ""],  # the public Python API (and the package, which exports it)
    ["cli", "flags", "serve", "workspace", "workspace_app", "sweep", "diagnose", "__main__"],  # what a user starts
]


def floor_of(module: str) -> int:
    name = module.removeprefix("makemore").removeprefix(".")
    for level, names in enumerate(FLOORS):
        if name in names or any(n.endswith(".*") and name.startswith(n[:-1]) for n in names):
            return level
    raise AssertionError(f"{module} has no floor in test_layout.FLOORS")


def test_every_module_imports_only_from_its_floor_and_below():
    graph = imports()
    up = [(m, t) for m, targets in graph.items() for t in targets if floor_of(t) > floor_of(m)]
    assert up == [], "imports that point up: " + ", ".join(f"{m} -> {t}" for m, t in up)


def test_the_floors_are_checked():
    assert floor_of("makemore.models.ngram") == 1 and floor_of("makemore.training") == 5
    with pytest.raises(AssertionError, match="no floor"):
        floor_of("makemore.newcomer")


def test_no_module_is_over_400_lines():
    long = {p.name: n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}


def test_the_readmes_layout_names_every_module():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    modules = [p.name for p in PACKAGE.glob("*.py") if not p.name.startswith("__")]
    assert [name for name in modules if f"  {name} " not in layout] == []


def readme_python_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


# After the example, in the same interpreter: a run of each optimizer, then whether torch's compiler was imported.
# torch.optim's methods import torch._dynamo on first use, 3 s of CPU in every training process (makemore.optim).
NO_COMPILER = """
import sys, torch
from makemore import models
from makemore.config import TrainConfig
from makemore.data import build_windows, Vocab
from makemore.train import Trainer
vocab = Vocab.from_items(['anna', 'bob']); data = build_windows(['anna', 'bob'], vocab, 3)
for optimizer in ('adamw', 'sgd'):
    model = models.build('mlp', models.make_config('mlp', vocab_size=vocab.size))
    cfg = TrainConfig(steps=3, optimizer=optimizer, eval_every=2)
    Trainer(model, cfg, data, data, torch.Generator().manual_seed(0), torch.device('cpu')).run()
print('torch._dynamo imported:', 'torch._dynamo' in sys.modules)
"""


@pytest.mark.slow
def test_the_readmes_python_example_runs_as_written_and_training_does_not_import_torchs_compiler(tmp_path):
    """In a fresh interpreter, in a folder holding my_list.txt: the example exactly as the README has it; then,
    in that interpreter, training with either optimizer has not imported torch's compiler."""
    (tmp_path / "my_list.txt").write_text("\n".join(make_items(50, seed=5)) + "\n", encoding="utf-8")
    code = readme_python_example()
    assert "makemore.train(" in code and "makemore.load(" in code
    result = subprocess.run([sys.executable, "-c", code + NO_COMPILER], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "runs" / "mine" / "model.pt").exists() and (tmp_path / "runs" / "both").is_dir()
    assert result.stdout.splitlines()[-1] == "torch._dynamo imported: False"


def test_the_readmes_python_section_shows_every_public_name():
    import makemore

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in makemore.__all__ if f"makemore.{name}" not in section and f"`{name}`" not in section]
    assert missing == []


def test_help_shows_the_api():
    """What help(makemore) prints: pydoc's text of the package (in this process, without a pager)."""
    import pydoc

    import makemore

    text = pydoc.render_doc(makemore, renderer=pydoc.plaintext)
    for name in ("train(data", "load(folder", "class Run", "generate(self", "evaluate(self"):
        assert name in text, name
