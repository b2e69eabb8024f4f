"""Recurrent models as users write them (tutorials, speech and OCR repositories): a sentiment
classifier on the last hidden states, a speech model's convolutions then bidirectional GRUs,
a CRNN, a time-series forecaster, an attention seq2seq, a decoder started from its encoder's
final state (GNMT's, the PyTorch tutorial's), an LSTMCell decoding step by step with additive
attention; and one that stays out, a padded batch packed
for the LSTM. The import sweep reads them (benchmarks/import_sweep.py, user_case_table)."""
from __future__ import annotations

import torch
from torch import nn

VOCAB, EMBED = 1000, 64


class LSTMClassifier(nn.Module):
    """Embedding, a two-layer bidirectional LSTM, both directions' last h concatenated."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, EMBED)
        self.lstm = nn.LSTM(EMBED, 96, num_layers=2, batch_first=True, bidirectional=True,
                            dropout=0.3)
        self.fc = nn.Linear(2 * 96, 2)

    def forward(self, ids):
        _, (h, _) = self.lstm(self.embed(ids))
        return self.fc(torch.cat((h[-2], h[-1]), dim=1))


class SpeechGRU(nn.Module):
    """DeepSpeech 2's shape: 2-D convolutions over (frequency, time), the channels and
    frequencies of each frame flattened, three bidirectional GRUs, per-frame logits (CTC)."""

    def __init__(self, mels=40, hidden=128, chars=29):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, (11, 11), stride=(2, 2), padding=(5, 5)), nn.BatchNorm2d(16),
            nn.Hardtanh(0, 20, inplace=True),
            nn.Conv2d(16, 16, (11, 11), stride=(2, 1), padding=(5, 5)), nn.BatchNorm2d(16),
            nn.Hardtanh(0, 20, inplace=True))
        self.rnn = nn.GRU(16 * (mels // 4), hidden, num_layers=3, batch_first=True,
                          bidirectional=True)
        self.fc = nn.Linear(2 * hidden, chars)

    def forward(self, spectrogram):               # (N, 1, mels, frames)
        x = self.conv(spectrogram)                # (N, C, F, T)
        n, c, f, t = x.shape
        x = x.permute(0, 3, 1, 2).reshape(n, t, c * f)
        y, _ = self.rnn(x)
        return self.fc(y)


class CRNN(nn.Module):
    """Text recognition: a CNN to a one-row map, its columns a sequence, a BiLSTM, per-column
    characters."""

    def __init__(self, classes=37):
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
            nn.MaxPool2d((8, 1)))
        self.rnn = nn.LSTM(128, 64, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(128, classes)

    def forward(self, x):                         # (N, 1, 32, W)
        features = self.cnn(x).squeeze(2).permute(0, 2, 1)   # (N, W / 4, 128)
        return self.fc(self.rnn(features)[0])


class Forecaster(nn.Module):
    """A multivariate series: an LSTM with a projection, the last step's output to the next
    values, and a GRU head over the same steps."""

    def __init__(self, features=8):
        super().__init__()
        self.lstm = nn.LSTM(features, 128, batch_first=True, proj_size=32)
        self.gru = nn.GRU(32, 32, batch_first=True)
        self.out = nn.Linear(32, features)

    def forward(self, series):
        y, _ = self.lstm(series)
        y, _ = self.gru(y)
        return self.out(y[:, -1, :])


class AttentionSeq2Seq(nn.Module):
    """An encoder LSTM over the source, a decoder LSTM over the shifted target, Luong's dot
    attention of each target step over the source steps, logits per target step."""

    def __init__(self, hidden=128):
        super().__init__()
        self.src_embed = nn.Embedding(VOCAB, EMBED)
        self.tgt_embed = nn.Embedding(VOCAB, EMBED)
        self.encoder = nn.LSTM(EMBED, hidden, num_layers=2, batch_first=True)
        self.decoder = nn.LSTM(EMBED, hidden, num_layers=2, batch_first=True)
        self.combine = nn.Linear(2 * hidden, hidden)
        self.out = nn.Linear(hidden, VOCAB)

    def forward(self, src, tgt):
        memory, _ = self.encoder(self.src_embed(src))
        queries, _ = self.decoder(self.tgt_embed(tgt))
        weights = torch.softmax(queries @ memory.transpose(1, 2), dim=-1)
        context = weights @ memory
        return self.out(torch.tanh(self.combine(torch.cat((queries, context), dim=-1))))


class PackedClassifier(nn.Module):
    """Padded sentences packed by their lengths before the LSTM (refused: packed sequences)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, EMBED)
        self.lstm = nn.LSTM(EMBED, 64, batch_first=True)
        self.fc = nn.Linear(64, 2)

    def forward(self, ids):
        lengths = (ids != 0).sum(1)
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths.cpu(),
                                                   batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.fc(h[-1])


