"""Transformer networks of the calibration grid: the op kinds of sequence models on (N, S, D)
tensors at sizes that span what users train.

- decoder blocks (GPT-2's structure, one block): token and position embeddings, pre-norm
  causal attention, a tanh-GELU MLP (4x), dropout, a tied output layer over a small
  vocabulary; at sequence lengths 64, 128, 256 and 512, head dims 32 (8 heads, 256 wide) and
  64 (6 heads, 384 wide), attention fused (F.scaled_dot_product_attention) and written out
  (batched products, scaling, causal mask, softmax, dropout of the probabilities); and once
  with a 32768-token vocabulary (the token embedding's gradient, which writes the whole
  table, and the loss over as many classes, near a real vocabulary's size);
- encoder blocks on image patches (ViT's structure, one block): patch convolution, class
  token, learned positions, non-causal fused attention, an exact-GELU MLP, at 65 and 257
  tokens (head dim 64, 4 heads, 256 wide).

Attention costs grow with S^2 and the products' shape with the head dim, so both vary apart;
the batch keeps each step at 128-512 tokens (about 0.03-0.15 s on one core: the 19 cases add
well under a minute to a calibration). No validation case's sizes are used (the validated
GPT-2 and ViT-B/16 are 768 wide with 12 heads and vocabularies of 50257 and 1000 classes).
"""
from __future__ import annotations

from typing import Callable

from workloads.graph import OpGraph
from workloads.zoo import transformers as zt

SEQ_LENS = (64, 128, 256, 512)
# head dim -> (width, heads, vocabulary of the output layer)
DECODER_SIZES = {32: (256, 8, 2048), 64: (384, 6, 4096)}
# sequence length -> batch: 256-512 tokens a step
DECODER_BATCH = {64: 4, 128: 4, 256: 2, 512: 1}
# (head dim, sequence length, batch) of the decoder with the large vocabulary
LARGE_VOCAB, LARGE_VOCAB_CASE = 32768, (32, 64, 2)
# (input size, batch): 8-pixel patches make 64 + 1 and 256 + 1 tokens
ENCODER_CASES = ((64, 8), (128, 2))
DROPOUT = 0.1


def decoder_grid(batch: int, head_dim: int, seq_len: int, attention: str,
                 vocab: int | None = None) -> OpGraph:
    width, heads, default_vocab = DECODER_SIZES[head_dim]
    return zt.gpt2(batch, width=width, depth=1, heads=heads, seq_len=seq_len,
                   vocab_size=vocab or default_vocab, max_positions=max(SEQ_LENS),
                   dropout=DROPOUT, attention=attention,
                   name=decoder_name(head_dim, seq_len, attention, vocab))


def encoder_grid(batch: int, input_size: int) -> OpGraph:
    return zt.vit(batch, width=256, depth=1, heads=4, mlp=1024, patch=8, num_classes=10,
                  input_size=input_size, name=encoder_name(input_size))


def decoder_name(head_dim: int, seq_len: int, attention: str, vocab: int | None = None) -> str:
    return f"grid_decoder_hd{head_dim}_{attention}_s{seq_len}" + (f"_v{vocab}" if vocab else "")


def encoder_name(input_size: int) -> str:
    return f"grid_encoder_px{input_size}"


TRANSFORMER_NETWORKS: dict[str, Callable[..., OpGraph]] = {
    **{decoder_name(hd, s, form): (lambda batch, hd=hd, s=s, form=form:
                                   decoder_grid(batch, hd, s, form))
       for hd in DECODER_SIZES for form in zt.ATTENTION_FORMS for s in SEQ_LENS},
    decoder_name(*LARGE_VOCAB_CASE[:2], "fused", LARGE_VOCAB): (
        lambda batch: decoder_grid(batch, *LARGE_VOCAB_CASE[:2], "fused", LARGE_VOCAB)),
    **{encoder_name(size): (lambda batch, size=size: encoder_grid(batch, size))
       for size, _ in ENCODER_CASES},
}
TRANSFORMER_CASES: tuple[tuple[str, int], ...] = (
    *((decoder_name(hd, s, form), DECODER_BATCH[s])
      for hd in DECODER_SIZES for form in zt.ATTENTION_FORMS for s in SEQ_LENS),
    (decoder_name(*LARGE_VOCAB_CASE[:2], "fused", LARGE_VOCAB), LARGE_VOCAB_CASE[2]),
    *((encoder_name(size), batch) for size, batch in ENCODER_CASES),
)
