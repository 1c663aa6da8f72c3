"""The only module that touches the network: reading raw rows from the Hugging Face hub.

Why a probe first: huggingface_hub and datasets retry a failed connection for
about half a minute per file before giving up, so an offline machine would
hang on every dataset.  One short HEAD request to the hub endpoint (cached for
the process) tells us within seconds whether trying makes sense.
``HF_HUB_OFFLINE=1`` or ``IMPLICIT_IF_OFFLINE=1`` skips the network entirely.

Errors are translated into :class:`DatasetUnavailable` with a ``reason`` and a
message that names the fix (network, licence acceptance, login).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..io import read_jsonl
from .errors import DatasetUnavailable

OFFLINE_ENVS = ("IMPLICIT_IF_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
TIMEOUT_ENV = "IMPLICIT_IF_HUB_TIMEOUT"
DEFAULT_TIMEOUT_S = 5.0

_probe_results: dict[str, bool] = {}


@dataclass(frozen=True)
class HubSource:
    """Where a dataset lives on the hub.

    ``filename`` set: download that one JSON/JSONL file from the dataset repo
    (used where a loading script breaks ``datasets.load_dataset``).  Otherwise
    ``datasets.load_dataset(repo_id, config, split=split)``; ``streaming``
    avoids downloading a huge set of which only a prefix is used.
    """

    repo_id: str
    split: str = "train"
    config: str | None = None
    filename: str | None = None
    streaming: bool = False

    @property
    def page(self) -> str:
        return f"https://huggingface.co/datasets/{self.repo_id}"

    def describe(self) -> str:
        where = self.filename or "/".join(x for x in (self.config, self.split) if x)
        return f"{self.repo_id}:{where}"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def offline_env() -> str | None:
    """Name of the environment variable that switches the hub off, if any is set."""
    for name in OFFLINE_ENVS:
        if _truthy(os.environ.get(name)):
            return name
    return None


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def timeout_s() -> float:
    try:
        return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def hub_reachable() -> bool:
    """True when the hub endpoint answers at all (any HTTP status counts). Cached per process."""
    url = endpoint()
    if url not in _probe_results:
        request = urllib.request.Request(url, method="HEAD")
        try:
            urllib.request.urlopen(request, timeout=timeout_s()).close()
            ok = True
        except urllib.error.HTTPError:
            ok = True  # the server answered; auth or routing problems surface later, with detail
        except (urllib.error.URLError, OSError, ValueError):
            ok = False
        _probe_results[url] = ok
    return _probe_results[url]


def reset_probe() -> None:
    """Forget the cached reachability answer (for tests, or after the network changes)."""
    _probe_results.clear()


def check_available(name: str, source: HubSource) -> None:
    """Raise :class:`DatasetUnavailable` fast when the hub cannot be used at all."""
    env = offline_env()
    if env:
        raise DatasetUnavailable(
            f"dataset {name!r}: the hub is switched off ({env}=1), so {source.describe()} "
            f"cannot be downloaded. Unset {env} to download it, or load with offline=True "
            f"(or offline=None) to use the small bundled fixture instead.",
            reason="offline",
        )
    if not hub_reachable():
        raise DatasetUnavailable(
            f"dataset {name!r}: cannot reach the Hugging Face hub at {endpoint()} (no answer to "
            f"a {timeout_s():g}s probe), so {source.describe()} cannot be downloaded. Check the network "
            f"or proxy (or HF_ENDPOINT; {TIMEOUT_ENV} sets the probe timeout), or load with "
            f"offline=True to use the small bundled fixture instead.",
            reason="unreachable",
        )


def gated_message(name: str, source: HubSource) -> str:
    return (
        f"dataset {name!r}: {source.repo_id} is gated on the hub and this machine is not "
        f"authorised to read it. Accept its licence at {source.page} while logged in, then "
        f"run `huggingface-cli login` (or `hf auth login`) or set HF_TOKEN to a token of "
        f"that account."
    )


def _status_code(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def translate_error(name: str, source: HubSource, exc: BaseException) -> DatasetUnavailable:
    """Map the many hub/datasets exceptions onto a reason and an actionable message."""
    kind = type(exc).__name__
    text = str(exc)
    if kind == "GatedRepoError" or re.search(r"\bgated\b", text, re.IGNORECASE):
        return DatasetUnavailable(gated_message(name, source), reason="gated")
    if kind in {
        "RepositoryNotFoundError",
        "DatasetNotFoundError",
        "RemoteEntryNotFoundError",
        "EntryNotFoundError",
        "RevisionNotFoundError",
        "DataFilesNotFoundError",
    }:
        # The hub answers 401 for missing *and* private repos, so this also covers auth.
        return DatasetUnavailable(
            f"dataset {name!r}: {source.describe()} was not found on the hub ({kind}: {text[:200]}). "
            f"If the repository is private or gated, log in with `huggingface-cli login` or set HF_TOKEN.",
            reason="not_found",
        )
    if _status_code(exc) in (401, 403):
        return DatasetUnavailable(gated_message(name, source), reason="gated")
    network = (
        kind in {"LocalEntryNotFoundError", "OfflineModeIsEnabled"}
        or isinstance(exc, (ConnectionError, TimeoutError))
        or any(w in kind for w in ("Connect", "Timeout", "Network"))
    )
    if network:
        return DatasetUnavailable(
            f"dataset {name!r}: lost the connection to the hub while reading {source.describe()} "
            f"({kind}: {text[:200]}). Retry, or load with offline=True to use the bundled fixture.",
            reason="unreachable",
        )
    return DatasetUnavailable(
        f"dataset {name!r}: reading {source.describe()} from the hub failed ({kind}: {text[:300]}).",
        reason="error",
    )


def _read_file_rows(source: HubSource) -> list[dict[str, Any]]:
    from huggingface_hub import hf_hub_download

    assert source.filename is not None
    path = hf_hub_download(
        repo_id=source.repo_id, filename=source.filename, repo_type="dataset", etag_timeout=timeout_s()
    )
    if source.filename.endswith(".jsonl"):
        return read_jsonl(Path(path))
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    return data if isinstance(data, list) else list(data.get(source.split, []))


def _read_dataset_rows(source: HubSource) -> Iterator[dict[str, Any]]:
    import datasets

    ds = datasets.load_dataset(source.repo_id, source.config, split=source.split, streaming=source.streaming)
    return iter(ds)


def read_rows(name: str, source: HubSource) -> Iterator[dict[str, Any]]:
    """Raw rows of ``source`` in file order; every failure becomes :class:`DatasetUnavailable`.

    Lazy for streaming sources, so a consumer that stops early downloads little.
    """
    check_available(name, source)
    try:
        rows = _read_file_rows(source) if source.filename else _read_dataset_rows(source)
        yield from rows
    except DatasetUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - translated, with the original chained
        raise translate_error(name, source, exc) from exc
