#!/usr/bin/env python3
"""Fine-tune YOLOX-Nano for vigil on YOLO-format datasets, on a CPU, in chunks.

The run starts from the Apache-2.0 COCO YOLOX-Nano that vigil already ships
(`models/weights/yolox_nano_416.onnx`): its 113 convolutions are copied into a
pixeltable-yolox `yolox_nano`, batch norm kept as the identity because the ONNX
has it folded in. New classes get fresh `cls_preds` channels, or start from a
COCO class's channel (`battery_cart=motorcycle`).

Training takes hours on two cores, so it runs in chunks: a checkpoint is written
atomically after every epoch (`last.pt`), and `--resume` continues from it. An
interrupted run loses at most the epoch in progress. The exact image list, the
settings and the seed are written next to the weights (`run.json`).

The export keeps the contract of `yolox_nano_416.onnx`: input `images`
[1,3,416,416] BGR raw 0..255, letterboxed at the top left with pad 114; output
`output` [1,3549,5+N] raw YOLOX grid rows with objectness and classes already
sigmoid. vigil's `yolox` decoder reads it with only the class list changed.

Commands:
  transplant-check  torch against onnxruntime on one image (max abs difference)
  train             train or resume; `--max-steps` for a smoke run
  export            a checkpoint to ONNX
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper

INPUT = 416
PAD = 114
COCO_MOTORCYCLE = 3


# ---------------------------------------------------------------- model


def build_model(num_classes: int) -> nn.Module:
    from yolox.config import YoloxConfig

    cfg = YoloxConfig.get_named_config("yolox_nano")
    cfg.num_classes = num_classes
    model = cfg.get_model()
    model.head.decode_in_inference = False
    return model


def transplant(onnx_path: Path) -> nn.Module:
    """The 80-class YOLOX-Nano with the ONNX's weights, BN as the identity."""
    model = build_model(80)
    model.eval()
    order: list[nn.Conv2d] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        model(torch.zeros(1, 3, INPUT, INPUT))
    for h in hooks:
        h.remove()
    graph = onnx.load(str(onnx_path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    nodes = [n for n in graph.node if n.op_type == "Conv"]
    if len(nodes) != len(order):
        raise SystemExit(f"{onnx_path}: {len(nodes)} Conv nodes, the model has {len(order)} convolutions")
    bn_after = {}
    for name, m in model.named_modules():
        if hasattr(m, "conv") and hasattr(m, "bn"):
            bn_after[id(m.conv)] = m.bn
    with torch.no_grad():
        for conv, node in zip(order, nodes):
            w = torch.from_numpy(inits[node.input[1]].copy())
            b = torch.from_numpy(inits[node.input[2]].copy()) if len(node.input) > 2 else None
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise SystemExit(f"{onnx_path}: node {node.name} has shape {tuple(w.shape)}, expected {tuple(conv.weight.shape)}")
            conv.weight.copy_(w)
            bn = bn_after.get(id(conv))
            if bn is not None:
                bn.weight.fill_(1.0)
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
                bn.bias.copy_(b if b is not None else torch.zeros_like(bn.bias))
            elif b is not None:
                conv.bias.copy_(b)
    return model


def with_classes(model: nn.Module, classes: list[str], init_from: dict[str, int]) -> nn.Module:
    """Replaces the 80 COCO class channels with `classes`; a class named in
    `init_from` starts from that COCO channel, the rest from the usual prior."""
    head = model.head
    prior = -math.log((1 - 1e-2) / 1e-2)
    for k, old in enumerate(head.cls_preds):
        new = nn.Conv2d(old.in_channels, len(classes), 1)
        with torch.no_grad():
            new.weight.normal_(0, 0.01)
            new.bias.fill_(prior)
            for c, name in enumerate(classes):
                if name in init_from:
                    new.weight[c] = old.weight[init_from[name]]
                    new.bias[c] = old.bias[init_from[name]]
        head.cls_preds[k] = new
    head.num_classes = len(classes)
    return model


def freeze_bn(model: nn.Module) -> None:
    # The transplanted BNs are identities over folded convs: batch statistics
    # would undo the pretrained function, so running stats stay fixed.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


# ---------------------------------------------------------------- data


def letterbox(img: np.ndarray, size: int = INPUT) -> tuple[np.ndarray, float]:
    """vigil's camera fitting: aspect kept, top-left, pad 114, bilinear."""
    h, w = img.shape[:2]
    r = min(size / h, size / w)
    out = np.full((size, size, 3), PAD, np.uint8)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    out[:nh, :nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out, r


def video_group(name: str) -> str:
    m = re.match(r"(.+?)_mp4", name)
    if m:
        return m.group(1)
    m = re.match(r"([A-Za-z_-]+?)_?(\d+)", name)
    if m:
        return f"{m.group(1)}{int(m.group(2)) // 100}"
    return name


class Source:
    """One YOLO dataset: `path:split[,split]` with `--map NAME=class`."""

    def __init__(self, spec: str, class_map: dict[str, str], classes: list[str], aspect: tuple[int, int] | None):
        path, _, splits = spec.partition(":")
        self.root = Path(path)
        names = self._names()
        self.map = {}
        for i, n in enumerate(names):
            target = class_map.get(n, class_map.get(n.lower(), n.lower()))
            if target in classes:
                self.map[i] = classes.index(target)
        self.splits = splits.split(",") if splits else ["train"]
        self.aspect = aspect

    def _names(self) -> list[str]:
        text = (self.root / "data.yaml").read_text()
        m = re.search(r"names:\s*\n((?:\s*-\s*.+\n?)+)", text)
        if m:
            return [l.strip()[1:].strip().strip("'\"") for l in m.group(1).splitlines() if l.strip()]
        m = re.search(r"names:\s*\[(.*?)\]", text)
        return [n.strip().strip("'\"") for n in m.group(1).split(",")]

    def items(self) -> list[tuple[Path, list[tuple[int, float, float, float, float]]]]:
        out = []
        for split in self.splits:
            for img in sorted((self.root / split / "images").iterdir()):
                label = self.root / split / "labels" / (img.stem + ".txt")
                boxes = []
                if label.exists():
                    for line_no, line in enumerate(label.read_text().splitlines(), 1):
                        parts = line.split()
                        if not parts:
                            continue
                        c = int(parts[0])
                        if len(parts) == 5:
                            box = tuple(map(float, parts[1:]))
                        elif len(parts) >= 7 and len(parts) % 2 == 1:
                            # A segmentation polygon (Roboflow mixes them in): its bounds.
                            xs, ys = list(map(float, parts[1::2])), list(map(float, parts[2::2]))
                            box = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys))
                        else:
                            raise SystemExit(f"{label}:{line_no}: expected `class cx cy w h` or a polygon `class x y x y x y ...`")
                        if c in self.map:
                            boxes.append((self.map[c], *box))
                out.append((img, boxes))
        return out


class TrainSet(torch.utils.data.Dataset):
    def __init__(self, items, aspect, augment=True):
        self.items = items
        self.aspect = aspect
        self.augment = augment

    def __len__(self):
        return len(self.items)

    def load(self, i):
        path, boxes = self.items[i]
        img = cv2.imread(str(path))
        if img is None:
            raise SystemExit(f"{path}: cannot decode")
        if self.aspect:
            img = cv2.resize(img, self.aspect, interpolation=cv2.INTER_AREA)
        return img, boxes

    def __getitem__(self, i):
        img, boxes = self.load(i)
        h, w = img.shape[:2]
        xyxy = np.array([[(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h, c] for c, cx, cy, bw, bh in boxes], np.float32).reshape(-1, 5)
        if self.augment and random.random() < 0.5:
            img = img[:, ::-1].copy()
            xyxy[:, [0, 2]] = w - xyxy[:, [2, 0]]
        if self.augment:
            from yolox.data.data_augment import augment_hsv

            augment_hsv(img)
        fit = min(INPUT / h, INPUT / w)
        scale = fit * (random.uniform(0.6, 1.4) if self.augment else 1.0)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        dx = random.randint(min(0, INPUT - nw), max(0, INPUT - nw)) if self.augment else 0
        dy = random.randint(min(0, INPUT - nh), max(0, INPUT - nh)) if self.augment else 0
        canvas = np.full((INPUT, INPUT, 3), PAD, np.uint8)
        x0, y0 = max(dx, 0), max(dy, 0)
        x1, y1 = min(dx + nw, INPUT), min(dy + nh, INPUT)
        canvas[y0:y1, x0:x1] = small[y0 - dy : y1 - dy, x0 - dx : x1 - dx]
        labels = np.zeros((60, 5), np.float32)
        k = 0
        for x_0, y_0, x_1, y_1, c in xyxy:
            bx0, by0, bx1, by1 = x_0 * scale + dx, y_0 * scale + dy, x_1 * scale + dx, y_1 * scale + dy
            area = (bx1 - bx0) * (by1 - by0)
            cx0, cy0, cx1, cy1 = max(bx0, 0), max(by0, 0), min(bx1, INPUT), min(by1, INPUT)
            if cx1 - cx0 < 2 or cy1 - cy0 < 2 or (cx1 - cx0) * (cy1 - cy0) < 0.25 * area or k >= 60:
                continue
            labels[k] = (c, (cx0 + cx1) / 2, (cy0 + cy1) / 2, cx1 - cx0, cy1 - cy0)
            k += 1
        tensor = torch.from_numpy(np.ascontiguousarray(canvas.transpose(2, 0, 1))).float()
        return tensor, torch.from_numpy(labels)


def video_negatives(spec: str) -> list[tuple[Path, list]]:
    """`video.mp4:N`: N evenly spaced frames written once as JPEG negatives."""
    path, _, n = spec.rpartition(":")
    n = int(n)
    cap = cv2.VideoCapture(path)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    cache = train_cache()
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        idx = int(k * total / n)
        target = cache / f"{Path(path).stem}-{idx}.jpg"
        if not target.exists():
            cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
            ok, frame = cap.read()
            if not ok:
                continue
            cv2.imwrite(str(target), frame)
        out.append((target, []))
    return out


class Teacher:
    """The shipped COCO model as a labeller: the classes a dataset leaves
    unlabelled (people in the two-wheelers photos) would otherwise be learned
    as background. `--pseudo person,motorcycle=battery_cart` keeps those COCO
    classes as labels of the new model, each image labelled once and cached."""

    def __init__(self, onnx_path: str, specs: list[str], classes: list[str], floor: float):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        self.session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
        self.model_sha = hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()[:16]
        coco = coco_names()
        self.targets = {}
        for spec in specs:
            for part in spec.split(","):
                src, _, dst = part.partition("=")
                dst = dst or src
                if src not in coco:
                    raise SystemExit(f"--pseudo {part}: {src} is not a COCO class")
                if dst not in classes:
                    raise SystemExit(f"--pseudo {part}: {dst} is not one of --classes")
                self.targets[coco.index(src)] = classes.index(dst)
        self.floor = floor

    def boxes(self, path: Path, aspect) -> list[tuple[int, float, float, float, float]]:
        cache = train_cache() / "pseudo"
        cache.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha256(path.read_bytes() + repr((self.model_sha, sorted(self.targets.items()), self.floor, aspect)).encode()).hexdigest()[:24]
        hit = cache / f"{key}.json"
        if hit.exists():
            return [tuple(b) for b in json.loads(hit.read_text())]
        img = cv2.imread(str(path))
        if img is None:
            raise SystemExit(f"{path}: cannot decode")
        if aspect:
            img = cv2.resize(img, aspect, interpolation=cv2.INTER_AREA)
        h, w = img.shape[:2]
        boxed, r = letterbox(img)
        x = boxed.transpose(2, 0, 1)[None].astype(np.float32)
        out = self.session.run(None, {self.session.get_inputs()[0].name: x})[0][0]
        found = []
        for cls, (xyxy, score) in decode_yolox(out, list(self.targets)).items():
            for (x0, y0, x1, y1), s in zip(xyxy, score):
                if s < self.floor:
                    continue
                x0, y0, x1, y1 = max(0, x0 / r), max(0, y0 / r), min(w, x1 / r), min(h, y1 / r)
                if x1 - x0 < 2 or y1 - y0 < 2:
                    continue
                found.append((self.targets[cls], (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h))
        found = [tuple(round(v, 6) if i else v for i, v in enumerate(b)) for b in found]
        hit.write_text(json.dumps(found))
        return found

    def label(self, items, aspect):
        """Adds the teacher's boxes to every item, except where the dataset
        already has a box of the same class there (the dataset wins)."""
        out = []
        for n, (path, boxes) in enumerate(items):
            if n % 200 == 0:
                print(f"pseudo-labelling {n}/{len(items)}", flush=True)
            extra = [b for b in self.boxes(path, aspect) if not any(o[0] == b[0] and iou_cxcywh(o[1:], b[1:]) > 0.45 for o in boxes)]
            out.append((path, list(boxes) + extra))
        return out


def coco_names() -> list[str]:
    return ("person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign parking_meter bench bird cat dog horse sheep cow "
            "elephant bear zebra giraffe backpack umbrella handbag tie suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove skateboard "
            "surfboard tennis_racket bottle wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut cake chair couch "
            "potted_plant bed dining_table toilet tv laptop mouse remote keyboard cell_phone microwave oven toaster sink refrigerator book clock vase scissors "
            "teddy_bear hair_drier toothbrush").split()


def decode_yolox(out: np.ndarray, classes: list[int], nms: float = 0.45):
    """Raw YOLOX rows ([3549, 85] at 416, or a multiple of 3549 rows) to letterboxed xyxy boxes per class."""
    grids, strides = [], []
    for s in (8, 16, 32):
        n = INPUT // s
        ys, xs = np.mgrid[0:n, 0:n]
        grids.append(np.stack([xs.ravel(), ys.ravel()], 1))
        strides.append(np.full(n * n, s))
    # A stacked-heads export (--keep-coco) repeats the grids once per head.
    heads = len(out) // sum(len(g) for g in grids)
    grid = np.tile(np.concatenate(grids).astype(np.float32), (heads, 1))
    stride = np.tile(np.concatenate(strides).astype(np.float32), heads)[:, None]
    xy = (out[:, :2] + grid) * stride
    wh = np.exp(np.clip(out[:, 2:4], -10, 10)) * stride
    xyxy = np.concatenate([xy - wh / 2, xy + wh / 2], 1)
    found = {}
    for c in classes:
        score = out[:, 4] * out[:, 5 + c]
        keep = np.where(score > 0.05)[0]
        if keep.size == 0:
            continue
        b = xyxy[keep]
        picked = cv2.dnn.NMSBoxes([[float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1 in b], score[keep].tolist(), 0.05, nms)
        picked = np.array(picked).reshape(-1)
        found[c] = (b[picked].tolist(), score[keep][picked].tolist())
    return found


def iou_cxcywh(a, b) -> float:
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    iw, ih = max(0.0, min(ax1, bx1) - max(ax0, bx0)), max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def train_cache() -> Path:
    return Path(os.environ.get("VIGIL_TRAIN_CACHE", Path(__file__).resolve().parents[2] / "third_party" / "train-cache"))


def pasted(spec: str, items, cls: int, seed: int) -> list[tuple[Path, list]]:
    """`video:N`: N frames of a scene the data lacks (a lift, a lobby), each
    with one to two objects of class `cls` cut from the dataset's own boxes
    and pasted in at the size a CCTV camera would see them. The objects'
    own boxes become the labels; the frame's own labels come from the teacher
    (pasted objects that hide more than half of one drop it)."""
    path, _, n = spec.rpartition(":")
    n = int(n)
    rng = random.Random(f"{seed}:{spec}")
    crops = [(p, b) for p, boxes in items for b in boxes if b[0] == cls and b[3] * b[4] > 0.02]
    if not crops:
        raise SystemExit(f"--paste {spec}: the data has no boxes of the class to paste")
    frames = video_negatives(f"{path}:{max(1, n // 4)}")
    cache = train_cache() / "pasted"
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        bg_path = frames[k % len(frames)][0]
        target = cache / f"{Path(path).stem}-{seed}-{k}.jpg"
        labels_path = target.with_suffix(".json")
        if target.exists() and labels_path.exists():
            out.append((target, [tuple(b) for b in json.loads(labels_path.read_text())]))
            continue
        bg = cv2.imread(str(bg_path))
        h, w = bg.shape[:2]
        labels = []
        for _ in range(rng.choice((1, 1, 2))):
            src, (c, cx, cy, bw, bh) = rng.choice(crops)
            img = cv2.imread(str(src))
            ih, iw = img.shape[:2]
            x0, y0 = int((cx - bw / 2) * iw), int((cy - bh / 2) * ih)
            x1, y1 = int((cx + bw / 2) * iw), int((cy + bh / 2) * ih)
            crop = img[max(0, y0):y1, max(0, x0):x1]
            if crop.size == 0:
                continue
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            height = int(h * rng.uniform(0.25, 0.6))
            width = max(2, min(w - 1, int(crop.shape[1] * height / crop.shape[0])))
            height = min(height, h - 1)
            crop = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
            px, py = rng.randint(0, w - width), rng.randint(max(0, h // 3 - height // 2), h - height)
            # A feathered edge: a hard rectangle is a shortcut the model would learn.
            mask = np.zeros((height, width), np.float32)
            e = max(1, min(width, height) // 12)
            mask[e:-e or None, e:-e or None] = 1.0
            mask = cv2.GaussianBlur(mask, (2 * e + 1, 2 * e + 1), 0)[..., None]
            region = bg[py:py + height, px:px + width].astype(np.float32)
            bg[py:py + height, px:px + width] = (crop * mask + region * (1 - mask)).astype(np.uint8)
            labels.append((cls, (px + width / 2) / w, (py + height / 2) / h, width / w, height / h))
        cv2.imwrite(str(target), bg, [cv2.IMWRITE_JPEG_QUALITY, 92])
        labels_path.write_text(json.dumps(labels))
        out.append((target, labels))
    return out


# ---------------------------------------------------------------- commands


def parse_map(pairs):
    out = {}
    for p in pairs or []:
        k, _, v = p.partition("=")
        out[k] = v
        out[k.lower()] = v
    return out


def atomic_save(obj, path: Path):
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def cmd_transplant_check(args):
    import onnxruntime as ort

    model = transplant(Path(args.onnx))
    img = cv2.imread(args.image)
    if img is None:
        raise SystemExit(f"{args.image}: cannot decode")
    boxed, _ = letterbox(img)
    x = boxed.transpose(2, 0, 1)[None].astype(np.float32)
    with torch.no_grad():
        mine = model(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
    theirs = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    # Objectness and class scores (what a detection is) must agree within the
    # tolerance. The raw box terms reach |3.6|, where float32 accumulation alone
    # differs by ~2e-4 (torch in float64 is as far from onnxruntime as float32),
    # so they are compared relative to their magnitude.
    scores_diff = float(np.abs(mine[..., 4:] - theirs[..., 4:]).max())
    box_diff = float((np.abs(mine[..., :4] - theirs[..., :4]) / np.maximum(1.0, np.abs(theirs[..., :4]))).max())
    scores = theirs[0, :, 4:5] * theirs[0, :, 5:]
    mine_scores = mine[0, :, 4:5] * mine[0, :, 5:]
    same_top = int(scores.max(0).argmax()) == int(mine_scores.max(0).argmax())
    print(json.dumps({"score_max_abs_diff": scores_diff, "box_max_rel_diff": box_diff, "shape": list(mine.shape), "top_class": int(scores.max(0).argmax()), "top_score": float(scores.max()), "same_top_class": same_top}))
    return 0 if scores_diff <= args.tolerance and box_diff <= args.box_tolerance and same_top else 1


def cmd_train(args):
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    classes = args.classes.split(",")
    init_from = dict(p.split("=") for p in args.init_from) if args.init_from else {}
    coco = {"motorcycle": COCO_MOTORCYCLE, "bicycle": 1, "person": 0}
    init_idx = {k: coco[v] if v in coco else int(v) for k, v in init_from.items()}
    aspect = tuple(map(int, args.aspect.split("x"))) if args.aspect else None
    class_map = parse_map(args.map)
    items = []
    for spec in args.data:
        items += Source(spec, class_map, classes, aspect).items()
    holdout_re = re.compile(args.holdout) if args.holdout else None
    held = [it for it in items if holdout_re and holdout_re.fullmatch(video_group(it[0].name))]
    items = [it for it in items if it not in held]
    for spec in args.negatives or []:
        items += video_negatives(spec)
    for spec in args.paste or []:
        cls_name, _, video = spec.partition("@")
        if cls_name not in classes:
            raise SystemExit(f"--paste {spec}: {cls_name} is not one of --classes")
        items += pasted(video, items, classes.index(cls_name), args.seed)
    if args.pseudo:
        # Pasted frames included: their people are the background's people.
        items = Teacher(args.onnx, args.pseudo, classes, args.pseudo_floor).label(items, aspect)
    if not items:
        raise SystemExit("no training images")
    run_json = out / "run.json"
    settings = {k: v for k, v in vars(args).items() if k != "func"}
    listing = [{"image": str(p), "boxes": b} for p, b in items]
    data_hash = hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    (out / "data.json").write_text(json.dumps({"train": listing, "held_out": [str(p) for p, _ in held]}, indent=0))

    model = with_classes(transplant(Path(args.onnx)), classes, init_idx)
    if args.start_from:
        # A finished run's weights (e.g. the frozen-backbone run) as the start:
        # its trained head keeps the first steps' gradients sane when the
        # backbone is unfrozen.
        ck = torch.load(args.start_from, weights_only=False)
        if ck.get("classes") != classes:
            raise SystemExit(f"{args.start_from}: classes {ck.get('classes')} are not {classes}")
        model.load_state_dict(ck["model"])
    # The stem sees raw 0-255 pixels, so its gradient is ~100x every other
    # layer's (2318 against 24 next, measured): trained, it sent the unfrozen
    # run to NaN within 10 steps. It stays as shipped; it only finds edges.
    if args.freeze_neck:
        # The neck's features are what the person channel reads: trained for
        # scooters, they cost people 0.066 AP (the battery-cart run).
        frozen = model.backbone
    elif args.freeze_backbone:
        frozen = model.backbone.backbone
    else:
        frozen = model.backbone.backbone.stem
    for p in frozen.parameters():
        p.requires_grad = False
    kept_rows = []
    if args.train_classes:
        # Only these classes' rows of the class convolutions learn: every
        # other output (the other classes, objectness, boxes) stays exactly the
        # shipped model's, so e.g. people are found as before, by construction.
        train_idx = [classes.index(c) for c in args.train_classes.split(",")]
        for p in model.parameters():
            p.requires_grad = False
        for conv in model.head.cls_preds:
            conv.weight.requires_grad = True
            conv.bias.requires_grad = True
            keep = [c for c in range(len(classes)) if c not in train_idx]
            kept_rows.append((conv, keep, conv.weight.detach()[keep].clone(), conv.bias.detach()[keep].clone()))
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    lr = args.lr * args.batch / 64
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0}], lr=lr, momentum=0.9, nesterov=True)
    start_epoch = 0
    last = out / "last.pt"
    if args.resume and last.exists():
        ck = torch.load(last, weights_only=False)
        if ck["data_hash"] != data_hash:
            raise SystemExit(f"{last}: trained on another image list; start a new --out")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch = ck["epoch"]
        random.setstate(ck["py_rng"])
        torch.set_rng_state(ck["torch_rng"])
        print(f"resuming after epoch {start_epoch}", flush=True)
    run_json.write_text(json.dumps({"settings": settings, "classes": classes, "images": len(items), "held_out": len(held), "data_sha256": data_hash}, indent=2))

    loader_gen = torch.Generator()
    ds = TrainSet(items, aspect)
    iters = math.ceil(len(ds) / args.batch)
    total_iters = iters * args.epochs
    until = min(args.epochs, args.until_epoch or args.epochs)
    step = 0
    for epoch in range(start_epoch, until):
        loader_gen.manual_seed(args.seed + epoch)
        dl = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, generator=loader_gen, num_workers=0, drop_last=False)
        model.train()
        freeze_bn(model)
        t0 = time.time()
        sums = {}
        skipped = 0
        for i, (x, y) in enumerate(dl):
            it = epoch * iters + i
            warm = iters  # one epoch of warm-up
            f = (it + 1) / warm if it < warm else 0.5 * (1 + math.cos(math.pi * (it - warm) / max(1, total_iters - warm)))
            for g in opt.param_groups:
                g["lr"] = lr * max(f, 0.05)
            losses = model(x, y)
            loss = losses["total_loss"]
            opt.zero_grad()
            if not torch.isfinite(loss):
                # One bad batch must not poison the weights: skip it and say so.
                skipped += 1
                print(f"epoch {epoch + 1} iter {i + 1}: loss not finite, batch skipped ({skipped} so far)", flush=True)
                continue
            loss.backward()
            # A safety net for rare huge gradients once the backbone trains.
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, args.clip_grad))
            opt.step()
            with torch.no_grad():
                for conv, keep, w, b in kept_rows:
                    conv.weight[keep] = w
                    conv.bias[keep] = b
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            step += 1
            if i % 10 == 0:
                print(f"epoch {epoch + 1}/{args.epochs} iter {i + 1}/{iters} loss {float(loss):.3f} grad {grad_norm:.1f} {(time.time() - t0) / (i + 1):.1f} s/iter", flush=True)
            if args.max_steps and step >= args.max_steps:
                break
        summary = {k: v / max(1, i + 1) for k, v in sums.items()}
        summary.update(epoch=epoch + 1, minutes=(time.time() - t0) / 60, skipped_batches=skipped)
        with open(out / "log.jsonl", "a") as log:
            log.write(json.dumps(summary) + "\n")
        atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1, "py_rng": random.getstate(), "torch_rng": torch.get_rng_state(), "data_hash": data_hash, "classes": classes}, last)
        atomic_save({"model": model.state_dict(), "epoch": epoch + 1, "classes": classes}, out / f"epoch-{epoch + 1:03d}.pt")
        print(f"epoch {epoch + 1} done in {summary['minutes']:.1f} min: {json.dumps(summary)}", flush=True)
        if args.max_steps and step >= args.max_steps:
            break
    if args.export:
        export(model, classes, Path(args.export))
    return 0


