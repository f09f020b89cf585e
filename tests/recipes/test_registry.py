"""Every registered transform: every option reaches every face (array, recipe, MONAI, TorchIO) with one default."""

import dataclasses
import inspect

import pytest

from synthaug.recipes import declarations, get_transform
from synthaug.recipes.registry import DEFORM_OPTIONS

DECLS = declarations()


def _defaults(options) -> dict:
    out = {}
    for f in dataclasses.fields(options):
        out[f.name] = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return out


def _params(obj) -> dict:
    return {n: p.default for n, p in inspect.signature(obj).parameters.items()}


@pytest.mark.parametrize("decl", DECLS, ids=[d.name for d in DECLS])
def test_every_option_reaches_every_face_with_the_same_default(decl):
    monai = pytest.importorskip("synthaug.integrations.monai")
    torchio = pytest.importorskip("synthaug.integrations.torchio")
    defaults = _defaults(decl.options)
    faces = {
        "array": decl.core,
        "monai array": getattr(monai, decl.monai),
        "monai dict": getattr(monai, decl.monai_dict),
        "torchio": getattr(torchio, decl.torchio),
    }
    for face, cls in faces.items():
        params = _params(cls)
        missing = sorted(set(defaults) - set(params))
        assert not missing, f"{decl.name}: the {face} face lacks option(s) {missing}"
        for name, default in defaults.items():
            assert params[name] == default, f"{decl.name}: {face} default of {name!r} is {params[name]!r}, not {default!r}"
        assert cls.__doc__ and all(f"{n}" in cls.__doc__ for n in defaults if n not in ("label_names",)), face
    assert set(decl.recipe_options) == set(defaults) - set(DEFORM_OPTIONS)


@pytest.mark.parametrize("decl", DECLS, ids=[d.name for d in DECLS])
def test_a_non_default_option_is_carried_by_every_face(decl):
    monai = pytest.importorskip("synthaug.integrations.monai")
    torchio = pytest.importorskip("synthaug.integrations.torchio")
    field = "chunk" if "chunk" in decl.options.names() else next(
        f.name for f in dataclasses.fields(decl.options) if isinstance(f.default, float))
    value = 3 if field == "chunk" else _defaults(decl.options)[field] / 2
    assert getattr(decl.core(**{field: value}).options, field) == value
    assert getattr(getattr(monai, decl.monai)(**{field: value}).core.options, field) == value
    assert getattr(getattr(monai, decl.monai_dict)(**({"keys": "image"} if decl.inputs == "image" else {}),
                                                   **{field: value}).array.core.options, field) == value
    assert getattr(torchio, decl.torchio)(**{field: value}).options[field] == value


def test_unknown_options_get_the_closest_name_on_every_face():
    from synthaug.errors import ValidationError
    from synthaug.integrations.monai import RandContextTextureSynthd
    from synthaug.integrations.torchio import RandomContextTextureSynth

    decl = get_transform("context_texture")
    for make in (lambda: decl.core(perturbaton=0.2), lambda: RandContextTextureSynthd(perturbaton=0.2),
                 lambda: RandomContextTextureSynth(perturbaton=0.2)):
        with pytest.raises(ValidationError, match="Did you mean 'perturbation'"):
            make()
