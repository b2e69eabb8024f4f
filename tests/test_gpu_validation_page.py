"""docs/gpu-validation.md is its template (docs/gpu-validation.md.in) with every figure
measured: the committed page is the template filled (no sentence edited in the page alone, no
figure the template lacks), the filling refuses a figure nothing measures or nobody quotes,
the prose's comparisons are checked, and (slow) every figure, rerun, is the page's, byte for
byte."""
from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NAME = "gpu-validation.md"


@pytest.fixture(scope="module")
def page():
    return runpy.run_path(str(DOCS / "gpu_validation_page.py"), run_name="page")


def test_the_committed_page_is_its_template_filled(page):
    template = (DOCS / f"{NAME}.in").read_text()
    text = (DOCS / NAME).read_text()
    assert text.startswith(page["HEADER"])
    found = page["pages"].filled_by(template).fullmatch(text[len(page["HEADER"]):])
    assert found, f"docs/{NAME} differs from docs/{NAME}.in beyond its figures: edit the " \
                  "template and run python docs/gpu_validation_page.py"
    # every filled-in figure carries a number, so no sentence hides in a placeholder
    assert all(re.search(r"\d", value) for value in found.groupdict().values())
    assert "{{" not in text
    assert f"({NAME})" in (DOCS / "README.md").read_text()


def test_the_status_table_and_the_summary_are_placeholders():
    template = (DOCS / f"{NAME}.in").read_text()
    table = [line for line in template.splitlines() if line.startswith(("| in-sample",
                                                                       "| leave one",
                                                                       "| DeepBench"))]
    assert len(table) == 3
    for line in table:   # no figure typed in the table: each is a placeholder
        assert not re.search(r"\d", re.sub(r"\{\{\w+\}\}", "", line)), line


def test_filling_refuses_a_figure_missing_or_unquoted(page):
    fill = page["fill"]
    assert fill("a {{x}} b {{x}} {{y}}\n", {"x": "1.5", "y": "2"}) == \
        page["HEADER"] + "a 1.5 b 1.5 2\n"
    with pytest.raises(ValueError, match="nothing measures"):
        fill("a {{x}} {{y}}\n", {"x": "1"})
    with pytest.raises(ValueError, match="no template names"):
        fill("a {{x}}\n", {"x": "1", "z": "2"})


FIGURES = {
    "ins_amp": "4.8%", "ins_fp32_mape": "6.8%", "loo_fp32_mape": "8.0%",
    "v100_b16_model": "1.8 to 2.1", "v100_b16_published": "2.1 to 2.6",
    "googlenet_bwd": "-33 to -5%", "v100_vgg19_small": "+19 to +30%", "v100_r34_b8": "+21%",
    "tmx_in_alexnet": "-7%", "tmx_in_vgg": "-7 to -5%", "tmx_in_resnet": "-15 to -14%",
    "k80_loo_vgg": "-30 to -25%", "torch7_host": "20 us", "host_start": "20 us",
    "model_growth": "1.7 to 1.8", "published_growth": "1.3 to 1.6",
    "gemm_wide": "11.5%", "gemm_mid": "24.8%", "gemm_narrow": "26.9%",
    "pascal_tn16": "-39 to -26%", "dgrad_1x1s2_bias": "-20%", "v100_nonfused_fwd": "+11%",
    "v100_nonfused_dgrad": "+10%", "v100_nonfused_wgrad": "+11%", "ti_fwd": "+16%",
    "xp_fwd": "+3%", "wgrad_5x5s2": "+27 to +46%", "wgrad_1x1_published": "1.64x",
    "wgrad_1x1_model": "1.90x", "wgrad_7x7_published": "1.49x",
    "floor_gemm": "11.5%", "kern_gemm": "16.9%", "floor_fwd": "10.7%", "kern_fwd": "18.0%",
    "floor_dgrad": "10.9%", "kern_dgrad": "17.2%", "floor_wgrad": "11.8%", "kern_wgrad": "19.0%",
    "data_txp_tn_rate": "0.32 to 0.61", "data_cuda75_tn8": "3.4 to 4.3",
    "data_ti_xp": "0.92 to 0.93", "fwd_narrow": "+17 to +32%",
    "dgrad_1x1s2_scatter_56": "1.32x", "dgrad_1x1s2_scatter_76": "1.03x",
    "dgrad_s2_scatter_56": "1.04x",
}


def test_the_prose_comparisons_hold_on_figures_that_bear_them_out_only(page):
    claims = page["claims"]
    assert claims(FIGURES) == []
    assert any("AMP misses less" in c for c in claims({**FIGURES, "ins_amp": "7.0%"}))
    assert any("held out" in c for c in claims({**FIGURES, "loo_fp32_mape": "6.5%"}))
    assert any("GoogLeNet" in c for c in claims({**FIGURES, "googlenet_bwd": "-3 to +7%"}))
    assert any("narrower" in c for c in claims({**FIGURES, "gemm_mid": "10.0%"}))
    assert any("every pass" in c for c in claims({**FIGURES, "v100_nonfused_dgrad": "-1%"}))
    assert any("narrow-tile" in c for c in claims({**FIGURES, "fwd_narrow": "-3 to +20%"}))
    assert any("scatter's cost" in c
               for c in claims({**FIGURES, "dgrad_1x1s2_scatter_56": "1.02x"}))
    assert any("24,000 columns" in c
               for c in claims({**FIGURES, "data_txp_tn_rate": "0.9 to 1.1"}))
    assert any("faster than the Titan Xp" in c
               for c in claims({**FIGURES, "data_ti_xp": "1.02"}))


@pytest.mark.slow
def test_the_page_is_what_its_validations_give_now(page, gpu_validation_runs):
    problems = page["check"](gpu_validation_runs)
    assert not problems, (f"docs/{NAME} is not what its validations give now; run python "
                          "docs/gpu_validation_page.py:\n" + "\n".join(problems))
