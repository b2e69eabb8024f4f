"""The network zoo: forward graphs (ending at the logits) built without PyTorch.

    g = workloads.zoo.get("resnet50", batch=32)          # options: num_classes, width, ...
    train = workloads.training.lower_training(g)           # adds the loss, backward, updates

Every network takes `num_classes`, `width` (a channel multiplier), `input_size` (height and
width of the input) and `dtype_bytes`; CIFAR ResNets also take `depth` (through
`cifar_resnet`) and `shortcut` ("A" zero-pad, "B" 1x1 conv). A name `path/to/net.py:factory` is
a PyTorch module of the user's (workloads/torch_file.py; option input_shape).

ResNet names: `resnet18`, `resnet34`, `resnet50`, `resnet101`, `resnet152` and `resnet200` are
the ImageNet models (v1.5; `resnet50_v1`, `resnet101_v1`, `resnet152_v1` put the stride in the
first 1x1 conv, see resnet.py). `cifar_resnet<N>` is the CIFAR-10 ResNet of any depth
N = 6k+2 (cifar_resnet20, cifar_resnet56, cifar_resnet200, ...). A plain `resnet<N>` of any
other depth N = 6k+2 (resnet20, resnet56, resnet110) is the CIFAR one too, as He et al. name
them: no ImageNet ResNet has those depths, so the name means one network; where a depth is
both (200, and 50 and 152), `resnet<N>` is ImageNet and `cifar_resnet<N>` is CIFAR.

The other ImageNet CNNs are torchvision's, op for op and named by its module paths (ResNeXt,
Wide ResNet, SqueezeNet 1.1, DenseNet, MobileNetV2 and V3-Large, EfficientNet-B0, ShuffleNet
V2, ConvNeXt), besides Inception-v4 as TF-slim and timm build it; the transformers are in
transformers.py. docs/zoo.md lists them all.
"""
from __future__ import annotations

import functools
import inspect
import math
import re

from .. import supernet
from ..errors import ShapeError, did_you_mean
from ..graph import OpGraph, WorkloadError, count_text
from . import (
    alexnet,
    convnext,
    decoupled,
    densenet,
    efficientnet,
    googlenet,
    inception,
    inception_v4,
    lenet,
    mobile,
    resnet,
    shufflenet,
    squeezenet,
    swin,
    t5,
    transformers,
    vgg,
)
from ._base import NetworkInfo

__all__ = ["get", "names", "info", "known", "NetworkInfo"]

_CIFAR_RESNET_DEPTHS = (20, 32, 44, 56, 110, 224, 362)
_IMAGENET = (3, 224, 224)
LLAMA3_VOCAB = 128256


def _cifar_resnet_info(depth: int | None) -> NetworkInfo:
    what = f"ResNet-{depth}" if depth else "ResNet-(6k+2)"
    return NetworkInfo(f"cifar_resnet{depth or ''}", (3, 32, 32), 10,
                       f"CIFAR-10 {what} (He et al. 2016), option-A shortcuts",
                       resnet.cifar_resnet, {"depth": depth} if depth else {})


def _llama3_info(name: str, what: str, sizes: dict) -> NetworkInfo:
    """A Llama 3 decoder: 8 key/value heads and a 128256-token vocabulary by default."""
    return NetworkInfo(name, (2048,), LLAMA3_VOCAB, f"{what}, 8 key/value heads, "
                       f"{LLAMA3_VOCAB}-token vocabulary (options as llama2_7b)",
                       functools.partial(transformers.llama, vocab_size=LLAMA3_VOCAB), sizes)


def _resnet_info(name: str, what: str) -> NetworkInfo:
    return NetworkInfo(name, _IMAGENET, 1000, what, getattr(resnet, name))