def export(model: nn.Module, classes: list[str], path: Path):
    model.eval()
    model.head.decode_in_inference = False
    x = torch.zeros(1, 3, INPUT, INPUT)
    torch.onnx.export(model, x, str(path), input_names=["images"], output_names=["output"], opset_version=11, dynamo=False)
    m = onnx.load(str(path))
    meta = m.metadata_props.add()
    meta.key, meta.value = "names", json.dumps(classes)
    onnx.save(m, str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"exported {path} ({len(classes)} classes: {', '.join(classes)}), sha256 {digest}")


class StackedHeads(nn.Module):
    """The shipped COCO head beside a trained head, over one shared frozen
    backbone and neck. Rows 0..N are the COCO head's, with only the `keep`
    classes' columns; rows N..2N are the trained head's, without them. So a
    kept class (person, bicycle) is found exactly as by the shipped model, and
    the trained head adds only its own classes. vigil's YOLOX decoder reads the
    second grid after the first."""

    def __init__(self, trained: nn.Module, coco_head: nn.Module, classes: list[str], keep: dict[str, int]):
        super().__init__()
        self.backbone = trained.backbone
        self.trained_head = trained.head
        self.coco_head = coco_head
        n = len(classes)
        coco_pick = torch.zeros(80, n)
        trained_mask = torch.ones(n)
        for name, coco_idx in keep.items():
            coco_pick[coco_idx, classes.index(name)] = 1.0
            trained_mask[classes.index(name)] = 0.0
        self.register_buffer("coco_pick", coco_pick)
        self.register_buffer("trained_mask", trained_mask)

    def forward(self, x):
        fpn = self.backbone(x)
        a = self.coco_head(fpn)
        b = self.trained_head(fpn)
        a = torch.cat([a[..., :5], a[..., 5:] @ self.coco_pick], dim=-1)
        b = torch.cat([b[..., :5], b[..., 5:] * self.trained_mask], dim=-1)
        return torch.cat([a, b], dim=1)


