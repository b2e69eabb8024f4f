"""Which zoo network a published table's `network` label names.

A label resolves by the first rule that applies (docs/published-tables.md):
1. a zoo name as written is that network ("alexnet" is torchvision's AlexNet), except a plain
   ResNet depth, which rule 4 reads;
2. a harness's own label (HARNESS_LABELS, any case) is the model that harness ran;
3. a dataset or input qualifier in parentheses ("(ImageNet)", "(224x224)") is dropped (an
   input size is then run, published_row.py), and so are case, spaces, hyphens, underscores,
   dots and slashes: "Inception V3", "InceptionV3" and "inception-v3" all read as
   inception_v3, and a zoo network added later is found the same way without an entry here;
   SPELLINGS lists the labels that spell a zoo name otherwise ("inception3", Lambda's and
   tf_cnn_benchmarks' name for Inception-v3);
4. a ResNet's layout: "v1.5" is torchvision's (the zoo's resnet<N>), "v1" puts the stride in
   the first 1x1 (resnet<N>_v1). A label without either means the layout of the model that
   the row's framework ships (RESNET_V1_FRAMEWORKS): tf_cnn_benchmarks', Keras' and Caffe's
   ResNets are v1; torchvision's, NVIDIA's, MXNet's symbol zoo and fb.resnet.torch's are v1.5.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from workloads import zoo

# Each label is one harness's, so the label names the model that harness ran:
# - "AlexNet": jcjohnson/cnn-benchmarks (and dmikushin's fork, same models) loaded Caffe's
#   BVLC AlexNet (two towers, LRN) at 224x224;
# - "AlexNet (One Weird Trick)", "GoogLeNet v1": soumith/convnet-benchmarks, whose alexnet.lua
#   is the one-tower network and whose googlenet.lua / benchmark_googlenet.py build GoogLeNet v1
#   with biases and 5x5 branches but without its two LRNs ("LRN (not added for now)");
# - "Inception-v1 (GoogLeNet)": jcjohnson/cnn-benchmarks' Inception-v1, a Torch port of
#   Google's GoogLeNet v1, taken as Caffe's bvlc_googlenet (LRN after the stem, no batch
#   norm). Uncertain: the port's own file is not in the published data; if it left out the
#   LRNs as convnet-benchmarks did, googlenet_v1_nolrn is the closer model.
HARNESS_LABELS = {
    "alexnet": "alexnet_bvlc", "alexnet (one weird trick)": "alexnet",
    "inception-v1 (googlenet)": "googlenet_v1", "googlenet v1": "googlenet_v1_nolrn",
    "vgg-a (oxfordnet model a)": "vgg11", "overfeat (fast)": "overfeat_fast",
}
# normalised spellings (see _key) that name a zoo network otherwise than its name does
SPELLINGS = {
    "inception3": "inception_v3", "inception4": "inception_v4", "vgga": "vgg11",
    "bertbaseuncased": "bert_base", "bertlargeuncased": "bert_large",
    "gpt2small": "gpt2", "gpt2124m": "gpt2", "gpt2355m": "gpt2_medium",
    "tinyllama11b": "tinyllama_1b", "shufflenetv2": "shufflenet_v2_x1_0",
    "shufflenetv210x": "shufflenet_v2_x1_0",
}
# Parenthesised qualifiers that say what data, input, precision or memory format a network
# ran in without changing the network (the row reads the format from the label too); any
# other parenthesis stays part of the label (and "(CIFAR-10)" does change it: a CIFAR ResNet
# is another network, named cifar_resnet<N>)
NEUTRAL_QUALIFIERS = re.compile(
    r"\((?:imagenet(?:-1k| data)?|ilsvrc[\w-]*|in-1k|synthetic(?: data)?|real(?: data)?|"
    r"\d+\s*x\s*\d+|torchvision|fp32|tf32|amp|fp16|bf16|mixed precision|nhwc|nchw|"
    r"channels_last|training|train|throughput)\)")
# framework families (published_gpu.framework_key, plus Caffe, which the host model reads as
# PyTorch) whose plain "ResNet-50" is the v1 layout
RESNET_V1_FRAMEWORKS = ("tensorflow", "tensorflow-xla", "caffe")
_INPUT_SIZE = re.compile(r"\((\d+)\s*x\s*(\d+)\)", re.IGNORECASE)
_VERSION = re.compile(r"^(.*?)[\s_-]*v1(?:[._]?5)?$")
_RESNET = re.compile(r"resnet(\d+)")
# ResNet depths of basic blocks: their v1 and v1.5 are the same network
_BASIC_BLOCK_DEPTHS = (18, 34)


@dataclass(frozen=True)
class Resolved:
    network: str | None     # zoo name, None where the label names none
    assumed: str = ""       # the rule a reader needs to see why (ResNet layout), "" if none
    reason: str = ""        # why there is no network, where there is none


def _key(label: str) -> str:
    return re.sub(r"[^a-z0-9]", "", label.lower())


def _index() -> dict[str, list[str]]:
    """Normalised zoo name -> the zoo names it normalises from (one, unless two registered
    names differ only in case or separators), for the names as registered now."""
    index: dict[str, list[str]] = {}
    for name in zoo.names():
        index.setdefault(_key(name), []).append(name)
    return index


def input_size_of(label: str) -> tuple[int, int] | None:
    """The (height, width) a label's "(HxW)" qualifier states, None where it states none."""
    match = _INPUT_SIZE.search(label)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _plain_label(label: str) -> str:
    text = re.sub(r"\s+", " ", label.strip().lower())
    return NEUTRAL_QUALIFIERS.sub("", text).strip()


