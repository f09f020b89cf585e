"""End to end: train a tiny ConText-GAN on a user's nnU-Net raw dataset, export, evaluate, resume."""


import pytest

from synthaug.cli.main import main
from synthaug.errors import ValidationError
from synthaug.training.config import apply_overrides, config_from_dict
from synthaug.training.eval_context import evaluate_context, markdown_table
from synthaug.training.train_context import ContextConfig, parse_intensity
from synthaug.weights.store import read_card
from tests.training.conftest import toy_raw_dataset


@pytest.fixture
def raw_dataset(tmp_path):
    return toy_raw_dataset(tmp_path / "Dataset900_Toy", background=-300.0)


def test_cli_trains_on_a_user_dataset_and_eval_runs(raw_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "context", "--quiet", "--out", str(out), "--set", f"data={raw_dataset}", "iterations=4",
            "batch_size=2", "size=32", "widths=[4,8]", "fusion_widths=[4]", "d_width=4", "name=toy", "sample_every=2"]
    assert main(args) == 0
    card = read_card(out / "toy.safetensors")
    assert card.labels == ("background", "organ", "lesion")
    assert card.training_cases == ("Dataset900_Toy:toy_000", "Dataset900_Toy:toy_001", "Dataset900_Toy:toy_002")
    assert card.intensity["kind"] == "ct_window"
    assert (out / "samples" / "step_000004.png").is_file()
    row = evaluate_context(out / "toy.safetensors")
    assert row["heldout_cases"] == ["Dataset900_Toy:toy_003"]
    assert 0 <= row["ssim"][0] <= 1 and row["controllability"][0] >= 0
    assert "Dataset900_Toy | P2PF |" in markdown_table([row])
    # Rerunning the finished run resumes (nothing to do) and exports the same weights.
    assert main(args) == 0
    # A different config in the same folder is refused.
    assert main([*args[:-1], "sample_every=3"]) == 2
    assert "different configuration" in capsys.readouterr().err


def test_config_overrides_and_errors():
    cfg = config_from_dict(ContextConfig, apply_overrides(ContextConfig, {}, ["variant=oasis", "widths=[8,16,32,64]"]))
    assert cfg.variant == "oasis" and cfg.widths == (8, 16, 32, 64)
    with pytest.raises(ValidationError, match="Did you mean 'variant'"):
        apply_overrides(ContextConfig, {}, ["varaint=p2p"])
    with pytest.raises(ValidationError, match="key=value"):
        apply_overrides(ContextConfig, {}, ["iterations"])
    with pytest.raises(ValidationError, match="divisible"):
        ContextConfig(size=100)
    with pytest.raises(ValidationError, match="ct_window"):
        parse_intensity("window:-1")
    assert parse_intensity("percentile:1,99").kind == "percentile"


def test_evaluation_refuses_a_model_trained_on_its_heldout_slab(raw_dataset, tmp_path):
    from synthaug.errors import LeakageError
    from synthaug.weights.store import load_network, save_weights

    out = tmp_path / "run"
    main(["train", "context", "--quiet", "--out", str(out), "--set", f"data={raw_dataset}", "iterations=1",
          "batch_size=2", "size=32", "widths=[4,8]", "fusion_widths=[4]", "d_width=4", "name=toy"])
    net, card = load_network(out / "toy.safetensors")
    leaky = card.replace(training_cases=[*card.training_cases, "Dataset900_Toy:toy_003"])
    save_weights(net, leaky, tmp_path / "leaky.safetensors")
    with pytest.raises(LeakageError, match="overlap"):
        evaluate_context(tmp_path / "leaky.safetensors")


def test_init_from_starts_from_another_run(raw_dataset, tmp_path):
    base = ["--quiet", "--set", f"data={raw_dataset}", "batch_size=2", "size=32", "widths=[4,8]", "fusion_widths=[4]", "d_width=4"]
    assert main(["train", "context", "--out", str(tmp_path / "a"), *base, "iterations=2", "name=a"]) == 0
    assert main(["train", "context", "--out", str(tmp_path / "b"), *base, "iterations=1", "name=b",
                 f"init_from={tmp_path / 'a'}", "lambda_ct=20"]) == 0
    from synthaug.weights.store import read_card

    assert read_card(tmp_path / "b" / "b.safetensors").training["config"]["init_from"] == str(tmp_path / "a")
    assert main(["train", "context", "--out", str(tmp_path / "c"), *base, "iterations=1", "name=c",
                 f"init_from={tmp_path / 'a'}", "widths=[8,16]"]) == 2
