"""The package as users install it: one top-level namespace, a torch range (never a pin), a
console command, and an import graph without cycles whose layers match the design."""

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import sdebench

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {  # subpackage → the sdebench subpackages it may import
    "theory": set(),
    "solvers": {"theory"},
    "problems": {"theory"},
    "studies": {"theory", "solvers", "problems"},
    "reports": {"studies"},
    "training": {"theory", "problems"},
    "peers": {"theory", "solvers", "problems", "studies"},  # above studies, as studies are
    "experiments": {"theory", "solvers", "problems", "studies", "reports", "training", "peers"},
}
ROOT_MODULES = {"registry", "seeding", "state", "devices"}  # sdebench/*.py utilities every layer may use


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from a copy of the source tree (setuptools writes build/ beside it)."""
    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source") / "sdebench"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "results", "build", "*.egg-info", "__pycache__", ".asv"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                             "--no-build-isolation", "-w", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = out.glob("sdebench-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_holds_no_top_level_package_but_sdebench(wheel):
    top = {name.split("/")[0] for name in wheel.namelist()}
    assert top == {"sdebench", f"sdebench-{sdebench.__version__}.dist-info"}
    names = set(wheel.namelist())
    for subpackage in LAYERS:
        assert f"sdebench/{subpackage}/__init__.py" in names
    assert not any("/tests/" in name for name in names)


def test_the_wheel_declares_a_torch_range_and_the_console_command(wheel):
    info = f"sdebench-{sdebench.__version__}.dist-info"
    metadata = wheel.read(f"{info}/METADATA").decode()
    torch = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: torch")]
    assert torch and "==" not in torch[0] and ">=" in torch[0], torch
    assert "sdebench = sdebench.cli:main" in wheel.read(f"{info}/entry_points.txt").decode()


def test_works_from_a_project_with_its_own_solvers_package(tmp_path):
    """A user's project with a `solvers/` folder used to break `from studies.convergence import
    run_study` with "No module named 'solvers.noise'"."""
    (tmp_path / "solvers").mkdir()
    (tmp_path / "solvers" / "__init__.py").write_text("MINE = True\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    imports = subprocess.run([sys.executable, "-c", "import solvers, sdebench.solvers; "
                              "from sdebench.studies import run_study; assert solvers.MINE"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert imports.returncode == 0, imports.stderr
    command = Path(sys.executable).with_name("sdebench")
    study = subprocess.run([str(command), "convergence", "--sde", "vp", "--samplers", "heun",
                            "--steps", "8,16,32", "--quiet", "--no-report", "--out", "out"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert study.returncode == 0, study.stderr
    assert "PASS" in study.stdout


def test_console_command_lists_and_dispatches_subcommands():
    command = str(Path(sys.executable).with_name("sdebench"))
    usage = subprocess.run([command, "--help"], capture_output=True, text=True, timeout=300)
    assert usage.returncode == 0
    for name in ("convergence", "report", "speed", "peers", "train", "audit", "list"):
        assert name in usage.stdout
        help_text = subprocess.run([command, name, "--help"], capture_output=True, text=True,
                                   timeout=300)
        assert help_text.returncode == 0 and f"usage: sdebench {name}" in help_text.stdout
    unknown = subprocess.run([command, "nope"], capture_output=True, text=True, timeout=300)
    assert unknown.returncode == 2 and "unknown command 'nope'" in unknown.stderr


def _package_modules():
    """module name → the sdebench modules it imports (at any depth of the file)."""
    folders = {"sdebench": ROOT / "sdebench", **{f"sdebench.{p}": ROOT / p for p in LAYERS}}
    graph = {}
    for package, folder in folders.items():
        for path in folder.rglob("*.py"):
            if "tests" in path.relative_to(ROOT).parts[1:-1]:
                continue
            relative = path.relative_to(folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            module = ".".join([package, *parts])
            imported = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    imported.add(node.module)
                elif isinstance(node, ast.Import):
                    imported.update(alias.name for alias in node.names)
            graph[module] = {name for name in imported if name.startswith("sdebench.")}
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "root:" + ".".join(parts[1:2])


def test_layers_import_only_what_the_design_allows():
    violations = []
    for module, imports in _package_modules().items():
        layer = _layer(module)
        allowed = LAYERS.get(layer, set(LAYERS))  # root modules: cli imports experiments lazily
        for name in imports:
            target = _layer(name)
            if target == layer or target.split(":")[-1] in ROOT_MODULES or target == "root:":
                continue
            if layer.startswith("root:") or target not in allowed:
                if not (layer == "root:cli" and target == "experiments"):
                    violations.append(f"{module} imports {name}")
    assert not violations, "\n".join(violations)


def test_no_import_cycles():
    graph = _package_modules()
    known = set(graph)
    edges = {m: {i for i in imports if i in known} for m, imports in graph.items()}
    state, cycles = {}, []

    def visit(module, stack):
        state[module] = "open"
        for target in edges[module]:
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, [*stack, target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def test_optional_engines_are_imported_only_when_asked():
    """dask is an optional extra: running a serial study (and parsing the CLI) never imports it,
    so a user without ``sdebench[distributed]`` loses nothing but --workers/--scheduler."""
    code = ("import sys; import sdebench.cli, sdebench.experiments.convergence as c; "
            "from sdebench.studies.convergence import run_study; "
            "from sdebench.studies.config import StudyConfig; "
            "run_study(StudyConfig(schedules=['vp'], samplers=['euler'], steps=[2], batch=4, "
            "metrics=['w2']), "
            "progress=False, trajectories=False); "
            "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


CI_README_HEADINGS = {"Run the main job (fresh machine, Python 3.11)": "convergence.py",
                      "Run the tests": "pytest"}


@pytest.mark.parametrize("heading", CI_README_HEADINGS)
def test_ci_takes_its_commands_from_the_readme(heading):
    """.ci/run runs the README's set-up and test commands verbatim (and syntax-checks the main
    job's) by extracting them with .ci/readme_command.py, so a README edit cannot drift from CI:
    the heading it names must exist and hold a ```bash block."""
    run = (ROOT / ".ci" / "run").read_text()
    assert f'.ci/readme_command.py "{heading}"' in run
    result = subprocess.run([sys.executable, str(ROOT / ".ci" / "readme_command.py"), heading],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert CI_README_HEADINGS[heading] in result.stdout


def test_ci_runs_the_readme_tests_then_the_peer_and_browser_tests_required():
    run = (ROOT / ".ci" / "run").read_text()
    assert 'bash -n -c "$main_job"' in run and 'bash -e -o pipefail -c "$tests"' in run
    assert ('SDEBENCH_REQUIRE_PEERS=1 SDEBENCH_REQUIRE_BROWSER=1 python -m pytest -n 2 '
            '-m "peers or browser"') in run
    assert run.index('-c "$tests"') < run.index("k-diffusion==") < run.index('-m "peers or browser"')


def test_readme_command_names_a_missing_heading_or_block(tmp_path):
    script = ROOT / ".ci" / "readme_command.py"
    for heading, message in (("No such heading", 'no heading "## No such heading"'),
                             ("What is where", 'no ```bash block under "## What is where"')):
        result = subprocess.run([sys.executable, str(script), heading], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.strip().endswith(message) and result.stderr.count("\n") == 1
