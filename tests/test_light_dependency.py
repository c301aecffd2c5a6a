"""``pip install handaug`` brings only what SynthToReal needs; a missing extra is one line naming it.

Fast tests read the built wheel's metadata and simulate a missing extra in a subprocess (a module
set to ``None`` in ``sys.modules`` cannot be imported). The slow test installs the wheel without
extras into a fresh virtual environment and uses it as a hand-tracking project would.
"""

from __future__ import annotations

import email.parser
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from handaug.optional import EXTRA_MODULES

ROOT = Path(__file__).resolve().parents[1]

#: What loading a checkpoint and running SynthToReal needs: the wheel's only unconditional requirements.
CORE = {"torch", "torchvision", "numpy", "safetensors", "pluggy", "opencv-python-headless"}
#: Distributions that only an extra may bring.
EXTRA_ONLY = {"lightning", "pytorch-lightning", "jsonargparse", "torchmetrics", "albumentations", "albucore",
              "pydantic", "kornia", "torch-fidelity", "matplotlib", "tqdm", "huggingface-hub", "pyyaml", "onnx",
              "onnxruntime", "onnxscript", "pytest"}
#: Import names that must be neither loaded by the core nor installed by ``pip install handaug``.
NOT_IN_CORE = ("lightning", "pytorch_lightning", "jsonargparse", "torchmetrics", "albumentations", "pydantic", "kornia")
#: Every import name an extra provides: blocking them all leaves the core alone.
ALL_EXTRA_MODULES = sorted({m for modules in EXTRA_MODULES.values() for m in modules} | set(NOT_IN_CORE))
#: The adapters that need an extra, with the extra their error names.
ADAPTERS = {"albumentations": "albumentations", "kornia": "kornia", "lightning": "train"}


