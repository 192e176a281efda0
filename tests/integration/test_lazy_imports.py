"""`import berg_core` and `berg list` with every plugin installed import no heavy library."""

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "sklearn", "brainscore_language", "h5py", "tokenizers")

PROBE = """
import json, sys
{body}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def imported_after(body: str) -> list[str]:
    code = PROBE.format(body=body, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_import_berg_core_is_light():
    assert imported_after("import berg_core") == []


def test_berg_list_and_plugins_are_light():
    body = "from berg_core.cli import main\nmain(['list'])\nmain(['plugins'])\nmain(['info', 'fmri-tuckute_2024-GPT2_XL'])"
    assert imported_after(body) == []


def test_every_installed_plugin_loaded_cleanly_except_the_broken_fixture():
    code = "from berg_core.registry import get_registry\nr = get_registry()\nprint({p.name: p.error for p in r.plugins})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    errors = eval(out.strip().splitlines()[-1])  # noqa: S307 - our own repr of a dict of str
    assert {"tuckute", "lebel", "testplugin"} <= set(errors)
    assert {name for name, err in errors.items() if err} == {"broken"}
