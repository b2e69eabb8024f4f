"""Recurrent models as users write them (torch_user_recurrent.py, the import sweep's user
group), seq2seq decoders started from their encoder's state (whole, or one step a call in a
Python loop) and a sequence-first LSTM between convolutions: PyTorch's FLOPs, parameters and
values, gradients into the encoder, refusals by name."""
import re

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from tests.workloads.torch_user_recurrent import RECURRENT_CASES  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.errors import WorkloadError  # noqa: E402
from workloads.kinds.recurrent import run_recurrence  # noqa: E402

USER_REFUSED = {   # name -> a pattern of the error
    "lstm-packed-padded": r"torch_user_recurrent\.py line \d+: packed = nn\.utils\.rnn\."
                          r"pack_padded_sequence\(.*: packed sequences \(PackedSequence\) are "
                          "not supported",
}


@pytest.mark.parametrize("name", sorted(set(RECURRENT_CASES) - set(USER_REFUSED)))
def test_recurrent_user_code_imports_with_pytorchs_flops_and_trains(name):
    from benchmarks.import_sweep import torch_flops
    from tests.workloads.torchvision_zoo import matmul_flops
    from workloads.training import lower_training
    torch.manual_seed(0)
    model, x = RECURRENT_CASES[name]()
    model.eval()
    g = from_torch(model, x)
    assert matmul_flops(g) == pytest.approx(torch_flops(model, x), rel=1e-9)
    assert g.params() == sum(p.numel() for p in model.parameters())
    assert sum(op.params for op in lower_training(g).phase("update")) == g.params()


@pytest.mark.parametrize("name", sorted(USER_REFUSED))
def test_recurrent_user_code_that_stays_out_is_refused_by_name(name):
    model, x = RECURRENT_CASES[name]()
    with pytest.raises(WorkloadError, match=USER_REFUSED[name]):
        from_torch(model.eval(), x)


def test_a_decoder_started_from_the_encoders_state_sends_its_gradient_back():
    from workloads.training import lower_training
    model, x = RECURRENT_CASES["lstm-seq2seq-encoder-state"]()
    g = from_torch(model.eval(), x)
    for layer in (0, 1):   # each decoder layer starts from its encoder layer's output
        assert g.op(f"decoder.l{layer}").inputs[1] == f"encoder.l{layer}"
    t = lower_training(g)
    # the encoder's only gradient is the decoder's dh_0, at its layers' last steps
    assert t.op("decoder.l0.grad_state").out.shape == g.op("encoder.l0").out.shape
    assert {"encoder.l0.grad_input", "encoder.l1.grad_weight",
            "encoder.l0.input_proj.grad_weight"} <= {op.name for op in t}


def test_a_state_started_recurrence_computes_what_pytorch_does():
    enc, dec = nn.GRU(16, 24, batch_first=True), nn.GRU(8, 24, batch_first=True)
    src, tgt = torch.randn(3, 7, 16), torch.randn(3, 5, 8)
    attrs = dict(mode="gru", hidden_size=24, directions=1, bias_hh=True)
    with torch.no_grad():
        memory, h_n = enc(src)
        gates = tgt @ dec.weight_ih_l0.t() + dec.bias_ih_l0
        y = run_recurrence(gates, attrs, [dec.weight_hh_l0[None], dec.bias_hh_l0[None]],
                           memory)
        assert torch.allclose(y, dec(tgt, h_n)[0], atol=1e-5)


def test_a_state_of_another_shape_is_refused_by_name():
    class Mismatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.GRU(16, 24, num_layers=2, batch_first=True)
            self.decoder = nn.GRU(16, 24, batch_first=True, bidirectional=True)

        def forward(self, x):
            return self.decoder(x, self.encoder(x)[1])[0]
    with pytest.raises(WorkloadError, match=re.escape(
            "torch.nn.GRU at module path 'decoder': starts from the final state of 'encoder' "
            "(2 layers, 1 directions, h of 24), which is not its own shape (1, 2, 24)")):
        from_torch(Mismatch(), torch.randn(2, 5, 16))


