"""Llama decoders of the zoo: parameters pinned to the published counts (and to the arithmetic
of their configs), the builder graph equal op for op to a Llama written in PyTorch as Hugging
Face writes it (grouped-query attention included), and training steps that every training
policy plans and simulates on a CPU, a V100 and an A100 (bf16 mixed precision)."""
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.families import point_shape
from simulator.api import simulate
from simulator.cluster import Cluster
from workloads import zoo
from workloads.graph import WorkloadError
from workloads.training import lower_training
from workloads.zoo import transformers as t


def config_params(layers, hidden, heads, kv_heads, intermediate, vocab):
    """Parameters from a Llama config: q and o (hidden^2 each), k and v (hidden x kv width),
    the three SwiGLU matrices, two RMSNorm scales a layer; the token table, the untied output
    layer and the final norm."""
    kv_width = hidden // heads * kv_heads
    layer = 2 * hidden * hidden + 2 * hidden * kv_width + 3 * hidden * intermediate + 2 * hidden
    return layers * layer + 2 * vocab * hidden + hidden


# (zoo name, its config, the count Hugging Face reports, the published figure)
PUBLISHED = [
    ("tinyllama_1b", (22, 2048, 32, 4, 5632, 32000), 1_100_048_384, 1.10e9),
    ("llama2_7b", (32, 4096, 32, 32, 11008, 32000), 6_738_415_616, 6.74e9),
]


@pytest.mark.parametrize("name, config, exact, published", PUBLISHED)
def test_parameters_are_the_published_counts(name, config, exact, published):
    params = zoo.get(name, batch=1, seq_len=8).params()
    assert params == exact == config_params(*config)
    assert abs(params - published) / published < 0.005


@settings(max_examples=20, deadline=None)
@given(layers=st.integers(1, 3), head_dim=st.sampled_from([2, 4, 8]),
       kv_heads=st.integers(1, 3), groups=st.integers(1, 3), intermediate=st.integers(1, 40),
       vocab=st.integers(1, 60), seq_len=st.integers(1, 12))
def test_any_llama_has_its_configs_parameters(layers, head_dim, kv_heads, groups,
                                              intermediate, vocab, seq_len):
    heads = kv_heads * groups
    hidden = heads * head_dim
    g = t.llama(1, layers=layers, hidden=hidden, heads=heads, kv_heads=kv_heads,
                intermediate=intermediate, vocab_size=vocab, seq_len=seq_len)
    assert g.params() == config_params(layers, hidden, heads, kv_heads, intermediate, vocab)
    assert g.op("lm_head").out.shape == (1, seq_len, vocab)
    assert sum(op.kind == "repeat_heads" for op in g) == (2 * layers if groups > 1 else 0)


def test_the_generic_builder_takes_every_size_and_refuses_bad_ones():
    g = zoo.get("llama", batch=2, layers=1, hidden=64, heads=8, kv_heads=2, intermediate=96,
                vocab_size=100, seq_len=32)
    assert g.op("lm_head").out.shape == (2, 32, 100)
    assert g.op("model.layers.0.self_attn.k_proj").out.shape == (2, 32, 16)
    assert sum(op.kind == "repeat_heads" for op in g) == 2
    assert not any(op.kind == "repeat_heads" for op in t.llama(
        1, layers=1, hidden=64, heads=8, kv_heads=None, intermediate=96, vocab_size=100,
        seq_len=8))
    with pytest.raises(WorkloadError, match="kv_heads 3 must divide heads"):
        zoo.get("llama", heads=8, hidden=64, kv_heads=3)
    with pytest.raises(WorkloadError, match="seq_len must be an integer"):
        zoo.get("tinyllama_1b", seq_len=0)
    with pytest.raises(WorkloadError, match="unknown option"):
        zoo.get("llama2_7b", hidden=1024)


def small(kv_heads: int, attention: str = "fused"):
    return t.llama(2, layers=2, hidden=64, heads=4, kv_heads=kv_heads, intermediate=172,
                   vocab_size=1000, seq_len=16, attention=attention)


@pytest.mark.parametrize("kv_heads, eager", [(4, False), (2, False), (2, True)])
def test_a_llama_written_as_hugging_face_writes_it_is_the_builder_graph_op_for_op(kv_heads,
                                                                                eager):
    """LlamaForCausalLM in plain PyTorch (RMSNorm as pow/mean/rsqrt between casts to float32
    and back, rotary tables in buffers, repeat_kv, SwiGLU, untied lm_head; SDPA, or the eager
    path's scores, constant causal mask and softmax in float32) imports to the zoo's graph:
    the same ops in the same order (kind, shape, parameters, FLOPs), parameters the
    module's, and matmul FLOPs those PyTorch's counter counts."""
    torch = pytest.importorskip("torch")
    from tests.workloads.graph_compare import assert_same
    from tests.workloads.test_torch_import_transformers import imported
    from tests.workloads.torch_hf_style import LlamaForCausalLM
    torch.manual_seed(0)
    module = LlamaForCausalLM(vocab=1000, width=64, depth=2, heads=4, kv_heads=kv_heads,
                              mlp=172, eager=eager)
    graph = imported(module, torch.randint(0, 1000, (2, 16)))
    assert_same(graph, small(kv_heads, "naive" if eager else "fused"))
    assert graph.params() == sum(p.numel() for p in module.parameters())


