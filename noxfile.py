"""Test sessions. `nox` runs them all; `nox -s "tests(core)"` runs one.

- tests(core): the core alone (no plugin) + the test plugins under tests/plugins/
- tests(tuckute), tests(lebel): core + that one plugin
- integration: core + every plugin that shares numpy 2 (listing, id uniqueness, lazy imports, CLI)
- brainscore: core + berg-brainscore with brainscore-language 2.3.0's pins (numpy<2, transformers<5)
- lint: ruff
- slurm: core + submitit against a single-node Slurm started for the session (needs root and slurm-wlm/munge: .ci/run)
- typecheck: mypy --strict on the declared API and every plugin ([tool.mypy] in pyproject.toml)
- template: `berg new-plugin --kind sentences|timed-words` rendered, installed and run (its tests, list, info, encode)

torch is pinned to 2.13.0 (a CPU build installs from the local wheel cache on CI machines; an
unpinned torch would pull gigabytes of CUDA packages).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "integration", "brainscore", "template", "slurm"]
nox.options.reuse_existing_virtualenvs = True

TORCH = "torch==2.13.0"
TEST_PLUGINS = ["./tests/plugins/berg_testplugin", "./tests/plugins/berg_brokenplugin"]
PLUGINS = {"tuckute": "./plugins/berg_tuckute", "lebel": "./plugins/berg_lebel", "ecog": "./plugins/berg_ecog",
           "text2fmri": "./plugins/berg_text2fmri"}


def _env(session: nox.Session) -> dict[str, str]:
    tmp = session.create_tmp()
    return {"BERG_CACHE_DIR": f"{tmp}/cache", "BERG_DIR": f"{tmp}/berg", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "MPLBACKEND": "Agg", "TOKENIZERS_PARALLELISM": "false"}


@nox.session
@nox.parametrize("package", ["core", "tuckute", "lebel", "ecog", "text2fmri"], ids=["core", "tuckute", "lebel", "ecog", "text2fmri"])
def tests(session: nox.Session, package: str) -> None:
    session.install(TORCH)
    if package == "core":
        # slurm: submitit for the debug-executor tests; nc, maps: xarray/h5netcdf and nibabel for the .nc and .nii.gz outputs
        session.install("-e", ".[test,train,hf,slurm,nc,maps]", *TEST_PLUGINS)
    else:
        # text2fmri[test]: x-transformers==2.3.0, the head's reference; maps, nc: nibabel for LeBel's volumes and fixtures, xarray for its .nc test
        session.install("-e", ".[test,hf,maps,nc]", "-e", PLUGINS[package] + ("[test]" if package == "text2fmri" else ""))
    session.run("pytest", f"tests/{package}", *session.posargs, env=_env(session))


@nox.session
def integration(session: nox.Session) -> None:
    session.install(TORCH)
    session.install("-e", ".[test,train,hf]", *[f"-e{p}" for p in PLUGINS.values()], *TEST_PLUGINS)
    session.run("pytest", "tests/integration", *session.posargs, env=_env(session))


@nox.session
def brainscore(session: nox.Session) -> None:
    """brainscore-vision is the reference of the PLS-map parity tests (its ``pls_regression``, as BERG's gateway fits it):
    installed without its dependencies (torchvision, opencv, jupyter, ...); importing its metrics needs only psutil and
    result_caching besides what brainscore-language brings."""
    session.install(TORCH)
    session.install(TORCH, "numpy<2", "transformers>=4.51,<5", "brainscore-language==2.3.0", "psutil")
    session.install("--no-deps", "brainscore-vision==2.4.2", "result_caching==0.5")
    session.install("-e", ".[test]", "-e", "./plugins/berg_brainscore")
    env = {**_env(session), "BS_INSTALL_DEPENDENCIES": "no", "BRAINIO_HOME": f"{session.create_tmp()}/brainio", "OMP_NUM_THREADS": "1"}
    session.run("pytest", "tests/brainscore", *session.posargs, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, then import-linter: plugin families import only berg_core's top level ([tool.importlinter] in pyproject.toml).

    berg-brainscore is left out of the import contract: it cannot be installed without brainscore-language's pins.
    """
    session.install("ruff", "import-linter", "-e", ".", "-e", PLUGINS["tuckute"], "-e", PLUGINS["lebel"], "-e", PLUGINS["ecog"],
                    "-e", PLUGINS["text2fmri"], TEST_PLUGINS[0])
    session.run("ruff", "check", ".")
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on all of berg_core and every plugin (files and allow-list: [tool.mypy] in pyproject.toml).

    Heavy optional libraries (torch, transformers, brainscore, ...) are read as Any, so they are not installed here.
    """
    # the core's light dependencies (numpy, pluggy, ...) carry their types; pytest's for berg_core.testing's fixtures
    session.install("mypy>=1.10", "pytest>=7.4", "-e", ".")
    # the plugins without their dependencies: those would pull an unpinned torch
    session.install("--no-deps", "-e", "./plugins/berg_tuckute", "-e", "./plugins/berg_lebel", "-e", "./plugins/berg_brainscore",
                    "-e", "./plugins/berg_ecog", "-e", "./plugins/berg_text2fmri", "./tests/plugins/berg_testplugin")
    session.run("mypy")



#: writes a tiny random GPT-2 (``OUT/gpt2``) and fixture readouts for the two rendered packages (``OUT/readouts-<kind>``)
_TEMPLATE_FIXTURES = """
import sys
from pathlib import Path

import numpy as np

from berg_core.testing.hf import tiny_gpt2
from berg_tpl_sentences.plugin import ROIS
from berg_tpl_sentences.weights import save_readout as save_sentences
from berg_tpl_timed_words.weights import save_readout as save_stories

out, rng = Path(sys.argv[1]), np.random.default_rng(0)
tiny_gpt2(out / "gpt2", n_layer=3, n_embd=16, n_head=2)
(out / "readouts-sentences").mkdir()
save_sentences(out / "readouts-sentences" / "readout.npz", rng.standard_normal((len(ROIS), 16)), np.zeros(len(ROIS)), ROIS)
(out / "readouts-timed-words").mkdir()
save_stories(out / "readouts-timed-words" / "readout_S01.npz", rng.standard_normal((5, 64)), np.zeros(5),
             [f"voxel_{i}" for i in range(5)], {"lang": [1, 3]})
"""
#: the rendered models, as berg encode reads them: (kind, model id, input fixture, extra arguments, output shape)
_TEMPLATE_MODELS = (("sentences", "fmri-tpl_sentences-sentences", "sentences.txt", (), "(4, 3)"),
                    ("timed-words", "fmri-tpl_timed_words-stories", "story.json", ("--subject", "S01", "--roi", "lang"), "(14, 2)"))


@nox.session
def template(session: nox.Session) -> None:
    """``berg new-plugin --kind sentences`` and ``--kind timed-words`` rendered into a temp folder and pip-installed next to
    the core (not editable); each runs its own rendered tests and passes mypy --strict, then ``berg list``, ``berg info``,
    ``berg plugins --check`` and ``berg encode`` run on a tiny random GPT-2 with fixture readouts (about two minutes)."""
    import shutil
    from pathlib import Path

    session.install(TORCH)
    session.install("-e", ".[hf]", "pytest>=7.4")
    env = _env(session)
    tmp = Path(session.create_tmp()) / "template"
    shutil.rmtree(tmp, ignore_errors=True)
    for kind, *_ in _TEMPLATE_MODELS:
        name = "tpl_" + kind.replace("-", "_")
        session.run("berg", "new-plugin", name, "--kind", kind, "--out", str(tmp), env=env)
        session.install(str(tmp / f"berg-{name}"))
        with session.chdir(tmp / f"berg-{name}"):  # the package's own tests, against the installed copy
            session.run("pytest", "-q", "-p", "no:cacheprovider", "tests", *session.posargs, env=env)
    # mypy --strict ([tool.mypy]'s settings) on the rendered packages: they type-check against the declared API
    session.install("mypy>=1.10")
    packages = [tmp / f"berg-tpl_{kind.replace('-', '_')}" for kind, *_ in _TEMPLATE_MODELS]
    session.run("mypy", "--strict", *[str(p / p.name.replace("berg-", "berg_")) for p in packages],
                env={**env, "MYPYPATH": ":".join(map(str, packages))})
    session.run("python", "-c", _TEMPLATE_FIXTURES, str(tmp), env=env)
    listed = session.run("berg", "list", env=env, silent=True) or ""
    session.run("berg", "plugins", "--check", env=env)
    for kind, model_id, stimulus, extra, shape in _TEMPLATE_MODELS:
        if model_id not in listed:
            session.error(f"berg list does not show {model_id}:\n{listed}")
        info = session.run("berg", "info", model_id, env=env, silent=True) or ""
        if "batch_size" not in info or "int" not in info:
            session.error(f"berg info {model_id} does not show the typed options:\n{info}")
        result = tmp / f"{kind}.npy"
        fixture = tmp / f"berg-tpl_{kind.replace('-', '_')}" / "tests" / "fixtures" / stimulus
        session.run("berg", "encode", model_id, *extra, "--input", str(fixture), "--output", str(result), "--device", "cpu",
                    "-O", f"backbone={tmp / 'gpt2'}", "-O", "layer=2", "-O", f"weights={tmp / f'readouts-{kind}'}", env=env)
        session.run("python", "-c", f"import numpy as np; a = np.load({str(result)!r}); assert str(a.shape) == {shape!r}, a.shape",
                    env=env)


@nox.session
def slurm(session: nox.Session) -> None:
    """Scale-out against a real Slurm: tests/slurm starts a single-node Slurm (munged + slurmctld + slurmd, generated
    slurm.conf and munge key, tests/slurm/cluster.py), submits `berg search --shards 4 --executor slurm` job arrays through
    submitit with a tiny GPT-2 backbone, checks the merge equals the single-process search and that a cancelled task
    resumes, then stops the daemons by pid. Needs Debian's slurm-wlm and munge (`.ci/run` installs them as root); as root
    the tests fail when Slurm cannot start, otherwise they skip and say why."""
    import os

    session.install(TORCH)
    session.install("-e", ".[test,train,hf,slurm]", *TEST_PLUGINS)
    env = {**_env(session), "BERG_REQUIRE_SLURM": "1" if os.geteuid() == 0 else "0"}
    session.run("pytest", "tests/slurm", *session.posargs, env=env)
