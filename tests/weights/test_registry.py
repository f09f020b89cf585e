import pytest

from synthaug.errors import WeightsError
from synthaug.weights import registry
from synthaug.weights.store import save_weights


@pytest.fixture
def user_dir(tmp_path, monkeypatch, tiny_context):
    net, card = tiny_context
    (tmp_path / "cards").mkdir()
    stored = save_weights(net, card.replace(name="user_tiny"), tmp_path / "files" / "user_tiny.safetensors")
    (tmp_path / "cards" / "user_tiny.json").write_text(stored.to_json())
    monkeypatch.setenv("SYNTHAUG_WEIGHTS_PATH", str(tmp_path))
    registry.clear_cache()
    yield tmp_path
    registry.clear_cache()


def test_list_get_and_load_by_name(user_dir):
    names = [c.name for c in registry.list_weights()]
    assert "user_tiny" in names
    card = registry.get_card("user_tiny")
    assert card.sha256
    net1, _ = registry.load("user_tiny")
    net2, _ = registry.load("user_tiny")
    assert net1 is net2  # loaded once per process/device/dtype


def test_unknown_name_suggests_closest(user_dir):
    with pytest.raises(WeightsError, match="Did you mean 'user_tiny'"):
        registry.get_card("user_tiny2")


def test_corrupted_registry_file_is_caught(user_dir):
    path = user_dir / "files" / "user_tiny.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        registry.load("user_tiny")


def test_load_by_path(user_dir):
    net, card = registry.load(user_dir / "files" / "user_tiny.safetensors")
    assert card.name == "user_tiny"


def test_family_is_checked_on_the_card_before_any_tensor_is_read(user_dir):
    assert registry.card_of("user_tiny", family="context").family == "context"
    with pytest.raises(WeightsError, match=r"'user_tiny' are a 'context' model, not a 'style' one\. "
                                           r"Registered 'style' weights: .*style_ct_a"):
        registry.card_of("user_tiny", family="style")
    path = user_dir / "files" / "user_tiny.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # a corrupt file: the family refusal comes first, without reading it
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="not a 'segmenter' one"):
        registry.load("user_tiny", family="segmenter")


def test_unknown_family_is_a_validation_error(user_dir):
    from synthaug.errors import ValidationError

    with pytest.raises(ValidationError, match="family='contxt' is not one of"):
        registry.card_of("user_tiny", family="contxt")
