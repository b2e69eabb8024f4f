"""from_torch on rows of a parameter table read as data: a slice of a position table (t[:s],
t[:, :s]), one row added everywhere (t[0]), and tables looked up by ids held in buffers
(Hugging Face's position_ids and token_type_ids), each one position_embedding op holding the
whole table; buffers sliced by a size of the input; an output layer given the token
embedding's weight tensor (tied), with a bias of its own (a masked-LM decoder) or none; what
stays refused, in one error."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from benchmarks.import_sweep import torch_flops  # noqa: E402
from tests.workloads.test_torch_import_transformers import imported  # noqa: E402
from tests.workloads.torch_hf_style import BertEmbeddings, BertEncoder  # noqa: E402
from tests.workloads.torchvision_zoo import matmul_flops  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402


class Positions(nn.Module):
    """Token embeddings plus rows of a table read as `read` says, then a head."""

    def __init__(self, read: str, positions: int = 24, width: int = 8):
        super().__init__()
        self.read = read
        self.tokens = nn.Embedding(30, width)
        self.table = nn.Parameter(torch.randn((1, positions, width) if read == "[:, :s]"
                                              else (positions, width)))
        self.types = nn.Embedding(2, width)
        self.register_buffer("position_ids", torch.arange(positions).expand((1, -1)))
        self.register_buffer("shuffled_ids", torch.randperm(positions).expand((1, -1)))
        self.register_buffer("type_ids", torch.zeros(1, positions, dtype=torch.long))
        self.head = nn.Linear(width, 3)

    def forward(self, ids):
        s = ids.size(1)
        x = self.tokens(ids)
        if self.read == "[:s]":
            x = x + self.table[:s]
        elif self.read == "[:, :s]":
            x = self.table[:, :s] + x
        elif self.read == "[1:s + 1]":   # past a class token's row (ViT-MAE)
            x = x + self.table[1:s + 1]
        elif self.read == "[0]":
            x = x + self.table[0]
        elif self.read == "[:s].unsqueeze(0)":
            x = x + self.table[:s].unsqueeze(0)
        elif self.read == "ids":
            x = x + nn.functional.embedding(self.position_ids[:, :s], self.table)
        elif self.read == "shuffled ids":
            x = x + nn.functional.embedding(self.shuffled_ids[:, :s], self.table)
        x = x + self.types(self.type_ids[:, :s].expand(ids.size(0), s))
        return self.head(x[:, 0])


READS = {"[:s]": False, "[:, :s]": False, "[1:s + 1]": False, "[0]": True,
         "[:s].unsqueeze(0)": False, "ids": False, "shuffled ids": False}


@pytest.mark.parametrize("read, constant_row", READS.items())
def test_rows_of_a_table_added_to_a_sequence_are_one_op_holding_the_table(read, constant_row):
    g = imported(Positions(read), torch.randint(0, 30, (2, 16)))
    tables = [op for op in g if op.kind == "position_embedding"]
    assert [(op.attrs["num_embeddings"], op.params, bool(op.attrs.get("constant_row")))
            for op in tables] == [(24, 24 * 8, constant_row), (2, 2 * 8, True)]
    assert tables[0].attrs.get("first_row", 0) == (1 if read == "[1:s + 1]" else 0)


def test_rows_past_the_first_are_the_ones_added_and_get_the_gradient():
    from validation.calibrate.torch_ops import KernelState, op_kernel
    g = imported(Positions("[1:s + 1]"), torch.randint(0, 30, (2, 16)))
    op = [op for op in g if op.kind == "position_embedding"][0]
    state = KernelState(graph=g)
    table, = state.params_of(op)
    x = torch.randn(2, 16, 8)
    assert torch.equal(op_kernel(op, state)(x), x + table[1:17])


def test_on_the_meta_device_rows_read_by_buffer_ids_are_read_by_the_table_sizes():
    """The ids are unknown there: the 24-row table covers the 16 positions (its first rows),
    the 2-row type table does not (row 0 everywhere), as on the CPU where the ids are read."""
    cpu = from_torch(Positions("ids"), torch.randint(0, 30, (2, 16)))
    with torch.device("meta"):
        model, x = Positions("ids"), torch.randint(0, 30, (2, 16))
    meta = from_torch(model, x)
    assert [(op.kind, op.attrs) for op in meta] == [(op.kind, op.attrs) for op in cpu]


def test_a_mask_buffer_sliced_to_the_sequence_imports():
    class Causal(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("bias", torch.ones(32, 32).tril().view(1, 1, 32, 32))
            self.proj = nn.Linear(8, 8)

        def forward(self, x):
            t = x.size(1)
            scores = torch.matmul(x, x.transpose(-1, -2)).unsqueeze(1)
            scores = scores.masked_fill(self.bias[:, :, :t, :t] == 0, float("-inf"))
            return self.proj(torch.matmul(scores.softmax(-1), x.unsqueeze(1)))[:, 0, 0]

    g = imported(Causal(), torch.randn(2, 16, 8))
    assert [op.kind for op in g].count("masked_fill") == 1


class BadReads(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.randn(40, 8))
        self.register_buffer("ids", (torch.arange(16) % 2).view(1, 16))
        self.emb = nn.Embedding(2, 8)
        self.scale = nn.Parameter(torch.randn(24, 8))

    def forward(self, x):
        s = x.size(1)
        one, shifted = x + self.table[3], x + self.table[:2 * s:2]
        return one + shifted + x * self.scale[:s] + (x + self.emb(self.ids))


def test_other_reads_of_a_table_are_refused_in_one_error():
    with pytest.raises(WorkloadError) as err:
        from_torch(BadReads(), torch.randn(2, 16, 8))
    message = str(err.value)
    assert "4 unsupported ops" in message
    assert "reads rows 3 of parameter 'table'" in message
    assert "reads rows slice(None, 32, 2) of parameter 'table'" in message
    assert "reads rows of parameter 'scale' as data" in message
    assert "looks up 16 ids from buffers in a table of 2 rows" in message


class SinusoidalRotary(nn.Module):
    """Hugging Face's RoFormer: a frozen sinusoidal table (an nn.Embedding read at arange
    positions) given new axes, then split into sin and cos as data."""

    def __init__(self, gather: str = "chunk"):
        super().__init__()
        self.pos, self.q = nn.Embedding(64, 16, _freeze=True), nn.Linear(16, 16)
        self.gather = gather

    def forward(self, x):
        rows = self.pos(torch.arange(x.shape[1], device=x.device))[None, None, :, :]
        if self.gather == "index":
            return self.q(x) + rows[0, 0]
        sin, cos = rows.chunk(2, dim=-1)
        return self.q(x) * torch.cat([cos, sin], -1)[0]


@pytest.mark.parametrize("gather, refused", [
    ("chunk", r"reads rows of parameter 'pos.weight' as data"),
    ("index", r"indexes rows \(1, 1, 10, 16\) of parameter 'pos.weight' with \(0, 0\)")])
def test_new_axes_on_a_tables_rows_keep_them_rows_and_what_reads_them_is_named(gather, refused):
    with pytest.raises(WorkloadError, match=refused):
        from_torch(SinusoidalRotary(gather), torch.randn(2, 10, 16))


class TiedLM(nn.Module):
    """Hugging Face's tying: the output layer is given the token embedding's weight tensor."""

    def __init__(self, bias: bool = False):
        super().__init__()
        self.wte = nn.Embedding(50, 32)
        self.ln_f = nn.LayerNorm(32)
        self.lm_head = nn.Linear(32, 50, bias=bias)
        self.lm_head.weight = self.wte.weight

    def forward(self, ids):
        return self.lm_head(self.ln_f(self.wte(ids)))


def test_an_output_layer_given_the_embeddings_weight_holds_none_of_it():
    from validation.calibrate.torch_exec import GraphModule
    from workloads.training import lower_training
    model, ids = TiedLM(), torch.randint(0, 50, (2, 16))
    g = from_torch(model, ids)
    assert g.params() == sum(p.numel() for p in model.parameters()) == 50 * 32 + 2 * 32
    assert g.meta["shared_params"] == {"lm_head": "wte"}
    assert tuple(GraphModule(g)(ids).shape) == (2, 16, 50)
    g.meta["token_logits"] = True
    train = lower_training(g)   # one update of the table, with both layers' gradients
    assert sum(op.params for op in train if op.kind == "sgd_update") == g.params()


class BertForMaskedLM(nn.Module):
    """Hugging Face's BertForMaskedLM, written as transformers writes it: the encoder without a
    pooler, a transform (dense, GELU, LayerNorm) and a decoder whose weight is the word
    embedding's and whose bias is a parameter of the prediction head (decoder.bias = bias)."""

    def __init__(self, vocab=60, width=16, depth=2, heads=4, mlp=32, positions=24):
        super().__init__()
        self.embeddings = BertEmbeddings(vocab, width, positions, 2, 0.1)
        self.encoder = BertEncoder(depth, width, heads, mlp, 0.1, False)
        self.transform = nn.Sequential(nn.Linear(width, width), nn.GELU(),
                                       nn.LayerNorm(width, eps=1e-12))
        self.decoder = nn.Linear(width, vocab, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab))
        self.decoder.bias = self.bias
        self.decoder.weight = self.embeddings.word_embeddings.weight

    def forward(self, input_ids):
        return self.decoder(self.transform(self.encoder(self.embeddings(input_ids))))


