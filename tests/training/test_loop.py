import pytest
import torch

from synthaug.errors import ValidationError
from synthaug.networks.context import ContextGenerator
from synthaug.training.context import ContextStep
from synthaug.training.loop import LoopConfig, load_checkpoint, run_training
from synthaug.visualize import write_grid


def _step(variant="p2p"):
    torch.manual_seed(0)
    g = ContextGenerator(3, 2, variant=variant, widths=(8, 16), fusion_widths=(4,), z_dim=4, spade_hidden=8)
    return ContextStep(g, features=("mean", "entropy"), bins=16, d_width=8)


def _run(step, slices, out, iterations, **kw):
    loop = LoopConfig(iterations=iterations, batch_size=4, seed=1, log_every=2, checkpoint_every=5, sample_every=10, progress=False)
    return run_training(step, lambda g: slices.sample(4, generator=g), loop=loop, out_dir=out,
                        config={"test": 1}, write_grid=write_grid, **kw)


def test_resume_gives_the_same_result_as_one_run(tmp_path, slices):
    one = _step()
    _run(one, slices, tmp_path / "a", 10)
    first = _step()
    _run(first, slices, tmp_path / "b", 5)
    second = _step()  # fresh process state: everything comes from the checkpoint
    result = _run(second, slices, tmp_path / "b", 10)
    for p, q in zip(one.g.parameters(), second.g.parameters()):
        torch.testing.assert_close(p, q)
    assert result.history[-1]["step"] == 10
    assert (tmp_path / "b" / "samples" / "step_000010.png").is_file()
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 10


def test_resume_with_other_config_is_refused(tmp_path, slices):
    _run(_step(), slices, tmp_path, 5)
    loop = LoopConfig(iterations=6, batch_size=4, progress=False)
    with pytest.raises(ValidationError, match="different configuration"):
        run_training(_step(), lambda g: slices.sample(4, generator=g), loop=loop, out_dir=tmp_path, config={"test": 2})


def test_truncated_checkpoint_gives_clear_error(tmp_path, slices):
    _run(_step(), slices, tmp_path, 5)
    ck = tmp_path / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:100])
    with pytest.raises(Exception, match="could not be read"):
        _run(_step(), slices, tmp_path, 6)


def test_bad_loop_config():
    with pytest.raises(ValidationError, match="iterations"):
        LoopConfig(iterations=0)
