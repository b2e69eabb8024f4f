"""A user's file imported on the meta device (workloads/torch_file.py): the graph equals the
one of a real run on the CPU for every model where both work, a model the meta device cannot
run falls back to the CPU and says why, and a model that fails on both gets the CPU's error.
The models: tests/workloads/torch_big_models.py (LLaMA-, Mixtral- and ViT-shaped, small and
at the published sizes) and the users' models of the other tests."""
import json

import pytest

torch = pytest.importorskip("torch")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from simulator.cli import main  # noqa: E402
from workloads import torch_file, zoo  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402

MODELS_FILE = '''
import torch
from torch import nn
from tests.workloads import torch_big_models as big
from tests.workloads import torch_user_llama as ul
from tests.workloads import torch_user_models as um
from tests.workloads.torch_hf_style import BertForSequenceClassification
from tests.workloads.torch_multi_input_models import Conditioned
from tests.workloads.torch_user_code import MoEModel
from tests.workloads.test_torch_import_channels_last import ConvNeXtStyle


def decoder_sdpa(): return big.Decoder(mask="sdpa")
def decoder_triu(): return big.Decoder(mask="triu")
def decoder_bool(): return big.Decoder(mask="bool", kv_heads=4)
def decoder_moe(): return big.Decoder(experts=4, layers=1)
def vit(): return big.ViT()
def sd_unet(): return big.SDUNet()
def gpt(): return um.GPT(last_only=False)
def llama_rotary_buffers(): return ul.Llama()
def unet(): return um.UNet()
def moe(): return MoEModel()
def conditioned(): return Conditioned()
def bert(): return BertForSequenceClassification()
def llama_7b(): return big.llama_7b()


class ItemGated(nn.Module):
    """Control flow on a parameter's value: meta tensors hold none."""

    def __init__(self):
        super().__init__()
        self.fc, self.gate = nn.Linear(16, 16), nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.fc(x) * self.gate if self.gate.item() > 0 else x


def checked():
    """A factory that reads a weight's value (as one loading a checkpoint checks it)."""
    m = nn.Linear(16, 4)
    assert float(m.weight.detach().abs().max()) < 1
    return m


class OPTPositions(nn.Module):
    """OPT's position ids: a cumulative sum over a mask of ones made in the forward."""

    def __init__(self):
        super().__init__()
        self.tok, self.pos, self.fc = nn.Embedding(256, 16), nn.Embedding(40, 16), \
            nn.Linear(16, 256)

    def forward(self, ids):
        mask = torch.ones(ids.shape, dtype=torch.long, device=ids.device)
        positions = torch.cumsum(mask, dim=1) * mask - 1
        return self.fc(self.tok(ids) + self.pos(positions))


class LastToken(nn.Module):
    """GPT-2's sequence classifier: the logits of each sample's last token that is not
    padding, picked with torch.arange over the batch."""

    def __init__(self):
        super().__init__()
        self.emb, self.head = nn.Embedding(256, 16), nn.Linear(16, 4)

    def forward(self, ids):
        logits = self.head(self.emb(ids))
        positions = torch.arange(ids.shape[-1], device=ids.device)
        last = (positions * (ids != 0).int()).argmax(-1)
        return logits[torch.arange(ids.shape[0], device=ids.device), last]


def broken():
    """Fails on the meta device (.item()) and, for the user's own reason, on the CPU."""
    if torch.ones(3).sum().item() == 3:
        raise ValueError("checkpoint has no key 'fc.weight'")
'''

TOKENS = {"input_shape": 16, "tokens": 256}
# factory -> (its options, whether its input is a sequence whose length may vary)
CASES = {
    "decoder_sdpa": (TOKENS, True), "decoder_triu": (TOKENS, True),
    "decoder_bool": (TOKENS, True), "decoder_moe": (TOKENS, True),
    "vit": ({"input_shape": "3x32x32"}, False), "gpt": (TOKENS, True),
    "llama_rotary_buffers": (TOKENS, True), "unet": ({"input_shape": "3x32x32"}, False),
    "moe": ({"input_shape": "16x32"}, False),
    "conditioned": ({"input_shape": "3x16x16+8"}, False), "OPTPositions": (TOKENS, True),
    "sd_unet": ({"input_shape": "4x16x16+scalar+7x32"}, False), "LastToken": (TOKENS, True),
    "bert": (TOKENS, True),   # position and token-type ids in buffers made in the factory
}


