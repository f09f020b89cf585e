"""nnUNetTrainerSynthAug: in-process checks on a 3D configuration, and the full CPU pipeline on a tiny 2D dataset.

The end-to-end test runs nnU-Net's own commands (plan and preprocess, train with ``-tr
nnUNetTrainerSynthAug -device cpu`` for one epoch of a few iterations, predict, evaluate) with the trainer
found through ``nnUNet_extTrainer`` (``synthaug nnunet-path``). About 2 minutes on 2 busy CPU cores.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from synthaug.errors import DataError, ValidationError
from synthaug.integrations.nnunet import trainer_folder
from tests.integrations.nnunet import LABELS, make_raw_dataset, write_recipe

pytest.importorskip("nnunetv2")
torch.set_num_threads(1)
BIN = Path(sys.executable).parent


def _plans_3d():
    arch = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": 3, "features_per_stage": [4, 8, 16], "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
            "n_conv_per_stage": [1, 1, 1], "n_conv_per_stage_decoder": [1, 1], "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    cfg = {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": [8, 16, 16], "median_image_size_in_voxels": [8, 16, 16], "spacing": [3.0, 1.0, 1.0],
        "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": arch, "batch_dice": False,
    }
    return {
        "dataset_name": "Dataset970_Fake3D", "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [3.0, 1.0, 1.0], "original_median_shape_after_transp": [8, 16, 16],
        "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {"mean": 80.0, "std": 70.0, "percentile_00_5": 0.0,
                                                              "percentile_99_5": 280.0}},
        "configurations": {"3d_fullres": cfg},
    }


@pytest.mark.nnunet
def test_trainer_3d_train_step_with_ignore_label_padding_and_deep_supervision(tmp_path, tiny_weights, monkeypatch):
    from synthaug.integrations.nnunet.trainer import nnUNetTrainerSynthAug

    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    monkeypatch.delenv("SYNTHAUG_RECIPE", raising=False)
    dataset_json = {"channel_names": {"0": "MR"}, "labels": {**LABELS, "ignore": 4}, "numTraining": 2,
                    "file_ending": ".nii.gz"}

    def make():
        return nnUNetTrainerSynthAug({**_plans_3d(), "continue_training": False}, "3d_fullres", 0,
                                     dict(dataset_json), device=torch.device("cpu"))

    with pytest.raises(DataError, match="SYNTHAUG_RECIPE is not set.*Example"):
        make()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"transforms": [{"name": "contexttexture", "probability": 1.0}]}))
    monkeypatch.setenv("SYNTHAUG_RECIPE", str(bad))
    with pytest.raises(ValidationError, match="Did you mean 'context_texture'"):
        make()
    monkeypatch.setenv("SYNTHAUG_RECIPE", str(write_recipe(tmp_path / "r.json", weights="tiny_mr_oasis",
                                                          budget={"num_epochs": 7})))
    monkeypatch.setenv("SYNTHAUG_ITERS_PER_EPOCH", "3")
    tr = make()
    assert (tr.num_epochs, tr.num_iterations_per_epoch, tr.num_val_iterations_per_epoch) == (7, 3, 50)

    # the worker pipeline keeps -1 and leaves deep supervision to the device
    rot, dummy_2d, initial, mirror = tr.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    tf = tr.get_training_transforms(tr.configuration_manager.patch_size, rot, tr._get_deep_supervision_scales(),
                                    mirror, dummy_2d, ignore_label=4)
    names = [type(t).__name__ for t in tf.transforms]
    assert "RemoveLabelTransform" not in names and "DownsampleSegForDSTransform" not in names
    seg = torch.full((1, 8, 16, 16), -1, dtype=torch.int16)
    seg[:, :, :8, :] = 1
    assert (tf(image=torch.zeros(1, 8, 16, 16), segmentation=seg)["segmentation"] == -1).any()

    tr.network = tr.build_network_architecture(tr.plans_manager, tr.configuration_manager, 1,
                                               tr.label_manager.num_segmentation_heads, True)
    tr.optimizer, tr.lr_scheduler = tr.configure_optimizers()
    tr.loss = tr._build_loss()
    g = torch.Generator().manual_seed(0)
    target = torch.zeros(2, 1, 8, 16, 16, dtype=torch.int16)
    target[:, :, 1:7, 3:13, 3:13] = 1
    target[:, :, 2:6, 5:9, 5:9] = 2
    target[:, :, 2:5, 10:12, 4:12] = 3
    target[:, :, :, :2, :] = 4       # ignore label
    target[:, :, :, :, -3:] = -1     # padding
    data = torch.randn(2, 1, 8, 16, 16, generator=g)
    seen = {}
    original = tr._synthaug_apply

    def spy(d, t):
        out = original(d, t)
        seen["out"] = out
        return out

    tr._synthaug_apply = spy
    res = tr.train_step({"data": data, "target": target, "keys": ["a", "b"]})
    assert np.isfinite(res["loss"]).all()
    d_out, t_out = seen["out"]
    assert isinstance(t_out, list) and [tuple(t.shape[2:]) for t in t_out] == [(8, 16, 16), (8, 8, 8)]
    assert not (t_out[0] == -1).any()  # -1 -> 0 after synthesis, as nnU-Net does
    assert (t_out[0] == 4).any() and not torch.equal(d_out, data)
    assert tr.synthaug.slice_axis == 0  # SimpleITK arrays: slices along the first axis
    tr.on_train_epoch_end([res])
    log = Path(tr.log_file).read_text()
    assert "synthaug: synthetic fraction 1.000 (2/2 samples" in log and "acceptance rate 1.000" in log
    record = json.loads((Path(tr.output_folder) / "synthaug_log.jsonl").read_text().splitlines()[-1])
    assert record["synthetic_fraction"] == 1.0 and record["synthesis_seconds"] > 0


def _run(cmd, env, log: Path, timeout=240):
    res = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    log.write_text(res.stdout)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{res.stdout[-4000:]}"
    return res.stdout


@pytest.mark.slow
@pytest.mark.nnunet
def test_end_to_end_plan_train_predict_evaluate_on_cpu(tmp_path, tiny_weights):
    raw = tmp_path / "raw"
    folder = make_raw_dataset(raw, dataset_id=960, name="E2E", shape=(64, 64, 1))
    recipe = write_recipe(tmp_path / "recipe.json", probability=0.5)
    env = {
        **os.environ,
        "nnUNet_raw": str(raw), "nnUNet_preprocessed": str(tmp_path / "pre"), "nnUNet_results": str(tmp_path / "res"),
        "nnUNet_n_proc_DA": "1", "nnUNet_def_n_proc": "1", "nnUNet_compile": "false",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "nnUNet_extTrainer": str(trainer_folder()),
        "SYNTHAUG_RECIPE": str(recipe), "SYNTHAUG_NUM_EPOCHS": "1", "SYNTHAUG_ITERS_PER_EPOCH": "5",
        "SYNTHAUG_VAL_ITERS": "2", "SYNTHAUG_TORCH_THREADS": "1",
    }
    _run([BIN / "nnUNetv2_plan_and_preprocess", "-d", "960", "-c", "2d", "-np", "1", "-npfp", "1"], env,
         tmp_path / "plan.log")
    out = _run([BIN / "nnUNetv2_train", "960", "2d", "0", "-tr", "nnUNetTrainerSynthAug", "-device", "cpu"], env,
               tmp_path / "train.log")
    assert f"Using trainer 'nnUNetTrainerSynthAug' from: {trainer_folder()}" in out
    fold = tmp_path / "res" / "Dataset960_E2E" / "nnUNetTrainerSynthAug__nnUNetPlans__2d" / "fold_0"
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert "synthaug: recipe" in log and "synthaug: synthetic fraction" in log and "acceptance rate" in log
    (record,) = [json.loads(line) for line in (fold / "synthaug_log.jsonl").read_text().splitlines()]
    assert record["samples"] == 10 and 0 < record["synthesised"] <= 10 and record["acceptance_rate"] == 1.0
    assert (fold / "checkpoint_final.pth").is_file()
    pred = tmp_path / "pred"
    _run([BIN / "nnUNetv2_predict", "-i", str(folder / "imagesTs"), "-o", str(pred), "-d", "960", "-c", "2d",
          "-f", "0", "-tr", "nnUNetTrainerSynthAug", "-device", "cpu", "-npp", "1", "-nps", "1",
          "--disable_progress_bar"], env, tmp_path / "predict.log")
    assert sorted(p.name for p in pred.glob("*.nii.gz")) == ["case_006.nii.gz", "case_007.nii.gz"]
    _run([BIN / "nnUNetv2_evaluate_simple", str(folder / "labelsTs"), str(pred), "-l", "1", "2", "3", "-np", "1"],
         env, tmp_path / "evaluate.log")
    summary = json.loads((pred / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2", "3"}
    assert 0.0 <= summary["foreground_mean"]["Dice"] <= 1.0
