import pytest
import torch

from synthaug.errors import WeightsError
from synthaug.weights.card import ModelCard
from synthaug.weights.store import load_network, read_card, save_weights, sha256_file


def _run(net):
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    labels[:, 4:12, 4:12] = 1
    return net(labels, torch.full((1, 2, 3), 0.5))


def test_round_trip_rebuilds_the_same_network(tmp_path, tiny_context):
    net, card = tiny_context
    stored = save_weights(net, card, tmp_path / "tiny.safetensors")
    assert stored.sha256 == sha256_file(tmp_path / "tiny.safetensors")
    assert read_card(tmp_path / "tiny.safetensors").name == "tiny"
    loaded, loaded_card = load_network(tmp_path / "tiny.safetensors", expected_sha256=stored.sha256)
    assert not any(p.requires_grad for p in loaded.parameters())
    assert not loaded.training
    net.eval()
    torch.testing.assert_close(_run(loaded), _run(net))
    assert loaded_card.training_cases == ("ctA_z000-009",)


def test_corrupted_file_is_refused(tmp_path, tiny_context):
    net, card = tiny_context
    path = tmp_path / "tiny.safetensors"
    stored = save_weights(net, card, path)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupt or was modified"):
        load_network(path, expected_sha256=stored.sha256)


def test_truncated_file_is_refused(tmp_path, tiny_context):
    net, card = tiny_context
    path = tmp_path / "tiny.safetensors"
    save_weights(net, card, path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_network(path)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="missing"):
        load_network(tmp_path / "nope.safetensors", expected_sha256="0" * 64)
    with pytest.raises(WeightsError, match="does not exist"):
        read_card(tmp_path / "nope.safetensors")


def test_card_json_round_trip_and_unknown_fields(tiny_context):
    _, card = tiny_context
    assert ModelCard.from_json(card.to_json()) == card
    d = card.to_dict()
    d["colour"] = "blue"
    with pytest.raises(WeightsError, match="unknown field"):
        ModelCard.from_dict(d)
    with pytest.raises(WeightsError, match="family"):
        card.replace(family="magic")


def test_architecture_mismatch_is_reported(tmp_path, tiny_context):
    net, card = tiny_context
    wrong = card.replace(arguments={**card.arguments, "widths": [8, 16]})
    path = tmp_path / "wrong.safetensors"
    save_weights(net, wrong, path)
    with pytest.raises(WeightsError, match="does not match architecture"):
        load_network(path)
