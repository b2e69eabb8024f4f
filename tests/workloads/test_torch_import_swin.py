"""torchvision's Swin Transformer imports: shifted windows (a roll each way), feature maps
padded up to whole windows and to an even size before patch merging, the relative position
bias as one op holding its table, and the windows kept as a dimension after the batch. FLOPs
and parameters are PyTorch's, the graph replays in PyTorch and lowers for training. Hugging
Face's patch merging (2x2 cells sliced and concatenated) and pooler import too."""
import pytest

torch = pytest.importorskip("torch")

from tests.workloads import torchvision_zoo as zoo  # noqa: E402
from tests.workloads.test_torch_import_transformers import imported  # noqa: E402

TVM = zoo.models()
pytestmark = pytest.mark.skipif(TVM is None, reason="torchvision is not installed")


def tiny_swin(v2=False):
    from torchvision.models import swin_transformer as st
    torch.manual_seed(0)
    kinds = dict(block=st.SwinTransformerBlockV2, downsample_layer=st.PatchMergingV2) if v2 \
        else {}
    return st.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 4],
                              window_size=[4, 4], num_classes=5, **kinds).eval()


@pytest.mark.parametrize("size", [32, 36])   # 36: 9x9 patches, padded to windows and cells
def test_tiny_swin_imports_with_pytorchs_flops_and_replays(size):
    g = imported(tiny_swin(), torch.randn(2, 3, size, size))
    kinds = [op.kind for op in g]
    # a shift and its reverse per shifted block; at 32 the second stage's 4x4 map is one
    # window, which is not shifted
    assert kinds.count("roll") == (2 if size == 32 else 4)
    assert kinds.count("attention_bias") == 4
    assert ("pad_spatial" in kinds) == (size == 36)
    assert all(op.out.shape[0] == 2 for op in g)   # the batch stays first


@pytest.mark.parametrize("size", [32, 36])
def test_tiny_swin_v2_imports_with_pytorchs_flops_and_replays(size):
    g = imported(tiny_swin(v2=True), torch.randn(2, 3, size, size))
    kinds = [op.kind for op in g]
    assert kinds.count("continuous_position_bias") == kinds.count("logit_scale") == 4
    assert kinds.count("l2_normalize") == 8            # q and k of each block
    assert "attention_bias" not in kinds


def test_the_windows_are_copied_where_pytorch_copies():
    g = imported(tiny_swin(), torch.randn(2, 3, 32, 32))
    block = [op for op in g if op.name.startswith("features.1.0.attn")]
    copies = [op.name.rsplit(".", 1)[-1] for op in block if op.kind == "contiguous"]
    assert copies == ["windows_copy", "merge_heads_copy", "unwindow_copy"]
    merge = [op for op in g if op.name == "features.2.merged_copy"]
    assert merge and merge[0].bytes_written == merge[0].in_specs[0].nbytes


class Rolled(torch.nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims, self.conv = dims, torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = torch.roll(self.conv(x), shifts=(1, -2), dims=self.dims)
        return y.flatten(1)


def test_roll_after_the_batch_is_a_copy_and_of_the_batch_is_refused():
    from workloads import from_torch
    from workloads.graph import WorkloadError
    x = torch.randn(2, 3, 5, 5)
    g = from_torch(Rolled((2, 3)), x)
    roll = [op for op in g if op.kind == "roll"]
    assert len(roll) == 1 and roll[0].flops == 0
    assert roll[0].bytes_read == roll[0].bytes_written == 2 * 4 * 5 * 5 * 4
    with pytest.raises(WorkloadError, match="rolls the flattened tensor or the batch"):
        from_torch(Rolled((0, 2)), x)


@pytest.mark.parametrize("v2", [False, True])
def test_a_pipelines_micro_batch_of_swin_is_swin_imported_at_that_batch(v2):
    """The windows are not folded into the batch, so GPipe's rebatch (which rewrites the first
    dimension) gives the graph PyTorch's own import at the micro-batch size."""
    from simulator.policies._pipeline import rebatch
    from workloads import from_torch
    from workloads.training import lower_training
    model = tiny_swin(v2)
    full = from_torch(model, torch.randn(4, 3, 36, 36))
    micro = from_torch(model, torch.randn(2, 3, 36, 36))
    split = rebatch(full, 2)
    assert [op.out.shape for op in split] == [op.out.shape for op in micro]
    assert sum(op.flops for op in split) == pytest.approx(sum(op.flops for op in micro))
    lower_training(split)


class CellMerging(torch.nn.Module):
    """Hugging Face's Swin patch merging and pooler: the pixels of each 2x2 cell of
    (N, H, W, C) sliced with step 2 and concatenated along the channels (in `order`), a norm
    and a reduction; then the mean over the tokens by nn.AdaptiveAvgPool1d."""

    def __init__(self, order=((0, 0), (1, 0), (0, 1), (1, 1)), c=4):
        super().__init__()
        self.order = order
        self.norm, self.reduce = torch.nn.LayerNorm(4 * c), torch.nn.Linear(4 * c, 2 * c)
        self.pool, self.head = torch.nn.AdaptiveAvgPool1d(1), torch.nn.Linear(2 * c, 3)

    def forward(self, x):
        n, h, w, c = x.shape
        x = torch.cat([x[:, r::2, k::2, :] for r, k in self.order], dim=-1)
        x = self.reduce(self.norm(x.view(n, -1, 4 * c)))
        return self.head(torch.flatten(self.pool(x.transpose(1, 2)), 1))


def test_cells_sliced_and_concatenated_merge_as_torchvisions_patch_merging():
    g = imported(CellMerging(), torch.randn(2, 6, 8, 4))
    (merged,) = [op for op in g if op.name.endswith("merged_copy")]
    assert merged.out.shape == (2, 3, 4, 2, 2, 4) and merged.bytes_written == 2 * 6 * 8 * 4 * 4
    (pool,) = [op for op in g if op.name == "pool"]
    assert pool.kind == "mean" and pool.out.shape == (2, 8, 1)


def test_cells_concatenated_in_another_order_are_refused():
    from workloads import from_torch
    from workloads.graph import WorkloadError
    with pytest.raises(WorkloadError, match=r"pending view \(cell\)"):
        from_torch(CellMerging(order=((0, 0), (0, 1), (1, 0), (1, 1))), torch.randn(2, 6, 8, 4))


def test_hugging_faces_swin_imports_with_pytorchs_flops():
    from tests.workloads.test_torch_import_learned_bias import imports_with_pytorchs_flops
    imports_with_pytorchs_flops("transformers", "swin")
