"""Test sessions. `nox` runs them all; `nox -s "tests(core)"` runs one.

- tests(core): the core alone (no plugin) + the test plugins under tests/plugins/
- tests(tuckute), tests(lebel): core + that one plugin
- integration: core + every plugin that shares numpy 2 (listing, id uniqueness, lazy imports, CLI)
- brainscore: core + berg-brainscore with brainscore-language 2.3.0's pins (numpy<2, transformers<5)
- lint: ruff
- slurm: core + submitit against a single-node Slurm started for the session (needs root and slurm-wlm/munge: .ci/run)

torch is pinned to 2.13.0 (a CPU build installs from the local wheel cache on CI machines; an
unpinned torch would pull gigabytes of CUDA packages).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests", "integration", "brainscore", "slurm"]
nox.options.reuse_existing_virtualenvs = True

TORCH = "torch==2.13.0"
TEST_PLUGINS = ["./tests/plugins/berg_testplugin", "./tests/plugins/berg_brokenplugin"]
PLUGINS = {"tuckute": "./plugins/berg_tuckute", "lebel": "./plugins/berg_lebel"}


def _env(session: nox.Session) -> dict[str, str]:
    tmp = session.create_tmp()
    return {"BERG_CACHE_DIR": f"{tmp}/cache", "BERG_DIR": f"{tmp}/berg", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "MPLBACKEND": "Agg", "TOKENIZERS_PARALLELISM": "false"}


@nox.session
@nox.parametrize("package", ["core", "tuckute", "lebel"], ids=["core", "tuckute", "lebel"])
def tests(session: nox.Session, package: str) -> None:
    session.install(TORCH)
    if package == "core":
        session.install("-e", ".[test,train,hf]", *TEST_PLUGINS)
    else:
        session.install("-e", ".[test,hf]", "-e", PLUGINS[package])
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
    session.install("ruff", "import-linter", "-e", ".", "-e", PLUGINS["tuckute"], "-e", PLUGINS["lebel"], TEST_PLUGINS[0])
    session.run("ruff", "check", ".")
    session.run("lint-imports")


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