def resolve_network(label: str, framework_family: str, framework_text: str = "") -> Resolved:
    """The zoo network `label` names in a row of the framework family `framework_family`
    (`framework_text`: the column as written, where Caffe is named)."""
    stripped = label.strip()
    if zoo.known(stripped) and not _RESNET.fullmatch(stripped):
        return Resolved(stripped)
    if stripped.lower() in HARNESS_LABELS:
        return Resolved(HARNESS_LABELS[stripped.lower()])
    text = _plain_label(stripped)
    version = None
    match = _VERSION.match(text)
    if match and _RESNET.fullmatch(_key(match.group(1))):
        version = "v1.5" if "5" in text[len(match.group(1)):] else "v1"
        text = match.group(1)
    key = _key(text)
    resnet = _RESNET.fullmatch(key)
    if resnet:
        return _resnet(int(resnet.group(1)), version, framework_family, framework_text, label)
    names = [SPELLINGS[key]] if key in SPELLINGS else _index().get(key, [])
    if len(names) > 1:
        return Resolved(None, reason=f"network {label!r} spells {' and '.join(names)} alike: "
                                     f"write the zoo name")
    if not names or not zoo.known(names[0]):
        return Resolved(None, reason=f"network {label!r} is not in the zoo")
    return Resolved(names[0])


def _resnet(depth: int, version: str | None, family: str, framework_text: str,
            label: str) -> Resolved:
    plain, v1 = f"resnet{depth}", f"resnet{depth}_v1"
    if not zoo.known(plain):
        return Resolved(None, reason=f"network {label!r} is not in the zoo")
    if depth in _BASIC_BLOCK_DEPTHS or zoo.info(plain).input_shape[1] != 224:
        return Resolved(plain)   # basic blocks (or a CIFAR depth): no layout to choose
    assumed = ""
    if version is None:
        caffe = re.search(r"\bcaffe\b(?!2)", framework_text.lower()) is not None
        version = "v1" if family in RESNET_V1_FRAMEWORKS or caffe else "v1.5"
        assumed = (f"ResNet {version} (no v1/v1.5 in the label: "
                   f"{'caffe' if caffe else family}'s ResNet)")
    if version == "v1.5":
        return Resolved(plain, assumed)
    if not zoo.known(v1):
        return Resolved(None, reason=f"network {label!r} is ResNet v1 (stride in the first 1x1; "
                                     f"{assumed or 'the label says so'}), and the zoo has no {v1}")
    return Resolved(v1, assumed)


def named_in(label: object, known) -> str:
    """' (did you mean 'h100'?)' for a label that holds a known name as a word ('H100 SXM5
    80GB') or spells one with other separators ('ViT-B/16'): a hint only, never a mapping."""
    if not isinstance(label, str):
        return ""
    words = re.split(r"[\s_/-]+", label.strip().lower())
    bare = re.sub(r"[^a-z0-9]", "", label.lower())
    hits = [k for k in sorted(known) if k in words or re.sub(r"[^a-z0-9]", "", k) == bare]
    # a100 has siblings (a100-80gb, a100-pcie): name them all, the SKU decides
    family = [k for k in sorted(known) if any(k.startswith(f"{h}-") for h in hits)]
    return f" (did you mean {' or '.join(map(repr, hits + family))}?)" if hits else ""
