"""Transformers of the zoo (ViT, GPT-2, BERT): parameters pinned to the published counts, FLOPs
equal to those PyTorch counts for the same network written by hand, and training steps that
lower and simulate on a CPU and a GPU."""
import pytest

from simulator.api import simulate
from simulator.cli import main
from simulator.cluster import Cluster
from workloads import zoo
from workloads.graph import WorkloadError
from workloads.training import lower_training, training_memory

# (name, exact count as the reference implementation counts it, the published figure)
PUBLISHED = [
    ("vit_b_16", 86_567_656, 86.6e6),          # torchvision vit_b_16
    ("vit_s_16", 22_050_664, 22.1e6),          # ViT-S/16 (timm vit_small_patch16_224)
    ("vit_ti_16", 5_717_416, 5.7e6),           # ViT-Ti/16 (timm vit_tiny_patch16_224)
    ("gpt2", 124_439_808, 124e6),              # GPT-2 small, output tied to wte
    ("gpt2_medium", 354_823_168, 355e6),       # GPT-2 medium, tied likewise
    ("bert_base", 109_482_240 + 768 * 2 + 2, 110e6),   # BertModel + a 2-class classifier
]


@pytest.mark.parametrize("name, exact, published", PUBLISHED)
def test_parameters_are_the_published_counts(name, exact, published):
    params = zoo.get(name, batch=1).params()
    assert params == exact
    assert abs(params - published) / published < 0.005


def test_vit_b_16_flops_are_the_analytic_count():
    """Per image: the patch convolution, 12 blocks of four projections and two MLP layers
    over 197 tokens, QK^T and AV over 197 x 197 scores, the head (multiply-adds x 2); the
    softmax adds 5 FLOPs a score."""
    g = zoo.get("vit_b_16", batch=1)
    tokens, d = 197, 768
    per_block = 2 * tokens * (4 * d * d + 2 * d * 3072) + 2 * 2 * tokens * tokens * d
    analytic = 2 * 196 * d * 768 + 12 * per_block + 2 * d * 1000
    products = 2 * g.macs() + sum(op.flops - 5 * 12 * tokens * tokens for op in g
                                  if op.kind == "attention")
    assert products == analytic
    assert 17.5e9 < analytic / 2 < 17.6e9          # the 17.6 GMACs usually quoted


def test_options_and_bad_options():
    g = zoo.get("gpt2", batch=2, seq_len=128, vocab_size=1000, attention="naive")
    assert g.input_op.out.shape == (2, 128) and g.op("lm_head").out.shape == (2, 128, 1000)
    assert any(op.kind == "masked_fill" for op in g)
    assert zoo.get("vit_b_16", batch=1, input_size=384).op(
        "encoder.pos_embedding").attrs["num_embeddings"] == 577
    with pytest.raises(WorkloadError, match="exceeds the 1024 positions"):
        zoo.get("gpt2", seq_len=2048)
    with pytest.raises(WorkloadError, match="attention must be one of fused, naive"):
        zoo.get("bert_base", attention="flash")
    with pytest.raises(WorkloadError, match="not a multiple of the patch"):
        zoo.get("vit_ti_16", input_size=100)
    with pytest.raises(WorkloadError, match="seq_len must be an integer"):
        zoo.get("gpt2", seq_len=0)


def small(name: str):
    """Small configurations of each network, the same code paths."""
    from workloads.zoo import transformers as t
    if name == "gpt":
        return t.gpt2(2, width=32, depth=2, heads=4, seq_len=16, vocab_size=50,
                      max_positions=32, attention="naive", dropout=0.0)
    if name == "vit":
        return t.vit(2, width=32, depth=2, heads=4, mlp=64, patch=8, input_size=32,
                     num_classes=10, attention="naive")
    return t.bert_base(2, seq_len=16, vocab_size=50, attention="naive", dropout=0.0)


def reference(name: str):
    from tests.workloads.torch_transformers import GPT, Bert, ViT
    torch = pytest.importorskip("torch")
    if name == "gpt":
        return GPT(32, 2, 4, 50, 32, seq=16), torch.randint(0, 50, (2, 16))
    if name == "vit":
        return ViT(32, 2, 4, 64, 8, 32, 10), torch.randn(2, 3, 32, 32)
    return Bert(vocab=50), torch.randint(0, 50, (2, 16))


@pytest.mark.parametrize("name", ["gpt", "vit", "bert"])
def test_builder_graph_and_a_hand_written_torch_module_count_alike(name):
    """Same parameters; the products PyTorch's flop counter sees, forward and with the
    backward, are the graph's multiply-adds x 2 (forward ops, then all ops of the training
    graph)."""
    pytest.importorskip("torch")
    from torch.nn import functional as F
    from torch.utils.flop_counter import FlopCounterMode
    module, x = reference(name)
    g = small(name)
    assert g.params() == sum(p.numel() for p in module.parameters())
    with FlopCounterMode(display=False) as forward:
        logits = module(x)
    with FlopCounterMode(display=False) as step:
        out = module(x)
        F.cross_entropy(out.reshape(-1, out.shape[-1]),
                        out.new_zeros(out.shape[:-1], dtype=int).reshape(-1)).backward()
    train = lower_training(g)
    assert tuple(logits.shape) == g.topo()[-1].out.shape
    assert forward.get_total_flops() == 2 * g.macs()
    assert step.get_total_flops() == 2 * sum(op.macs for op in train)


