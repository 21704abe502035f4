"""VGG-SS JSON and Flickr-SoundNet XML: round trips, the public evaluators' parsing rule, errors."""

import json
import xml.etree.ElementTree as ET

import pytest

from hearflow.errors import HearflowError, MediaError
from hearflow.media.annotations import (
    AnnotationError,
    normalised_to_pixels,
    read_flickr_xml,
    read_vggss,
    write_flickr_xml,
    write_vggss,
)


def peers_flickr_boxes(path, size=224):
    """The loop every public Flickr-SoundNet evaluator uses (HTF, LVS, EZ-VSL, ...)."""
    gt = ET.parse(path).getroot()
    bboxs = []
    for child in gt:
        for childs in child:
            bbox = []
            if childs.tag == "bbox":
                for index, ch in enumerate(childs):
                    if index == 0:
                        continue
                    bbox.append(int(size * int(ch.text) / 256))
            bboxs.append(bbox)
    return bboxs


# ----------------------------------------------------------------------------- VGG-SS
def test_vggss_round_trip_keeps_degenerate_boxes_and_extra_keys(tmp_path):
    records = [
        {"file": "---1_cCGK4M_000001", "class": "playing drum kit", "bbox": [[0.1, 0.2, 0.5, 0.6]]},
        # real VGG-SS has a few degenerate [x, y, x, y] boxes: kept, not flagged
        {"file": "abc_000030", "class": "dog barking", "bbox": [[0.3, 0.4, 0.3, 0.4], [0, 0, 1, 1]]},
        {"file": "neg_1", "class": "silence", "bbox": [], "negative": "silence", "frame_time": 2.0},
    ]
    path = write_vggss(tmp_path / "sub" / "annotations.json", records)
    assert read_vggss(path) == records
    assert json.loads(path.read_text()) == records  # plain JSON list
    write_vggss(path, [])
    assert read_vggss(path) == []


@pytest.mark.parametrize(
    "text, problem",
    [
        ("{not json", "not valid JSON"),
        ('{"file": "a"}', "expected a JSON list"),
        ('[{"file": "a"}]', "'file' and 'bbox'"),
        ('[{"file": "a", "bbox": [[0, 0, 1]]}]', "[x1, y1, x2, y2]"),
    ],
)
def test_vggss_errors_name_the_file(tmp_path, text, problem):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(AnnotationError) as err:
        read_vggss(path)
    assert str(path) in str(err.value) and problem in str(err.value)
    assert isinstance(err.value, MediaError) and isinstance(err.value, HearflowError)


def test_vggss_missing_file(tmp_path):
    with pytest.raises(AnnotationError, match="cannot read"):
        read_vggss(tmp_path / "nope.json")


def test_normalised_to_pixels_truncates_and_clips():
    assert normalised_to_pixels([0.1, 0.2, 0.5, 1.2], 224, 224) == [22, 44, 112, 224]
    assert normalised_to_pixels([-0.1, 0.0, 0.999, 0.5], 100, 50) == [0, 0, 99, 25]


# ----------------------------------------------------------------------------- Flickr XML
def test_flickr_round_trip_and_peers_rule(tmp_path):
    boxes = [[10, 20, 100, 200], [12, 18, 98, 205], [0, 0, 256, 256]]
    path = write_flickr_xml(tmp_path / "Annotations" / "clip1.xml", "clip1", boxes, "hum")
    assert read_flickr_xml(path) == boxes
    # scaled like the evaluators: int(224 * v / 256)
    assert read_flickr_xml(path, frame_size=224) == [[int(224 * v / 256) for v in b] for b in boxes]
    # the evaluators' loop reads exactly the boxes, with no empty entries from other elements
    assert peers_flickr_boxes(path) == read_flickr_xml(path, frame_size=224)
    root = ET.parse(path).getroot()
    assert root.findtext("filename") == "clip1" and root.findtext("class") == "hum"


def test_flickr_no_boxes(tmp_path):
    path = write_flickr_xml(tmp_path / "neg.xml", "neg", [], None)
    assert read_flickr_xml(path) == []
    assert peers_flickr_boxes(path) == []


def test_flickr_reader_follows_the_positional_rule(tmp_path):
    # like the real files: the first sub-element of a bbox is not a coordinate and the
    # next four are read by position, whatever their tags; non-bbox elements are skipped
    path = tmp_path / "real.xml"
    path.write_text(
        "<annotation><filename>1234.jpg</filename>"
        "<object><name>guitar</name>"
        "<bbox><label>1</label><a>16</a><b>32</b><c>128</c><d>250</d></bbox>"
        "<bbox><label>2</label><a>20</a><b>30</b><c>130</c><d>256</d></bbox></object>"
        "</annotation>"
    )
    assert read_flickr_xml(path) == [[16, 32, 128, 250], [20, 30, 130, 256]]
    assert read_flickr_xml(path, frame_size=224) == [[14, 28, 112, 218], [17, 26, 113, 224]]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("<annotation><object><bbox>", "not valid XML"),
        ("<annotation><object><bbox><n/><x>1</x><y>2</y></bbox></object></annotation>", "expected 4"),
        ("<annotation><object><bbox><n/><x>1</x><y>2</y><x>a</x><y>4</y></bbox></object></annotation>", "not an integer"),
    ],
)
def test_flickr_errors_name_the_file(tmp_path, text, problem):
    path = tmp_path / "broken.xml"
    path.write_text(text)
    with pytest.raises(AnnotationError) as err:
        read_flickr_xml(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_flickr_missing_file(tmp_path):
    with pytest.raises(AnnotationError, match="not found"):
        read_flickr_xml(tmp_path / "missing.xml")


def test_flickr_writer_rejects_bad_box(tmp_path):
    with pytest.raises(ValueError):
        write_flickr_xml(tmp_path / "x.xml", "x", [[1, 2, 3]])
