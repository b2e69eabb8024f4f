"""from_torch on layers beyond the zoo's: bare layers, shared weights, chunk and split, flatten
from any dimension, layers written as functions of parameters, Conv1d and instance norm."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402


def torch_flops(model, x) -> int:
    """PyTorch's own count of convolution and matmul FLOPs."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def gemm_flops(g) -> float:
    return 2 * g.macs()


@pytest.mark.parametrize("layer,shape,kind", [
    (nn.Conv2d(3, 8, 3, stride=2), (2, 3, 9, 9), "conv2d"),
    (nn.Linear(5, 7), (4, 5), "linear"),
    (nn.BatchNorm2d(3), (2, 3, 4, 4), "batchnorm"),
    (nn.MaxPool2d(2), (1, 3, 4, 4), "maxpool"),
])
def test_a_bare_layer_is_a_one_layer_network(layer, shape, kind):
    g = from_torch(layer, torch.randn(*shape))
    assert [op.kind for op in g] == ["input", kind]
    assert g.topo()[-1].out.shape == tuple(layer(torch.randn(*shape)).shape)
    assert g.params() == sum(p.numel() for p in layer.parameters())
    assert gemm_flops(g) == torch_flops(layer, torch.randn(*shape))


class Siamese(nn.Module):
    """One encoder called on two halves of the input, and a head called twice."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8),
                                     nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8, 8)

    def forward(self, x):
        left, right = x.chunk(2, dim=3)
        return self.head(self.head(self.encoder(left))) + self.head(self.encoder(right))


def test_a_module_called_twice_counts_its_parameters_once_and_its_compute_each_time():
    model, x = Siamese(), torch.randn(2, 3, 8, 8)
    g = from_torch(model, x)
    assert g.params() == sum(p.numel() for p in model.parameters())
    assert gemm_flops(g) == torch_flops(model, x)
    convs = [op for op in g if op.kind == "conv2d"]
    heads = [op for op in g if op.kind == "linear"]
    assert [op.params for op in convs] == [8 * 3 * 9 + 8, 0]
    assert [op.params for op in heads] == [8 * 8 + 8, 0, 0]
    shared = g.meta["shared_params"]
    assert shared[convs[1].name] == convs[0].name
    assert all(shared[op.name] == heads[0].name for op in heads[1:])


def test_chunk_and_split_are_slices_without_copies():
    class Net(nn.Module):
        def forward(self, x):
            a, b = x.chunk(2, dim=1)
            c, d, e = torch.split(b, [1, 2, 1], dim=1)
            f, g = x.split(5, dim=2)
            return torch.cat([a, c, d, e, a, torch.cat([f, g], 2)], 1)
    g = from_torch(Net(), torch.randn(2, 8, 8, 8))
    slices = [op for op in g if op.kind == "slice"]
    assert [(op.attrs["dim"], op.attrs["start"], op.attrs["stop"]) for op in slices] == [
        (1, 0, 4), (1, 4, 8), (1, 0, 1), (1, 1, 3), (1, 3, 4), (2, 0, 5), (2, 5, 8)]
    assert all(op.is_view and op.bytes_moved == 0 for op in slices)
    assert g.topo()[-1].kind == "concat" and g.topo()[-1].out.shape == (2, 20, 8, 8)


@pytest.mark.parametrize("start,end,shape", [
    (1, -1, (2, 192)), (2, -1, (2, 3, 64)), (1, 2, (2, 24, 8)), (3, 3, (2, 3, 8, 8))])
def test_flatten_from_any_dimension_after_the_batch_is_a_view(start, end, shape):
    class Net(nn.Module):
        def forward(self, x):
            return torch.flatten(F.relu(x), start, end)
    g = from_torch(Net(), torch.randn(2, 3, 8, 8))
    assert g.topo()[-1].out.shape == shape
    assert all(op.is_view for op in g.topo()[2:])


def test_a_flatten_that_merges_the_batch_is_the_reshape_folding_it():
    """(N, C, H, W) flattened to (N * C, H, W) is the reshape that folds C into the batch
    (tests/workloads/test_torch_import_fold.py): the graph keeps (N, C, H, W)."""
    class Net(nn.Module):
        def __init__(self, how):
            super().__init__()
            self.how = how

        def forward(self, x):
            y = F.relu(x)
            return torch.flatten(y, 0, 1) if self.how == "flatten" else y.reshape(-1, 8, 8)
    x = torch.randn(2, 3, 8, 8)
    flat, reshaped = (from_torch(Net(how), x) for how in ("flatten", "reshape"))
    assert [(op.kind, op.out.shape) for op in flat] == \
        [(op.kind, op.out.shape) for op in reshaped] == [("input", x.shape), ("relu", x.shape)]


class Functional(nn.Module):
    """Layers written as functions of parameters the module holds."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 3, 3, 3))
        self.ln_w, self.ln_b = nn.Parameter(torch.ones(8)), nn.Parameter(torch.zeros(8))
        self.fc_w, self.fc_b = nn.Parameter(torch.randn(10, 8)), nn.Parameter(torch.zeros(10))

    def forward(self, x):
        x = F.conv2d(x, self.w, None, 1, 1)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        x = F.layer_norm(x, (8,), self.ln_w, self.ln_b)
        return F.linear(x, self.fc_w, self.fc_b)


