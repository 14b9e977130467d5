"""Labels (core/labels.py): `LABEL=VALUE` in --vary, short forms, numbered collisions, no absolute
path, labelled cells named by their label while unlabelled ids stay as they were."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipstyler_opt.batch import expand_grid, parse_vary
from clipstyler_opt.cli import main
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.labels import cell_labels, setting_labels, short_label, split_label
from clipstyler_opt.report import load_results

LEGACY_SWEEP = Path(__file__).parent / "data" / "legacy" / "sweep"


@pytest.mark.parametrize(("value", "setting", "expected"), [
    (50.0, "lambda_content", "50"),
    (0.0005, "lr", "0.0005"),
    (True, "contrast", "on"),
    (None, "style_strength", "none"),
    (Path("/data/styles/ref.png"), "style_image", "ref.png"),
    ((Path("/a/b/one.jpg"), Path("two.png")), "style_image", "one.jpg+two.png"),
    (("ViT-B-32-quickgelu/openai",), "backbone", "ViT-B-32-quickgelu/openai"),
    (("ViT-B-32/openai:file=/srv/weights/clip.safetensors",), "backbone", "ViT-B-32 (clip)"),
    (("local-dir:/srv/models/siglip-b16",), "backbone", "siglip-b16"),
    (("ViT-B-16/openai:0.5", "RN50/openai:0.5"), "backbone", "ViT-B-16/openai:0.5+RN50/openai:0.5"),
    ("/srv/configs/model.json", "clip_model_config", "model.json"),
])
def test_short_forms_by_hand(value: object, setting: str, expected: str) -> None:
    assert short_label(value, setting) == expected


@pytest.mark.parametrize("value", ["ViT-B/openai:tau=9:/srv/abs/x", "/srv/abs/model dir/x", "see /srv/abs/y",
                                   ["local-dir:/srv/abs/m", "RN50:file=/srv/abs/w.pt"], Path("/srv/abs/")])
@pytest.mark.parametrize("setting", ["backbone", "style_image", "source_text"])
def test_no_label_holds_an_absolute_path(value: object, setting: str) -> None:
    label = short_label(value, setting)
    assert "/srv" not in label and not label.startswith("/")


def test_split_label_reads_only_a_plain_word_before_the_first_equals() -> None:
    assert split_label("CLIP=ViT-B-32/openai") == ("CLIP", "ViT-B-32/openai")
    assert split_label("v1.2_a-b=x.png") == ("v1.2_a-b", "x.png")
    assert split_label("ViT-B-32/openai:file=w.pt") == (None, "ViT-B-32/openai:file=w.pt")
    assert split_label("a b=c") == (None, "a b=c")


def test_collisions_are_numbered_and_explicit_labels_kept() -> None:
    entries = [(Path("/a/x.png"), None), (Path("/b/x.png"), None), (Path("/c/y.png"), "x.png"),
               (Path("/a/x.png"), None)]
    assert setting_labels("style_image", entries) == ["x.png-2", "x.png-3", "x.png", "x.png-2"]
    with pytest.raises(ConfigError, match=r"^backbone: the label 'CLIP' is given to two different values"):
        setting_labels("backbone", [("A/x", "CLIP"), ("B/y", "CLIP")])
    assert cell_labels({"c1": [("steps", 2), ("backbone", "/w/a.pt")], "c2": [("steps", 3), ("backbone", "/v/a.pt")]}) \
        == {"c1": {"steps": "2", "backbone": "a.pt"}, "c2": {"steps": "3", "backbone": "a.pt-2"}}


def test_labelled_values_name_new_cells_and_unlabelled_ids_are_unchanged() -> None:
    cells = expand_grid(StyleConfig(), [
        parse_vary("lambda_content=50,150"),
        parse_vary("backbone=CLIP=ViT-B-32-quickgelu/openai,SigLIP=ViT-B-16-SigLIP/webli,RN50/openai")])
    assert [c.id for c in cells[:3]] == ["lambda_content=50,backbone=CLIP", "lambda_content=50,backbone=SigLIP",
                                         "lambda_content=50,backbone=RN50-openai~" + cells[2].id.split("~")[1]]
    assert cells[1].values == (("lambda_content", 50.0), ("backbone", ("ViT-B-16-SigLIP/webli",)))
    assert cells[1].record()["labels"] == {"lambda_content": "50", "backbone": "SigLIP"}
    assert cells[2].record()["labels"]["backbone"] == "RN50/openai"
    # The legacy folder's cells, made before labels existed, keep their ids exactly.
    legacy = expand_grid(StyleConfig(), [parse_vary("lambda_content=50,150"), parse_vary("contrast=yes,no"),
                                         parse_vary("style_strength=none,0.25")])
    assert sorted(c.id for c in legacy) == sorted(p.name for p in LEGACY_SWEEP.iterdir() if p.is_dir())


def test_the_json_list_form_takes_values_literally(tmp_path: Path) -> None:
    odd = tmp_path / "ref=x.png"
    odd.write_bytes(b"")
    (tmp_path / "y.png").write_bytes(b"")
    name, values = parse_vary(f"style_image={json.dumps([str(odd)])}")
    assert (name, values) == ("style_image", ((str(odd),),))
    assert parse_vary('style_image=["ref=x.png"]') == ("style_image", (("ref=x.png",),))  # not the label ref
    assert parse_vary('source_text=["a=b", "c"]') == ("source_text", ("a=b", "c"))
    labelled = parse_vary(f"style_image=ref={tmp_path / 'y.png'}")[1][0]
    assert (labelled.label, labelled.value) == ("ref", (str(tmp_path / "y.png"),))
    cells = expand_grid(StyleConfig(), [("style_image", (*values, labelled))])
    labels = [dict(c.labels)["style_image"] for c in cells]
    assert labels == ["ref=x.png", "ref"]
    assert not any(str(tmp_path) in label or label.startswith("/") for label in labels)


def test_a_label_given_twice_exits_2_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sweep", str(tmp_path / "no-such-input"), "-p", "red", "-o", str(tmp_path / "out"),
                 "--vary", "backbone=CLIP=ViT-B-32/openai,CLIP=ViT-B-16/openai"])
    assert code == 2
    assert "backbone: the label 'CLIP' is given to two different values" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _output(root: Path, relative: str, content: Path, sweep: dict[str, object]) -> dict[str, object]:
    image = root / relative
    image.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(image)
    sidecar = {"prompt": "red", "seed": 1, "settings": {}, "sweep": sweep,
               "input": {"source": str(content), "sha256": "0" * 64, "size": [8, 8]}}
    image.with_name(image.name + ".json").write_text(json.dumps(sidecar))
    return {"record": "job", "status": "done", "input": str(content), "relative": content.name, "prompt": "red",
            "output": relative, "seed": 1, "settings_hash": "x"}


def test_report_cells_use_recorded_labels_or_short_forms_never_a_path(tmp_path: Path) -> None:
    content = tmp_path / "c.png"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(content)
    root = tmp_path / "results"
    weights = [str(tmp_path / "w1" / "clip.pt"), str(tmp_path / "w2" / "clip.pt")]
    records = [
        _output(root, "a/red/c.png", content, {"cell": "a", "values": {"backbone": [f"RN50:file={weights[0]}"]}}),
        _output(root, "b/red/c.png", content, {"cell": "b", "values": {"backbone": [f"RN50:file={weights[1]}"]}}),
        _output(root, "d/red/c.png", content, {"cell": "d", "values": {"backbone": ["RN50/openai"]},
                                               "labels": {"backbone": "CLIP"}}),
    ]
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    labels = {cell.id: cell.label for cell in load_results(root).cells}
    assert labels == {"a": "backbone=RN50 (clip)", "b": "backbone=RN50 (clip)-2", "d": "backbone=CLIP"}
