"""The Schaefer-2018 1000-parcel 7-network label table shipped with the plugin (no atlas download).

``schaefer2018_1000parcels_7networks.tsv``: a ``#`` header line (source repo, path, commit, licence), then 1000 lines
``index<TAB>name``, index 1..1000 in label order (LH 1-500, RH 501-1000), names like ``7Networks_LH_Vis_1`` whose
third ``_`` field is the network. Copied from CBIG (MIT; colour columns dropped); its sha256 is checked at load.
Standard library only: ``berg info`` reads it at registration time.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from berg_core import ModelLoadError
from berg_text2fmri.plugin import N_PARCELS, NETWORKS

TABLE_PATH = Path(__file__).with_name("schaefer2018_1000parcels_7networks.tsv")
#: sha256 of the shipped file, bytes as committed
TABLE_SHA256 = "b47ed1f144c8a9ce3e1f10736442bdd7f8b2798b03b18664201f8373c9537377"


def network_of(label: str) -> str:
    """``7Networks_LH_Vis_1`` -> ``Vis`` (the third ``_`` field)."""
    parts = label.split("_")
    return parts[2] if len(parts) > 3 else ""


def read_table(path: Path = TABLE_PATH) -> tuple[str, ...]:
    """The 1000 parcel names in label order (position i = label i + 1), or one ``ModelLoadError`` line when the file
    is missing, not the shipped bytes, or malformed."""
    reinstall = "reinstall berg-text2fmri (pip install --force-reinstall berg-text2fmri)"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"the Schaefer label table {path} cannot be read ({type(exc).__name__}); {reinstall}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != TABLE_SHA256:
        raise ModelLoadError(f"the Schaefer label table {path} is damaged (sha256 {digest[:12]}..., expected "
                             f"{TABLE_SHA256[:12]}...); {reinstall}")
    rows = [line.split("\t") for line in data.decode("utf-8").splitlines() if line and not line.startswith("#")]
    names = tuple(r[1] for r in rows if len(r) == 2)
    if (len(names) != N_PARCELS or [r[0] for r in rows] != [str(i) for i in range(1, N_PARCELS + 1)]
            or {network_of(n) for n in names} != set(NETWORKS)):
        raise ModelLoadError(f"the Schaefer label table {path} is malformed; {reinstall}")
    return names


@lru_cache(maxsize=1)
def parcel_labels() -> tuple[str, ...]:
    """The shipped table's 1000 names, label order (read and checked once per process)."""
    return read_table(TABLE_PATH)


def network_parcels() -> dict[str, tuple[int, ...]]:
    """``{network: 0-based parcel indices, ascending}`` in ``NETWORKS`` order, from the shipped table."""
    nets = [network_of(n) for n in parcel_labels()]
    return {net: tuple(i for i, n in enumerate(nets) if n == net) for net in NETWORKS}


def network_counts() -> dict[str, int]:
    """``{network: number of parcels}`` in ``NETWORKS`` order (both hemispheres)."""
    return {net: len(idx) for net, idx in network_parcels().items()}
