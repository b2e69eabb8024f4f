"""Import coverage of models users bring: Hugging Face transformers built from small configs
(no weights downloaded) and timm's classifiers (pretrained=False), each run through
`from_torch` and its convolution and matrix-product FLOPs compared with PyTorch's own counter
(torch.utils.flop_counter), within 2%, and its parameter count with the module's.

    python benchmarks/import_sweep.py [--only transformers|timm] [--verbose]

Prints one line per model (imported, or the first refusal of the import's error) and the
coverage per library. A library that is not installed is skipped with a note; neither is a
dependency of dnnsim. timm models are built on the meta device (shapes only); the transformers
configs are small enough to run on the CPU, so masks computed from real ids are exercised.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings

import torch

# The relative FLOP difference allowed against torch.utils.flop_counter (what it counts:
# convolutions and matrix products).
FLOP_TOLERANCE = 0.02
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
}
# Image models take pixels, the others token ids.
IMAGE_INPUT = {name: (3, 32, 32) for name in ("vit", "clip-vision", "convnext", "resnet", "swin")}

TIMM = ("resnet18", "resnet50", "resnext50_32x4d", "efficientnet_b0", "mobilenetv3_small_100",
        "mobilenetv3_large_100", "convnext_tiny", "regnety_002", "regnetx_002", "densenet121",
        "vit_tiny_patch16_224", "deit_tiny_patch16_224", "deit_tiny_distilled_patch16_224",
        "swin_tiny_patch4_window7_224", "mixer_s16_224", "levit_128s", "beit_base_patch16_224",
        "coat_tiny", "inception_v3", "ghostnet_100", "rexnet_100", "dla34", "mobilevit_xxs",
        "poolformer_s12", "cait_xxs24_224", "maxvit_tiny_tf_224", "edgenext_xx_small",
        "efficientformer_l1", "pit_ti_224", "tnt_s_patch16_224", "xcit_nano_12_p16_224",
        "crossvit_tiny_240", "convmixer_768_32", "res2net50_26w_4s", "hrnet_w18_small")


def torch_flops(model, x) -> int:
    """PyTorch's count. Its counter has no formula for the CPU kernel of
    F.scaled_dot_product_attention (it counts the CUDA and meta ones); that kernel is given
    the counter's own SDPA formula."""
    from torch.utils import flop_counter

    def cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)
    counter = flop_counter.FlopCounterMode(display=False, custom_mapping={
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa})
    with counter:   # why: with grad off, the counter's module hooks fail on some models (PiT)
        model(x)
    return counter.get_total_flops()


def check(model, x, name: str) -> str | None:
    """None where `model` imports with PyTorch's FLOPs and the module's parameters, else what
    went wrong."""
    found = measure(model, x, name)
    return found if isinstance(found, str) else None


def measure(model, x, name: str) -> str | tuple[float, int, int]:
    """(the graph's FLOPs, PyTorch's, the parameters) where `model` imports with PyTorch's
    FLOPs and the module's parameters, else what went wrong."""
    from tests.workloads.torchvision_zoo import matmul_flops
    from workloads.graph import WorkloadError
    from workloads.torch_import import from_torch
    try:
        graph = from_torch(model, x, name=name)
    except WorkloadError as exc:
        lines = str(exc).splitlines()   # the count, then the first op refused
        return " ".join(line.strip() for line in lines[:2])
    expected, got = torch_flops(model, x), matmul_flops(graph)
    if abs(got - expected) > FLOP_TOLERANCE * expected:
        return f"{got:.4g} FLOPs against PyTorch's {expected:.4g}"
    params = sum(p.numel() for p in model.parameters())   # a tied parameter once
    if sum(op.params for op in graph) != params:
        return f"imports with {sum(op.params for op in graph)} parameters of the model's {params}"
    return got, expected, params


def _load_torchvision() -> None:
    """Both libraries import torchvision where it is installed; a PyPI torchvision beside a CPU
    torch needs the workaround of the torchvision coverage test to import."""
    from tests.workloads.torchvision_zoo import models
    models()


def transformers_cases():
    _load_torchvision()
    try:
        transformers = importlib.import_module("transformers")
    except ModuleNotFoundError:
        return None
    cases = []
    for name, (config_cls, model_cls, fields) in TRANSFORMERS.items():
        def build(config_cls=config_cls, model_cls=model_cls, fields=fields, name=name):
            torch.manual_seed(0)
            config = getattr(transformers, config_cls)(**fields, use_cache=False)
            model = getattr(transformers, model_cls)(config).eval()
            shape = IMAGE_INPUT.get(name)
            x = torch.randn(BATCH, *shape) if shape else \
                torch.randint(1, fields.get("vocab_size", 512), (BATCH, SEQUENCE))
            return model, x
        cases.append((name, build))
    return cases


def timm_cases():
    _load_torchvision()
    try:
        timm = importlib.import_module("timm")
    except ModuleNotFoundError:
        return None

    def build(name: str):
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False).eval()
        size = model.pretrained_cfg.get("input_size", (3, IMAGE, IMAGE))
        return model, torch.randn(1, *size, device="meta")
    return [(n, lambda n=n: build(n)) for n in TIMM]


def sweep(label: str, cases, verbose: bool) -> tuple[int, int]:
    imported = 0
    for name, build in cases:
        try:
            model, x = build()
        except Exception as exc:  # a model this library version cannot build: not counted
            print(f"  {name}: not built ({type(exc).__name__}: {exc})")
            continue
        with warnings.catch_warnings():
            if not verbose:
                warnings.simplefilter("ignore")
            try:
                found = measure(model, x, name)
            except Exception as exc:  # an importer crash is a failure to report, not to hide
                found = f"crashed: {type(exc).__name__}: {exc}"
        if isinstance(found, str):
            print(f"  {name}: {found[:300]}", flush=True)
            continue
        imported += 1
        got, expected, params = found
        print(f"  {name}: imports, {got:.4g} FLOPs against PyTorch's {expected:.4g} "
              f"({(got - expected) / expected:+.2%}), {params} parameters", flush=True)
    total = sum(1 for _ in cases)
    return imported, total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("transformers", "timm"))
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, ".")
    rows = []
    for label, cases in (("transformers", transformers_cases), ("timm", timm_cases)):
        if args.only and args.only != label:
            continue
        found = cases()
        if found is None:
            print(f"{label}: not installed, skipped")
            continue
        print(f"{label}:")
        rows.append((label, *sweep(label, found, args.verbose)))
    for label, ok, total in rows:
        print(f"{label}: {ok} of {total} import with PyTorch's convolution and matmul FLOPs "
              f"within {FLOP_TOLERANCE:.0%} and the module's parameter count")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
