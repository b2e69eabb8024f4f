"""T5 encoder-decoders of the zoo: parameters equal to Hugging Face's counts, the FLOPs of the
products equal to those PyTorch's counter counts running Hugging Face's
T5ForConditionalGeneration (skipped where torch or transformers is not installed), and a
training lowering that updates the one shared token table and each stack's one bias table."""
import pytest

from workloads import zoo
from workloads.graph import WorkloadError
from workloads.training import lower_training
from workloads.zoo import t5

# num_parameters() of Hugging Face's t5-small, t5-base and t5-large (embeddings and output
# layer tied, one relative position table per stack)
HUGGING_FACE = {"t5_small": 60_506_624, "t5_base": 222_903_552, "t5_large": 737_668_096}
SIZES = {"t5_small": t5.T5_SMALL, "t5_base": t5.T5_BASE, "t5_large": t5.T5_LARGE}


@pytest.mark.parametrize("name", sorted(HUGGING_FACE))
def test_parameters_are_hugging_faces_counts(name):
    g = zoo.get(name, seq_len=16, target_len=8)
    assert g.params() == HUGGING_FACE[name]
    assert g.op("lm_head").out.shape == (1, 8, 32128)


def test_the_shared_tables_train_once():
    g = zoo.get("t5_small", batch=2, seq_len=16, target_len=8)
    shared = g.meta["shared_params"]
    assert shared["decoder.embed_tokens"] == "encoder.embed_tokens"
    biases = [op.name for op in g if op.kind == "attention_bias"]
    assert len(biases) == 2 * 6 and sum(g.op(n).params > 0 for n in biases) == 2
    train = lower_training(g)
    train.validate()
    assert sum(op.params for op in train.phase("update")) == g.params()


def test_bad_sizes_are_named():
    with pytest.raises(WorkloadError, match="target_len must be an integer >= 1"):
        zoo.get("t5_base", target_len=0)
    with pytest.raises(WorkloadError, match="dropout must be in"):
        zoo.get("t5_base", dropout=1.5)


@pytest.mark.parametrize("name", ["t5_small", "t5_base", "t5_large"])
def test_hugging_faces_t5_has_the_parameters_and_product_flops(name):
    """The model on the meta device (no memory): its count, and PyTorch's FLOPs of its
    forward, the products of the linear layers and of attention."""
    torch = pytest.importorskip("torch")
    from tests.workloads.torchvision_zoo import matmul_flops, models
    models()   # transformers imports torchvision, which needs the workaround beside a CPU torch
    transformers = pytest.importorskip("transformers")
    from torch.utils.flop_counter import FlopCounterMode
    sizes = SIZES[name]
    config = transformers.T5Config(d_model=sizes["width"], d_ff=sizes["d_ff"],
                                   num_layers=sizes["depth"], num_heads=sizes["heads"],
                                   d_kv=sizes["d_kv"], use_cache=False)
    with torch.device("meta"):
        model = transformers.T5ForConditionalGeneration(config)
        ids, target = torch.randint(0, 100, (2, 16)), torch.randint(0, 100, (2, 8))
    assert model.num_parameters() == HUGGING_FACE[name]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(input_ids=ids, decoder_input_ids=target)
    assert counter.get_total_flops() == matmul_flops(
        zoo.get(name, batch=2, seq_len=16, target_len=8))
