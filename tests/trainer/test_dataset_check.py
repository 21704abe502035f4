"""hearflow check: a dataset folder against its annotations, from real files' headers."""

import json
import shutil

from hearflow.cli import main
from hearflow.media.annotations import read_vggss, write_vggss
from hearflow.trainer.dataset_check import check_dataset, format_report


def make_folder(synth_dir, tmp_path):
    """3 real clips, a truncated mp4, a text file named .mp4, a readme, and an annotation with no video."""
    data = tmp_path / "data"
    (data / "videos").mkdir(parents=True)
    all_records = read_vggss(synth_dir / "annotations.json")
    records = [r for r in all_records if r["split"] == "train"][:2] + [r for r in all_records if r["split"] == "test"][:1]
    for r in records:
        shutil.copy(synth_dir / "videos" / f"{r['file']}.mp4", data / "videos")
    first = (synth_dir / "videos" / f"{records[0]['file']}.mp4").read_bytes()
    (data / "videos" / "cut.mp4").write_bytes(first[:2000])
    (data / "videos" / "notes.mp4").write_text("not a video\n")
    (data / "videos" / "readme.txt").write_text("about these clips\n")
    write_vggss(data / "annotations.json", records + [{**records[0], "file": "gone_00001"}])
    return data, records


def test_check_reports_each_problem_and_the_distributions(synth_dir, tmp_path, capsys):
    data, records = make_folder(synth_dir, tmp_path)
    r = check_dataset(data, progress=False, workers=1)
    assert r["layout"] == "videos" and r["clips"] == 5
    assert r["splits"] == {"test": 1, "train": 4}  # the two unannotated files count as train
    assert r["annotated_without_video"] == ["gone_00001"]
    assert r["videos_without_annotation"] == ["cut", "notes"]
    assert r["other_files"] == ["readme.txt"]
    bad = {u["file"]: u["reason"] for u in r["unreadable"]}
    assert set(bad) == {"cut.mp4", "notes.mp4"} and all("Invalid data" in v or "corrupt" in v for v in bad.values())
    s = r["stats"]
    assert s["duration_s"]["n"] == 3 and abs(s["duration_s"]["median"] - 2.0) < 0.1
    assert s["fps"]["median"] == 25.0 and s["resolution"] == {"256x256": 3}
    assert s["audio_rate"] == {"22050": 3} and s["channels"] == {"1": 3} and r["without_audio"] == []
    text = format_report(r)
    assert "annotated clips with no video          1  gone_00001" in text and "cut.mp4 (" in text

    out = tmp_path / "report.json"
    assert main(["check", str(data), "--json", str(out), "--workers", "1"]) == 0
    assert json.loads(out.read_text())["unreadable"] == r["unreadable"]
    assert "unreadable files" in capsys.readouterr().out


def test_check_with_another_annotation_file_and_bad_input(synth_dir, tmp_path, capsys):
    data, records = make_folder(synth_dir, tmp_path)
    other = tmp_path / "vggss.json"
    write_vggss(other, records[:1])
    r = check_dataset(data, annotations=other, progress=False, workers=1)
    assert r["annotations"] == str(other) and r["annotated_without_video"] == []
    assert r["videos_without_annotation"] == sorted(["cut", "notes"] + [x["file"] for x in records[1:]])
    assert main(["check", str(data), "--annotations", str(tmp_path / "nope.json")]) == 2
    assert main(["check", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 2 and "Traceback" not in err


def test_check_reads_the_flickr_layout(tmp_path):
    import cv2
    import numpy as np
    from scipy.io import wavfile

    data = tmp_path / "flickr"
    (data / "frames").mkdir(parents=True)
    (data / "audio").mkdir()
    for i, (w, h) in enumerate([(320, 240), (320, 240), (500, 375)]):
        cv2.imwrite(str(data / "frames" / f"c{i}.jpg"), np.full((h, w, 3), 128, np.uint8))
    for i, (rate, ch) in enumerate([(22050, 1), (44100, 2)]):
        wavfile.write(data / "audio" / f"c{i}.wav", rate, np.zeros((rate, ch), np.int16).squeeze())
    (data / "audio" / "c2.wav").write_text("not audio")
    r = check_dataset(data, progress=False, workers=1)
    assert r["layout"] == "flickr" and r["clips"] == 3 and r["splits"] == {"test": 3}
    assert r["stats"]["resolution"] == {"320x240": 2, "500x375": 1}
    assert r["stats"]["audio_rate"] == {"22050": 1, "44100": 1} and r["stats"]["channels"] == {"1": 1, "2": 1}
    assert [u["file"] for u in r["unreadable"]] == ["c2.wav"]
    assert "unreadable files                       1  c2.wav (" in format_report(r)
