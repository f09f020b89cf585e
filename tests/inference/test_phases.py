"""Phase timing: exclusive times, nesting, no-op outside a recorder; the transforms mark their phases."""

import time

import torch

from synthaug.inference.phases import phase, record_phases


def test_exclusive_nested_times():
    with record_phases() as rec:
        with phase("outer"):
            time.sleep(0.02)
            with phase("inner"):
                time.sleep(0.03)
        with phase("inner"):
            time.sleep(0.01)
    assert rec.calls == {"inner": 2, "outer": 1}
    assert 0.035 <= rec.seconds["inner"] < 0.2
    assert 0.015 <= rec.seconds["outer"] < 0.2  # its own time only, without the nested 30 ms
    assert list(rec.seconds) == ["inner", "outer"] or list(rec.seconds) == ["outer", "inner"]


def test_phase_is_a_no_op_without_a_recorder():
    with phase("x"):
        pass
    with record_phases() as rec:
        pass
    assert rec.seconds == {}


def test_transforms_mark_their_phases():
    from synthaug.transforms import ModalityTranslate

    torch.set_num_threads(1)
    t = ModalityTranslate("translate_brain_t1_t2_nec")
    x = torch.rand(1, 1, 40, 36, 3) * 500
    with record_phases() as rec:
        t.apply_batch(x, None, seeds=[0])
    assert {"checks", "intensity fit", "padding", "generator", "output"} <= set(rec.seconds)
    assert rec.calls["generator"] == 1  # 3 slices: one chunk
