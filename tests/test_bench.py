"""`clipopt bench` and the speed options it measures: presets, torch.compile, bf16 frozen weights."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import tiny
import torch
import toy

from clipstyler_opt import StyleConfig, Stylizer
from clipstyler_opt.cli import main
from clipstyler_opt.method.precision import cpu_has_native_bf16
from clipstyler_opt.tools.bench import peak_memory, reset_peak_memory


def tiny_bench_args(tiny_paths: dict[str, Path]) -> list[str]:
    spec = f"{tiny.TINY_CLIP_NAME}:file={tiny_paths['clip_checkpoint']}"
    return ["bench", "--backbone", spec, "--clip-model-config", str(tiny_paths["clip_model_config"]),
            "--vgg-checkpoint", str(tiny_paths["vgg_checkpoint"]), "--size", "64", "--crop-size", "32",
            "--steps", "1", "--rounds", "1", "--device", "cpu", "--precision", "fp32", "--no-startup", "-q"]


def test_bench_json_has_what_a_comparison_needs(tiny_paths: dict[str, Path], photo: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    # --crops 64 is the default value, given explicitly: the fast preset must keep it.
    args = [*tiny_bench_args(tiny_paths), "--crops", "64", "--preset", "fast", "--preset", "default",
            "--image", str(photo), "--json", str(out), "--startup"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "CLIPstyler-style loop" in table and "x reference" in table and "to first step" in table
    record = json.loads(out.read_text())
    machine = record["machine"]
    assert machine["device"] == "cpu" and machine["torch"] == torch.__version__ and "cuda" in machine
    assert machine["device_name"]
    assert record["published"]["seconds_per_image"] == 40 and record["published"]["steps"] == 200
    fast, default, reference = record["rows"]
    assert (fast["preset"], default["preset"], reference["variant"]) == ("fast", "default", "CLIPstyler-style loop")
    assert fast["preset_applied"] == {"steps": 100, "lr_decay_every": 50}
    assert (fast["steps_per_image"], default["steps_per_image"]) == (100, 200)
    for row in record["rows"]:
        assert row["precision"] == "fp32" and row["compile"] == "off"
        assert len(row["step_times"]) == 1 and row["median_s"] == row["step_times"][0] > 0
        setup = row["setup_s"] or 0.0  # the reference loop's setup is not measured
        assert row["est_s_per_200_steps"] == pytest.approx(setup + 200 * row["median_s"])
        assert row["est_s_per_image"] == pytest.approx(setup + row["steps_per_image"] * row["median_s"])
        assert row["x_reference"] == pytest.approx(row["median_s"] / reference["median_s"])
        assert len(row["first_step_s"]) == 1
        if row["peak_memory_mb"] is not None:  # None where /proc/self/clear_refs cannot be written
            assert row["peak_memory_mb"] >= row["peak_growth_mb"] >= 0
    assert fast["setup_s"] > 0 and default["setup_s"] > 0
    assert reference["x_reference"] == 1.0
    # Start-up, in fresh processes sharing a new text cache: the first prompt writes the style and
    # source texts' entries, the repeated prompt finds them and writes none.
    first, repeated = record["startup"]
    assert (first["prompt"], repeated["prompt"]) == ("first", "repeated")
    assert first["text_cache_entries"] == [0, 2] and repeated["text_cache_entries"] == [2, 2]
    for row in (first, repeated):
        parts = [row[k] for k in ("imports_s", "weights_s", "text_s", "other_setup_s")]
        assert all(part > 0 for part in parts) and row["to_first_step_s"] == pytest.approx(sum(parts))


def test_bench_refuses_to_write_its_json_over_the_input(tiny_paths: dict[str, Path], photo: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "photo.png"
    shutil.copyfile(photo, image)
    before = image.read_bytes()
    assert main([*tiny_bench_args(tiny_paths), "--image", str(image), "--json", str(image)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert image.read_bytes() == before


def test_peak_memory_sees_an_allocation() -> None:
    device = torch.device("cpu")
    start = reset_peak_memory(device)
    if start is None:
        pytest.skip("/proc/self/clear_refs is not writable here: peaks are reported as n/a")
    block = torch.ones(64 * 2**20)  # 256 MiB, every page written
    peak = peak_memory(device, start)
    del block
    assert peak is not None and peak[1] >= 250 and peak[0] >= start + 250


# --- bf16 frozen weights ---

def test_bf16_weights_change_no_loss_value(tiny_config: StyleConfig, photo: Path) -> None:
    if not cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16: bf16 runs fall back to fp32")
    config = tiny_config.replace(precision="bf16")
    plain = Stylizer(config).stylize(photo, "starry night")
    stylizer = Stylizer(config.replace(bf16_weights=True))
    stored = stylizer.stylize(photo, "starry night")
    # Autocast rounds fp32 weights to bf16 for these layers anyway: the same bits, stored once.
    assert stored.history == plain.history and stored.losses == plain.losses
    record = stored.metadata["frozen_weights"]
    assert record["dtype"] == "bf16" and record["tensors_cast"] > 0
    tower = stylizer.members[0].backbone.model.visual
    assert tower.transformer.resblocks[0].mlp.c_fc.weight.dtype == torch.bfloat16
    assert tower.ln_pre.weight.dtype == torch.float32  # norms stay fp32
    assert stylizer.vgg.features[0].weight.dtype == torch.bfloat16
    with pytest.raises(Exception, match="create a new Stylizer"):
        stylizer.stylize(photo, "starry night", precision="fp32")


def test_bf16_weights_do_nothing_in_fp32_and_say_so(tiny_config: StyleConfig, photo: Path) -> None:
    plain = Stylizer(tiny_config).stylize(photo, "starry night")
    stylizer = Stylizer(tiny_config.replace(bf16_weights=True))
    kept = stylizer.stylize(photo, "starry night")
    assert kept.history == plain.history and kept.losses == plain.losses
    assert kept.metadata["frozen_weights"]["dtype"] == "fp32"
    assert any("bf16-weights needs bf16 precision" in w for w in kept.warnings)
    assert stylizer.vgg.features[0].weight.dtype == torch.float32


# --- torch.compile ---
# The toy backbone, a tiny U-Net and no perspective warp keep the compiled graphs small: the first
# compile on a 2-core CPU takes about a minute, later ones come from inductor's on-disk cache.

def toy_compile_stylizer(tmp_path: Path, tiny_paths: dict[str, Path]) -> Stylizer:
    return toy.toy_stylizer(tmp_path, tiny_paths, size=32, steps=2, crops=2, crop_size=16, distortion=0.0,
                            unet_width=4)


def test_a_compile_failure_runs_uncompiled_and_says_so(tmp_path: Path, tiny_paths: dict[str, Path], photo: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import torch._dynamo
    import torch._inductor.config as inductor_config

    stylizer = toy_compile_stylizer(tmp_path, tiny_paths)
    eager = stylizer.stylize(photo, "red")
    # A machine without a C++ compiler, as far as inductor can tell (and nothing cached to hide it).
    monkeypatch.setattr(inductor_config.cpp, "cxx", (str(tmp_path / "no-such-compiler"),))
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    torch._dynamo.reset()
    try:
        result = stylizer.stylize(photo, "red", compile="reduce-overhead")
    finally:
        torch._dynamo.reset()
    record = result.metadata["compile"]
    assert record["requested"] == "reduce-overhead" and record["mode"] == "off" and record["failed"]
    assert any("CUDA graphs" in w for w in result.warnings)  # reduce-overhead on a CPU: mode default
    assert any("torch.compile failed" in w and "running uncompiled" in w for w in result.warnings)
    # The failed step is redone from the same random state: the run is the uncompiled one.
    assert result.history == eager.history


def _compiled_run_matches_eager(stylizer: Stylizer, photo: Path) -> None:
    import torch._dynamo

    eager = stylizer.stylize(photo, "red")
    torch._dynamo.reset()
    try:
        compiled = stylizer.stylize(photo, "red", compile="default")
    finally:
        torch._dynamo.reset()
    record = compiled.metadata["compile"]
    if record["mode"] == "off":
        pytest.skip(f"torch.compile is unavailable here: {record['failed']}")
    assert (record["requested"], record["mode"], record["notes"]) == ("default", "default", [])
    assert "failed" not in record and not compiled.warnings
    # Step 1 sees the same image and, drawn from the same generator, the same crops. Later steps
    # are not compared: Adam's first updates are about lr x sign(gradient), so rounding-level
    # differences in near-zero gradient components can flip an update.
    first, reference = compiled.history[0], eager.history[0]
    assert set(first) == set(reference)
    for name, value in reference.items():
        assert math.isclose(first[name], value, rel_tol=1e-5, abs_tol=1e-7), name


def test_a_compiled_run_matches_the_eager_one(tmp_path: Path, tiny_paths: dict[str, Path], photo: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole compiled step, traced by dynamo and AOT autograd (graph breaks, the crops' generator,
    the run's record), without inductor's C++ code generation: compiling the tiny objective's ~90
    kernels from a cold cache takes over a minute on 2 cores. Inductor itself is checked on the
    random draw below, and on the whole step in the slow test after it."""
    from clipstyler_opt.run import optimise

    requested: list[str] = []

    def traced(step: Any, mode: str) -> Any:
        requested.append(mode)
        return torch.compile(step, backend="aot_eager")

    monkeypatch.setattr(optimise, "compile_step", traced)
    _compiled_run_matches_eager(toy_compile_stylizer(tmp_path, tiny_paths), photo)
    assert requested == ["default"]


