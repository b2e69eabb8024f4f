"""How torch_import lowers nn.TransformerEncoderLayer / DecoderLayer (post- or pre-norm, ReLU
or GELU) and their nn.TransformerEncoder / Decoder stacks: each attention block through
torch_transformer's `_attention_block`, the feed-forward layers, dropout and layer norms.

`TransformerLayerLowering` is a mixin of `torch_import._Lowering`. torch is never imported
here.
"""
from __future__ import annotations

from .torch_state import LoweringState


def _sig_encoder_layer(src, src_mask=None, src_key_padding_mask=None, is_causal=False): ...
def _sig_decoder_layer(tgt, memory, tgt_mask=None, memory_mask=None,
                       tgt_key_padding_mask=None, memory_key_padding_mask=None,
                       tgt_is_causal=False, memory_is_causal=False): ...
def _sig_encoder(src, mask=None, src_key_padding_mask=None, is_causal=None): ...
def _sig_transformer(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                     src_key_padding_mask=None, tgt_key_padding_mask=None,
                     memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                     memory_is_causal=False): ...


class TransformerLayerLowering(LoweringState):
    def _feed_forward(self, m, x, prefix):
        def name(part):
            return self.name(f"{prefix}{part}")
        y = self.b.linear(x, m.linear1.out_features, bias=m.linear1.bias is not None,
                          name=name("linear1"))
        act, F, nn = m.activation, self.torch.nn.functional, self.nn
        if act is F.gelu or type(act) is nn.GELU and act.approximate == "none":
            y = self.b.activation(y, "gelu", name=name("activation"))
        elif act is F.relu or type(act) is nn.ReLU:
            y = self.b.relu(y, name=name("activation"), inplace=False)
        else:
            raise self.unsupported("has an activation other than ReLU or GELU")
        y = self._dropout(y, m.dropout.p, name("dropout"))
        y = self.b.linear(y, m.linear2.out_features, bias=m.linear2.bias is not None,
                          name=name("linear2"))
        return y

    def _dropout(self, x, p, name):
        return self.b.dropout(x, p, name=name) if p > 0 else x

    def _norm(self, norm, x, name):
        return self.b.layernorm(x, norm.normalized_shape, norm.elementwise_affine, name=name,
                                bias=norm.bias is not None)

    def _encoder_layer(self, m, x, causal, prefix):
        def name(part):
            return self.name(f"{prefix}{part}")

        def sa(y):
            y = self._attention_block(m.self_attn, y, [y, y], causal, False, f"{prefix}self_attn.")
            return self._dropout(y, m.dropout1.p, name("dropout1"))

        def ff(y):
            return self._dropout(self._feed_forward(m, y, prefix), m.dropout2.p, name("dropout2"))
        if m.norm_first:
            x = self.b.add(x, sa(self._norm(m.norm1, x, name("norm1"))), name=name("add1"))
            return self.b.add(x, ff(self._norm(m.norm2, x, name("norm2"))), name=name("add2"))
        x = self._norm(m.norm1, self.b.add(x, sa(x), name=name("add1")), name("norm1"))
        return self._norm(m.norm2, self.b.add(x, ff(x), name=name("add2")), name("norm2"))

    def _decoder_layer(self, m, x, memory, causal, prefix):
        def name(part):
            return self.name(f"{prefix}{part}")

        def sa(y):
            y = self._attention_block(m.self_attn, y, [y, y], causal, False, f"{prefix}self_attn.")
            return self._dropout(y, m.dropout1.p, name("dropout1"))

        def mha(y):
            y = self._attention_block(m.multihead_attn, y, [memory, memory], False, False,
                                      f"{prefix}multihead_attn.")
            return self._dropout(y, m.dropout2.p, name("dropout2"))

        def ff(y):
            return self._dropout(self._feed_forward(m, y, prefix), m.dropout3.p, name("dropout3"))
        blocks = ((sa, m.norm1), (mha, m.norm2), (ff, m.norm3))
        for i, (block, norm) in enumerate(blocks, 1):
            if m.norm_first:
                x = self.b.add(x, block(self._norm(norm, x, name(f"norm{i}"))),
                               name=name(f"add{i}"))
            else:
                x = self._norm(norm, self.b.add(x, block(x), name=name(f"add{i}")),
                               name(f"norm{i}"))
        return x

    def _encoder_layer_module(self, m, node, x):
        a = self.bind(_sig_encoder_layer, node)
        self._refuse_padding_masks(a)
        return self._encoder_layer(m, x(), bool(a["is_causal"]) or a["src_mask"] is not None,
                                   "")

    def _decoder_layer_module(self, m, node, x):
        a = self.bind(_sig_decoder_layer, node)
        self._refuse_padding_masks(a)
        causal = bool(a["tgt_is_causal"]) or a["tgt_mask"] is not None
        if a["memory_mask"] is not None or a["memory_is_causal"]:
            raise self.unsupported("masks the memory; only the target's mask is supported")
        return self._decoder_layer(m, x(), self.tensor(a["memory"]), causal, "")

    def _stack_module(self, m, node, x):
        """nn.TransformerEncoder / Decoder: each layer (layers.i.*), then the final norm."""
        decoder = type(m).__name__ == "TransformerDecoder"
        a = self.bind(_sig_decoder_layer if decoder else _sig_encoder, node)
        self._refuse_padding_masks(a)
        y = x()
        if decoder:
            causal = bool(a["tgt_is_causal"]) or a["tgt_mask"] is not None
            memory = self.tensor(a["memory"])
            if a["memory_mask"] is not None:
                raise self.unsupported("masks the memory; only the target's mask is supported")
        else:
            causal, memory = bool(a["is_causal"]) or a["mask"] is not None, None
        return self._layer_stack(m, y, memory, causal, "")

    def _layer_stack(self, m, y, memory, causal, prefix):
        """The layers of a TransformerEncoder (memory None) or Decoder, then its norm."""
        for i, layer in enumerate(m.layers):
            if memory is not None:
                y = self._decoder_layer(layer, y, memory, causal, f"{prefix}layers.{i}.")
            else:
                y = self._encoder_layer(layer, y, causal, f"{prefix}layers.{i}.")
        if m.norm is not None:
            y = self._norm(m.norm, y, self.name(f"{prefix}norm"))
        return y

    def _transformer_module(self, m, node, x):
        """nn.Transformer(src, tgt): its encoder on src, then its decoder on tgt reading the
        encoder's output (encoder.* and decoder.*), as its forward runs them."""
        if not m.batch_first:
            raise self.unsupported("has batch_first=False; only batch_first=True is supported")
        a = self.bind(_sig_transformer, node)
        self._refuse_padding_masks(a)
        if a["memory_mask"] is not None or a["memory_is_causal"]:
            raise self.unsupported("masks the memory; only the target's mask is supported")
        memory = self._layer_stack(m.encoder, x(), None,
                             bool(a["src_is_causal"]) or a["src_mask"] is not None, "encoder.")
        return self._layer_stack(m.decoder, self.tensor(a["tgt"]), memory,
                           bool(a["tgt_is_causal"]) or a["tgt_mask"] is not None, "decoder.")

    def _refuse_padding_masks(self, a):
        if any(a.get(k) is not None for k in ("src_key_padding_mask", "tgt_key_padding_mask",
                                               "memory_key_padding_mask")):
            raise self.unsupported("takes a key padding mask; only attention masks and "
                                   "is_causal are supported")