@pytest.fixture(scope="module")
def models_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("user") / "models.py"
    path.write_text(MODELS_FILE)
    return path


def _ops(g):
    return [(op.name, op.kind, op.out.shape, op.inputs, op.params, op.flops, op.attrs)
            for op in g.topo()]


@pytest.mark.parametrize("factory", sorted(CASES))
@settings(max_examples=3, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.integers(1, 3), sequence=st.sampled_from([8, 16, 24]))
def test_the_graph_on_meta_is_the_graph_of_a_run_on_the_cpu(models_file, factory, batch,
                                                            sequence):
    options, sequence_model = CASES[factory]
    options = dict(options, input_shape=sequence) if sequence_model else options
    spec = f"{models_file}:{factory}"
    meta = zoo.get(spec, batch=batch, **options)
    cpu = zoo.get(spec, batch=batch, import_on="cpu", **options)
    assert meta.meta["import_device"].startswith("meta (shapes only")
    assert cpu.meta["import_device"].startswith("cpu")
    assert _ops(meta) == _ops(cpu)
    assert meta.meta.get("shared_params") == cpu.meta.get("shared_params")


def test_buffers_made_in_the_factory_keep_their_values_on_meta(models_file):
    """The file path builds the module inside the shadow mode too: BERT's position_ids and
    token_type_ids buffers (arange and zeros) are read as on the CPU, nothing guessed."""
    g = zoo.get(f"{models_file}:bert", batch=2, **TOKENS)
    assert g.meta["import_device"].startswith("meta (shapes only")
    rows = sorted((op.attrs["num_embeddings"], bool(op.attrs.get("constant_row")))
                  for op in g if op.kind == "position_embedding")
    assert rows == sorted((op.attrs["num_embeddings"], bool(op.attrs.get("constant_row")))
                          for op in zoo.get(f"{models_file}:bert", batch=2, import_on="cpu",
                                            **TOKENS) if op.kind == "position_embedding")


def test_from_torch_under_the_meta_device_reads_ids_made_from_constants():
    """nanoGPT's positions (torch.arange in the forward) are computed again on the CPU for
    their values: the graph is the CPU's, no ids guessed."""
    from tests.workloads import torch_user_models as um
    from workloads import from_torch
    torch.manual_seed(0)
    cpu = from_torch(um.GPT(last_only=False), torch.randint(0, 256, (2, 16)))
    with torch.device("meta"):
        meta = from_torch(um.GPT(last_only=False), torch.randint(0, 256, (2, 16)))
    assert "guessed_on_meta" not in meta.meta and _ops(meta) == _ops(cpu)


@pytest.mark.parametrize("config, model", [("LlamaConfig", "LlamaForCausalLM"),
                                           ("MixtralConfig", "MixtralForCausalLM"),
                                           ("GPT2Config", "GPT2LMHeadModel")])
def test_hugging_face_decoders_import_on_meta_as_on_the_cpu(config, model):
    """Their masks and packed-sequence test read position ids made from constants: the
    copies' values (workloads/torch_shadow.py)."""
    transformers = pytest.importorskip("transformers")
    from workloads import from_torch
    sizes = dict(n_embd=64, n_layer=2, n_head=4, n_positions=64) if config == "GPT2Config" \
        else dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
                  num_experts_per_tok=2)
    graphs = []
    for device in ("cpu", "meta"):
        torch.manual_seed(0)
        with torch.device(device):
            made = getattr(transformers, model)(getattr(transformers, config)(
                vocab_size=512, use_cache=False, **sizes))
            graphs.append(from_torch(made.eval(), torch.randint(3, 512, (2, 16))))
    assert "guessed_on_meta" not in graphs[1].meta and _ops(graphs[1]) == _ops(graphs[0])


def test_a_7b_decoder_imports_on_meta(models_file):
    """28 GB of float32 weights on the CPU (more than many a machine has); on meta, none."""
    g = zoo.get(f"{models_file}:llama_7b", batch=8, input_shape=2048, tokens=32000)
    assert g.meta["import_device"].startswith("meta")
    assert g.params() == 6_738_415_616   # LLaMA 2 7B's count
    assert g.input_op.out.shape == (8, 2048) and g.topo()[-1].out.shape == (8, 2048, 32000)
    assert [op.kind for op in g].count("attention") == 32