def build_wheel(out: Path) -> Path:
    """Build handaug's wheel from a copy of the sources (so no build/ or egg-info lands in the tree)."""
    src = out / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for folder in ("handaug", "plugins", "integrations"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(out / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (out / "dist").glob("handaug-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel_metadata(tmp_path_factory):
    wheel = build_wheel(tmp_path_factory.mktemp("wheel"))
    with zipfile.ZipFile(wheel) as zf:
        info = next(n.split("/")[0] for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(zf.read(f"{info}/METADATA").decode())
        entry_points = zf.read(f"{info}/entry_points.txt").decode()
    return metadata, entry_points


def _extras_of(requirement: Requirement) -> set[str]:
    """The extras whose marker selects ``requirement`` (empty: always installed)."""
    if requirement.marker is None:
        return set()
    return {extra for extra in ("train", "albumentations", "kornia", "eval", "hub", "onnx", "all", "dev")
            if requirement.marker.evaluate({"extra": extra})}


def test_wheel_requires_only_the_core_without_an_extra_marker(wheel_metadata):
    metadata, _ = wheel_metadata
    requirements = [Requirement(r) for r in metadata.get_all("Requires-Dist")]
    unconditional = {canonicalize_name(r.name) for r in requirements if not _extras_of(r)}
    assert unconditional == CORE
    for r in requirements:
        if canonicalize_name(r.name) in EXTRA_ONLY:
            assert _extras_of(r), f"{r} is required without an extra marker"
        if r.marker is None:  # the core: lower bounds only
            assert all(s.operator == ">=" for s in r.specifier), f"core requirement {r} has an upper bound"


def test_wheel_extras_are_the_documented_ones_and_dev_is_everything(wheel_metadata):
    metadata, entry_points = wheel_metadata
    provided = set(metadata.get_all("Provides-Extra"))
    assert provided == {"train", "albumentations", "kornia", "eval", "hub", "onnx", "all", "dev"}
    assert set(EXTRA_MODULES) == provided - {"all", "dev"}  # handaug.optional names exactly these
    requirements = [Requirement(r) for r in metadata.get_all("Requires-Dist")]

    def direct(extra: str) -> dict[str, Requirement]:
        return {canonicalize_name(r.name) + ("[" + ",".join(sorted(r.extras)) + "]" if r.extras else ""): r
                for r in requirements if extra in _extras_of(r)}

    train = direct("train")
    assert str(train["lightning"].specifier) in ("<2.7,>=2.6", ">=2.6,<2.7")  # mid-epoch resume's bound
    assert {"jsonargparse[signatures]", "torchmetrics", "handaug[albumentations]"} <= set(train)
    assert set(direct("albumentations")) == {"albumentations"}
    assert set(direct("kornia")) == {"kornia"}
    assert {"torchmetrics", "torch-fidelity", "matplotlib", "tqdm", "handaug[albumentations]"} <= set(direct("eval"))
    assert set(direct("all")) == {"handaug[albumentations,eval,hub,kornia,onnx,train]"}
    assert set(direct("dev")) == {"handaug[all]", "pytest", "import-linter", "ruff"}  # the runner and the two checks it runs
    # The commands that need an extra start through the launcher, which checks it first.
    for line in ("handaug-train = handaug.cli.launch:train", "handaug-translate = handaug.cli.launch:translate",
                 "handaug-eval = handaug.cli.launch:evaluate", "handaug-train-silnet = handaug.cli.launch:train_silnet",
                 "handaug = handaug.cli.main:main"):
        assert line in entry_points


def run_python(code: str, *, blocked: tuple[str, ...] | list[str] = (), timeout: float = 180) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where the ``blocked`` modules cannot be imported."""
    prelude = f"import sys\nfor _m in {list(blocked)!r}:\n    sys.modules[_m] = None\n"
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "HANDAUG_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


@pytest.mark.parametrize(("adapter", "blocked", "extra"), [
    ("albumentations", "albumentations", "albumentations"),
    ("albumentations", "pydantic", "albumentations"),
    ("kornia", "kornia", "kornia"),
    ("lightning", "lightning", "train"),
])
def test_adapter_without_its_extra_is_one_import_error_line_naming_it(adapter, blocked, extra):
    proc = run_python(f"""
        import json
        from handaug.optional import MissingExtraError
        try:
            import handaug.integrations.{adapter}
        except ImportError as err:
            print(json.dumps([type(err).__name__, isinstance(err, MissingExtraError), str(err), err.name]))
        """, blocked=[blocked])
    assert proc.returncode == 0, proc.stderr[-3000:]
    kind, is_missing_extra, message, name = json.loads(proc.stdout)
    assert is_missing_extra and kind == "MissingExtraError"
    assert "\n" not in message
    assert message == (f"handaug.integrations.{adapter} needs the {extra!r} extra ({blocked} is not installed): "
                       f'pip install "handaug[{extra}]"')
    assert name == blocked


def test_core_and_torchvision_adapter_and_plugins_work_with_every_extra_blocked(tmp_path):
    proc = run_python(f"""
        import contextlib, io, json
        import torch
        import handaug
        from handaug.registry import create_generator
        from handaug.cli.main import main

        ckpt = handaug.save_generator(create_generator("resnet", n_blocks=1, ngf=8), {str(tmp_path / "ckpt")!r})
        images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
        out = handaug.SynthToReal(ckpt, precision="fp32")(images)

        from handaug.integrations.torchvision import SynthToReal as TvSynthToReal
        tv_out = TvSynthToReal(ckpt, p=1.0, precision="fp32")(images[0])

        table = io.StringIO()
        with contextlib.redirect_stdout(table):
            status = main(["plugins"])
        print(json.dumps({{"shape": list(out.shape), "dtype": str(out.dtype), "tv_equal": bool(torch.equal(tv_out, handaug.SynthToReal(ckpt, precision="fp32")(images[0]))),
                          "plugins_status": status, "resnet_listed": "resnet" in table.getvalue(),
                          "loaded": sorted(m for m in {ALL_EXTRA_MODULES!r} if sys.modules.get(m) is not None)}}))
        """, blocked=ALL_EXTRA_MODULES)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"shape": [2, 3, 32, 32], "dtype": "torch.uint8", "tv_equal": True, "plugins_status": 0,
                      "resnet_listed": True, "loaded": []}


def installed_with(extra: str, handaug_requirements: list[Requirement]) -> set[str]:
    """Top-level modules of every distribution that ``pip install "handaug[EXTRA]"`` brings.

    ``handaug_requirements`` are the built wheel's ``Requires-Dist``; the other distributions'
    requirements are read from this environment.
    """
    from importlib.metadata import PackageNotFoundError, packages_distributions, requires

    todo, extras = [], [extra]
    while extras:  # the extra's own requirements, nested handaug[...] extras expanded
        current = extras.pop()
        for r in handaug_requirements:
            if r.marker is not None and r.marker.evaluate({"extra": current}):
                if canonicalize_name(r.name) == "handaug":
                    extras += sorted(r.extras)
                else:
                    todo.append(r)
    dists: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in dists:
            continue
        dists.add(name)
        try:
            texts = requires(name) or []
        except PackageNotFoundError:
            continue
        for text in texts:
            r = Requirement(text)
            wanted = {""} | set(requirement.extras)
            if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in wanted):
                todo.append(r)
    return {module for module, owners in packages_distributions().items()
            if any(canonicalize_name(d) in dists for d in owners)}


def test_exporting_a_training_checkpoint_needs_no_extra(tmp_path):
    """``handaug-export CKPT --format handaug`` reads the data module's background without albumentations."""
    proc = run_python(f"""
        import torch
        from handaug import read_checkpoint
        from handaug.cli.export import main
        from handaug.registry import create_generator

        state = {{"generator_s2r." + k: v for k, v in create_generator("resnet", n_blocks=1, ngf=8).state_dict().items()}}
        torch.save({{"epoch": 1, "global_step": 2, "state_dict": state,
                    "hyper_parameters": {{"generator": "resnet", "generator_kwargs": {{"n_blocks": 1, "ngf": 8}}}},
                    "datamodule_hyper_parameters": {{"background": "white", "crop_size": 32}}}}, {str(tmp_path / "last.ckpt")!r})
        assert main([{str(tmp_path / "last.ckpt")!r}, "--format", "handaug", "--out", {str(tmp_path / "g")!r}]) == 0
        print(read_checkpoint({str(tmp_path / "g")!r}).background)
        """, blocked=ALL_EXTRA_MODULES)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == "1.0"


@pytest.mark.parametrize(("adapter", "extra", "use"), [
    ("albumentations", "albumentations",
     "out = mod.SynthToReal(ckpt, p=1.0, precision='fp32')(image=image.permute(1, 2, 0).numpy())['image']"),
    ("kornia", "kornia", "out = mod.SynthToReal(ckpt, p=1.0, precision='fp32')(image[None].float() / 255)"),
    ("lightning", "train", "out = mod.SynthToRealCallback(handaug.SynthToReal(ckpt, precision='fp32'))"),
])
def test_each_adapter_works_with_its_extra_alone(wheel_metadata, tmp_path, adapter, extra, use):
    """The libraries of the other extras that the adapter's extra does not bring are blocked.

    Only :data:`NOT_IN_CORE`'s: libraries such as torchmetrics decide whether matplotlib or
    huggingface_hub is there from installed metadata, which a blocked module does not change.
    """
    requirements = [Requirement(r) for r in wheel_metadata[0].get_all("Requires-Dist")]
    blocked = sorted(set(NOT_IN_CORE) - installed_with(extra, requirements))
    assert blocked  # something is blocked in each case
    assert set(EXTRA_MODULES[extra]).isdisjoint(blocked)
    proc = run_python(f"""
        import importlib
        import torch
        import handaug
        from handaug.registry import create_generator

        ckpt = handaug.save_generator(create_generator("resnet", n_blocks=1, ngf=8), {str(tmp_path / "ckpt")!r})
        image = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
        mod = importlib.import_module("handaug.integrations.{adapter}")
        {use}
        print(type(out).__name__)
        """, blocked=blocked)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() in ("ndarray", "Tensor", "SynthToRealCallback")


@pytest.mark.parametrize(("command", "function", "blocked", "extra"), [
    ("handaug-train", "train", "lightning", "train"),
    ("handaug-train", "train", "jsonargparse", "train"),
    ("handaug-translate", "translate", "lightning", "train"),
    ("handaug-eval", "evaluate", "torch_fidelity", "eval"),
    ("handaug-train-silnet", "train_silnet", "albumentations", "train"),
])
def test_command_without_its_extra_prints_one_line_naming_it_and_exits_2(command, function, blocked, extra):
    proc = run_python(f"""
        from handaug.cli.launch import {function}
        sys.exit({function}(["--help"]))
        """, blocked=[blocked])
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (f"{command}: error: {command} needs the {extra!r} extra ({blocked} is not installed): "
                           f'pip install "handaug[{extra}]"\n')


def test_hub_model_card_without_pyyaml_names_the_hub_extra():
    proc = run_python("""
        from handaug.export import model_card
        try:
            model_card({})
        except ImportError as err:
            print(err)
        """, blocked=["yaml"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == ("the Hub model card (handaug-export --format hub) needs the 'hub' extra (yaml is not installed): "
                           'pip install "handaug[hub]"\n')


def test_command_with_its_extra_runs_the_command():
    proc = run_python("""
        from handaug.cli.launch import translate
        sys.exit(translate(["--help"]))
        """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("usage: handaug-translate")


def test_require_rejects_an_unknown_extra_by_name():
    from handaug.optional import require

    with pytest.raises(ValueError, match=r"extra must be one of .* got 'trian'"):
        require("lightning", "trian", needed_by="test")


# What the fresh environment runs: a project that depends on handaug without extras.
PROJECT_SCRIPT = """
import importlib, importlib.metadata, importlib.util, json, sys
import torch
import handaug
from handaug.registry import create_generator

torch.manual_seed(0)
generator = create_generator("resnet", n_blocks=1, ngf=8).eval()
ckpt = handaug.save_generator(generator, "ckpt")
images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
out = handaug.SynthToReal(ckpt, precision="fp32")(images)
with torch.no_grad():
    expected = ((generator(images.float() / 127.5 - 1) + 1) * 0.5).clamp(0, 1).mul(255).round().to(torch.uint8)

adapters = {}
for adapter in ("albumentations", "kornia", "lightning"):
    try:
        importlib.import_module("handaug.integrations." + adapter)
        adapters[adapter] = "imported"
    except ImportError as err:
        adapters[adapter] = str(err)

def installed(module):
    try:
        importlib.metadata.distribution(module)
        return True
    except importlib.metadata.PackageNotFoundError:
        return importlib.util.find_spec(module) is not None

print(json.dumps({
    "handaug_file": handaug.__file__,
    "translated": bool(torch.equal(out, expected)),
    "adapters": adapters,
    "installed": sorted(m for m in %r if installed(m)),
}))
""" % (NOT_IN_CORE,)  # noqa: UP031 - a script of dict and set literals: braces stay braces


@pytest.mark.slow
def test_wheel_without_extras_in_a_fresh_environment_runs_synth_to_real_only():
    """Build the wheel, ``pip install -c constraints.txt WHEEL`` into a new venv, use it as a project would.

    A real install (no symlinked site-packages): it is what "``pip install handaug`` brings only the
    core" means. Here torch and its CUDA libraries install from files on the machine's disk. This
    environment's pip installs into the new one (``--python``: no pip of its own to set up), and
    ``--no-compile`` leaves byte-compiling to the imports that happen: the install took 40 s
    instead of 100 s on 2 busy cores. The environment (about 6 GB) is deleted afterwards.
    """
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="handaug-light-"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(NO_ALBUMENTATIONS_UPDATE="1", HANDAUG_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    try:
        wheel = build_wheel(work)
        venv = work / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        bin_dir = venv / "bin"
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        install = subprocess.run([sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "-q",
                                  "--no-compile", "-c", str(ROOT / "constraints.txt"), str(wheel)],
                                 capture_output=True, text=True, timeout=480, env=env, cwd=work)
        assert install.returncode == 0, install.stderr[-3000:]

        (work / "project.py").write_text(PROJECT_SCRIPT)
        proc = subprocess.run([str(bin_dir / "python"), "project.py"], capture_output=True, text=True, timeout=180,
                              env=env, cwd=work)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert Path(result["handaug_file"]).is_relative_to(venv)  # the installed wheel, not this checkout
        assert result["translated"]
        assert result["adapters"] == {
            name: (f"handaug.integrations.{name} needs the {extra!r} extra ({'lightning' if extra == 'train' else name} "
                   f'is not installed): pip install "handaug[{extra}]"')
            for name, extra in ADAPTERS.items()
        }
        assert result["installed"] == []

        plugins = subprocess.run([str(bin_dir / "handaug"), "plugins"], capture_output=True, text=True, timeout=120,
                                 env=env, cwd=work)
        assert plugins.returncode == 0, plugins.stderr[-3000:]
        assert "resnet" in plugins.stdout and "FAILED TO LOAD" not in plugins.stderr

        for command, extra, module in (("handaug-train", "train", "lightning"), ("handaug-translate", "train", "lightning"),
                                       ("handaug-eval", "eval", "torchmetrics"),
                                       ("handaug-train-silnet", "train", "lightning")):
            proc = subprocess.run([str(bin_dir / command), "--help"], capture_output=True, text=True, timeout=120,
                                  env=env, cwd=work)
            assert (proc.returncode, proc.stdout) == (2, "")
            assert proc.stderr == (f"{command}: error: {command} needs the {extra!r} extra ({module} is not installed): "
                                   f'pip install "handaug[{extra}]"\n')
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"fresh-environment test took {time.monotonic() - started:.0f} s")