def test_layers_written_as_functions_of_parameters():
    model, x = Functional(), torch.randn(2, 3, 8, 8)
    g = from_torch(model, x)
    assert [op.kind for op in g if not op.is_view] == [
        "conv2d", "adaptive_avgpool", "layernorm", "linear"]
    assert g.params() == sum(p.numel() for p in model.parameters())
    assert gemm_flops(g) == torch_flops(model, x)


def test_a_parameter_used_as_data_is_named():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

        def forward(self, x):
            return torch.lgamma(x) * torch.sigmoid(self.bias)
    with pytest.raises(WorkloadError) as err:
        from_torch(Net(), torch.randn(2, 3, 4, 4))
    assert "torch.lgamma at module path '<top>'" in str(err.value)
    assert "torch.sigmoid at module path '<top>'" in str(err.value)


def test_conv1d_is_a_conv2d_over_a_one_pixel_height():
    model = nn.Sequential(nn.Conv1d(4, 8, 5, stride=2, padding=2, dilation=1, groups=2),
                          nn.ReLU(), nn.Conv1d(8, 6, 3, bias=False, padding=1, dilation=2))
    x = torch.randn(3, 4, 32)
    g = from_torch(model, x)
    convs = [op for op in g if op.kind == "conv2d"]
    assert [op.name for op in convs] == ["0", "2"]
    assert convs[0].attrs["kernel"] == (1, 5) and convs[0].attrs["stride"] == (1, 2)
    assert convs[1].attrs["dilation"] == (1, 2) and convs[1].attrs["padding"] == (0, 1)
    assert g.topo()[-1].out.shape == tuple(model(x).shape)
    assert g.params() == sum(p.numel() for p in model.parameters())
    assert gemm_flops(g) == torch_flops(model, x)
    assert all(op.is_view for op in g if op.kind == "reshape")


@pytest.mark.parametrize("norm,shape", [
    (nn.InstanceNorm2d(6), (2, 6, 5, 5)), (nn.InstanceNorm2d(6, affine=True), (2, 6, 5, 5)),
    (nn.InstanceNorm1d(6, affine=True), (2, 6, 7))])
def test_instance_norm_is_a_group_norm_with_a_group_per_channel(norm, shape):
    g = from_torch(nn.Sequential(norm), torch.randn(*shape))
    op = g.topo()[-1]
    assert op.kind == "groupnorm" and op.attrs["num_groups"] == shape[1]
    assert op.params == sum(p.numel() for p in norm.parameters())
    x = torch.randn(*shape)
    gn = nn.GroupNorm(shape[1], shape[1], affine=norm.affine)
    assert torch.allclose(norm(x), gn(x), atol=1e-5)   # the same arithmetic


def test_instance_norm_with_running_statistics_is_refused():
    with pytest.raises(WorkloadError, match="running statistics"):
        from_torch(nn.Sequential(nn.InstanceNorm2d(3, track_running_stats=True)),
                   torch.randn(2, 3, 4, 4))


def test_shared_weights_train_with_one_update_that_sums_every_calls_gradient():
    from workloads.training import lower_training
    g = lower_training(from_torch(Siamese(), torch.randn(2, 3, 8, 8)))
    updates = {op.forward: op for op in g.phase("update")}
    assert set(updates) == {"encoder.0", "encoder.1", "head"}
    sums = {op.forward: op for op in g if op.name.endswith(".grad_weight_acc")}
    assert updates["encoder.0"].inputs == ("encoder.0.grad_weight_acc",)
    assert sums["encoder.0"].inputs == ("encoder.0.grad_weight", "encoder.02.grad_weight")
    assert sorted(sums["head"].inputs) == ["head.grad_weight", "head2.grad_weight",
                                           "head3.grad_weight"]
    assert sum(op.params for op in g.phase("update")) == g.params()


def test_permutes_are_views_and_copies_come_where_pytorch_makes_them():
    from validation.calibrate.torch_exec import GraphModule

    class Net(nn.Module):
        def forward(self, x):
            y = x.permute(0, 2, 3, 1)            # a view
            a = y.reshape(2, 4, 5 * 3)           # merges dims a view cannot: a copy
            b = y.flatten(2)                     # (2, 4, 15): the same copy again
            c = x.transpose(2, 3).contiguous()   # a copy
            d = x.contiguous()                   # already contiguous: no op
            return torch.cat([a.flatten(1), b.flatten(1), c.flatten(1), d.flatten(1)], 1)
    x = torch.randn(2, 3, 4, 5)
    g = from_torch(Net(), x)
    kinds = [op.kind for op in g]
    assert kinds.count("permute") == 2 and kinds.count("contiguous") == 3
    assert all(op.is_view for op in g if op.kind == "permute")
    assert torch.allclose(GraphModule(g)(x), Net()(x))


