"""The models benchmarks/import_sweep.py imports: Hugging Face transformers built from small
configs (no weights downloaded), timm's classifiers (pretrained=False), torchvision's
detection, segmentation, video and optical-flow models (weights=None) and code as users write
it (tests/workloads/torch_user_code.py). Each library is imported only when its cases are
built; a case is a (name, build) pair, build() -> (model, example input or inputs)."""
from __future__ import annotations

import importlib

import torch

BATCH, SEQUENCE = 2, 16
IMAGE = 224

# Small configs: two layers, narrow, few heads; each family's own names for the sizes.
_DECODER = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, vocab_size=512, max_position_embeddings=128)
_ENCODER = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, vocab_size=512, max_position_embeddings=128)
_GPT2 = dict(n_embd=64, n_layer=2, n_head=4, vocab_size=512, n_positions=128)
_VISION = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
               num_attention_heads=4, image_size=32, patch_size=8)
_STAGES = dict(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1])
_SEQ2SEQ = dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
                vocab_size=512, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                decoder_start_token_id=1)
TRANSFORMERS: dict[str, tuple[str, str, dict]] = {
    # name: (config class, model class, config fields)
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", _GPT2),
    "bert": ("BertConfig", "BertModel", _ENCODER),
    "bert-mlm": ("BertConfig", "BertForMaskedLM", _ENCODER),
    "roberta": ("RobertaConfig", "RobertaModel", _ENCODER),
    "distilbert": ("DistilBertConfig", "DistilBertModel",
                   dict(dim=64, hidden_dim=128, n_layers=2, n_heads=4, vocab_size=512,
                        max_position_embeddings=128)),
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(_DECODER, num_key_value_heads=2)),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(_DECODER, num_key_value_heads=2)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(_DECODER, num_key_value_heads=2)),
    "phi": ("PhiConfig", "PhiForCausalLM", _DECODER),
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", _DECODER),
    "opt": ("OPTConfig", "OPTForCausalLM",
            dict(hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
                 vocab_size=512, max_position_embeddings=128, word_embed_proj_dim=64)),
    "t5": ("T5Config", "T5EncoderModel",
           dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, vocab_size=512)),
    # Hugging Face's eager attention: explicit products, the mask added, softmax
    "gpt2-eager": ("GPT2Config", "GPT2LMHeadModel", dict(_GPT2, attn_implementation="eager")),
    "llama-eager": ("LlamaConfig", "LlamaForCausalLM",
                    dict(_DECODER, num_key_value_heads=2, attn_implementation="eager")),
    "gemma": ("GemmaConfig", "GemmaForCausalLM",
              dict(_DECODER, num_key_value_heads=1, head_dim=16)),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", dict(_DECODER, num_key_value_heads=4,
                                                   pad_token_id=0)),
    "falcon": ("FalconConfig", "FalconForCausalLM",
               dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    vocab_size=512)),
    "bloom": ("BloomConfig", "BloomForCausalLM",
              dict(hidden_size=64, n_layer=2, n_head=4, vocab_size=512)),
    "gptj": ("GPTJConfig", "GPTJForCausalLM",
             dict(n_embd=64, n_layer=2, n_head=4, vocab_size=512, rotary_dim=8,
                  n_positions=128)),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM",
                dict(_DECODER, num_key_value_heads=2, num_local_experts=4,
                     num_experts_per_tok=2)),
    "albert": ("AlbertConfig", "AlbertModel", dict(_ENCODER, embedding_size=32)),
    "electra": ("ElectraConfig", "ElectraModel", dict(_ENCODER, embedding_size=32)),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaModel", _ENCODER),
    "deberta-v2": ("DebertaV2Config", "DebertaV2Model", _ENCODER),
    "bert-classifier": ("BertConfig", "BertForSequenceClassification", _ENCODER),
    "gpt2-classifier": ("GPT2Config", "GPT2ForSequenceClassification",
                        dict(_GPT2, pad_token_id=0)),
    "vit": ("ViTConfig", "ViTModel", _VISION),
    "clip-vision": ("CLIPVisionConfig", "CLIPVisionModel", _VISION),
    "convnext": ("ConvNextConfig", "ConvNextModel", _STAGES),
    "resnet": ("ResNetConfig", "ResNetModel", dict(_STAGES, embedding_size=16)),
    "swin": ("SwinConfig", "SwinModel",
             dict(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2],
                  window_size=4)),
    # encoder-decoders, speech, two towers, detection and segmentation, state spaces
    "t5-seq2seq": ("T5Config", "T5Model",
                   dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
                        vocab_size=512)),
    "bart": ("BartConfig", "BartModel", dict(_SEQ2SEQ, max_position_embeddings=64)),
    "whisper": ("WhisperConfig", "WhisperModel",
                dict(_SEQ2SEQ, num_mel_bins=16, max_source_positions=32,
                     max_target_positions=32)),
    "clip": ("CLIPConfig", "CLIPModel",
             dict(text_config=dict(_ENCODER, max_position_embeddings=32),
                  vision_config=_VISION, projection_dim=32)),
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model",
                 dict(_ENCODER, conv_dim=(32, 32), conv_stride=(5, 2), conv_kernel=(10, 3),
                      num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)),
    "detr": ("DetrConfig", "DetrForObjectDetection",
             dict(_SEQ2SEQ, use_timm_backbone=False, use_pretrained_backbone=False,
                  backbone_config=dict(_STAGES, model_type="resnet", embedding_size=16,
                                       out_features=["stage4"]), num_queries=10)),
    "segformer": ("SegformerConfig", "SegformerForSemanticSegmentation",
                  dict(_STAGES, num_attention_heads=[1, 2, 4, 4], decoder_hidden_size=64,
                       num_labels=5)),
    "dinov2": ("Dinov2Config", "Dinov2Model", _VISION),
    "mamba": ("MambaConfig", "MambaForCausalLM",
              dict(hidden_size=64, num_hidden_layers=2, vocab_size=512, state_size=8)),
    # newer decoders, mixtures of experts and encoders
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(_DECODER, num_key_value_heads=2,
                                                      head_dim=16)),
    "qwen3-moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM",
                  dict(_DECODER, num_key_value_heads=2, head_dim=16, num_experts=4,
                       num_experts_per_tok=2, moe_intermediate_size=64)),
    "qwen2-moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM",
                  dict(_DECODER, num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
                       moe_intermediate_size=64, shared_expert_intermediate_size=64)),
    "gpt-oss": ("GptOssConfig", "GptOssForCausalLM",
                dict(_DECODER, num_key_value_heads=2, head_dim=16, num_local_experts=4,
                     num_experts_per_tok=2)),
    "deepseek-v3": ("DeepseekV3Config", "DeepseekV3ForCausalLM",
                    dict(_DECODER, num_key_value_heads=4, n_routed_experts=4,
                         num_experts_per_tok=2, moe_intermediate_size=64,
                         first_k_dense_replace=1, q_lora_rank=32, kv_lora_rank=16,
                         qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16, n_group=1,
                         topk_group=1)),
    "llama4": ("Llama4TextConfig", "Llama4ForCausalLM",
               dict(_DECODER, num_key_value_heads=2, head_dim=16, num_local_experts=4,
                    num_experts_per_tok=1, intermediate_size_mlp=128,
                    interleave_moe_layer_step=1)),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", dict(_DECODER, num_key_value_heads=2,
                                                         head_dim=16)),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", dict(_DECODER, num_key_value_heads=2,
                                                             head_dim=16)),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM", dict(_DECODER, num_key_value_heads=2)),
    "granite": ("GraniteConfig", "GraniteForCausalLM", dict(_DECODER, num_key_value_heads=2)),
    "starcoder2": ("Starcoder2Config", "Starcoder2ForCausalLM",
                   dict(_DECODER, num_key_value_heads=2)),
    "stablelm": ("StableLmConfig", "StableLmForCausalLM", dict(_DECODER, num_key_value_heads=2)),
    "cohere": ("CohereConfig", "CohereForCausalLM", dict(_DECODER, num_key_value_heads=2)),
    "mamba2": ("Mamba2Config", "Mamba2ForCausalLM",
               dict(hidden_size=64, num_hidden_layers=2, vocab_size=512, state_size=8,
                    num_heads=8, head_dim=16, n_groups=1)),
    "modernbert": ("ModernBertConfig", "ModernBertModel", dict(_DECODER, pad_token_id=0)),
    "mt5": ("MT5Config", "MT5EncoderModel",
            dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, vocab_size=512)),
    "siglip-vision": ("SiglipVisionConfig", "SiglipVisionModel", _VISION),
    "beit": ("BeitConfig", "BeitModel", _VISION),
    "vit-mae": ("ViTMAEConfig", "ViTMAEModel", _VISION),
}
# What each model's forward is given, by keyword: token ids ("ids", (BATCH, SEQUENCE)) or
# values of a sample's shape. Image models take pixels; a model not listed, token ids.
_PIXELS = (("pixel_values", (3, 32, 32)),)
INPUTS: dict[str, tuple[tuple[str, str | tuple[int, ...]], ...]] = {
    **{name: _PIXELS for name in ("vit", "clip-vision", "convnext", "resnet", "swin",
                                  "dinov2", "siglip-vision", "beit", "vit-mae")},
    "t5-seq2seq": (("input_ids", "ids"), ("decoder_input_ids", "ids")),
    "bart": (("input_ids", "ids"), ("decoder_input_ids", "ids")),
    "whisper": (("input_features", (16, 64)), ("decoder_input_ids", "ids")),
    "clip": (("input_ids", "ids"), ("pixel_values", (3, 32, 32))),
    "wav2vec2": (("input_values", (1600,)),),
    "detr": (("pixel_values", (3, 64, 64)),),
    "segformer": (("pixel_values", (3, 64, 64)),),
}

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
        "vit_base_patch16_rope_224", "nextvit_small", "efficientformerv2_s0")




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


def user_model(name: str):
    from tests.workloads.torch_user_code import CASES
    torch.manual_seed(0)
    model, x = CASES[name]()
    return model.eval(), x