def test_random_draws_inside_a_compiled_step_follow_torchs_generator() -> None:
    """compile_step keeps inductor drawing from torch's generator (fallback_random), so a seed gives
    the same crops compiled or not."""
    import torch._dynamo

    from clipstyler_opt.method.precision import compile_step

    def step(x: torch.Tensor) -> torch.Tensor:
        return x * torch.rand(8, 8) + torch.randint(0, 100, (8, 8)).float()

    x = torch.ones(8, 8)
    torch.manual_seed(3)
    expected = step(x)
    torch._dynamo.reset()
    try:
        compiled = compile_step(step, "default")
        torch.manual_seed(3)
        got = compiled(x)
    finally:
        torch._dynamo.reset()
    assert torch.equal(got, expected)


@pytest.mark.skipif(os.environ.get("CLIPOPT_SLOW_TESTS") != "1",
                    reason="inductor compiles the whole step in over a minute on 2 cores; CLIPOPT_SLOW_TESTS=1")
def test_compiled_losses_match_eager_ones(tmp_path: Path, tiny_paths: dict[str, Path], photo: Path) -> None:
    _compiled_run_matches_eager(toy_compile_stylizer(tmp_path, tiny_paths), photo)


def test_a_failing_startup_measurement_is_one_line_with_the_childs_exit_code(tiny_paths: dict[str, Path],
                                                                             photo: Path, tmp_path: Path) -> None:
    from clipstyler_opt.core.errors import ClipoptError, WeightsError
    from clipstyler_opt.tools.startup import measure_startup

    spec = f"{tiny.TINY_CLIP_NAME}:file={tiny_paths['clip_checkpoint']}"
    fields = {"backbone": (spec,), "clip_model_config": (tiny_paths["clip_model_config"],),
              "vgg_checkpoint": tmp_path / "missing.pth", "device": "cpu", "precision": "fp32", "size": 64}
    with pytest.raises(ClipoptError) as caught:
        measure_startup(fields, photo, "starry night")
    assert caught.value.exit_code == WeightsError.exit_code
    assert "missing.pth" in str(caught.value) and "\n" not in str(caught.value)
