"""The zoo's larger language models (GPT-2 large and XL, GPT-3 175B, BERT-large, Llama 2 13B
and 70B, Llama 3 8B, Mistral 7B): parameters pinned to Hugging Face's counts, and the graph of one
layer at full width equal op for op to Hugging Face's own model imported through torch.fx
(skipped where torch or transformers is not installed); depth only repeats that layer."""
import pytest

from workloads import zoo
from workloads.graph import WorkloadError
from workloads.zoo import transformers as t

# (zoo name, the count Hugging Face's model reports with num_parameters(), built from the
# config.json of gpt2-large, gpt2-xl, bert-large-uncased (BertModel, pooler included),
# meta-llama/Llama-2-13b-hf, meta-llama/Llama-2-70b-hf, meta-llama/Meta-Llama-3-8B,
# mistralai/Mistral-7B-v0.1)
HUGGING_FACE = [
    ("gpt2_large", 774_030_080),
    ("gpt2_xl", 1_557_611_200),
    ("gpt3_175b", 174_604_259_328),   # GPT2LMHeadModel at GPT-3's sizes, 2048 positions
    ("bert_large", 335_141_888 + 1024 * 2 + 2),   # BertModel + a 2-class classifier
    ("llama2_13b", 13_015_864_320),
    ("llama2_70b", 68_976_648_192),   # meta-llama/Llama-2-70b-hf
    ("llama3_8b", 8_030_261_248),
    ("llama3_1_8b", 8_030_261_248),   # meta-llama/Llama-3.1-8B: the same layers
    ("llama3_70b", 70_553_706_496),   # meta-llama/Meta-Llama-3-70B
    ("llama3_1_405b", 405_853_388_800),   # meta-llama/Llama-3.1-405B
    ("mistral_7b", 7_241_732_096),
]


@pytest.mark.parametrize("name, exact", HUGGING_FACE)
def test_parameters_are_hugging_faces_counts(name, exact):
    assert zoo.get(name, batch=1, seq_len=8).params() == exact


def test_llama3_has_its_vocabulary_and_grouped_query_attention():
    g = zoo.get("llama3_8b", seq_len=16)
    assert g.op("lm_head").out.shape == (1, 16, 128_256)
    assert g.op("model.layers.0.self_attn.k_proj").out.shape == (1, 16, 8 * 128)
    assert sum(op.kind == "repeat_heads" for op in g) == 2 * 32
    assert zoo.get("llama3_8b", seq_len=16, vocab_size=1000).op("lm_head").out.shape == \
        (1, 16, 1000)


def test_gpt3_runs_2048_tokens_by_default_and_no_more():
    assert zoo.get("gpt3_175b").op("lm_head").out.shape == (1, 2048, 50257)
    with pytest.raises(WorkloadError, match="exceeds the 2048 positions"):
        zoo.get("gpt3_175b", seq_len=4096)


def test_mistral_refuses_a_sequence_past_its_sliding_window():
    assert zoo.get("mistral_7b", seq_len=4096).op("lm_head").out.shape == (1, 4096, 32000)
    with pytest.raises(WorkloadError, match="seq_len 4097 is past the 4096-token sliding"):
        zoo.get("mistral_7b", seq_len=4097)
    with pytest.raises(WorkloadError, match="unknown option"):
        zoo.get("mistral_7b", sliding_window=8192)


def _hugging_face():
    torch = pytest.importorskip("torch")
    from tests.workloads.torchvision_zoo import models
    models()   # transformers imports torchvision, which needs the workaround beside a CPU torch
    return torch, pytest.importorskip("transformers")


# one layer at the published width, heads and MLP; a small vocabulary (a table lookup and
# the output layer's rows, both checked by the parameter counts above)
VOCAB, SEQ = 256, 16
ONE_LAYER = {
    "llama3_8b": ("LlamaConfig", "LlamaForCausalLM",
                  dict(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
                       intermediate_size=14336)),
    "mistral_7b": ("MistralConfig", "MistralForCausalLM",
                   dict(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
                        intermediate_size=14336, sliding_window=4096)),
    "llama2_13b": ("LlamaConfig", "LlamaForCausalLM",
                   dict(hidden_size=5120, num_attention_heads=40, num_key_value_heads=40,
                        intermediate_size=13824)),
}


def _one_layer_zoo(name):
    sizes = {"llama3_8b": t.LLAMA3_8B, "mistral_7b": t.MISTRAL_7B,
             "llama2_13b": t.LLAMA2_13B}[name]
    return t.llama(1, **dict(sizes, layers=1), vocab_size=VOCAB, seq_len=SEQ)


@pytest.mark.parametrize("name", sorted(ONE_LAYER))
def test_one_llama_layer_is_hugging_faces_op_for_op(name):
    """Allocated without initialising (to_empty): only shapes matter to the import."""
    torch, transformers = _hugging_face()
    from tests.workloads.graph_compare import assert_same
    from workloads.torch_import import from_torch
    config, model, fields = ONE_LAYER[name]
    with torch.device("meta"):
        module = getattr(transformers, model)(getattr(transformers, config)(
            num_hidden_layers=1, vocab_size=VOCAB, **fields))
    module = module.to_empty(device="cpu")
    imported = from_torch(module, torch.randint(0, VOCAB, (1, SEQ)), name=name)
    assert_same(imported, _one_layer_zoo(name))


def test_one_bert_large_layer_is_hugging_faces_op_for_op():
    torch, transformers = _hugging_face()
    from tests.workloads.graph_compare import assert_same
    from workloads.torch_import import from_torch
    with torch.device("meta"):
        module = transformers.BertForSequenceClassification(transformers.BertConfig(
            hidden_size=1024, num_hidden_layers=1, num_attention_heads=16,
            intermediate_size=4096, vocab_size=VOCAB, num_labels=2))
        imported = from_torch(module, torch.randint(0, VOCAB, (1, SEQ)), name="bert_large")
    assert_same(imported, t.bert(1, **dict(t.BERT_LARGE, depth=1), vocab_size=VOCAB,
                                 seq_len=SEQ))


@pytest.mark.parametrize("name, sizes", [("gpt2_large", t.GPT2_LARGE), ("gpt2_xl", t.GPT2_XL)])
def test_one_gpt2_layer_has_hugging_faces_flops(name, sizes):
    """Hugging Face writes GPT-2's tanh GELU out as seven pointwise ops, the zoo as one gelu
    op (PyTorch's fused kernel, the same function): the FLOPs agree within 1%, the
    parameters exactly (the output layer tied to the token table)."""
    torch, transformers = _hugging_face()
    from workloads.torch_import import from_torch
    config = transformers.GPT2Config(n_embd=sizes["width"], n_head=sizes["heads"],
                                     n_layer=1, vocab_size=VOCAB)
    with torch.device("meta"):
        module = transformers.GPT2LMHeadModel(config)
    module = module.to_empty(device="cpu")
    module.tie_weights()
    imported = from_torch(module, torch.randint(0, VOCAB, (1, SEQ)), name=name)
    built = t.gpt2(1, **dict(sizes, depth=1), vocab_size=VOCAB, seq_len=SEQ)
    assert built.params() == imported.params() == module.num_parameters()
    assert built.flops() == pytest.approx(imported.flops(), rel=0.01)
    assert built.macs() == imported.macs()