def test_rmsnorm_and_rotary_train_with_pytorchs_gradients():
    """The backward the lowering makes: pow's gradient reads its input, rsqrt's its output,
    mean's none (a broadcast); the rotary products get gradients for q and k only."""
    train = lower_training(small(2))
    norm = "model.layers.0.input_layernorm"
    assert train.op(f"{norm}.pow.grad").saved == ("model.embed_tokens",)
    assert train.op(f"{norm}.rsqrt.grad").saved == (f"{norm}.rsqrt",)
    mean_grad = train.op(f"{norm}.mean.grad")
    assert mean_grad.saved == () and mean_grad.out.shape == (2, 16, 64)
    # a profile keys the broadcast on the 32 rows of 64 values it writes
    assert point_shape(mean_grad) == (32, 64)
    rotary = [op for op in train if op.kind == "mul_table_grad"]
    assert len(rotary) == 8 and all(op.saved == () for op in rotary)
    assert sum(op.kind == "repeat_heads_grad" for op in train) == 4
    assert sum(op.params for op in train.phase("update")) == small(2).params()


TRAINING_POLICIES = {"sequential": {}, "data-parallel": {}, "swap": {}, "swap-all": {},
                     "recompute": {}, "gpipe": {"micro_batches": 2}, "pipedream": {},
                     "pipeline-stale": {}}


@pytest.mark.parametrize("policy", sorted(TRAINING_POLICIES))
def test_every_training_policy_runs_a_small_llama(policy):
    devices = 1 if policy in ("sequential", "recompute") else 2
    result = simulate(small(2), Cluster.build("v100", devices, "nvlink2"), policy,
                      **TRAINING_POLICIES[policy])
    assert result.ok and result.iteration_time_s > 0


@pytest.mark.parametrize("device, link, precision", [
    ("skylake-x-6c", "eth10g", None), ("v100", "nvlink2", "amp-fp16"),
    ("a100", "nvlink2", "amp-bf16")])
def test_tinyllama_trains_on_a_cpu_a_v100_and_an_a100(device, link, precision):
    g = zoo.get("tinyllama_1b", batch=1, seq_len=128)
    result = simulate(g, Cluster.build(device, 1, link), "sequential", precision=precision,
                      enforce_memory=False)
    assert result.ok and result.iteration_time_s > 0


def test_a_small_llama_simulates_with_the_committed_cpu_profile():
    """The profile times what it measured; the kinds its grid lacks (the Llama kinds among
    them) fall back to the CPU model, named in the device model's fallbacks."""
    profile = Path(__file__).parents[2] / "validation" / "measured" / "cpu_profile.toml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # the profile is another machine's here
        cluster = Cluster.build(str(profile), 1)
    result = simulate(small(2), cluster, "sequential")
    assert result.ok and result.iteration_time_s > 0
    assert "linear" not in cluster.devices[0].model.fallbacks


def test_tinyllama_written_in_pytorch_at_full_size_is_the_preset_op_for_op():
    """TinyLlama-1.1B as Hugging Face writes it, on the meta device (no memory): the zoo's
    tinyllama_1b op for op, the module's parameter count, and matmul FLOPs equal to those
    PyTorch's counter counts."""
    torch = pytest.importorskip("torch")
    from tests.workloads.graph_compare import assert_same
    from tests.workloads.torch_hf_style import LlamaForCausalLM
    from tests.workloads.torchvision_zoo import matmul_flops, torch_flops
    from workloads import from_torch
    with torch.device("meta"):
        module = LlamaForCausalLM(vocab=32000, width=2048, depth=22, heads=32, kv_heads=4,
                                  mlp=5632, positions=2048)
        x = torch.randint(0, 32000, (1, 128))
    imported = from_torch(module, x)
    assert_same(imported, zoo.get("tinyllama_1b", batch=1, seq_len=128))
    assert sum(p.numel() for p in module.parameters()) == 1_100_048_384
    assert matmul_flops(imported) == torch_flops(module.train(), x)


def test_the_cli_simulates_a_preset_and_refuses_bad_sizes(capsys):
    from simulator.cli import main
    assert main(["simulate", "--workload", "tinyllama_1b", "--batch", "1", "--hardware",
                 "a100", "--precision", "amp-bf16",
                 "--workload-option", "seq_len=64"]) in (0, None)
    assert "tinyllama_1b" in capsys.readouterr().out
    assert main(["simulate", "--workload", "llama", "--batch", "1", "--hardware", "a100",
                 "--workload-option", "kv_heads=3"]) == 2
    assert "kv_heads 3 must divide heads" in capsys.readouterr().err