def test_a_permute_that_moves_the_batch_is_refused():
    class Net(nn.Module):
        def forward(self, x):
            return x.permute(1, 0, 2, 3)
    with pytest.raises(WorkloadError, match="moving the batch"):
        from_torch(Net(), torch.randn(2, 3, 4, 5))


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 7), min_size=2, max_size=4), dim=st.integers(1, 3),
       chunks=st.integers(1, 5), split=st.booleans())
def test_chunks_and_splits_are_pytorchs_pieces(shape, dim, chunks, split):
    dim = dim % len(shape) or 1
    x = torch.randn(*shape, device="meta")
    expected = [tuple(p.shape) for p in (x.split(chunks, dim) if split else x.chunk(chunks, dim))]

    class Net(nn.Module):
        def forward(self, x):
            pieces = x.split(chunks, dim) if split else x.chunk(chunks, dim)
            return torch.cat([pieces[i] for i in range(len(expected))], dim)
    g = from_torch(Net(), x)
    slices = [op for op in g if op.kind == "slice"]
    assert all(op.is_view for op in slices)
    assert [op.out.shape for op in slices] == expected
    assert [op.attrs["start"] for op in slices] == [sum(p[dim] for p in expected[:i])
                                                    for i in range(len(expected))]


class StackedTokens(nn.Module):
    """CoaT's head: the first token of three sequences stacked along a new dimension."""

    def forward(self, x):
        return torch.stack([(x * s)[:, 0] for s in (1.0, 2.0, 3.0)], dim=1).flatten(1)


def test_stack_along_a_new_dimension_after_the_batch_is_a_concat_of_views():
    g = from_torch(StackedTokens(), torch.randn(2, 5, 8))
    (stack,) = [op for op in g if op.kind == "concat"]
    assert stack.out.shape == (2, 3, 8) and stack.attrs["dim"] == 1
    assert [op.out.shape for op in g if op.name.split(".")[-1].startswith("stacked")] == \
        [(2, 1, 8)] * 3


class MeanOfBranches(nn.Module):
    """CrossViT's head: the mean of its branches' logits, stacked before the batch."""

    def __init__(self, reduce="mean"):
        super().__init__()
        self.reduce, self.heads = reduce, nn.ModuleList(nn.Linear(8, 3) for _ in range(3))

    def forward(self, x):
        stacked = torch.stack([head(x) for head in self.heads], dim=0)
        return torch.mean(stacked, dim=0) if self.reduce == "mean" else stacked.sum(0)


def test_the_mean_of_tensors_stacked_before_the_batch_is_their_sum_scaled():
    g = from_torch(MeanOfBranches(), torch.randn(2, 8))
    assert [op.kind for op in g if op.kind in ("add", "scalar")] == ["add", "add", "scalar"]
    assert g.topo()[-1].attrs["scale"] == pytest.approx(1 / 3)


def test_other_reads_of_a_stack_before_the_batch_are_refused():
    with pytest.raises(WorkloadError, match="Tensor.sum at module path '<top>'"):
        from_torch(MeanOfBranches(reduce="sum"), torch.randn(2, 8))


def test_a_permuted_view_seen_with_another_shape_twice_is_copied_under_its_own_names():
    class Twice(nn.Module):
        def forward(self, x):                     # (N, S, C), S = 4 * 4
            a = x.transpose(1, 2).contiguous()    # a copy the importer names
            b = x.transpose(1, 2).view(2, 8, 4, 4)   # a view in PyTorch, a copy here
            c = x.transpose(1, 2).view(2, 8, 4, 4)
            return a.flatten(1) + b.flatten(1) + c.flatten(1)
    g = from_torch(Twice(), torch.randn(2, 16, 8))
    copies = [op for op in g if op.kind == "contiguous" and g.op(op.inputs[0]).kind == "permute"]
    assert len(copies) == 3 and len({op.name for op in copies}) == 3


@pytest.mark.parametrize("groups", [1, 2])
def test_channels_split_into_groups_without_a_shuffle_are_a_view(groups):
    class Grouped(nn.Module):
        def forward(self, x):                     # (N, C, H, W) seen as (N, g, C / g, H, W)
            n, c, h, w = x.shape
            return (x.view(n, groups, c // groups, h, w) * 2.0).flatten(1)
    g = from_torch(Grouped(), torch.randn(2, 4, 3, 3))
    (view,) = [op for op in g if op.kind == "reshape" and len(op.out.shape) == 5]
    assert view.out.shape == (2, groups, 4 // groups, 3, 3) and view.is_view
