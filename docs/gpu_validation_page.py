"""Write docs/gpu-validation.md from its prose (the template docs/gpu-validation.md.in) and
the figures its validations give, so that no figure of the page is typed:

    python docs/gpu_validation_page.py            # rerun the validations, rewrite the page
    python docs/gpu_validation_page.py --check    # exit 1 where the page is not what it writes

Each `{{name}}` of the template is a figure docs/gpu_validation_figures.py takes from one run
each of the in-sample and the leave-one-GPU-out validation and the kernel rows' scores (the
commands the page shows), or one docs/gpu_validation_data.py computes from the published
kernel rows themselves (what the prose says of the tables, with no model in it). The prose's
comparisons (AMP against FP32, the held-out figure against the in-sample one, which rows come
out fast or slow) are checked too, so a refit that makes a sentence false fails the check. The
leave-one-GPU-out fit takes several minutes; tests/test_gpu_validation_page.py runs it (slow)
and checks the page's structure.
"""
from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS), str(DOCS.parent)]
import gpu_validation_data as data  # noqa: E402  (docs/ is not a package)
import gpu_validation_figures as measured  # noqa: E402
import templated_pages as pages  # noqa: E402

PAGE = "gpu-validation.md"
GENERATOR = "docs/gpu_validation_page.py"
HEADER = pages.header(GENERATOR, "the validations it names", "docs/gpu-validation.md.in")
SECTIONS = (measured.status, measured.passes, measured.training_misses,
            measured.kernel_misses, measured.floors)


def figures(runs: measured.Runs | None = None) -> dict[str, str]:
    """Every figure of the page, measured (runs: the validations, run here if not given)."""
    runs = runs or measured.run()
    return pages.merged([*((section.__name__, section(runs)) for section in SECTIONS),
                         ("published_facts", data.published_facts(runs.kernel_rows.values()))])


def template() -> str:
    return (DOCS / f"{PAGE}.in").read_text()


def fill(text: str, values: dict[str, str]) -> str:
    """The template with each placeholder replaced by its figure; a placeholder with no
    figure, or a figure the template does not name, is an error."""
    return pages.fill({PAGE: text}, values, HEADER)[PAGE]


_low, _high = pages.low, pages.high


def claims(v: dict[str, str]) -> list[str]:
    """Each comparison the prose makes of the figures that they no longer bear out."""
    said = {
        "AMP misses less than FP32 in sample": _low(v["ins_amp"]) < _low(v["ins_fp32_mape"]),
        "held out, FP32 misses more than in sample":
            _low(v["loo_fp32_mape"]) > _low(v["ins_fp32_mape"]),
        "the V100's batch-16 Torch7 backward takes a smaller multiple of the forward in the "
        "model than published": _high(v["v100_b16_model"]) < _high(v["v100_b16_published"]),
        "GoogLeNet's backward is nowhere more than 5% slow": _high(v["googlenet_bwd"]) < 5,
        "the V100's Torch7 VGG-19 rows at batch 1-8 come out too fast":
            _low(v["v100_vgg19_small"]) > 0,
        "the V100's Torch7 ResNet-34 at batch 8 comes out too fast":
            _low(v["v100_r34_b8"]) > 0,
        "the Titan X (Maxwell)'s Torch7 rows come out slow in sample": all(
            _high(v[f"tmx_in_{k}"]) < 0 for k in ("alexnet", "vgg", "resnet")),
        "the fit leaves Torch7's host time at its start": v["torch7_host"] == v["host_start"],
        "held out, the K80's VGG rows come out slow": _high(v["k80_loo_vgg"]) < 0,
        "from batch 8 to 16 the model's passes grow more than the published":
            _low(v["model_growth"]) > _high(v["published_growth"]),
        "products narrower than 128 columns miss more than the wide ones":
            _low(v["gemm_wide"]) < min(_low(v["gemm_mid"]), _low(v["gemm_narrow"])),
        "the 1x1 stride-2 data gradients come out fast": _low(v["dgrad_1x1s2_bias"]) < 0,
        "cuDNN 5 and 6's 1x1 stride-2 data gradients run slower than their scatter's cost, "
        "their atomic-bound strided ones and cuDNN 7.6's 1x1 ones less so":
            _low(v["dgrad_1x1s2_scatter_56"]) > max(_low(v["dgrad_s2_scatter_56"]),
                                                    _low(v["dgrad_1x1s2_scatter_76"])),
        "the forward's narrow-tile rows with filters larger than 1x1 come out slow":
            _low(v["fwd_narrow"]) > 0,
        "the V100's non-fused Winograd rows are slow in every pass":
            all(_low(v[f"v100_nonfused_{k}"]) > 0 for k in ("fwd", "dgrad", "wgrad")),
        "CUDA 8.0's transposed-A products of 24,000 columns run slower than the plain ones":
            _high(v["data_txp_tn_rate"]) < 1,
        "CUDA 7.5's transposed 500,000-long products take longer than the plain ones":
            _low(v["data_cuda75_tn8"]) > 1,
        "the 1080 Ti runs DeepBench's kernels faster than the Titan Xp":
            _high(v["data_ti_xp"]) < 1,
        "the 1080 Ti's forward errors sit above the Titan Xp's":
            _low(v["ti_fwd"]) > _low(v["xp_fwd"]),
        "the 5x5 stride-2 weight gradients come out slow": _low(v["wgrad_5x5s2"]) > 0,
        "the batch-8-to-16 1x1 weight gradients grow less than the model says":
            _low(v["wgrad_1x1_published"]) < _low(v["wgrad_1x1_model"]),
        "the 1x1 weight gradients over 7x7 maps grow less still":
            _low(v["wgrad_7x7_published"]) < _low(v["wgrad_1x1_published"]),
        "constants per class stay above no kernel kind's MAPE": all(
            _low(v[f"floor_{k}"]) < _low(v[f"kern_{k}"])
            for k in ("gemm", "fwd", "dgrad", "wgrad")),
    }
    return [f"the prose says {claim}, which no longer holds" for claim, holds in said.items()
            if not holds]


def differences(text: str) -> list[str]:
    """Where the committed page is not what the generator writes, as a diff."""
    return pages.differences({PAGE: text}, GENERATOR)


def write(text: str) -> None:
    """The page replaced whole or not at all."""
    pages.write({PAGE: text})


def written(runs: measured.Runs | None = None) -> tuple[dict[str, str], list[str]]:
    """The page as its validations fill it now, and the claims they no longer bear out
    (runs: the validations, run here if not given)."""
    values = figures(runs)
    return {PAGE: fill(template(), values)}, claims(values)


def check(runs: measured.Runs | None = None) -> list[str]:
    """What --check reports (templated_pages.check); runs as for written."""
    return pages.check(lambda: written(runs), GENERATOR)


def main(argv: list[str]) -> int:
    return pages.main(argv, written, GENERATOR)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
