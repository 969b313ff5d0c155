"""Export an OpenCLIP model (image and text towers) or a DINOv2 model to ONNX files that
`lookalike models add` and `lookalike models add-text` take, and print the lines that add them.

Run it on a machine that has PyTorch and the weights (open_clip_torch and torch.hub download
them from their hubs); lookalike itself never runs it, and neither do its tests:

    pip install torch open_clip_torch
    python tools/export_openclip.py openclip ViT-B-32 laion2b_s34b_b79k exported/
    python tools/export_openclip.py dinov2 dinov2_vits14 exported/

The files are exported with PyTorch's TorchScript-based exporter (`dynamo=False`), which needs
nothing beyond torch and onnx, with a variable batch size.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

OPSET = 17
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class ImageTower(torch.nn.Module):
    """pixels (N, 3, S, S), normalised -> image vectors (N, D)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixels):
        encode = getattr(self.model, "encode_image", self.model)
        return encode(pixels)


class TextTower(torch.nn.Module):
    """token ids (N, context length) -> text vectors (N, D), in the image vectors' space."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model.encode_text(ids)


def export(module: torch.nn.Module, example: torch.Tensor, path: Path, input_name: str,
           output_name: str) -> None:
    # Not under torch.no_grad(): there PyTorch's attention layers take fused fast paths
    # (aten::_transformer_encoder_layer_fwd, _native_multi_head_attention) that the exporter
    # cannot write as ONNX; with gradients on they run as plain operators.
    module.eval()
    torch.onnx.export(module, (example,), str(path), input_names=[input_name],
                      output_names=[output_name], opset_version=OPSET, dynamo=False,
                      dynamic_axes={input_name: {0: "n"}, output_name: {0: "n"}})
    print(f"wrote {path}", file=sys.stderr)


def _numbers(values) -> str:
    return " ".join(f"{float(v):.4g}" for v in values)


def export_openclip(model, size: int, mean, std, context_length: int, vocab: Path | None,
                    name: str, out: Path) -> list[str]:
    """The image and text towers of an OpenCLIP model, its tokenizer's merges file beside
    them; returns the lines that add them to lookalike."""
    image, text = out / f"{name}-image.onnx", out / f"{name}-text.onnx"
    export(ImageTower(model), torch.zeros(1, 3, size, size), image, "pixels", "image_embeds")
    export(TextTower(model), torch.zeros(1, context_length, dtype=torch.long), text,
           "input_ids", "text_embeds")
    tokenizer = out / "bpe_simple_vocab_16e6.txt.gz"
    if vocab is not None:
        shutil.copyfile(vocab, tokenizer)
    return [f"lookalike models add {image} --name {name} --input-size {size} "
            f"--mean {_numbers(mean)} --std {_numbers(std)}",
            f"lookalike models add-text {text} --pairs-with {name} --tokenizer {tokenizer} "
            f"--context-length {context_length}"]


def openclip(arch: str, pretrained: str, out: Path) -> list[str]:
    import open_clip

    model, _, _ = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
    config = model.visual.preprocess_cfg  # the size, mean and std the model was trained with
    size = config["size"] if isinstance(config["size"], int) else config["size"][0]
    vocab = Path(open_clip.__file__).with_name("bpe_simple_vocab_16e6.txt.gz")
    name = arch.lower().replace("/", "-")
    return export_openclip(model, size, config["mean"], config["std"], model.context_length,
                           vocab if vocab.is_file() else None, name, out)


def dinov2(hub_name: str, out: Path, size: int = 224) -> list[str]:
    """A DINOv2 backbone: its class-token features (384-d for ViT-S/14); the input size must
    be a multiple of its 14-pixel patches."""
    model = torch.hub.load("facebookresearch/dinov2", hub_name)
    path = out / f"{hub_name}.onnx"
    export(ImageTower(model), torch.zeros(1, 3, size, size), path, "pixels", "features")
    return [f"lookalike models add {path} --name {hub_name.replace('_', '-')} --input-size "
            f"{size} --mean {_numbers(IMAGENET[0])} --std {_numbers(IMAGENET[1])}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    clip = kinds.add_parser("openclip", help="an OpenCLIP model: image and text towers")
    clip.add_argument("arch", help="e.g. ViT-B-32 (open_clip.list_pretrained() lists them)")
    clip.add_argument("pretrained", help="e.g. laion2b_s34b_b79k")
    clip.add_argument("out", type=Path)
    dino = kinds.add_parser("dinov2", help="a DINOv2 backbone: image tower only")
    dino.add_argument("hub_name", help="dinov2_vits14, dinov2_vitb14, ...")
    dino.add_argument("out", type=Path)
    dino.add_argument("--size", type=int, default=224, help="input size, a multiple of 14")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lines = (openclip(args.arch, args.pretrained, args.out) if args.kind == "openclip"
             else dinov2(args.hub_name, args.out, args.size))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