class StateSeq2Seq(nn.Module):
    """GNMT's and the PyTorch tutorial's decoder, started from the encoder's final (h, c)."""

    def __init__(self, hidden=128):
        super().__init__()
        self.src_embed = nn.Embedding(VOCAB, EMBED)
        self.tgt_embed = nn.Embedding(VOCAB, EMBED)
        self.encoder = nn.LSTM(EMBED, hidden, num_layers=2, batch_first=True)
        self.decoder = nn.LSTM(EMBED, hidden, num_layers=2, batch_first=True)
        self.out = nn.Linear(hidden, VOCAB)

    def forward(self, src, tgt):
        _, state = self.encoder(self.src_embed(src))
        y, _ = self.decoder(self.tgt_embed(tgt), state)
        return self.out(y)


class CellAttentionDecoder(nn.Module):
    """Bahdanau-style decoding as tutorials write it: a bidirectional GRU encoder, then an
    LSTMCell per target step fed the previous token's embedding and an additive-attention
    context, started from the encoder's last output."""

    def __init__(self, hidden=128):
        super().__init__()
        self.src_embed = nn.Embedding(VOCAB, EMBED)
        self.tgt_embed = nn.Embedding(VOCAB, EMBED)
        self.encoder = nn.GRU(EMBED, hidden // 2, batch_first=True, bidirectional=True)
        self.keys = nn.Linear(hidden, hidden)
        self.query = nn.Linear(hidden, hidden)
        self.energy = nn.Linear(hidden, 1)
        self.cell = nn.LSTMCell(EMBED + hidden, hidden)
        self.out = nn.Linear(hidden, VOCAB)

    def forward(self, src, tgt):
        memory, _ = self.encoder(self.src_embed(src))
        keys, embedded = self.keys(memory), self.tgt_embed(tgt)
        h, c = memory[:, -1], torch.zeros(src.shape[0], memory.shape[-1])
        logits = []
        for t in range(tgt.shape[1]):
            energy = self.energy(torch.tanh(keys + self.query(h).unsqueeze(1)))
            weights = torch.softmax(energy, dim=1)
            context = (weights * memory).sum(1)
            h, c = self.cell(torch.cat((embedded[:, t], context), dim=1), (h, c))
            logits.append(self.out(h))
        return torch.stack(logits, dim=1)


def _ids(*shape):
    return torch.randint(1, VOCAB, shape)


RECURRENT_CASES = {
    "lstm-classifier": lambda: (LSTMClassifier(), _ids(8, 40)),
    "speech-conv-bigru": lambda: (SpeechGRU(), torch.randn(4, 1, 40, 200)),
    "crnn-bilstm": lambda: (CRNN(), torch.randn(8, 1, 32, 128)),
    "lstm-proj-forecaster": lambda: (Forecaster(), torch.randn(16, 48, 8)),
    "lstm-attention-seq2seq": lambda: (AttentionSeq2Seq(), (_ids(4, 30), _ids(4, 25))),
    "lstmcell-attention-decoder": lambda: (CellAttentionDecoder(), (_ids(4, 20), _ids(4, 8))),
    "lstm-packed-padded": lambda: (PackedClassifier(), _ids(8, 40)),
    "lstm-seq2seq-encoder-state": lambda: (StateSeq2Seq(), (_ids(4, 30), _ids(4, 25))),
}
