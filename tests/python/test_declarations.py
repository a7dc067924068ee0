"""The Python wrappers cannot drift from the option declarations.

Each loss's options are declared once in C++ (include/prefopt/losses/*.h, the X-macro beside each Options struct);
the operator schemas are generated from those declarations. This test checks every ``prefopt.<name>`` wrapper of a
``torch.ops.prefopt.<name>`` operator against the operator's schema: each keyword option of the schema is a
keyword of the wrapper, with the same default. A renamed, added or re-defaulted option in C++ fails here until the
wrapper follows.
"""

import inspect

import pytest
import torch

import prefopt

_NONE = object()


def _prefopt_ops():
    names = sorted({n.split("::", 1)[1].split(".", 1)[0] for n in torch._C._dispatch_get_all_op_names()
                    if n.startswith("prefopt::")})
    return [n for n in names if not n.startswith("_")]


def _schema_options(op_name):
    """The schema's non-tensor keyword arguments with a default: name -> default."""
    schema = getattr(torch.ops.prefopt, op_name).default._schema
    out = {}
    for arg in schema.arguments:
        if not arg.kwarg_only or not arg.has_default_value():
            continue
        if "Tensor" in str(arg.type):
            continue
        out[arg.name] = arg.default_value
    return out


# Schema arguments a wrapper spells another way: dpo_loss takes TRL's list-valued loss_type and passes the list
# to the operator's loss_types.
SPELLED_OTHERWISE = {"dpo_loss": {"loss_types"}}

LOSS_OPS = [n for n in _prefopt_ops() if n.endswith("_loss") and callable(getattr(prefopt, n, None))]


def test_every_loss_operator_has_a_wrapper():
    ops = [n for n in _prefopt_ops() if n.endswith("_loss")]
    missing = [n for n in ops if not callable(getattr(prefopt, n, None))]
    assert not missing, f"loss operators without a prefopt.<name> wrapper: {missing}"
    assert len(LOSS_OPS) >= 15


@pytest.mark.parametrize("op_name", LOSS_OPS)
def test_wrapper_options_match_the_declaration(op_name):
    wrapper = inspect.signature(getattr(prefopt, op_name))
    for name, default in _schema_options(op_name).items():
        if name in SPELLED_OTHERWISE.get(op_name, ()):
            continue
        assert name in wrapper.parameters, f"prefopt.{op_name} lacks the declared option {name!r}"
        param = wrapper.parameters[name]
        assert param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD), name
        got = param.default
        assert got is not inspect.Parameter.empty, f"prefopt.{op_name}({name}) has no default"
        if isinstance(default, float):
            assert isinstance(got, (int, float)) and float(got) == default, (op_name, name, got, default)
        else:
            assert got == default, (op_name, name, got, default)


def test_declared_defaults_reach_the_schema():
    # Spot checks against the C++ structs' defaults, so the schema generation itself is tested from Python too.
    assert _schema_options("simpo_loss") == {"beta": 2.0, "gamma": 0.5, "label_smoothing": 0.0, "check_finite": True}
    ranklist = _schema_options("ranklist_loss")
    assert ranklist["form"] == "exact" and ranklist["window"] == 0 and ranklist["reference_free"] is False
    assert _schema_options("dpo_loss")["loss_type"] == "sigmoid"