_REGISTRY: dict[str, NetworkInfo] = {n.name: n for n in [
    NetworkInfo("lenet5", (1, 28, 28), 10, "LeNet-5 on MNIST (ReLU, max pool)", lenet.lenet5),
    NetworkInfo("alexnet", _IMAGENET, 1000, "AlexNet, torchvision: the one-tower 'One weird "
                "trick' model (Krizhevsky 2014, as convnet-benchmarks' AlexNet-OWT)",
                alexnet.alexnet),
    NetworkInfo("alexnet_bvlc", _IMAGENET, 1000, "AlexNet, Caffe's BVLC model: the two-tower "
                "network of Krizhevsky et al. 2012 (groups=2 in conv2/4/5, LRN), 224x224",
                alexnet.alexnet_bvlc),
    NetworkInfo("alexnet_cifar", (3, 32, 32), 10, "AlexNet for CIFAR-10 (bearpaw)",
                alexnet.alexnet_cifar),
    NetworkInfo("overfeat_fast", (3, 231, 231), 1000,
                "OverFeat fast model (Sermanet et al. 2014), as soumith/convnet-benchmarks",
                alexnet.overfeat_fast),
    NetworkInfo("vgg11", _IMAGENET, 1000, "VGG-11 (VGG-A), torchvision, no batch norm",
                vgg.vgg11),
    NetworkInfo("vgg11_bn", _IMAGENET, 1000, "VGG-11 (VGG-A) with batch norm, torchvision",
                vgg.vgg11_bn),
    NetworkInfo("vgg16", _IMAGENET, 1000, "VGG-16, torchvision, no batch norm (ImageNet)",
                vgg.vgg16),
    NetworkInfo("vgg16_bn", _IMAGENET, 1000, "VGG-16 with batch norm, torchvision", vgg.vgg16_bn),
    NetworkInfo("vgg19", _IMAGENET, 1000, "VGG-19 (VGG-E), torchvision, no batch norm",
                vgg.vgg19),
    NetworkInfo("vgg19_bn", _IMAGENET, 1000, "VGG-19 (VGG-E) with batch norm, torchvision",
                vgg.vgg19_bn),
    NetworkInfo("vgg16_cifar", (3, 32, 32), 10, "VGG-16 with batch norm, 512->10 (CIFAR-10)",
                vgg.vgg16_cifar),
    NetworkInfo("googlenet", _IMAGENET, 1000,
                "GoogLeNet / Inception-v1, torchvision, no aux classifiers (options batchnorm, "
                "branch3_kernel=5 for the paper's)", googlenet.googlenet),
    NetworkInfo("googlenet_v1", _IMAGENET, 1000,
                "GoogLeNet v1 as Caffe's bvlc_googlenet (Szegedy et al. 2015): no batch norm, "
                "5x5 branches, LRN after the stem, no aux classifiers", googlenet.googlenet_v1),
    NetworkInfo("googlenet_v1_nolrn", _IMAGENET, 1000,
                "GoogLeNet v1 without its two LRNs, as soumith/convnet-benchmarks builds it",
                googlenet.googlenet_v1, dict(lrn_after_stem=False)),
    NetworkInfo("inception_v3", (3, 299, 299), 1000,
                "Inception-v3, torchvision, no aux classifier (ImageNet, 299x299)",
                inception.inception_v3),
    NetworkInfo("inception_v4", (3, 299, 299), 1000, "Inception-v4 (Szegedy et al. 2016) as "
                "TF-slim, tf_cnn_benchmarks and timm build it (ImageNet, 299x299)",
                inception_v4.inception_v4),
    _resnet_info("resnet18", "ResNet-18, torchvision (ImageNet)"),
    _resnet_info("resnet34", "ResNet-34, torchvision (ImageNet)"),
    _resnet_info("resnet50", "ResNet-50 v1.5, torchvision: stride on the 3x3 (ImageNet)"),
    _resnet_info("resnet101", "ResNet-101 v1.5, torchvision (ImageNet)"),
    _resnet_info("resnet152", "ResNet-152 v1.5, torchvision (ImageNet)"),
    _resnet_info("resnet200", "ResNet-200 (fb.resnet.torch's blocks), v1.5 layout (ImageNet)"),
    _resnet_info("resnext50_32x4d", "ResNeXt-50 32x4d, torchvision (ImageNet)"),
    _resnet_info("resnext101_32x4d", "ResNeXt-101 32x4d, torchvision's layout, as NVIDIA's "
                 "DeepLearningExamples train it (ImageNet)"),
    _resnet_info("resnext101_32x8d", "ResNeXt-101 32x8d, torchvision (ImageNet)"),
    _resnet_info("se_resnext50_32x4d", "SE-ResNeXt-50 32x4d (Hu et al. 2018), as timm builds "
                 "it (ImageNet)"),
    _resnet_info("se_resnext101_32x4d", "SE-ResNeXt-101 32x4d, as NVIDIA's "
                 "DeepLearningExamples and timm build it (ImageNet)"),
    _resnet_info("wide_resnet50_2", "Wide ResNet-50-2, torchvision: 3x3 convs twice as wide "
                 "(ImageNet)"),
    _resnet_info("wide_resnet101_2", "Wide ResNet-101-2, torchvision (ImageNet)"),
    NetworkInfo("squeezenet1_1", _IMAGENET, 1000, "SqueezeNet 1.1, torchvision (ImageNet)",
                squeezenet.squeezenet1_1),
    *(NetworkInfo(f"densenet{d}", _IMAGENET, 1000, f"DenseNet-{d}, torchvision (ImageNet)",
                  getattr(densenet, f"densenet{d}")) for d in densenet.CONFIGS),
    NetworkInfo("mobilenet_v2", _IMAGENET, 1000, "MobileNetV2, torchvision (ImageNet)",
                mobile.mobilenet_v2),
    NetworkInfo("mobilenet_v3_large", _IMAGENET, 1000, "MobileNetV3-Large, torchvision "
                "(ImageNet)", mobile.mobilenet_v3_large),
    NetworkInfo("mobilenet_v3_small", _IMAGENET, 1000, "MobileNetV3-Small, torchvision "
                "(ImageNet)", mobile.mobilenet_v3_small),
    *(NetworkInfo(n, (3, c[3], c[3]), 1000, f"EfficientNet-{n[-2:].upper()}, torchvision "
                  f"(ImageNet at {c[3]}x{c[3]}; stochastic depth in training)",
                  getattr(efficientnet, n)) for n, c in efficientnet.CONFIGS.items()),
    *(NetworkInfo(n, (3, c[3], c[3]), 1000, f"EfficientNetV2-{n[-1].upper()}, torchvision "
                  f"(ImageNet at {c[3]}x{c[3]}; stochastic depth in training)",
                  getattr(efficientnet, n)) for n, c in efficientnet.V2_CONFIGS.items()),
    *(NetworkInfo(f"shufflenet_v2_x{w}", _IMAGENET, 1000, f"ShuffleNet V2 {w.replace('_', '.')}x, "
                  "torchvision (ImageNet)", getattr(shufflenet, f"shufflenet_v2_x{w}"))
      for w in ("0_5", "1_0", "1_5", "2_0")),
    *(NetworkInfo(n, _IMAGENET, 1000, f"ConvNeXt-{n.split('_')[1].capitalize()}, "
                  "torchvision (ImageNet; stochastic depth in training)",
                  getattr(convnext, n)) for n in convnext.CONFIGS),
    *(NetworkInfo(n, _IMAGENET, 1000, f"Swin-{n[-1].upper()}, torchvision (ImageNet; "
                  "stochastic depth in training)", getattr(swin, n)) for n in swin.CONFIGS),
    _resnet_info("resnet50_v1", "ResNet-50 v1: stride on the first 1x1, as He et al. 2016 and "
                 "tf_cnn_benchmarks (ImageNet)"),
    _resnet_info("resnet101_v1", "ResNet-101 v1: stride on the first 1x1 (ImageNet)"),
    _resnet_info("resnet152_v1", "ResNet-152 v1: stride on the first 1x1 (ImageNet)"),
    NetworkInfo("fixup_resnet50", _IMAGENET, 1000,
                "Fixup ResNet-50: no batch norm, scalar biases not modelled (ImageNet)",
                resnet.fixup_resnet50),
    NetworkInfo("decnn_resnet50", _IMAGENET, 1000,
                "DeCNN decoupled ResNet-50: group convs + channel shuffles (options groups, "
                "width, shuffles)", decoupled.decnn_resnet50),
    NetworkInfo("spos_supernet", _IMAGENET, 1000,
                "SPOS ShuffleNetV2 supernet, 20 blocks x 4 candidates: one subnet (options "
                "choices, seed)", supernet.zoo_builder(supernet.SPOS_IMAGENET)),
    NetworkInfo("spos_cifar", (3, 32, 32), 10,
                "small SPOS-style supernet on CIFAR-10, 8 blocks x 4 candidates: one subnet "
                "(options choices, seed)", supernet.zoo_builder(supernet.SPOS_CIFAR)),
    NetworkInfo("vit_b_16", _IMAGENET, 1000, "ViT-B/16, torchvision (ImageNet): 86.6M "
                "parameters (options attention=fused|naive, dropout, input_size)",
                transformers.vit, transformers.VIT_B_16),
    NetworkInfo("vit_l_16", _IMAGENET, 1000, "ViT-L/16, torchvision (ImageNet): 304.3M "
                "parameters (options as vit_b_16)", transformers.vit, transformers.VIT_L_16),
    NetworkInfo("vit_b_32", _IMAGENET, 1000, "ViT-B/32, torchvision (ImageNet): 88.2M "
                "parameters (options as vit_b_16)", transformers.vit, transformers.VIT_B_32),
    NetworkInfo("vit_l_32", _IMAGENET, 1000, "ViT-L/32, torchvision (ImageNet): 306.5M "
                "parameters (options as vit_b_16)", transformers.vit, transformers.VIT_L_32),
    NetworkInfo("vit_h_14", _IMAGENET, 1000, "ViT-H/14, torchvision (ImageNet, 224x224): "
                "632.0M parameters (options as vit_b_16)", transformers.vit,
                transformers.VIT_H_14),
    NetworkInfo("vit_s_16", _IMAGENET, 1000, "ViT-S/16 (384 wide, 6 heads), 22.1M parameters",
                transformers.vit, transformers.VIT_S_16),
    NetworkInfo("vit_ti_16", _IMAGENET, 1000, "ViT-Ti/16 (192 wide, 3 heads), 5.7M parameters",
                transformers.vit, transformers.VIT_TI_16),
    NetworkInfo("gpt2", (1024,), 50257, "GPT-2 small, 124M parameters, tied output layer; "
                "loss over every token (options seq_len, vocab_size, attention, dropout)",
                transformers.gpt2),
    NetworkInfo("gpt2_medium", (1024,), 50257, "GPT-2 medium, 355M parameters (options as "
                "gpt2)", transformers.gpt2, transformers.GPT2_MEDIUM),
    NetworkInfo("gpt2_large", (1024,), 50257, "GPT-2 large, 774M parameters (options as "
                "gpt2)", transformers.gpt2, transformers.GPT2_LARGE),
    NetworkInfo("gpt2_xl", (1024,), 50257, "GPT-2 XL, 1.56B parameters (options as gpt2)",
                transformers.gpt2, transformers.GPT2_XL),
    NetworkInfo("gpt3_175b", (2048,), 50257, "GPT-3 175B (Brown et al. 2020), dense attention "
                "as MLPerf trains it: 174.6B parameters, 2048 positions (options as gpt2)",
                functools.partial(transformers.gpt2, seq_len=2048), transformers.GPT3_175B),
    NetworkInfo("bert_base", (128,), 2, "BERT-base sequence classifier, 110M parameters "
                "(options seq_len, vocab_size, num_classes, attention, dropout)",
                transformers.bert),
    NetworkInfo("bert_large", (128,), 2, "BERT-large sequence classifier, 335M parameters "
                "(options as bert_base)", transformers.bert, transformers.BERT_LARGE),
    *(NetworkInfo(f"t5_{size}", (512,), 32128, f"T5-{size.capitalize()} encoder-decoder "
                  f"(Hugging Face's t5-{size}): {count} parameters; inputs seq_len tokens, "
                  "targets target_len (128); options seq_len, target_len, vocab_size, dropout",
                  t5.t5, getattr(t5, f"T5_{size.upper()}"))
      for size, count in (("small", "60.5M"), ("base", "223M"), ("large", "738M"))),
    NetworkInfo("llama", (2048,), 32000, "Llama decoder (RMSNorm, rotary, SwiGLU, grouped-"
                "query attention); options layers, hidden, heads, kv_heads, intermediate, "
                "vocab_size, seq_len, attention (defaults: TinyLlama-1.1B's sizes)",
                transformers.llama),
    NetworkInfo("tinyllama_1b", (2048,), 32000, "TinyLlama-1.1B, 1.10B parameters, 4 key/value "
                "heads (options seq_len, vocab_size, attention)", transformers.llama,
                transformers.TINYLLAMA_1B),
    NetworkInfo("llama2_7b", (2048,), 32000, "Llama 2 7B, 6.74B parameters (options seq_len, "
                "vocab_size, attention)", transformers.llama, transformers.LLAMA2_7B),
    NetworkInfo("llama2_13b", (2048,), 32000, "Llama 2 13B, 13.0B parameters (options as "
                "llama2_7b)", transformers.llama, transformers.LLAMA2_13B),
    NetworkInfo("llama2_70b", (2048,), 32000, "Llama 2 70B, 69.0B parameters, 8 key/value "
                "heads (options as llama2_7b)", transformers.llama, transformers.LLAMA2_70B),
    _llama3_info("llama3_8b", "Llama 3 8B, 8.03B parameters", transformers.LLAMA3_8B),
    _llama3_info("llama3_1_8b", "Llama 3.1 8B: Llama 3 8B's layers, 8.03B parameters",
                 dict(transformers.LLAMA3_8B, name="llama3_1_8b")),
    _llama3_info("llama3_70b", "Llama 3 70B, 70.6B parameters", transformers.LLAMA3_70B),
    _llama3_info("llama3_1_405b", "Llama 3.1 405B, 405.9B parameters",
                 transformers.LLAMA3_1_405B),
    NetworkInfo("mistral_7b", (2048,), 32000, "Mistral 7B v0.1, 7.24B parameters, 8 key/"
                "value heads; its 4096-token sliding window bounds seq_len (options as "
                "llama2_7b)", transformers.llama, transformers.MISTRAL_7B),
    _cifar_resnet_info(None),
    *(_cifar_resnet_info(d) for d in _CIFAR_RESNET_DEPTHS),
]}