@pytest.mark.parametrize("name", ["gpt2", "vit_b_16", "bert_base"])
def test_training_steps_simulate_on_a_cpu_and_a_gpu(name):
    g = zoo.get(name, batch=2, **({"seq_len": 128} if name == "gpt2" else {}))
    train = lower_training(g)
    # weights, gradients and momentum, and the saved activations
    assert training_memory(train).total_bytes > 3 * 4 * g.params()
    for device, link in (("skylake-x-6c", "eth10g"), ("v100", "nvlink2"), ("a100", "nvlink2")):
        result = simulate(g, Cluster.build(device, 1, link), "sequential")
        assert result.ok and result.iteration_time_s > 0


def test_the_cli_simulates_gpt2(capsys):
    assert main(["simulate", "--workload", "gpt2", "--batch", "2", "--hardware", "a100",
                 "--precision", "amp-fp16", "--workload-option", "seq_len=128"]) in (0, None)
    assert "gpt2" in capsys.readouterr().out
    assert main(["simulate", "--workload", "gpt2", "--batch", "1", "--hardware", "v100",
                 "--workload-option", "seq_len=4096"]) == 2
    assert "seq_len 4096 exceeds the 1024 positions" in capsys.readouterr().err


def ops(graph):
    """Every op's kind, output shape, FLOPs, bytes and parameters, in a canonical order."""
    return sorted(((op.kind, op.out.shape, op.flops, op.bytes_moved, op.params)
                   for op in graph), key=str)


@pytest.mark.parametrize("name", ["gpt", "vit", "bert"])
def test_the_imported_torch_module_is_the_builder_graph_op_for_op(name):
    """from_torch of the hand-written module makes the builder's ops: the same kinds, shapes,
    FLOPs, bytes and parameters (GPT-2's positions a slice wpe[:s] of a longer table, BERT's
    a slice of its table and its token type row 0 added everywhere)."""
    pytest.importorskip("torch")
    from workloads import from_torch
    module, x = reference(name)
    assert ops(from_torch(module, x)) == ops(small(name))


@pytest.mark.parametrize("sdpa", [False, True])
def test_bert_written_as_hugging_face_writes_it_is_the_builder_graph_op_for_op(sdpa):
    """Embeddings of word, position and token-type tables (the ids of the last two buffers
    sliced to the sequence), separate q/k/v layers with view/permute, eager or SDPA attention,
    dropout 0.1, the pooler and the classifier: bert_base op for op."""
    torch = pytest.importorskip("torch")
    from tests.workloads.torch_hf_style import BertForSequenceClassification
    from workloads import from_torch
    from workloads.zoo import transformers as t
    torch.manual_seed(0)
    module = BertForSequenceClassification(vocab=50, sdpa=sdpa)
    imported = from_torch(module, torch.randint(0, 50, (2, 16)))
    built = t.bert_base(2, seq_len=16, vocab_size=50, attention="fused" if sdpa else "naive")
    assert ops(imported) == ops(built)
    assert imported.params() == sum(p.numel() for p in module.parameters())
    # trained: one update per parameter, the position table's gradient into its rows
    train = lower_training(imported)
    assert sum(op.params for op in train if op.kind == "sgd_update") == imported.params()
    assert sum(op.kind == "position_embedding_grad" for op in train) == 2


def full_size(name: str):
    """The reference modules at their published sizes on the meta device (no memory), with
    the zoo network they are, and the exact and published parameter counts."""
    torch = pytest.importorskip("torch")
    from tests.workloads.torch_hf_style import BertForSequenceClassification
    from tests.workloads.torch_transformers import GPT, ViT
    with torch.device("meta"):
        if name == "vit_b_16":
            module, x = ViT(), torch.randn(1, 3, 224, 224)
        elif name == "gpt2":
            module, x = GPT(), torch.randint(0, 50257, (1, 1024))
        else:
            module, x = BertForSequenceClassification(), torch.randint(0, 30522, (1, 128))
    dropout = {"bert_base": {}}.get(name, {"dropout": 0.0})
    return module, x, zoo.get(name, batch=1, attention="naive", **dropout)


@pytest.mark.parametrize("name, exact, published",
                         [p for p in PUBLISHED if p[0] in ("vit_b_16", "gpt2", "bert_base")])
def test_published_networks_import_op_for_op_with_the_published_counts(name, exact, published):
    """ViT-B/16, GPT-2 (124M, tied) and BERT-base written in PyTorch at full size import to
    the zoo's graph op for op; parameters are the published counts and the products' FLOPs
    are those PyTorch's counter counts for the module."""
    pytest.importorskip("torch")
    from tests.workloads.torchvision_zoo import matmul_flops, torch_flops
    from workloads import from_torch
    module, x, built = full_size(name)
    imported = from_torch(module, x)
    assert ops(imported) == ops(built)
    assert imported.params() == exact == sum(p.numel() for p in module.parameters())
    assert abs(exact - published) / published < 0.005
    assert matmul_flops(imported) == torch_flops(module.train(), x)


def test_an_imported_tied_output_layer_counts_its_weight_once():
    torch = pytest.importorskip("torch")
    from tests.workloads.torch_transformers import GPT
    from workloads import from_torch
    module = GPT(32, 2, 4, 50, 16, seq=16)
    imported = from_torch(module, torch.randint(0, 50, (2, 16)))
    assert imported.params() == sum(p.numel() for p in module.parameters())
    # trained once: the output layer's weight gradient goes to the embedding's update
    from workloads.training import lower_training
    imported.meta["token_logits"] = True
    train = lower_training(imported)
    assert sum(op.params for op in train if op.kind == "sgd_update") == imported.params()
    assert imported.meta["shared_params"] == {"linear": "wte"}
