"""Every network the zoo names simulates a training step through `dnnsim simulate`: on a V100
in fp32 and an A100 in AMP for each, and the full grid of both GPUs and both precisions for
the networks whose op kinds appear nowhere else in the zoo (a broadcast dropout, a layer
scale, a relative position bias and rolled windows, grouped-query attention at 8 key/value
heads). Memory is not enforced: the question is
whether the step runs, not whether Llama 2 13B's weights fit on one GPU."""
import pytest

from simulator.cli import main

# the language models at a short sequence, which keeps the step small
SHORT = {"gpt2_large", "gpt2_xl", "gpt3_175b", "bert_large", "llama2_13b", "llama2_70b",
         "llama3_8b", "llama3_1_8b", "llama3_70b", "llama3_1_405b", "mistral_7b", "t5_small",
         "t5_base", "t5_large"}
NETWORKS = sorted(SHORT | {
    "vit_l_16", "vit_b_32", "vit_l_32", "vit_h_14", "inception_v4", "resnext50_32x4d",
    "resnext101_32x4d", "resnext101_32x8d", "se_resnext50_32x4d", "se_resnext101_32x4d",
    "wide_resnet50_2", "wide_resnet101_2", "squeezenet1_1", "densenet121", "densenet161",
    "densenet169", "densenet201", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
    "efficientnet_b0", "efficientnet_b4", "efficientnet_b7", "efficientnet_v2_s",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "convnext_tiny", "convnext_small", "convnext_base", "convnext_large", "swin_t", "swin_s",
    "swin_b"})
CORNERS = [("v100", "fp32"), ("a100", "amp-fp16")]
GRID = [(hw, p) for hw in ("v100", "a100") for p in ("fp32", "amp-fp16")]
CASES = [(name, hw, p) for name in NETWORKS for hw, p in CORNERS] + \
    [(name, hw, p) for name in ("efficientnet_b0", "convnext_tiny", "swin_t", "mistral_7b")
     for hw, p in GRID if (hw, p) not in CORNERS]


@pytest.mark.parametrize("name, hardware, precision", CASES)
def test_the_network_simulates(name, hardware, precision, capsys):
    options = ["--workload-option", "seq_len=32"] if name in SHORT else []
    assert main(["simulate", "--workload", name, "--batch", "2", "--hardware", hardware,
                 "--precision", precision, "--no-enforce-memory", *options]) == 0
    out = capsys.readouterr().out
    assert name in out and "samples/s" in out


@pytest.mark.parametrize("name, option, message", [
    ("efficientnet_b0", "width=0", "width multiplier must be > 0, got 0"),
    ("mobilenet_v3_small", "width=wide", "width multiplier must be > 0, got 'wide'"),
    ("swin_t", "input_size=256", "input_size 256 does not cut into whole 7 x 7 windows"),
    ("shufflenet_v2_x1_0", "width=2", "unknown option(s) width"),
    ("mistral_7b", "seq_len=8192", "past the 4096-token sliding window"),
    ("gpt3_175b", "seq_len=4096", "exceeds the 2048 positions"),
])
def test_a_bad_option_is_named_with_exit_code_2(name, option, message, capsys):
    assert main(["simulate", "--workload", name, "--batch", "1", "--hardware", "v100",
                 "--workload-option", option]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