def names() -> list[str]:
    """The registered names (`get` also takes cifar_resnet<6k+2> and resnet<6k+2> of other
    depths, see the module docstring)."""
    return list(_REGISTRY)


def known(name: str) -> bool:
    """Whether `name` is a network of the zoo: a registered name, or cifar_resnet<N> or
    resnet<N> of a CIFAR depth (a PyTorch file, which `get` also takes, is not one)."""
    if name in _REGISTRY:
        return True
    match = re.fullmatch(r"(cifar_)?resnet(\d+)", name)
    return match is not None and resnet.is_cifar_depth(int(match.group(2)))


def info(name: str) -> NetworkInfo:
    if name in _REGISTRY:
        return _REGISTRY[name]
    from ..torch_file import file_info, is_file_spec
    if is_file_spec(name):   # a PyTorch module in the user's file: path/to/net.py:factory
        return file_info(name)
    match = re.fullmatch(r"(cifar_)?resnet(\d+)", name)
    if match:   # an ImageNet depth is registered, so any other resnet<N> is a CIFAR one
        return _cifar_resnet_info(resnet.check_cifar_depth(int(match.group(2))))
    if name.endswith(".py"):   # a file without its factory
        raise WorkloadError(f"{name!r} is a Python file: name the function or class that "
                            f"builds the module, as {name}:FACTORY")
    raise WorkloadError(f"unknown network {name!r}{did_you_mean(name, names())}; known: "
                        f"{', '.join(names())} "
                        f"(and cifar_resnet<N> for any CIFAR depth N = 6k+2, or a PyTorch "
                        f"module of yours as path/to/net.py:factory)")


