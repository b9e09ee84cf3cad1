"""The one registry shape of stages, baselines, methods and metrics."""

import pytest

import baselines
from analysis.metrics import METRICS
from bench.methods import METHODS
from pixcolor.registry import Registry, UnknownNameError
from pixcolor.stages import STAGES, get_stage


def test_add_register_refuse_and_replace():
    reg: Registry[int] = Registry("number", hint=" (or count yourself)")
    assert reg.add("one", 1) == 1

    @reg.register("double")
    def double(x):
        return 2 * x

    assert list(reg) == ["one", "double"] and reg["double"] is double
    with pytest.raises(ValueError, match="number 'one' is already registered"):
        reg.add("one", 11)
    reg.add("one", 11, overwrite=True)
    assert reg["one"] == 11 and reg.get("two") is None


def test_unknown_name_lists_the_known_ones_and_is_a_key_and_a_value_error():
    reg: Registry[int] = Registry("number", hint=" (or count yourself)")
    reg.add("b", 2)
    reg.add("a", 1)
    with pytest.raises(UnknownNameError) as info:
        reg["c"]
    assert str(info.value) == "unknown number 'c'; choose one of ['a', 'b'] (or count yourself)"
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_every_registry_has_the_shape():
    for reg in (STAGES, baselines.REGISTRY, METHODS, METRICS):
        assert isinstance(reg, Registry)
    assert {"pixelcnn", "refine", "cic", "lrac", "ltbc"} <= set(STAGES)
    with pytest.raises(ValueError, match="unknown training stage 'nope'.*baselines"):
        get_stage("nope")
    with pytest.raises(KeyError, match="unknown baseline 'nope'"):
        baselines.create("nope")