def test_a_masked_lm_decoder_shares_the_embeddings_weight_and_holds_its_own_bias():
    from validation.calibrate.torch_exec import GraphModule
    from workloads.training import lower_training
    model, ids = BertForMaskedLM(), torch.randint(1, 60, (2, 16))
    g = from_torch(model, ids)
    assert g.params() == sum(p.numel() for p in model.parameters())   # the table once
    assert g.meta["shared_params"] == {"decoder": "embeddings.word_embeddings"}
    assert g.op("decoder").params == 60
    assert matmul_flops(g) == pytest.approx(torch_flops(model, ids), rel=0.02)
    replay = GraphModule(g)   # the graph run in PyTorch: the table once, the bias its own
    assert sum(p.numel() for p in replay.parameters()) == g.params()
    assert replay._p(g.topo().index(g.op("decoder")), 1).shape == (60,)
    assert tuple(replay(ids).shape) == (2, 16, 60)
    g.meta["token_logits"] = True
    train = lower_training(g, "adam")
    updates = {op.forward: op for op in train if op.kind == "sgd_update"}
    assert sum(op.params for op in updates.values()) == g.params()
    # the table's update reads the sum of both uses' gradients, as autograd sums them
    table = updates["embeddings.word_embeddings"]
    acc = train.op(table.inputs[0])
    assert acc.kind == "grad_accumulate"
    assert set(acc.inputs) == {"embeddings.word_embeddings.grad", "decoder.grad_weight"}
    assert table.out.numel == 60 * 16
    # the bias is stepped on its own, one tensor, from the decoder's gradient
    bias = updates["decoder"]
    assert (bias.params, bias.inputs, bias.attrs["tensors"]) == (60, ("decoder.grad_weight",), 1)
    # the decoder's gradient holds the tied weight's and the bias's; it reads the whole weight
    assert train.op("decoder.grad_weight").out.numel == 60 * 16 + 60
    assert train.op("decoder").bytes_read == \
        g.op("decoder").in_specs[0].nbytes + (60 * 16 + 60) * 4


class BiasSharedLM(TiedLM):
    """A second layer given the output layer's bias (and a weight of its own)."""

    def __init__(self):
        super().__init__(bias=True)
        self.lm_head.weight = nn.Parameter(torch.randn(50, 32))
        self.extra = nn.Linear(32, 50)
        self.extra.bias = self.lm_head.bias

    def forward(self, ids):
        h = self.ln_f(self.wte(ids))
        return self.lm_head(h) + self.extra(h)


def test_a_layer_sharing_a_parameter_other_than_its_weight_is_refused_by_name():
    with pytest.raises(WorkloadError, match="'extra': shares some parameters with 'lm_head' "
                                            r"\(tied weights\) other than its weight"):
        from_torch(BiasSharedLM(), torch.randint(0, 50, (2, 16)))


def test_a_layer_given_both_parameters_of_another_holds_none():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 4), nn.Linear(8, 4)
            self.b.weight, self.b.bias = self.a.weight, self.a.bias

        def forward(self, x):
            return self.a(x) + self.b(torch.relu(x))
    g = from_torch(TwoHeads(), torch.randn(2, 8))
    assert g.params() == 8 * 4 + 4 and g.meta["shared_params"] == {"b": "a"}
