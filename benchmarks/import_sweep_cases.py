"""The models benchmarks/import_sweep.py imports: Hugging Face transformers built from small
configs (no weights downloaded), timm's classifiers (pretrained=False), torchvision's
detection, segmentation, video and optical-flow models (weights=None) and code as users write
it (tests/workloads/torch_user_code.py, torch_user_recurrent.py). Each library is imported
only when its cases are built; a case is a (name, build) pair, build() -> (model, example
input or inputs)."""
from __future__ import annotations

import importlib

import torch

from benchmarks import import_sweep_transformers as _hf

TRANSFORMERS, INPUTS = _hf.TRANSFORMERS, _hf.INPUTS
BATCH, SEQUENCE = _hf.BATCH, _hf.SEQUENCE

IMAGE = 224

TIMM = ("resnet18", "resnet50", "resnext50_32x4d", "efficientnet_b0", "mobilenetv3_small_100",
        "mobilenetv3_large_100", "convnext_tiny", "regnety_002", "regnetx_002", "densenet121",
        "vit_tiny_patch16_224", "deit_tiny_patch16_224", "deit_tiny_distilled_patch16_224",
        "swin_tiny_patch4_window7_224", "mixer_s16_224", "levit_128s", "beit_base_patch16_224",
        "coat_tiny", "inception_v3", "ghostnet_100", "rexnet_100", "dla34", "mobilevit_xxs",
        "poolformer_s12", "cait_xxs24_224", "maxvit_tiny_tf_224", "edgenext_xx_small",
        "efficientformer_l1", "pit_ti_224", "tnt_s_patch16_224", "xcit_nano_12_p16_224",
        "crossvit_tiny_240", "convmixer_768_32", "res2net50_26w_4s", "hrnet_w18_small",
        # newer families
        "convnextv2_atto", "eva02_tiny_patch14_224", "efficientvit_b0", "fastvit_t8",
        "repvit_m1", "hiera_tiny_224", "mambaout_femto", "tiny_vit_5m_224",
        "mobilenetv4_conv_small", "hgnetv2_b0", "starnet_s1", "davit_tiny", "focalnet_tiny_srf",
        "nf_resnet26", "gcvit_xxtiny", "pvt_v2_b0", "caformer_s18", "ghostnetv2_100",
        "vit_base_patch16_rope_224", "nextvit_small", "efficientformerv2_s0",
        # more of the families people train: EfficientNet(V2), MobileNet, RegNet, ResNet and
        # Inception variants, ViT and hybrid variants, MLPs, local and relative attention
        "efficientnetv2_rw_t", "tf_efficientnetv2_b0", "efficientnet_lite0", "mnasnet_100",
        "mixnet_s", "lcnet_050", "mobilenetv4_hybrid_medium", "mobilevitv2_050", "regnetz_b16",
        "resnetv2_50", "seresnext26d_32x4d", "ecaresnet50d", "skresnet18", "resnest14d",
        "res2next50", "cspresnet50", "cspdarknet53", "dpn68", "dla46x_c", "hrnet_w18",
        "ese_vovnet19b_dw", "selecsls42b", "tresnet_m", "repvgg_a0", "mobileone_s0", "vgg16",
        "dm_nfnet_f0", "inception_v4", "inception_resnet_v2", "xception41", "legacy_xception",
        "rdnet_tiny", "inception_next_tiny", "deit3_small_patch16_224",
        "beitv2_base_patch16_224", "flexivit_small", "vit_base_patch14_reg4_dinov2",
        "vit_relpos_small_patch16_224", "vitamin_small_224", "levit_conv_128s",
        "coatnet_0_rw_224", "coatnext_nano_rw_224", "coat_lite_tiny", "convit_tiny",
        "visformer_tiny", "twins_svt_small", "nest_tiny", "volo_d1_224", "efficientvit_m0",
        "swinv2_tiny_window8_256", "swinv2_cr_tiny_ns_224", "mvitv2_tiny", "poolformerv2_s12",
        "gmlp_s16_224", "resmlp_12_224", "sequencer2d_s", "botnet26t_256", "halonet26t",
        "lambda_resnet26t")




def _tv(builder: str, *shape: int, meta: bool = True, **kwargs):
    """A torchvision model by its builder's name (weights=None) and an input of `shape`;
    on the meta device (shapes only) unless the model's forward needs values (detection:
    boxes kept by score)."""
    def build():
        from tests.workloads.torchvision_zoo import models
        tvm = models()
        module, name = builder.rsplit(".", 1)
        make = getattr(importlib.import_module(f"torchvision.models.{module}"), name)
        device = torch.device("meta") if meta else torch.device("cpu")
        torch.manual_seed(0)
        with device:
            model = make(weights=None, **kwargs).eval()
        assert tvm is not None
        x = torch.randn(*shape, device=device)
        return model, x
    return build


