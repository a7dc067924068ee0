"""Every public function and class of the Python package has a docstring, as the package promises.

The walk covers every function and class named in ``prefopt.__all__``, every public (no leading underscore) function
and class defined in a module ``python/prefopt/*.py`` (subpackages are not walked), and the public methods and
properties that each such class defines itself (inherited ones and dunders are skipped). Only objects whose
``__module__`` is prefopt's count; names imported from torch or the standard library are not ours to document.

The rule is the weaker one of the two considered: the object's own docstring (not one inherited from
``torch.nn.Module``) opens with a sentence, a first paragraph of at least three words ending in ``.``, ``!`` or
``?``. Requiring an ``Args:`` section or a mention of every parameter was not adopted: many well-documented
functions (e.g. the listwise losses, whose shared arguments the module docstring describes) satisfy neither.
"""

import dataclasses
import functools
import importlib
import inspect
from pathlib import Path

import pytest

import prefopt

PACKAGE_DIR = Path(prefopt.__file__).resolve().parent
MODULE_NAMES = sorted(f"prefopt.{p.stem}" for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__")

PLACEHOLDERS = {"todo", "tbd", "fixme", "xxx", "docstring", "placeholder", "...", "pass", "none", "undocumented"}


def _ours(obj) -> bool:
    """A function or class defined in prefopt itself."""
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        return False
    module = getattr(obj, "__module__", None) or ""
    return module == "prefopt" or module.startswith("prefopt.")


def _qualified_name(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _class_members(cls):
    """(qualified name, object) of the public methods and properties that ``cls`` defines itself."""
    out = []
    for name, attr in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if inspect.isfunction(attr) or isinstance(attr, (property, functools.cached_property)):
            out.append((f"{_qualified_name(cls)}.{name}", attr))
    return out


def _public_objects():
    """(qualified name, object), each object once, sorted by name."""
    found = {}

    def add(obj):
        if _ours(obj):
            found.setdefault(id(obj), (_qualified_name(obj), obj))

    for name in prefopt.__all__:
        add(getattr(prefopt, name))  # data entries (library_path, __version__) carry no docstring of their own
    for module_name in MODULE_NAMES:
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if not name.startswith("_") and _ours(obj) and obj.__module__ == module_name:
                add(obj)
    objects = list(found.values())
    for _, obj in list(objects):
        if inspect.isclass(obj):
            objects.extend(_class_members(obj))
    return sorted(objects, key=lambda item: item[0])


PUBLIC = _public_objects()


def _own_doc(obj):
    """The object's own docstring, cleaned; None when it has none (an inherited one does not count)."""
    if inspect.isclass(obj):
        raw = vars(obj).get("__doc__")
        if raw and dataclasses.is_dataclass(obj) and raw.startswith(obj.__name__ + "("):
            raw = None  # the signature that @dataclass writes when the class has no docstring
    else:
        raw = obj.__doc__
    return inspect.cleandoc(raw) if raw and raw.strip() else None


def test_the_walk_finds_the_package():
    names = {name for name, _ in PUBLIC}
    assert "prefopt.results" in MODULE_NAMES and "prefopt.pairwise" in MODULE_NAMES
    for expected in ("prefopt.pairwise.dpo_loss", "prefopt.pairwise.DPOLoss", "prefopt.pairwise.DPOLoss.forward",
                     "prefopt.scoring.fused_linear_logps", "prefopt.tokenizer.Tokenizer.encode",
                     "prefopt.tokenizer.Tokenizer.vocab_size", "prefopt.results.LossResult"):
        assert expected in names, f"{expected} was not walked"
    for name in prefopt.__all__:
        obj = getattr(prefopt, name)
        if _ours(obj):
            assert _qualified_name(obj) in names, f"prefopt.{name} was not walked"
    assert len(PUBLIC) >= 60


@pytest.mark.parametrize("obj", [obj for _, obj in PUBLIC], ids=[name for name, _ in PUBLIC])
def test_has_a_docstring(obj):
    doc = _own_doc(obj)
    assert doc, "no docstring of its own"
    summary = doc.split("\n\n", 1)[0].strip()
    words = summary.split()
    assert summary.lower().strip(".!? ") not in PLACEHOLDERS, f"placeholder docstring: {summary!r}"
    assert len(words) >= 3, f"the docstring's first paragraph is not a sentence: {summary!r}"
    assert summary[-1] in ".!?", f"the docstring's first paragraph does not end a sentence: {summary!r}"
