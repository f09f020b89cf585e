"""Weights integrity (issue 17, case 4): a tensor content hash embedded at save time and checked on every load,
publish and verify refuse modified tensors, a card without a sha256 needs an explicit opt-out, and a malformed
card is skipped with a warning naming its path instead of breaking every load."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from synthaug.cli.main import main
from synthaug.errors import WeightsError
from synthaug.weights import registry
from synthaug.weights.registry import MalformedCardWarning
from synthaug.weights.store import (
    ALLOW_UNVERIFIED_ENV,
    UnverifiedWeightsWarning,
    load_network,
    read_card,
    save_weights,
    sha256_file,
    tensor_sha256,
)
from tests.weights._files import flip_tensor_bytes, write_legacy

OPT_OUT_NAMES = (ALLOW_UNVERIFIED_ENV, "allow_unverified")


@pytest.fixture
def user_dir(tmp_path, monkeypatch, tiny_context):
    """A registry folder with one tiny entry ``user_tiny`` on SYNTHAUG_WEIGHTS_PATH, opt-out unset."""
    net, card = tiny_context
    root = tmp_path / "reg"
    (root / "cards").mkdir(parents=True)
    stored = save_weights(net, card.replace(name="user_tiny"), root / "files" / "user_tiny.safetensors")
    (root / "cards" / "user_tiny.json").write_text(stored.to_json())
    monkeypatch.setenv("SYNTHAUG_WEIGHTS_PATH", str(root))
    monkeypatch.delenv(ALLOW_UNVERIFIED_ENV, raising=False)
    registry.clear_cache()
    yield root
    registry.clear_cache()


def _rewrite_card(root, name, **changes):
    path = root / "cards" / f"{name}.json"
    d = json.loads(path.read_text())
    d.update(changes)
    path.write_text(json.dumps(d))
    registry.clear_cache()


# --- the tensor content hash ------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=0, max_size=3),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.uint8]),
    byte=st.integers(0, 10_000),
    bit=st.integers(0, 7),
)
def test_tensor_hash_changes_with_any_flipped_bit(shape, dtype, byte, bit):
    g = torch.Generator().manual_seed(len(shape) * 31 + byte)
    t = (torch.rand(shape, generator=g) * 100).to(dtype)
    state = {"a.weight": t, "b.bias": torch.arange(3.0)}
    flipped = t.clone().reshape(-1).view(torch.uint8)
    flipped[byte % flipped.numel()] ^= 1 << bit
    assert tensor_sha256(state) != tensor_sha256({**state, "a.weight": flipped.view(dtype).reshape(t.shape)})


def test_tensor_hash_covers_names_dtypes_shapes_and_ignores_order_and_layout():
    w = torch.arange(6.0).reshape(2, 3)
    base = tensor_sha256({"w": w, "b": torch.ones(2)})
    assert base == tensor_sha256({"b": torch.ones(2), "w": w.t().contiguous().t()})  # order, memory layout
    assert base != tensor_sha256({"w2": w, "b": torch.ones(2)})  # name
    assert base != tensor_sha256({"w": w.double(), "b": torch.ones(2)})  # dtype
    assert base != tensor_sha256({"w": w.reshape(3, 2), "b": torch.ones(2)})  # shape, same bytes
    assert base != tensor_sha256({"w": w})  # a tensor missing


def test_save_embeds_the_tensor_hash_in_the_file_metadata(tmp_path, tiny_context):
    from safetensors.torch import load_file

    net, card = tiny_context
    stored = save_weights(net, card, tmp_path / "tiny.safetensors")
    embedded = read_card(tmp_path / "tiny.safetensors")
    assert embedded.tensor_sha256 == stored.tensor_sha256 == tensor_sha256(load_file(str(tmp_path / "tiny.safetensors")))
    assert embedded.sha256 == "" and stored.sha256 == sha256_file(tmp_path / "tiny.safetensors")


# --- case 4a: flipped tensor bytes load silently by path ---------------------------------------------------


def test_issue17_flipped_tensor_bytes_in_a_copy_of_shipped_weights_are_refused_by_path(tmp_path):
    """Issue 17 case 4: a copy of shipped weights with flipped tensor bytes loaded by path (no card beside it)
    used to load silently (outputs ~163 HU off); the embedded tensor hash refuses it."""
    copy = tmp_path / "context_ct_a.safetensors"
    shutil.copy(registry.builtin_dir() / "files" / "context_ct_a.safetensors", copy)
    registry.load(copy)  # the intact copy loads by path: its tensor hash is the only check and it passes
    flip_tensor_bytes(copy)
    registry.clear_cache()
    with pytest.raises(WeightsError, match="tensors were modified or corrupted") as err:
        registry.load(copy)
    assert str(copy) in str(err.value)
    with pytest.raises(WeightsError, match="tensors were modified"):
        load_network(copy)  # the low-level loader checks it too


def test_issue17_flipped_tensor_bytes_are_refused_by_name_even_if_the_card_sha256_was_updated(user_dir):
    """A tampered file whose registry card was re-certified (sha256 updated) still fails the tensor hash."""
    path = user_dir / "files" / "user_tiny.safetensors"
    flip_tensor_bytes(path, offsets=(7,))
    _rewrite_card(user_dir, "user_tiny", sha256=sha256_file(path))
    with pytest.raises(WeightsError, match="tensors were modified"):
        registry.load("user_tiny")


def test_opt_out_never_accepts_modified_tensors(user_dir, monkeypatch):
    path = user_dir / "files" / "user_tiny.safetensors"
    flip_tensor_bytes(path)
    _rewrite_card(user_dir, "user_tiny", sha256="")
    monkeypatch.setenv(ALLOW_UNVERIFIED_ENV, "1")
    with pytest.warns(UnverifiedWeightsWarning, match="no sha256"), pytest.raises(WeightsError, match="tensors were modified"):
        registry.load("user_tiny")


# --- case 4b: publish certified a tampered file; verify then said ok ---------------------------------------


def test_issue17_publish_refuses_a_file_whose_tensors_do_not_match_its_embedded_hash(tmp_path, tiny_context, capsys):
    """Issue 17 case 4: `synthaug weights publish` used to re-save (certify) a file with flipped tensor bytes."""
    net, card = tiny_context
    src = tmp_path / "run" / "tiny.safetensors"
    save_weights(net, card, src)
    flip_tensor_bytes(src)
    dest = tmp_path / "reg"
    assert main(["weights", "publish", str(src), "--name", "tiny_pub", "--dest", str(dest)]) == 2
    err = capsys.readouterr().err
    assert "tensors were modified" in err and str(src) in err and "Traceback" not in err
    assert not (dest / "files" / "tiny_pub.safetensors").exists() and not (dest / "cards" / "tiny_pub.json").exists()


def test_publish_of_a_file_without_embedded_hash_needs_accept_unhashed_and_says_it_added_one(tmp_path, tiny_context, capsys):
    net, card = tiny_context
    src = tmp_path / "old_run" / "tiny.safetensors"
    write_legacy(net.state_dict(), card, src)
    dest = tmp_path / "reg"
    assert main(["weights", "publish", str(src), "--name", "tiny_pub", "--dest", str(dest)]) == 2
    err = capsys.readouterr().err
    assert "no tensor content hash" in err and "--accept-unhashed" in err
    assert not (dest / "files" / "tiny_pub.safetensors").exists()

    assert main(["weights", "publish", str(src), "--name", "tiny_pub", "--dest", str(dest), "--accept-unhashed"]) == 0
    out = capsys.readouterr().out
    assert "carried no tensor content hash" in out and "embeds one computed now" in out
    published = dest / "files" / "tiny_pub.safetensors"
    stored = json.loads((dest / "cards" / "tiny_pub.json").read_text())
    from safetensors.torch import load_file

    assert stored["tensor_sha256"] == read_card(published).tensor_sha256 == tensor_sha256(load_file(str(src)))
    assert stored["sha256"] == sha256_file(published)
    load_network(published, expected_sha256=stored["sha256"])


def test_publish_api_reports_whether_a_hash_was_added(tmp_path, tiny_context):
    net, card = tiny_context
    src = tmp_path / "run" / "tiny.safetensors"
    save_weights(net, card, src)
    result = registry.publish(src, name="tiny_pub", dest=tmp_path / "reg")
    assert not result.hash_added and result.card.tensor_sha256 == read_card(src).tensor_sha256
    assert result.path == tmp_path / "reg" / "files" / "tiny_pub.safetensors"


def test_issue17_verify_reports_modified_tensors_that_the_file_checksum_alone_passes(user_dir, capsys):
    """Issue 17 case 4: after a tampered file was re-certified, `weights verify` used to say ok."""
    path = user_dir / "files" / "user_tiny.safetensors"
    flip_tensor_bytes(path)
    _rewrite_card(user_dir, "user_tiny", sha256=sha256_file(path))
    assert main(["weights", "verify", "user_tiny"]) == 1
    err = capsys.readouterr().err
    assert "user_tiny: FAILED" in err and "tensors were modified" in err


def test_verify_checks_both_hashes_of_every_entry_and_lists_each_failure(user_dir, tiny_context, capsys):
    net, card = tiny_context
    # a second entry whose file no longer matches its card's sha256, a third without an embedded hash
    stored = save_weights(net, card.replace(name="bad_sha"), user_dir / "files" / "bad_sha.safetensors")
    (user_dir / "cards" / "bad_sha.json").write_text(stored.replace(sha256="0" * 64).to_json())
    write_legacy(net.state_dict(), card.replace(name="legacy"), user_dir / "files" / "legacy.safetensors")
    legacy = read_card(user_dir / "files" / "legacy.safetensors").replace(
        sha256=sha256_file(user_dir / "files" / "legacy.safetensors"))
    (user_dir / "cards" / "legacy.json").write_text(legacy.to_json())
    registry.clear_cache()
    results = {r.name: r for r in registry.verify()}
    assert results["user_tiny"].ok and results["context_ct_a"].ok
    assert results["user_tiny"].integrity.file_ok and results["user_tiny"].integrity.tensors_ok
    assert any("corrupt or was modified" in p for p in results["bad_sha"].problems)
    assert any("no embedded tensor content hash" in p for p in results["legacy"].problems)
    assert main(["weights", "verify"]) == 1
    captured = capsys.readouterr()
    assert "bad_sha: FAILED" in captured.err and "legacy: FAILED" in captured.err
    assert "2 of" in captured.err and "user_tiny: ok" in captured.out


# --- case 4c: a card with an empty sha256 disabled checking without a word ---------------------------------


def test_issue17_a_card_without_sha256_is_refused_and_the_error_names_both_opt_outs(user_dir):
    """Issue 17 case 4: an empty sha256 in a registry card used to switch the file check off silently."""
    _rewrite_card(user_dir, "user_tiny", sha256="")
    with pytest.raises(WeightsError, match="has no sha256") as err:
        registry.load("user_tiny")
    assert all(name in str(err.value) for name in OPT_OUT_NAMES)
    assert str(user_dir / "cards" / "user_tiny.json") in str(err.value)


def test_a_card_without_sha256_loads_after_an_explicit_opt_out_with_a_warning(user_dir, monkeypatch):
    _rewrite_card(user_dir, "user_tiny", sha256="")
    with pytest.warns(UnverifiedWeightsWarning):
        net, card = registry.load("user_tiny", allow_unverified=True)
    assert card.tensor_sha256  # the tensor hash was still checked
    registry.clear_cache()
    monkeypatch.setenv(ALLOW_UNVERIFIED_ENV, "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedWeightsWarning)
        registry.load("user_tiny")
    monkeypatch.setenv(ALLOW_UNVERIFIED_ENV, "0")
    registry.clear_cache()
    with pytest.raises(WeightsError, match="has no sha256"):
        registry.load("user_tiny")


def test_a_sidecar_card_without_sha256_is_refused_too(tmp_path, tiny_context, monkeypatch):
    monkeypatch.delenv(ALLOW_UNVERIFIED_ENV, raising=False)
    net, card = tiny_context
    stored = save_weights(net, card, tmp_path / "tiny.safetensors")
    (tmp_path / "tiny.json").write_text(stored.replace(sha256="").to_json())
    with pytest.raises(WeightsError, match="has no sha256"):
        registry.load(tmp_path / "tiny.safetensors")
    (tmp_path / "tiny.json").write_text(stored.to_json())
    registry.load(tmp_path / "tiny.safetensors")


def test_a_file_with_nothing_to_check_is_refused_unless_opted_out(tmp_path, tiny_context, monkeypatch):
    """No embedded hash and no card giving a sha256: refused, naming both opt-outs and the publish fix."""
    monkeypatch.delenv(ALLOW_UNVERIFIED_ENV, raising=False)
    net, card = tiny_context
    path = tmp_path / "legacy.safetensors"
    write_legacy(net.state_dict(), card, path)
    with pytest.raises(WeightsError, match="cannot be verified") as err:
        registry.load(path)
    assert all(name in str(err.value) for name in OPT_OUT_NAMES) and "--accept-unhashed" in str(err.value)
    with pytest.warns(UnverifiedWeightsWarning):
        load_network(path, allow_unverified=True)
    # with a card beside it that gives the file's sha256, the same legacy file is verified and loads
    (tmp_path / "legacy.json").write_text(read_card(path).replace(sha256=sha256_file(path)).to_json())
    registry.load(path)


# --- case 4d: one malformed card broke every load and the error did not name the file ----------------------


BROKEN_CARDS = {
    "not_json": "{ this is not json",
    "a_list": "[1, 2, 3]",
    "unknown_field": None,  # filled from a valid card below
    "bad_family": None,
    "escaping_file": None,
    "missing_fields": json.dumps({"name": "missing_fields", "family": "context"}),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_CARDS))
def test_issue17_a_malformed_card_is_skipped_with_a_warning_naming_it_and_other_weights_keep_working(
    user_dir, kind, tmp_path, monkeypatch
):
    """Issue 17 case 4: one malformed card in SYNTHAUG_WEIGHTS_PATH used to break every load (shipped weights
    included) with an error that did not name the file."""
    good = json.loads((user_dir / "cards" / "user_tiny.json").read_text())
    texts = dict(BROKEN_CARDS)
    texts["unknown_field"] = json.dumps({**good, "name": "unknown_field", "colour": "blue"})
    texts["bad_family"] = json.dumps({**good, "name": "bad_family", "family": "magic"})
    texts["escaping_file"] = json.dumps({**good, "name": "escaping_file", "file": "../../etc/passwd"})
    other = tmp_path / "other"
    (other / "cards").mkdir(parents=True)
    bad = other / "cards" / f"{kind}.json"
    bad.write_text(texts[kind])
    monkeypatch.setenv("SYNTHAUG_WEIGHTS_PATH", f"{user_dir}:{other}")
    registry.clear_cache()
    registry._WARNED_MALFORMED.clear()
    with pytest.warns(MalformedCardWarning, match=str(bad)):
        names = [c.name for c in registry.list_weights()]
    assert "user_tiny" in names and "context_mni" in names and kind not in names
    with warnings.catch_warnings():
        warnings.simplefilter("error", MalformedCardWarning)  # once per process
        registry.clear_cache()
        registry.list_weights()
        registry.load("user_tiny")
        assert registry.get_card("context_mni").name == "context_mni"
    with pytest.raises(WeightsError, match="malformed") as err:
        registry.get_card(kind)
    assert str(bad) in str(err.value)
    assert [m.path for m in registry.malformed_cards()] == [bad]
    assert any(r.name == kind and not r.ok for r in registry.verify())


def test_a_valid_card_of_the_same_name_wins_over_a_malformed_one(user_dir, tmp_path, monkeypatch):
    other = tmp_path / "other"
    (other / "cards").mkdir(parents=True)
    (other / "cards" / "user_tiny.json").write_text("{broken")
    monkeypatch.setenv("SYNTHAUG_WEIGHTS_PATH", f"{user_dir}:{other}")
    registry.clear_cache()
    registry.load("user_tiny")
    assert registry.malformed_cards() == ()


# --- reseal: re-embed an edited card, tensors byte for byte ------------------------------------------------


def test_reseal_re_embeds_an_edited_card_and_keeps_the_tensors(user_dir, capsys):
    from safetensors.torch import load_file

    path = user_dir / "files" / "user_tiny.safetensors"
    before = load_file(str(path))
    _rewrite_card(user_dir, "user_tiny", notes="edited documentation")
    assert main(["weights", "reseal", "user_tiny"]) == 0
    assert "user_tiny: sha256" in capsys.readouterr().out
    after = load_file(str(path))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    card = registry.get_card("user_tiny")
    assert card.sha256 == sha256_file(path) and read_card(path).notes == "edited documentation"
    assert card.inference.divisor >= 1
    registry.load("user_tiny")


def test_reseal_refuses_a_modified_file(user_dir):
    flip_tensor_bytes(user_dir / "files" / "user_tiny.safetensors")
    with pytest.raises(WeightsError, match="corrupt or was modified"):
        registry.reseal("user_tiny")
