"""Malformed weights files: each is a WeightsError (exit 4) whose one line names the file and the fault."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import tiny
import torch
from click.testing import CliRunner
from safetensors.torch import save_file
from torch import nn

from clipstyler_opt.cli import cli
from clipstyler_opt.core.errors import WeightsError
from clipstyler_opt.models.vgg import load_vgg_features
from clipstyler_opt.weights.checkpoints import checkpoint_format, describe_load_error, load_state_dict


def load_error(loader: object, path: Path) -> str:
    """The WeightsError message of loading `path`; it must be one line naming the file."""
    with pytest.raises(WeightsError) as error:
        loader(path)  # type: ignore[operator]
    message = str(error.value)
    assert "\n" not in message and str(path) in message, message
    return message


def safetensors_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "source.safetensors"
    save_file({"weight": torch.arange(64, dtype=torch.float32)}, str(path))
    return path.read_bytes()


# --- files that are no checkpoint at all ---

@pytest.mark.parametrize("name", ["notes.pth", "notes.safetensors", "notes.bin"])
def test_a_text_file_is_named_as_such(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("these are not weights\n")
    assert "a text file, not a checkpoint" in load_error(load_state_dict, path)


def test_an_empty_file_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    assert "the file is empty" in load_error(load_state_dict, path)


def test_binary_garbage_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "noise.pth"
    path.write_bytes(bytes(range(7, 250)))
    assert "unrecognised content, not a checkpoint" in load_error(load_state_dict, path)


def test_a_directory_is_a_directory_not_a_missing_file(tmp_path: Path) -> None:
    folder = tmp_path / "weights.safetensors"
    folder.mkdir()
    message = load_error(load_state_dict, folder)
    assert "is a directory, not a file" in message and "no such file" not in message


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    assert "no such file" in load_error(load_state_dict, tmp_path / "absent.pth")


def test_safetensors_cut_inside_its_header_is_truncated(tmp_path: Path) -> None:
    data = safetensors_bytes(tmp_path)
    header_length = struct.unpack("<Q", data[:8])[0]
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: 8 + header_length // 2])
    message = load_error(load_state_dict, path)
    assert f"truncated safetensors file (its header alone needs {8 + header_length} bytes" in message


def test_safetensors_cut_inside_its_data_is_corrupt(tmp_path: Path) -> None:
    data = safetensors_bytes(tmp_path)
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:-10])  # header whole, the last 10 of 256 data bytes gone
    assert "corrupt safetensors file" in load_error(load_state_dict, path)


def test_safetensors_with_a_garbage_header_is_corrupt(tmp_path: Path) -> None:
    header = b"{garbage, not json}"
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    assert "corrupt safetensors file" in load_error(load_state_dict, path)


def test_a_truncated_torch_file_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "cut.pth"
    torch.save({"weight": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:2000])
    assert "corrupt or truncated file" in load_error(load_state_dict, path)


# --- readable files that hold something other than a state dict of tensors ---

def test_non_string_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "int-keys.pth"
    torch.save({1: torch.zeros(2)}, path)
    assert "key 1 is an int, not a string" in load_error(load_state_dict, path)


def test_a_list_of_tensors_is_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    assert "it holds a list, not a state dict of tensors" in load_error(load_state_dict, path)


def test_nested_dicts_are_not_tensors(tmp_path: Path) -> None:
    path = tmp_path / "nested.pth"
    torch.save({"encoder": {"weight": torch.zeros(2)}}, path)
    assert "'encoder' holds a dict, not a tensor" in load_error(load_state_dict, path)


def test_an_empty_dict_holds_no_tensors(tmp_path: Path) -> None:
    path = tmp_path / "nothing.pth"
    torch.save({}, path)
    assert "empty dict" in load_error(load_state_dict, path)


class Gadget:
    pass


def test_pickled_objects_are_refused_without_torchs_advice_to_unpickle_them(tmp_path: Path) -> None:
    path = tmp_path / "gadget.pth"
    torch.save({"weight": Gadget()}, path)
    message = load_error(load_state_dict, path)
    assert "pickled objects other than tensors" in message and "Gadget" in message
    assert "weights_only" not in message and "trusted" not in message


# --- the format comes from the content; wrappers are unwrapped ---

def test_the_format_is_read_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    safetensors_named_pth = tmp_path / "really-safetensors.pth"
    save_file({"w": torch.ones(3)}, str(safetensors_named_pth))
    torch_named_safetensors = tmp_path / "really-torch.safetensors"
    torch.save({"w": torch.ones(3)}, torch_named_safetensors)
    assert checkpoint_format(safetensors_named_pth) == "safetensors"
    assert checkpoint_format(torch_named_safetensors) == "torch"
    for path in (safetensors_named_pth, torch_named_safetensors):
        assert torch.equal(load_state_dict(path)["w"], torch.ones(3))


def test_state_dict_wrapper_and_data_parallel_prefix_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"module.layer.weight": torch.full((2,), 5.0)}, "epoch": 3}, path)
    assert list(load_state_dict(path)) == ["layer.weight"]


# --- VGG19 checkpoints of the wrong shape or architecture ---

def vgg_file(tmp_path: Path, change: dict[str, torch.Tensor | None]) -> Path:
    """The tiny VGG19 state dict with entries replaced (None deletes one), saved with torch.save."""
    state = tiny.tiny_vgg_state_dict()
    for key, value in change.items():
        if value is None:
            del state[key]
        else:
            state[key] = value
    path = tmp_path / "vgg.pth"
    torch.save(state, path)
    return path


def test_vgg_keys_that_do_not_parse_are_named(tmp_path: Path) -> None:
    path = vgg_file(tmp_path, {"features.x.weight": torch.zeros(1)})
    assert "unexpected key 'features.x.weight'" in load_error(load_vgg_features, path)


def test_batch_norm_vgg_keys_are_not_vgg19(tmp_path: Path) -> None:
    path = vgg_file(tmp_path, {"features.1.running_mean": torch.zeros(4)})
    assert "unexpected key 'features.1.running_mean'" in load_error(load_vgg_features, path)


def test_vgg_weight_of_the_wrong_rank_is_named(tmp_path: Path) -> None:
    path = vgg_file(tmp_path, {"features.0.weight": torch.zeros(4, 3)})
    message = load_error(load_vgg_features, path)
    assert "features.0.weight has shape (4, 3), expected (out, 3, 3, 3) (layer conv1_1)" in message


def test_vgg_layers_that_do_not_chain_are_named(tmp_path: Path) -> None:
    # conv1_1 gives 4 channels (tiny widths), so conv1_2 (index 2) must take 4, not 5
    path = vgg_file(tmp_path, {"features.2.weight": torch.zeros(4, 5, 3, 3)})
    assert "features.2.weight has shape (4, 5, 3, 3), expected (out, 4, 3, 3)" in load_error(load_vgg_features, path)


def test_vgg_kernels_must_be_three_by_three(tmp_path: Path) -> None:
    path = vgg_file(tmp_path, {"features.0.weight": torch.zeros(4, 3, 5, 5)})
    assert "expected (out, 3, 3, 3)" in load_error(load_vgg_features, path)


def test_vgg_bias_of_the_wrong_length_is_named(tmp_path: Path) -> None:
    path = vgg_file(tmp_path, {"features.0.bias": torch.zeros(7)})
    assert "features.0.bias has shape (7,), expected (4,)" in load_error(load_vgg_features, path)


def test_vgg_with_a_missing_layer_names_it(tmp_path: Path) -> None:
    # torchvision's vgg19.features: index 28 is conv5_1, the first conv after the fourth pool
    path = vgg_file(tmp_path, {"features.28.weight": None, "features.28.bias": None})
    assert "missing features.28.weight (layer conv5_1)" in load_error(load_vgg_features, path)


def test_weights_at_a_relu_index_are_not_vgg19(tmp_path: Path) -> None:
    path = vgg_file(tmp_path, {"features.1.weight": torch.zeros(4)})
    assert "features.1.weight is not a VGG19 weight (layer 1 is relu1_1" in load_error(load_vgg_features, path)


def test_integer_vgg_weights_are_refused(tmp_path: Path) -> None:
    path = vgg_file(tmp_path, {"features.0.weight": torch.zeros(4, 3, 3, 3, dtype=torch.int64)})
    assert "torch.int64 values, not floating point" in load_error(load_vgg_features, path)


def test_a_clip_checkpoint_passed_as_vgg_is_another_architecture(tiny_paths: dict[str, Path]) -> None:
    message = load_error(load_vgg_features, tiny_paths["clip_checkpoint"])
    assert "no VGG19 feature layers" in message and "another architecture" in message


def test_the_tiny_vgg_saved_as_safetensors_loads(tmp_path: Path) -> None:
    path = tmp_path / "vgg.safetensors"
    save_file(tiny.tiny_vgg_state_dict(), str(path))
    assert len(load_vgg_features(path)(torch.rand(1, 3, 32, 32))) == 2


# --- messages for loaders that are not ours (open_clip) ---

def test_a_state_dict_mismatch_becomes_one_line_with_counts(tiny_paths: dict[str, Path]) -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))  # keys 0.weight, 0.bias, 1.weight, 1.bias
    state = {"0.weight": torch.zeros(3, 2), "0.bias": torch.zeros(4), "extra.a": torch.zeros(1),
             "extra.b": torch.zeros(1), "extra.c": torch.zeros(1)}
    with pytest.raises(RuntimeError) as error:
        model.load_state_dict(state)
    path = tiny_paths["vgg_checkpoint"]  # a readable checkpoint, so the file itself is not blamed
    message = describe_load_error(path, error.value)
    assert "\n" not in message and str(path) in message and "another architecture" in message
    assert "2 missing (1.weight, 1.bias)" in message
    assert "3 unexpected (extra.a, extra.b, ...)" in message
    assert "1 wrong shape (0.bias)" in message


def test_a_loader_error_on_a_non_checkpoint_blames_the_file(tmp_path: Path) -> None:
    path = tmp_path / "readme.bin"
    path.write_text("hello\n")
    message = describe_load_error(path, KeyError(104))  # what torch.load raises for text
    assert message == f"cannot load weights from {path}: a text file, not a checkpoint " \
                      "(neither safetensors nor a PyTorch file)"


# --- through the command line: exit code 4, one line ---

def test_cli_reports_a_broken_vgg_file_with_exit_code_4(tmp_path: Path, photo: Path,
                                                       tiny_cli_args: list[str]) -> None:
    bad = tmp_path / "vgg.pth"
    bad.write_text("not weights")
    args = [*tiny_cli_args, "--vgg-checkpoint", str(bad)]  # the later flag wins
    result = CliRunner().invoke(cli, ["run", str(photo), "x", "-o", str(tmp_path / "o.png"), "-q", *args])
    assert result.exit_code == 4, result.output
    lines = result.output.strip().splitlines()
    assert lines == [f"error: cannot load weights from {bad}: a text file, not a checkpoint "
                     "(neither safetensors nor a PyTorch file)"]
    assert not (tmp_path / "o.png").exists()


def test_cli_reports_a_vgg_file_given_as_clip_weights_with_exit_code_4(tmp_path: Path, photo: Path,
                                                                      tiny_paths: dict[str, Path],
                                                                      tiny_cli_args: list[str]) -> None:
    args = [*tiny_cli_args, "--clip-checkpoint", str(tiny_paths["vgg_checkpoint"])]
    result = CliRunner().invoke(cli, ["run", str(photo), "x", "-o", str(tmp_path / "o.png"), "-q", *args])
    assert result.exit_code == 4, result.output
    assert "does not fit the model" in result.output and "another architecture" in result.output