class StepLoop(nn.Module):
    """The PyTorch tutorial's decoder: one step a call in a Python loop, each call started
    from the state the call before left."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        self.encoder = nn.GRU(16, 32, batch_first=True)
        self.decoder = nn.GRU(16, 32, batch_first=True)
        self.out = nn.Linear(32, 100)

    def forward(self, src, tgt):
        _, h = self.encoder(self.embed(src))
        e, outs = self.embed(tgt), []
        for t in range(tgt.shape[1]):
            y, h = self.decoder(e[:, t:t + 1], h)
            outs.append(self.out(y))
        return torch.cat(outs, 1)


def test_a_layer_called_step_by_step_shares_each_ops_weights_with_its_first_call():
    from workloads.training import lower_training
    model = StepLoop()
    g = from_torch(model, (torch.randint(0, 100, (4, 7)), torch.randint(0, 100, (4, 5))))
    assert g.params() == sum(p.numel() for p in model.parameters())
    shared = g.meta["shared_params"]
    assert shared["decoder.l02"] == "decoder.l0"    # the recurrence's, not the projection's
    assert shared["decoder.l0.input_proj2"] == "decoder.l0.input_proj"
    assert g.op("decoder.l02").inputs[1] == "decoder.l0"   # started where the call before ended
    t = lower_training(g)
    assert t.op("decoder.l05.grad_weight").out.shape == t.op("decoder.l0.grad_weight").out.shape


class SkipLSTM(nn.Module):
    """An audio codec's LSTM block: (N, C, T) maps permuted to (T, N, C) for a sequence-first
    LSTM, its input added back, permuted back for the convolution after it."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(32, 32, num_layers=2)
        self.conv = nn.Conv1d(32, 8, 3, padding=1)

    def forward(self, x):
        x = x.permute(2, 0, 1)
        y, _ = self.lstm(x)
        return self.conv((y + x).permute(1, 2, 0))


def test_a_sequence_first_lstm_between_convolutions_imports():
    from benchmarks.import_sweep import torch_flops
    from tests.workloads.torchvision_zoo import matmul_flops
    model = SkipLSTM().eval()
    x = torch.randn(2, 32, 50)
    g = from_torch(model, x)
    assert g.op("lstm.l0.input_proj").in_specs[0].shape == (2, 50, 32)   # batch first
    assert g.topo()[-1].out.shape == (2, 8, 50)
    assert matmul_flops(g) == pytest.approx(torch_flops(model, x), rel=1e-9)
    assert g.params() == sum(p.numel() for p in model.parameters())


class LSTM2d(nn.Module):
    """Sequencer's block as its paper writes it: bidirectional LSTMs along the columns and
    the rows of an (N, H, W, C) map, each run over the batch folded with the other axis."""

    def __init__(self):
        super().__init__()
        self.rnn_v = nn.LSTM(16, 8, batch_first=True, bidirectional=True)
        self.rnn_h = nn.LSTM(16, 8, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(32, 16)

    def forward(self, x):
        n, h, w, c = x.shape
        v, _ = self.rnn_v(x.permute(0, 2, 1, 3).reshape(-1, h, c))
        v = v.reshape(n, w, h, -1).permute(0, 2, 1, 3)
        r, _ = self.rnn_h(x.reshape(-1, w, c))
        return self.fc(torch.cat([v, r.reshape(n, h, w, -1)], dim=-1))


def test_lstms_over_a_batch_folded_with_rows_import():
    from benchmarks.import_sweep import torch_flops
    from tests.workloads.torchvision_zoo import matmul_flops
    from validation.calibrate.torch_exec import GraphModule
    from workloads.training import lower_training
    model, x = LSTM2d().eval(), torch.randn(2, 6, 5, 16)
    g = from_torch(model, x)
    # the recurrence's batch is N x W columns (N x H rows): the folded dimensions before T
    assert g.op("rnn_v.l0").out.shape == (2, 5, 6, 16)
    assert g.op("rnn_h.l0").out.shape == (2, 6, 5, 16)
    assert matmul_flops(g) == pytest.approx(torch_flops(model, x), rel=1e-9)
    assert g.params() == sum(p.numel() for p in model.parameters())
    assert tuple(GraphModule(g)(x).shape) == (2, 6, 5, 16)
    assert sum(op.params for op in lower_training(g).phase("update")) == g.params()