def cmd_export(args):
    ck = torch.load(args.checkpoint, weights_only=False)
    classes = ck["classes"]
    model = with_classes(build_model_80(), classes, {})
    model.load_state_dict(ck["model"])
    if not args.keep_coco:
        export(model, classes, Path(args.out))
        return 0
    if not args.onnx:
        raise SystemExit("--keep-coco needs --onnx, the shipped COCO weights")
    coco = transplant(Path(args.onnx))
    # Stacking is only exact when the run never changed the shared part.
    ours, theirs = model.backbone.state_dict(), coco.backbone.state_dict()
    worst = max(float((ours[k] - theirs[k]).abs().max()) for k in ours if ours[k].is_floating_point())
    if worst > 1e-6:
        raise SystemExit(f"{args.checkpoint}: the backbone or neck differs from {args.onnx} by {worst:g}; --keep-coco needs a --freeze-neck run")
    names = coco_names()
    keep = {}
    for name in args.keep_coco.split(","):
        if name not in classes or name not in names:
            raise SystemExit(f"--keep-coco {name}: not both one of the run's classes {classes} and a COCO class")
        keep[name] = names.index(name)
    coco.head.decode_in_inference = False
    stacked = StackedHeads(model, coco.head, classes, keep)
    stacked.eval()
    stacked.trained_head.decode_in_inference = False
    path = Path(args.out)
    torch.onnx.export(stacked, torch.zeros(1, 3, INPUT, INPUT), str(path), input_names=["images"], output_names=["output"], opset_version=11, dynamo=False)
    m = onnx.load(str(path))
    meta = m.metadata_props.add()
    meta.key, meta.value = "names", json.dumps(classes)
    meta = m.metadata_props.add()
    meta.key, meta.value = "stacked_heads", json.dumps({"coco": sorted(keep), "trained": [c for c in classes if c not in keep]})
    onnx.save(m, str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"exported {path} ({len(classes)} classes; {', '.join(sorted(keep))} from the COCO head), sha256 {digest}")
    return 0