@pytest.mark.parametrize("factory, why", [
    ("ItemGated", "Tensor.item() cannot be called on meta tensors"),
    ("ConvNeXtStyle", "values it does not hold decide the memory formats after its "
                      "channels-last convolutions (the first: 'dw')"),
])
def test_what_meta_cannot_import_runs_on_the_cpu_and_says_why(models_file, factory, why):
    options = {"input_shape": "3x32x32"} if factory == "ConvNeXtStyle" else {"input_shape": 16}
    g = zoo.get(f"{models_file}:{factory}", batch=2, **options)
    assert g.meta["import_device"].startswith("cpu, at the full batch: on the meta device, ")
    assert why in g.meta["import_device"]
    cpu = zoo.get(f"{models_file}:{factory}", batch=2, import_on="cpu", **options)
    assert _ops(g) == _ops(cpu)


def test_a_factory_that_needs_values_is_built_on_the_cpu_and_imported_on_meta(models_file):
    """Only the factory reads a weight's value: the module is built on the CPU, moved to the
    meta device and imported there, with the CPU's graph and no batch run."""
    g = zoo.get(f"{models_file}:checked", batch=2, input_shape=16)
    assert g.meta["import_device"].startswith("meta, the module built on the CPU (the factory "
                                              "on the meta device: ")
    assert "checked() raised RuntimeError" in g.meta["import_device"]
    assert _ops(g) == _ops(zoo.get(f"{models_file}:checked", batch=2, input_shape=16,
                                   import_on="cpu"))


def test_describe_says_where_the_model_was_imported(models_file, capsys):
    assert main(["describe", f"{models_file}:vit", "--option", "input_shape=3x32x32"]) == 0
    assert "imported on meta (shapes only" in capsys.readouterr().out
    assert main(["describe", f"{models_file}:ItemGated", "--option", "input_shape=16"]) == 0
    assert "imported on cpu, at the full batch: on the meta device" in capsys.readouterr().out


def test_a_factory_failing_on_meta_and_on_the_cpu_gets_the_cpus_error(models_file, capsys):
    with pytest.raises(WorkloadError, match="broken\\(\\) raised ValueError: checkpoint has "
                                            "no key 'fc.weight'"):
        zoo.get(f"{models_file}:broken", batch=2, input_shape=16)
    assert main(["simulate", "--workload", f"{models_file}:broken", "--workload-option",
                 "input_shape=16", "--batch", "2", "--hardware", "v100"]) == 2
    err = capsys.readouterr().err
    assert "raised ValueError: checkpoint has no key 'fc.weight'" in err
    assert "meta" not in err and "Traceback" not in err


def test_import_on_takes_meta_or_cpu(models_file, capsys):
    assert main(["simulate", "--workload", f"{models_file}:vit", "--workload-option",
                 "input_shape=3x32x32", "--workload-option", "import_on=gpu", "--batch", "2",
                 "--hardware", "v100"]) == 2
    assert "import_on 'gpu' is not one of meta, cpu" in capsys.readouterr().err
    assert main(["simulate", "--workload", f"{models_file}:vit", "--workload-option",
                 "input_shape=3x32x32", "--workload-option", "import_on=cpu", "--batch", "2",
                 "--hardware", "v100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["iteration_time_s"] > 0


def test_no_cpu_fallback_past_the_machines_memory(models_file, monkeypatch):
    """Where the weights alone exceed the machine's memory the CPU is not tried: a model meta
    cannot run gets the meta device's error (every refused op listed, where that is why) and
    both sizes; memory formats meta cannot follow keep the meta graph, the guess named."""
    monkeypatch.setattr(torch_file, "_physical_memory_bytes", lambda: 1000)
    with pytest.raises(WorkloadError, match=r"ItemGated does not run on an input of shape "
                                            r"\(2, 16\).*Tensor.item\(\) cannot be called on "
                                            r"meta tensors\n\(on the meta device; the CPU, where "
                                            r"it might import, is not tried: its weights alone "
                                            r"need 0.0 GB, this machine has 0.0 GB\)"):
        zoo.get(f"{models_file}:ItemGated", batch=2, input_shape=16)
    g = zoo.get(f"{models_file}:ConvNeXtStyle", batch=2, input_shape="3x32x32")
    assert g.meta["import_device"].startswith("meta, guessed: values it does not hold decide "
                                              "the memory formats after its channels-last")
