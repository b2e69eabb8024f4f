"""Measured against simulated training steps of transformers on this CPU: GPT-2 small and
torchvision's ViT-B/16; and of torchvision's CNN classifiers, definitions no calibration
replays (`--torchvision`).

    dnnsim validate --transformers --profile my_cpu.toml [--threads N]
    dnnsim validate --torchvision --profile my_cpu.toml [--threads N]
    python -m validation.validate.transformer_steps --profile my_cpu.toml [--torchvision]

GPT-2 is measured as a plain PyTorch module with the reference implementation's structure
(`GPT2` below: nn.Linear projections, LayerNorm, F.scaled_dot_product_attention with
is_causal=True, GELU with the tanh approximation, dropout 0.1, the output layer tied to the
token embedding) and simulated as the zoo's `gpt2` of the same sizes (torch.fx cannot trace
its generator over the split of q, k and v; the parameters and FLOPs are equal, a test
checks). ViT-B/16 is torchvision's
own definition, simulated as `from_torch` imports it. A step is forward, cross-entropy (over
every position for GPT-2), backward and SGD with momentum, as calibration replays it.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable

from workloads.graph import WorkloadError

from . import compare as v

GPT2_SMALL = dict(width=768, depth=12, heads=12, vocab_size=50257, max_positions=1024)
GPT2_DROPOUT = 0.1
# GPT-2's initialisation (the reference implementation's): weights normal with std 0.02, the
# residual projections' scaled by 1/sqrt(2 * depth), positions 0.01, biases 0. PyTorch's
# nn.Embedding default (std 1) would make the tied output layer's logits ~28 wide, the softmax
# over 50,257 classes one-hot, and the loss gradient mostly subnormal floats, which Intel
# cores compute 100x slower (docs/cpu-transformers.md): a step of no model anyone trains.
GPT2_INIT_STD = 0.02
GPT2_POSITION_INIT_STD = 0.01


@dataclass(frozen=True)
class Case:
    """One measured step: `build()` gives (module, input, loss of the output, simulated
    graph)."""
    name: str
    batch: int
    build: Callable[[], tuple]


def gpt2_module(width: int, depth: int, heads: int, vocab_size: int, max_positions: int,
                dropout: float = GPT2_DROPOUT, seed: int = 0):
    """GPT-2 as its reference implementation is structured and initialised, in plain
    PyTorch; `seed` draws the weights."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c_attn, self.c_proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
            self.resid_dropout = nn.Dropout(dropout)

        def forward(self, x):
            n, s = x.shape[0], x.shape[1]
            q, k, v = (t.view(n, s, heads, width // heads).transpose(1, 2)
                       for t in self.c_attn(x).split(width, 2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(n, s, width)))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(width), Attention(), nn.LayerNorm(width)
            self.c_fc, self.c_proj = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            h = F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")
            return x + self.dropout(self.c_proj(h))

    class GPT2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte = nn.Embedding(vocab_size, width)
            self.wpe = nn.Parameter(torch.empty(max_positions, width))
            self.drop = nn.Dropout(dropout)
            self.h = nn.ModuleList(Block() for _ in range(depth))
            self.ln_f = nn.LayerNorm(width)

        def forward(self, ids):
            x = self.drop(self.wte(ids) + self.wpe[: ids.shape[1]])
            for block in self.h:
                x = block(x)
            return F.linear(self.ln_f(x), self.wte.weight)     # tied to the token embedding

    module = GPT2()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif name == "wpe":
                p.normal_(0.0, GPT2_POSITION_INIT_STD, generator=gen)
            elif p.dim() == 2:       # Linear and Embedding weights; the residual projections
                std = GPT2_INIT_STD / ((2 * depth) ** 0.5 if name.endswith("c_proj.weight")
                                       else 1.0)
                p.normal_(0.0, std, generator=gen)
    return module     # LayerNorm keeps PyTorch's scale 1 and shift 0, as GPT-2 starts


def gpt2_case(batch: int, seq_len: int, name: str = "gpt2", **sizes) -> Case:
    sizes = {**GPT2_SMALL, **sizes}

    def build():
        import torch
        import torch.nn.functional as F

        from workloads.zoo import transformers as zt
        gen = torch.Generator().manual_seed(0)
        module = gpt2_module(**sizes)
        ids = torch.randint(0, sizes["vocab_size"], (batch, seq_len), generator=gen)
        targets = torch.randint(0, sizes["vocab_size"], (batch * seq_len,), generator=gen)

        def loss(logits):
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets)
        graph = zt.gpt2(batch, seq_len=seq_len, dropout=GPT2_DROPOUT, attention="fused",
                        name=name, **sizes)
        return module, ids, loss, graph
    return Case(f"{name}_s{seq_len}", batch, build)


def vit_case(batch: int, name: str = "vit_b_16", **sizes) -> Case:
    """torchvision's vit_b_16, or a VisionTransformer of other `sizes` (image_size,
    patch_size, num_layers, num_heads, hidden_dim, mlp_dim, num_classes)."""
    def build():
        import torch
        import torch.nn.functional as F

        from workloads import from_torch
        models = torchvision_models()
        module = (models.VisionTransformer(**sizes) if sizes else models.vit_b_16())
        size = sizes.get("image_size", 224)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 3, size, size, generator=gen)
        classes = sizes.get("num_classes", 1000)
        targets = torch.randint(0, classes, (batch,), generator=gen)
        return module, x, lambda logits: F.cross_entropy(logits, targets), \
            from_torch(module, x, name=name)
    return Case(name, batch, build)