def build_model_80():
    return build_model(80)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("transplant-check", help="torch vs onnxruntime on one image")
    t.add_argument("--onnx", required=True)
    t.add_argument("--image", required=True)
    t.add_argument("--tolerance", type=float, default=1e-4, help="objectness and class scores")
    t.add_argument("--box-tolerance", type=float, default=5e-4, help="raw box terms: float32 alone differs by ~2e-4")
    t.set_defaults(func=cmd_transplant_check)
    r = sub.add_parser("train", help="train, or resume with --resume")
    r.add_argument("--onnx", required=True, help="starting weights: the COCO yolox_nano_416.onnx")
    r.add_argument("--data", action="append", required=True, help="YOLO dataset folder[:split,split] (repeatable)")
    r.add_argument("--classes", required=True, help="the new model's classes, in order, e.g. fire,smoke")
    r.add_argument("--map", action="append", help="DATASET=class (e.g. Fire=fire); unmapped classes are dropped")
    r.add_argument("--init-from", action="append", help="class=COCO class or index to start from (battery_cart=motorcycle)")
    r.add_argument("--negatives", action="append", help="video:N evenly spaced frames with nothing to find")
    r.add_argument("--pseudo", action="append", help="COCO classes the shipped model labels on every image, e.g. person,motorcycle=battery_cart")
    r.add_argument("--pseudo-floor", type=float, default=0.4, help="the teacher's score floor")
    r.add_argument("--paste", action="append", help="class@video:N frames of a scene with that class's boxes pasted in")
    r.add_argument("--holdout", help="regex over source-video groups kept out of training")
    r.add_argument("--aspect", help="resize images to WxH first (undo a square stretch), e.g. 640x480")
    r.add_argument("--out", required=True)
    r.add_argument("--epochs", type=int, default=30)
    r.add_argument("--until-epoch", type=int, help="stop after this epoch (run in chunks)")
    r.add_argument("--batch", type=int, default=8)
    r.add_argument("--lr", type=float, default=0.01)
    r.add_argument("--seed", type=int, default=20261201)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--freeze-backbone", action="store_true")
    r.add_argument("--freeze-neck", action="store_true", help="the backbone and the neck (FPN): only the head learns")
    r.add_argument("--start-from", help="a checkpoint (.pt) of a run with the same classes to start from")
    r.add_argument("--train-classes", help="only these classes' outputs learn (e.g. battery_cart); every other output stays as shipped")
    r.add_argument("--clip-grad", type=float, default=10.0, help="gradient norm clip")
    r.add_argument("--resume", action="store_true")
    r.add_argument("--max-steps", type=int, help="stop after this many steps (smoke test)")
    r.add_argument("--export", help="write the ONNX here when done")
    r.set_defaults(func=cmd_train)
    e = sub.add_parser("export", help="a checkpoint to ONNX")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--keep-coco", help="classes found by the shipped COCO head instead (e.g. person,bicycle): needs a --freeze-neck run")
    e.add_argument("--onnx", help="the shipped COCO weights, for --keep-coco")
    e.set_defaults(func=cmd_export)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
