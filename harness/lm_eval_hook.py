"""Make `lm_eval --tasks implicit_if` work without `--include_path`.

lm-eval (0.4.x) has no plugin mechanism for tasks: its TaskManager indexes its own
`lm_eval/tasks` folder plus whatever `include_path` the caller gives. The wheel ships a
one-line `.pth` file that calls :func:`install` at interpreter start-up. `install` only
registers an import hook (it imports nothing heavy); when, and only when, lm-eval's task
manager module is imported, the hook wraps `TaskManager.__init__` to append our task folder
to `include_path`.

The same hook registers our lm-eval model names (`implicit_if_hf`, which adds the rule-based
adapter to lm-eval's hf model) as lazy placeholders when `lm_eval.models` is imported.

Trade-offs, documented in the README: the hook runs in every interpreter of the environment,
so it is guarded (any failure is swallowed; `IMPLICIT_IF_NO_LM_EVAL_HOOK=1` disables it) and
bounded to the lm-eval versions we test (`SUPPORTED`). Outside that range it does nothing and
`--include_path "$(implicit-if tasks-dir)"` remains the plain route.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import inspect
import sys
from pathlib import Path
from typing import Any

TARGET_MODULE = "lm_eval.tasks.manager"
MODELS_MODULE = "lm_eval.models"
# Our lm-eval model classes, registered lazily (lm-eval imports them only when asked for).
LM_EVAL_MODELS = {"implicit_if_hf": "implicit_if.lm_eval_models:ImplicitIfHFLM"}
SUPPORTED = ((0, 4, 9), (0, 5, 0))  # [lower, upper)
_MARK = "_implicit_if_wrapped"


def tasks_dir() -> Path:
    """Folder holding the `implicit_if` lm-eval task YAML files."""
    from importlib.util import find_spec

    spec = find_spec("implicit_if.tasks")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("implicit_if.tasks is missing: reinstall implicit-if")
    return Path(list(spec.submodule_search_locations)[0])


def _version_supported() -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        raw = version("lm_eval")
    except PackageNotFoundError:
        return False
    parts = []
    for piece in raw.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    current = tuple(parts + [0] * (3 - len(parts)))
    return SUPPORTED[0] <= current < SUPPORTED[1]


def patch_task_manager(module: Any) -> None:
    """Wrap TaskManager.__init__ so our task folder is always indexed (idempotent)."""
    manager = getattr(module, "TaskManager", None)
    if manager is None or getattr(manager.__init__, _MARK, False) or not _version_supported():
        return
    original = manager.__init__
    ours = tasks_dir().resolve()

    signature = inspect.signature(original)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        include = bound.arguments.get("include_path")
        paths = [] if include is None else list(include) if isinstance(include, (list, tuple)) else [include]
        if all(Path(p).resolve() != ours for p in paths):
            paths.append(ours)
        bound.arguments["include_path"] = paths
        original(*bound.args, **bound.kwargs)

    setattr(__init__, _MARK, True)
    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    manager.__init__ = __init__


def register_models(module: Any) -> None:
    """Add our model names to lm-eval's registry as lazy 'module:Class' placeholders."""
    from importlib.util import find_spec

    if not _version_supported():
        return
    from lm_eval.api.registry import model_registry

    for alias, target in LM_EVAL_MODELS.items():
        if alias in model_registry.keys() or find_spec(target.split(":")[0]) is None:
            continue
        model_registry.register(alias, target=target)


PATCHES = {TARGET_MODULE: patch_task_manager, MODELS_MODULE: register_models}


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, wrapped: importlib.abc.Loader, patch: Any) -> None:
        self._wrapped = wrapped
        self._patch = patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self._wrapped.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._wrapped.exec_module(module)
        try:
            self._patch(module)
        except Exception:  # never break lm-eval because of us
            pass


class _TaskManagerFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, PATCHES[fullname])
                return spec
        return None


def install() -> None:
    """Register the lazy hook (called from the .pth file at start-up)."""
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if not any(isinstance(f, _TaskManagerFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TaskManagerFinder())