def get(name: str, batch: int = 1, **options) -> OpGraph:
    """The forward graph of network `name` for a batch of `batch` samples."""
    entry = info(name)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise WorkloadError(f"batch size must be an integer >= 1, got {batch!r}")
    accepted = set(inspect.signature(entry.build).parameters) - {"batch"} - set(entry.fixed)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise WorkloadError(f"{name}: unknown option(s) {', '.join(unknown)}; "
                            f"accepted: {', '.join(sorted(accepted))}")
    for key, value in options.items():  # int(width * c) would fail obscurely on these
        if isinstance(value, float) and not math.isfinite(value):
            raise WorkloadError(f"{name}: option {key!r} must be a finite number, got {value}")
    try:
        graph = entry.build(batch=batch, **entry.fixed, **options)
    except (ShapeError, ArithmeticError) as exc:   # a size past what can be counted
        given = ", ".join(f"{k}={v:g}" if isinstance(v, float) else
                          f"{k}={count_text(v)}" if isinstance(v, int) else f"{k}={v}"
                          for k, v in sorted(options.items()))
        error = ShapeError if isinstance(exc, ShapeError) else WorkloadError
        raise error(f"{name} at batch {count_text(batch)}"
                    f"{' with ' + given if given else ''}: {exc}") from None
    graph.meta.setdefault("network", name)
    return graph
