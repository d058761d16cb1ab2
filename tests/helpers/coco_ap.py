"""Independent AP@0.5 per class from pycocotools, for checking `vigil eval`.

Usage: coco_ap.py coco_truth.json coco_detections.json
Prints one JSON object: {class name: AP50 (COCO 101-point), ...}.
"""
import contextlib
import io
import json
import sys

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

truth_file, detections_file = sys.argv[1], sys.argv[2]
with contextlib.redirect_stdout(io.StringIO()):
    truth = COCO(truth_file)
    detections = json.load(open(detections_file))
    found = truth.loadRes(detections) if detections else COCO()
    evaluation = COCOeval(truth, found, "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
# precision[iou, recall, class, area, max detections]: IoU 0.5, all areas, 100 boxes.
precision = evaluation.eval["precision"]
result = {}
for k, category in enumerate(evaluation.params.catIds):
    values = precision[0, :, k, 0, 2]
    values = values[values > -1]
    result[truth.cats[category]["name"]] = float(values.mean()) if len(values) else 0.0
print(json.dumps(result))