# torchvision classifiers of every family the zoo's calibration networks do not define
# (depthwise, squeeze-excitation, dense, inverted-residual, grouped and wide bottlenecks)
TORCHVISION_CNNS = ("resnet18", "resnet50", "wide_resnet50_2", "resnext50_32x4d",
                    "densenet121", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0",
                    "regnet_y_400mf", "shufflenet_v2_x1_0", "mnasnet1_0", "squeezenet1_1",
                    "convnext_tiny")


def torchvision_case(model: str, batch: int, size: int = 224) -> Case:
    """torchvision's `model` at `size` x `size`, imported by from_torch."""
    def build():
        import torch
        import torch.nn.functional as F

        from workloads import from_torch
        module = getattr(torchvision_models(), model)()
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 3, size, size, generator=gen)
        targets = torch.randint(0, 1000, (batch,), generator=gen)
        return module, x, lambda logits: F.cross_entropy(logits, targets), \
            from_torch(module, x, name=model)
    return Case(model, batch, build)


def torchvision_cases(batch: int = 2) -> list[Case]:
    return [torchvision_case(m, batch) for m in TORCHVISION_CNNS]


def torchvision_models():
    """torchvision.models. A torchvision wheel built against a CUDA torch, beside a CPU build
    of the same torch version, fails to import while registering fake kernels for its
    compiled detection operators (nms, qnms); the classification models use none of them, so
    there the two schemas are declared (no kernel) and the import is retried."""
    import torch
    try:
        import torchvision.models as tvm
    except ModuleNotFoundError:
        raise WorkloadError("the ViT-B/16 case needs torchvision (pip install torchvision, "
                            "the build matching your torch)") from None
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        global _TORCHVISION_SCHEMAS
        _TORCHVISION_SCHEMAS = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            _TORCHVISION_SCHEMAS.define(
                f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        import torchvision.models as tvm
    return tvm


_TORCHVISION_SCHEMAS = None      # the declared schemas must outlive the import


def default_cases() -> list[Case]:
    """Steps of about 1-10 s on two cores."""
    return [gpt2_case(1, 128), gpt2_case(2, 256), vit_case(2), vit_case(4)]


def compare_case(case: Case, profile, reps: int = 3, statistic: str = "median"
                 ) -> tuple[v.Comparison, str | None]:
    """The case measured and simulated, and a warning when one more step's ops read
    subnormal floats and the step runs faster with them flushed (validation/calibrate/
    subnormals.py: the model costs normal floats)."""
    from validation.calibrate import subnormals
    from validation.calibrate.torch_exec import measure, steady_allocator, step_function
    steady_allocator()
    module, x, loss, graph = case.build()
    with v.machine_checked_elsewhere():
        sim_s, fallbacks = v.simulate_graph(graph, profile, training=True)
    step = step_function(module, x, True, loss)
    measured = measure(step, x.device, warmup=1, reps=reps).get(statistic)
    row = v.Comparison(case.name, case.batch, True, measured, sim_s, fallbacks)
    reads = subnormals.subnormal_reads(step)
    speedup = subnormals.flush_speedup(step) if reads else 1.0
    if speedup < subnormals.WARN_SPEEDUP:
        return row, None
    return row, subnormals.describe(case.name, reads, speedup,
                                    profile.meta.get("subnormal_slowdown"))


def run(profile, threads: int | None = None, cases: list[Case] | None = None, reps: int = 3,
        out=None, err=None) -> list[v.Comparison]:
    """Measure and simulate every case at `threads` (default: the profile's); prints a
    warning when the profile was measured on another machine or setting, or a case's step
    is slowed by subnormal floats, then the table, between two machine speed checks."""
    import torch

    from hwmodels.cpu_identity import other_machine_message
    prof = v.load_profile(profile)
    threads = threads or int(prof.meta.get("threads", 1))
    if threads < 1:
        raise WorkloadError(f"--threads must be >= 1, got {threads}")
    if reps < 1:
        raise WorkloadError(f"--reps must be >= 1, got {reps}")
    torch.set_num_threads(threads)
    mismatch = other_machine_message(prof.meta, prof.label, threads, torch.__version__)
    if mismatch:
        print(f"warning: {mismatch}", file=err or sys.stderr)
    from validation.calibrate.machine import speed_check
    # before and after the minutes of measuring: a shared machine's speed drifts over them
    print(speed_check(prof), file=out or sys.stdout)
    rows = []
    for case in cases or default_cases():
        row, subnormal_warning = compare_case(case, prof, reps)
        if subnormal_warning:
            print(f"warning: {subnormal_warning}", file=err or sys.stderr)
        rows.append(row)
    print(v.format_table(rows), file=out or sys.stdout)
    print(speed_check(prof), file=out or sys.stdout)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m validation.validate.transformer_steps",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", required=True, help="calibrated profile TOML")
    p.add_argument("--threads", type=int, help="torch threads (default: the profile's)")
    p.add_argument("--reps", type=int, default=3, help="timed steps per case")
    p.add_argument("--csv", help="write the table here")
    p.add_argument("--torchvision", action="store_true",
                   help="torchvision's CNN classifiers instead of the transformers")
    args = p.parse_args(argv)
    try:
        cases = torchvision_cases() if args.torchvision else None
        rows = run(args.profile, args.threads, cases=cases, reps=args.reps)
    except Exception as exc:      # bad input: one clear line, exit 2
        from hwmodels.specs import HardwareError
        if not isinstance(exc, (WorkloadError, HardwareError, OSError)):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.csv:
        v.write_table_csv(rows, args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
