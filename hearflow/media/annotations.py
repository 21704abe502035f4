"""Ground-truth box files: VGG-SS JSON and Flickr-SoundNet XML, read and written.

These are the two box formats of the sound-source localization benchmarks; the
synthetic dataset (:mod:`hearflow.media.synth`) writes both so that the evaluator reads
synthetic and real test sets through the same code.

VGG-SS (``annotations.json``): a JSON list of records
``{"file": id, "class": name, "bbox": [[x1, y1, x2, y2], ...], ...}`` with coordinates
normalised to 0–1 of the frame width/height. The real file (5,158 records) holds a few
degenerate boxes such as ``[x, y, x, y]``; they are kept as they are (the evaluator
decides what they mean). Extra keys are kept too.

Flickr-SoundNet (``Annotations/<id>.xml``): several annotators' boxes in pixel
coordinates of a 256×256 frame. Every public evaluator reads them with the same loop —
for each child of the root, for each ``bbox`` element under it, skip the first
sub-element and read the next four as xmin, ymin, xmax, ymax — so the reader here
follows that rule exactly (it reads the real files too), and the writer produces files
that the loop reads correctly. That loop also turns *any other* grandchild of the root
into an empty box (and then fails on it), so written files keep every non-box element
(file name, class) directly under the root, where it has no children.

Boxes are ``[x1, y1, x2, y2]`` with x2/y2 exclusive (the evaluators fill
``map[y1:y2, x1:x2]``).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from hearflow.errors import MediaError

FLICKR_FRAME = 256
"""Flickr-SoundNet box coordinates are pixels of a 256×256 frame."""


class AnnotationError(MediaError):
    """An annotation file (JSON or XML) is missing or cannot be parsed. ``path`` names it."""


# ----------------------------------------------------------------------------- VGG-SS
def read_vggss(path) -> list[dict]:
    """Read a VGG-SS style ``annotations.json``: a list of dicts, kept as written.

    path: the JSON file.
    Each record must be a mapping with a ``file`` and a ``bbox`` (list of 4-number
    lists, normalised 0–1; may be empty for negative clips). Degenerate boxes are kept.
    Raises :class:`AnnotationError` naming the file when it is missing, not JSON, or
    not a list of such records.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise AnnotationError(path, f"cannot read annotations ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, list):
        raise AnnotationError(path, f"expected a JSON list of records, got {type(data).__name__}")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict) or "file" not in rec or "bbox" not in rec:
            raise AnnotationError(path, f"record {i} is not a mapping with 'file' and 'bbox'")
        boxes = rec["bbox"]
        if not isinstance(boxes, list) or not all(
            isinstance(b, (list, tuple)) and len(b) == 4 and all(isinstance(v, (int, float)) for v in b)
            for b in boxes
        ):
            raise AnnotationError(path, f"record {i} ({rec['file']}): 'bbox' must be a list of [x1, y1, x2, y2]")
    return data


def write_vggss(path, records: list[dict]) -> Path:
    """Write records as a VGG-SS style JSON list (atomically: a temp file, then rename).

    path: the output file (its folder is created).
    records: dicts with at least ``file``, ``class`` and ``bbox`` (normalised boxes);
    other keys are written as they are.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # one record per line: diff-able, and still small for thousands of records
    body = ",\n".join(json.dumps(r, separators=(", ", ": ")) for r in records)
    tmp.write_text("[\n" + body + "\n]\n" if records else "[]\n")
    os.replace(tmp, path)
    return path


def normalised_to_pixels(box, width: int, height: int) -> list[int]:
    """Scale a normalised ``[x1, y1, x2, y2]`` box to integer pixels of a width×height frame.

    Truncates like the public evaluators (``int(v * size)``), clipped to the frame.
    """
    x1, y1, x2, y2 = box
    return [
        min(max(int(x1 * width), 0), width),
        min(max(int(y1 * height), 0), height),
        min(max(int(x2 * width), 0), width),
        min(max(int(y2 * height), 0), height),
    ]


# ----------------------------------------------------------------------------- Flickr XML
def read_flickr_xml(path, frame_size: int = FLICKR_FRAME) -> list[list[int]]:
    """Read the annotators' boxes of one Flickr-SoundNet style XML file.

    path: the XML file.
    frame_size: boxes are returned in pixels of a frame_size×frame_size frame: the
    stored 256-px coordinates are scaled by ``frame_size / 256`` and truncated to int,
    as the public evaluators do (``int(224 * v / 256)`` for 224). 256 returns them as stored.
    Returns one ``[xmin, ymin, xmax, ymax]`` per ``bbox`` element, in file order; a file
    without boxes gives ``[]`` (a negative clip). Raises :class:`AnnotationError` naming
    the file when it is missing, not XML, or a box does not have four integers.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(path, "annotation file not found")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise AnnotationError(path, f"not valid XML ({exc})") from None
    boxes = []
    for child in root:
        for el in child:
            if el.tag != "bbox":
                continue
            values = list(el)[1:5]  # the first sub-element is not a coordinate
            if len(values) != 4:
                raise AnnotationError(path, f"a <bbox> has {len(values)} coordinates after its first element, expected 4")
            try:
                coords = [int((v.text or "").strip()) for v in values]
            except ValueError:
                raise AnnotationError(path, f"a <bbox> coordinate is not an integer: {[v.text for v in values]}") from None
            boxes.append([int(frame_size * c / FLICKR_FRAME) for c in coords])
    return boxes


def write_flickr_xml(path, clip_id: str, boxes, class_name: str | None = None) -> Path:
    """Write one Flickr-SoundNet style XML file.

    path: the output file (its folder is created).
    clip_id: stored as ``<filename>``.
    boxes: the annotators' boxes ``[xmin, ymin, xmax, ymax]`` in 256×256 frame pixels
    (ints); each becomes ``<object><bbox><annotator>k</annotator><xmin>…</bbox></object>``.
    An empty list writes a file with no boxes (negative clip).
    class_name: stored as ``<class>`` directly under the root, where the evaluators'
    loop ignores it; None leaves it out.
    """
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = str(clip_id)
    if class_name is not None:
        ET.SubElement(root, "class").text = str(class_name)
    for k, box in enumerate(boxes):
        if len(box) != 4:
            raise ValueError(f"box {k} must be [xmin, ymin, xmax, ymax], got {box!r}")
        bbox = ET.SubElement(ET.SubElement(root, "object"), "bbox")
        ET.SubElement(bbox, "annotator").text = str(k)
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), box):
            ET.SubElement(bbox, tag).text = str(int(v))
    ET.indent(root)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=False)
    return path


__all__ = [
    "AnnotationError",
    "FLICKR_FRAME",
    "read_vggss",
    "write_vggss",
    "normalised_to_pixels",
    "read_flickr_xml",
    "write_flickr_xml",
]