_NO_BACKBONE = dict(weights_backbone=None, num_classes=5)
TORCHVISION = {
    "fasterrcnn_resnet50_fpn": _tv("detection.fasterrcnn_resnet50_fpn", 1, 3, 128, 128,
                                   meta=False, **_NO_BACKBONE),
    "maskrcnn_resnet50_fpn": _tv("detection.maskrcnn_resnet50_fpn", 1, 3, 128, 128,
                                 meta=False, **_NO_BACKBONE),
    "keypointrcnn_resnet50_fpn": _tv("detection.keypointrcnn_resnet50_fpn", 1, 3, 128, 128,
                                     meta=False, weights_backbone=None),
    "retinanet_resnet50_fpn": _tv("detection.retinanet_resnet50_fpn", 1, 3, 128, 128,
                                  meta=False, **_NO_BACKBONE),
    "fcos_resnet50_fpn": _tv("detection.fcos_resnet50_fpn", 1, 3, 128, 128, meta=False,
                             **_NO_BACKBONE),
    "ssd300_vgg16": _tv("detection.ssd300_vgg16", 1, 3, 300, 300, meta=False, **_NO_BACKBONE),
    "ssdlite320_mobilenet_v3_large": _tv("detection.ssdlite320_mobilenet_v3_large", 1, 3, 320,
                                         320, meta=False, **_NO_BACKBONE),
    "fcn_resnet50": _tv("segmentation.fcn_resnet50", 1, 3, 224, 224, **_NO_BACKBONE),
    "deeplabv3_mobilenet_v3_large": _tv("segmentation.deeplabv3_mobilenet_v3_large",
                                        1, 3, 224, 224, **_NO_BACKBONE),
    "lraspp_mobilenet_v3_large": _tv("segmentation.lraspp_mobilenet_v3_large", 1, 3, 224, 224,
                                     **_NO_BACKBONE),
    "r3d_18": _tv("video.r3d_18", 1, 3, 16, 112, 112),
    "mc3_18": _tv("video.mc3_18", 1, 3, 16, 112, 112),
    "r2plus1d_18": _tv("video.r2plus1d_18", 1, 3, 16, 112, 112),
    "s3d": _tv("video.s3d", 1, 3, 16, 224, 224),
    "mvit_v2_s": _tv("video.mvit_v2_s", 1, 3, 16, 224, 224),
    "swin3d_t": _tv("video.swin3d_t", 1, 3, 16, 224, 224),
}


def _raft():
    model, x = _tv("optical_flow.raft_small", 1, 3, 128, 128, meta=False)()
    return model, (x, torch.randn(1, 3, 128, 128))


TORCHVISION["raft_small"] = _raft


class Keywords(torch.nn.Module):
    """A model called with its inputs by keyword (`model(input_ids=..., decoder_input_ids=
    ...)`), as a user's two-input forward calls it."""

    def __init__(self, model, first: str, second: str) -> None:
        super().__init__()
        self.model, self.keywords = model, (first, second)

    def forward(self, first, second):
        return self.model(**{self.keywords[0]: first, self.keywords[1]: second})


def transformers_model(name: str):
    """(model, example input or inputs) of TRANSFORMERS' `name`."""
    transformers = importlib.import_module("transformers")
    config_cls, model_cls, fields = TRANSFORMERS[name]
    torch.manual_seed(0)
    config = getattr(transformers, config_cls)(**fields, use_cache=False)
    model = getattr(transformers, model_cls)(config).eval()
    vocab = fields.get("vocab_size", 512)
    inputs = INPUTS.get(name, (("input_ids", "ids"),))
    xs = tuple(torch.randint(3, vocab, (BATCH, SEQUENCE)) if shape == "ids" else
               torch.randn(BATCH, *shape) for _, shape in inputs)
    if len(xs) == 1:
        return model, xs[0]
    return Keywords(model, inputs[0][0], inputs[1][0]), xs


def timm_model(name: str):
    timm = importlib.import_module("timm")
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False).eval()
    size = model.pretrained_cfg.get("input_size", (3, IMAGE, IMAGE))
    return model, torch.randn(1, *size, device="meta")


def user_case_table() -> dict:
    """name -> build, of code as users write it (tests/workloads/torch_user_code.py and
    torch_user_recurrent.py)."""
    from tests.workloads.torch_user_code import CASES
    from tests.workloads.torch_user_recurrent import RECURRENT_CASES
    return {**CASES, **RECURRENT_CASES}


def user_model(name: str):
    torch.manual_seed(0)
    model, x = user_case_table()[name]()
    return model.eval(), x
