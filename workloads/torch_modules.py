"""How torch_import lowers torch.nn modules: one handler per module type.

`ModuleLowering` is a mixin of `torch_import._Lowering` (which provides `b`, `tensor`, `value`,
`name`, `traced_shape` and `unsupported`); `module_handlers` maps each nn.Module type to a
handler (module, node, x) -> builder tensor, where `x()` reads the module's input. A module's
own parameters must equal those of the op it lowers to, so nothing is silently dropped; a
module called again (shared weights) lowers to the same ops without parameters, and
graph.meta["shared_params"] names the op that holds them. torch is never imported here.
"""
from __future__ import annotations

from .torch_layers import explicit_padding
from .torch_moe import is_moe_block
from .torch_state import LoweringState


class ModuleLowering(LoweringState):
    def module_handlers(self, nn) -> dict:
        act = self._module_activation
        table = {
            nn.Conv2d: self._conv2d_module, nn.Linear: self._linear_module,
            nn.BatchNorm2d: self._batchnorm_module, nn.BatchNorm1d: self._batchnorm_module,
            nn.BatchNorm3d: self._batchnorm_module, nn.Conv3d: self._conv3d_module,
            nn.AdaptiveAvgPool3d: self._adaptive_avgpool3d_module,
            nn.MaxPool3d: self._pool3d_module, nn.AvgPool3d: self._pool3d_module,
            nn.LayerNorm: self._layernorm_module, nn.GroupNorm: self._groupnorm_module,
            nn.ReLU: lambda m, node, x: self.b.relu(x(), name=self.name(""), inplace=m.inplace),
            nn.MaxPool2d: lambda m, node, x: self._maxpool(
                x(), m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode,
                m.return_indices, self.name("")),
            nn.AvgPool2d: lambda m, node, x: self._avgpool(
                x(), m.kernel_size, m.stride, m.padding, m.ceil_mode, self.name(""),
                m.count_include_pad, m.divisor_override),
            nn.AdaptiveAvgPool2d: lambda m, node, x: self._adaptive(x(), m.output_size,
                                                                    self.name("")),
            nn.Flatten: lambda m, node, x: self._flatten(node.args[0], m.start_dim, m.end_dim,
                                                         self.name("")),
            nn.Dropout: lambda m, node, x: self.b.dropout(x(), m.p, name=self.name("")),
            nn.ChannelShuffle: lambda m, node, x: self.b.channel_shuffle(x(), m.groups,
                                                                         name=self.name("")),
            nn.Identity: lambda m, node, x: self.value(node.args[0]),
            # nn.ZeroPad2d / ConstantPad2d: F.pad of the last two dimensions (a negative pad
            # crops: RWKV's token shift, ZeroPad2d((0, 0, 1, -1)) of (N, T, C))
            nn.ZeroPad2d: lambda m, node, x: self._pad_spatial(x(), tuple(m.padding), 0.0),
            nn.ConstantPad2d: lambda m, node, x: self._pad_spatial(x(), tuple(m.padding),
                                                                   float(m.value)),
            nn.ReflectionPad1d: self._border_pad, nn.ReflectionPad2d: self._border_pad,
            nn.ReplicationPad1d: self._border_pad, nn.ReplicationPad2d: self._border_pad,
            nn.Conv1d: self._conv1d_module,
            nn.Dropout1d: self._feature_dropout_module, nn.Dropout2d: self._feature_dropout_module,
            nn.Dropout3d: self._feature_dropout_module,
            nn.ConvTranspose2d: lambda m, node, x: self._conv_transpose2d(x(), m, self.name("")),
            nn.Upsample: self._upsample_module, nn.UpsamplingNearest2d: self._upsample_module,
            nn.UpsamplingBilinear2d: self._upsample_module,
            nn.AdaptiveAvgPool1d: self._adaptive_avgpool1d_module,
            nn.AvgPool1d: self._pool1d_module, nn.MaxPool1d: self._pool1d_module,
            nn.Unfold: lambda m, node, x: self.unfold(x(), m.kernel_size, m.dilation, m.padding,
                                                      m.stride, self.name("")),
            nn.Fold: lambda m, node, x: self.unfold(x(), m.kernel_size, m.dilation, m.padding,
                                                    m.stride, self.name(""), kind="fold"),
            nn.Softmax: lambda m, node, x: self.b.softmax(
                x(), self.module_dim(node, -1 if m.dim is None else m.dim), name=self.name("")),
            nn.LocalResponseNorm: lambda m, node, x: self.b.op(
                "lrn", [x()], name=self.name(""), size=m.size, alpha=m.alpha, beta=m.beta, k=m.k),
        }
        for cls in (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d):
            table[cls] = self._instancenorm_module
        for cls in (nn.Tanh, nn.Sigmoid, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Mish,
                    nn.SELU, nn.Hardtanh, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Softplus):
            table[cls] = lambda m, node, x: self._activation(x(), *act(m), self.name(""))
        return table

    def _adaptive_avgpool1d_module(self, m, node, x):
        """nn.AdaptiveAvgPool1d(1) of (N, C, L) (a pooler over tokens): the mean over L."""
        if m.output_size not in (1, (1,)):
            raise self.unsupported(f"pools to {m.output_size}; only output_size 1 (the mean "
                                   "over the last dimension) is supported")
        return self.b.mean(x(), 1, keepdim=True, name=self.name(""))

    def _adaptive_avgpool3d_module(self, m, node, x):
        """nn.AdaptiveAvgPool3d(1) of (N, C, T, H, W) (a video network's pooler): the mean
        over T, H and W, kept as (N, C, 1, 1, 1)."""
        size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,) * 3
        if any(s != 1 for s in size):
            raise self.unsupported(f"pools to {m.output_size}; only output_size 1 (the mean "
                                   "over time, height and width) is supported")
        return self.b.mean(x(), 3, keepdim=True, name=self.name(""))

    def _pool3d_module(self, m, node, x):
        """nn.MaxPool3d / nn.AvgPool3d of (N, C, T, H, W): its output shape computed here, as
        PyTorch's pooling arithmetic (ceil_mode: a last window starting inside the input or
        its left padding)."""
        def triple(v):
            return tuple(int(i) for i in v) if isinstance(v, (tuple, list)) else (int(v),) * 3
        y, is_max = x(), isinstance(m, self.nn.MaxPool3d)
        shape = self.b.spec(y).shape
        if len(shape) != 5 or (is_max and m.return_indices) or \
                (not is_max and m.divisor_override is not None):
            raise self.unsupported(f"pools a tensor of shape {shape}; only (N, C, T, H, W) "
                                   "clips, without indices or a divisor override, are "
                                   "supported")
        k, p = triple(m.kernel_size), triple(m.padding)
        s = triple(m.stride if m.stride is not None else m.kernel_size)
        d = triple(m.dilation) if is_max else (1, 1, 1)
        out = []
        for size, kk, st, pad, dil in zip(shape[2:], k, s, p, d, strict=True):
            span = size + 2 * pad - dil * (kk - 1) - 1
            n = (-(-span // st) if m.ceil_mode else span // st) + 1
            out.append(n - 1 if m.ceil_mode and (n - 1) * st >= size + pad else n)
        attrs = dict(kernel=k, stride=s, padding=p, ceil_mode=bool(m.ceil_mode))
        attrs.update(dilation=d) if is_max else \
            attrs.update(count_include_pad=bool(m.count_include_pad))
        return self._op("maxpool3d" if is_max else "avgpool3d", [y], (*shape[:2], *out),
                        self.name(""), attrs)

    def _conv3d_module(self, m, node, x):
        padding = explicit_padding(m.padding, m.kernel_size, m.dilation)
        if m.padding_mode != "zeros" or padding is None:
            raise self.unsupported(f"has padding {m.padding!r} mode {m.padding_mode!r}; "
                                   "only zero padding, explicit or the same on each side, is "
                                   "supported")
        return self.conv3d(x(), m.in_channels, m.out_channels, m.kernel_size, m.stride,
                           padding, m.dilation, m.groups, m.bias is not None, self.name(""))

    def _weight_normed(self, m) -> bool:
        """A layer whose weight is reparametrized by weight norm alone
        (torch.nn.utils.parametrizations.weight_norm: w = g * v / |v|, wav2vec2's positional
        convolution): lowered as its layer holding g and v; recomputing w from them, one pass
        over the weight per step, is not costed."""
        parametrizations = getattr(m, "parametrizations", None)
        base = type(m).__mro__[1]
        return parametrizations is not None and base in self.module_table and \
            list(parametrizations.keys()) == ["weight"] and \
            [type(p).__name__ for p in parametrizations["weight"]] == ["_WeightNorm"]

    def _lower_module(self, node, m):
        handler = self.module_table.get(type(m))
        if handler is None and is_moe_block(m):
            handler = self._moe_block
        normed = handler is None and self._weight_normed(m)
        if normed:
            handler = self.module_table[type(m).__mro__[1]]
        if handler is None:
            raise self.unsupported()
        own_params = sum(p.numel() for p in m.parameters())   # a leaf lowers its children
        ops_before = len(self.b.graph)
        out = handler(m, node, lambda: self.tensor(node.args[0]))
        if type(out).__name__ in ("_ParamRows", "_Gathered"):
            return out   # a table read by buffer ids: no op until it is added to something
        lowered = [op for op in self.b.graph.topo()[ops_before:] if op.params]
        if normed and len(lowered) == 1:   # the layer holds g and v, not the weight
            lowered[0].params = own_params
        if sum(op.params for op in lowered) != own_params:
            raise self.unsupported(f"has {own_params} parameters but is lowered with "
                                   f"{sum(op.params for op in lowered)}")
        if not own_params:
            return out
        first = self.first_call.setdefault(node.target, lowered[0].name)
        # each op of the first call, by position: a module of several ops (a recurrent
        # layer's projection and recurrence, attention's projections) called again shares
        # each op's parameters with the op in its place
        holders = self.first_call_ops.setdefault(node.target, [op.name for op in lowered])
        if len(holders) != len(lowered):
            holders = [first] * len(lowered)
        tied = {self.param_holder[id(p)] for p in m.parameters() if id(p) in self.param_holder}
        if first == lowered[0].name and tied:   # another layer's weights (tied): read, not held
            self._tie(m, lowered, sorted(tied)[0])
        elif first != lowered[0].name:   # shared weights: the compute again, the parameters once
            for op, holder in zip(lowered, holders, strict=True):
                op.params = 0
                self.b.graph.meta.setdefault("shared_params", {})[op.name] = holder
        elif len(lowered) == 1:
            # one op holds the module's parameters: a later direct read of one of them
            # (GPT-2's F.linear(x, wte.weight)) shares them instead of counting them again
            for name, _ in m.named_parameters():
                self.param_owner.setdefault(f"{node.target}.{name}", first)
        if first == lowered[0].name and not tied:
            for p in m.parameters():   # held here; a layer given the same tensor ties to it
                self.param_holder.setdefault(id(p), first)
        self.note_frozen(list(m.parameters()), [op.name for op in lowered if op.params])
        return out

    def _border_pad(self, m, node, x):
        """nn.ReflectionPad1d/2d and nn.ReplicationPad1d/2d: F.pad in its mode."""
        mode = "replicate" if type(m).__name__.startswith("Replication") else "reflect"
        return self._pad_spatial(x(), tuple(m.padding), 0.0, mode)

    def note_frozen(self, params: list, ops: list[str]) -> None:
        """Ops `ops` hold `params`: where the user froze them (requires_grad=False, a
        fine-tuned model's backbone) autograd makes them no gradient and no optimizer steps
        them (graph.meta["frozen_params"], read by workloads/training.py). A layer that
        freezes some of its parameters only is refused: its op holds them all."""
        frozen = [p for p in params if not p.requires_grad]
        if not frozen or not ops:
            return
        if len(frozen) != len(params):
            raise self.unsupported(f"freezes {len(frozen)} of its {len(params)} parameters "
                                   "(requires_grad=False); only a layer frozen whole or "
                                   "trained whole is supported")
        self.frozen_ops.update(ops)

    def _tie(self, m, lowered, holder: str) -> None:
        """A layer whose weight is another layer's (HF's lm_head.weight = wte.weight): it holds
        only its own parameters (a masked-LM decoder's bias, or none), and the gradient of the
        tied weight goes to the holder's update."""
        own = [p for p in m.parameters() if id(p) not in self.param_holder]
        weight = getattr(m, "weight", None)
        all_tied, weight_alone = not own, len(own) == sum(1 for _ in m.parameters()) - 1
        if len(lowered) != 1 or weight is None or id(weight) not in self.param_holder \
                or not (all_tied or weight_alone):
            raise self.unsupported(f"shares some parameters with {holder!r} (tied weights) "
                                   "other than its weight; only a tied weight, with or "
                                   "without a bias of the layer's own, is supported")
        lowered[0].params = sum(p.numel() for p in own)
        for p in own:
            self.param_holder.setdefault(id(p), lowered[0].name)
        self.b.graph.meta.setdefault("shared_params", {})[lowered[0].name] = holder

    # -- layers ----------------------------------------------------------------------------
    def _conv2d_module(self, m, node, x):
        padding = explicit_padding(m.padding, m.kernel_size, m.dilation)
        if m.padding_mode != "zeros" or padding is None:
            raise self.unsupported(f"has padding {m.padding!r} mode {m.padding_mode!r}; "
                                   "only zero padding, explicit or the same on each side, is "
                                   "supported")
        return self.conv_memory_format(node, self.b.conv2d(
            x(), m.out_channels, m.kernel_size, stride=m.stride, padding=padding,
            dilation=m.dilation, groups=m.groups, bias=m.bias is not None, name=self.name("")))

    def _conv1d_module(self, m, node, x):
        padding = explicit_padding(m.padding, m.kernel_size, m.dilation)
        if m.padding_mode != "zeros" or padding is None:
            raise self.unsupported(f"has padding {m.padding!r} mode {m.padding_mode!r}; "
                                   "only zero padding, explicit or the same on each side, is "
                                   "supported")
        return self._conv1d(x(), m.out_channels, m.kernel_size, m.stride, padding, m.dilation,
                            m.groups, m.bias is not None, self.name(""))[0]

    def _instancenorm_module(self, m, node, x):
        """A group norm with a group per channel: the statistics of each sample's channel."""
        if m.track_running_stats:
            raise self.unsupported("tracks running statistics, which it normalises with in "
                                   "eval mode; only statistics of the input are modelled")
        y = x()
        return self.b.groupnorm(y, self.b.spec(y).shape[1], m.affine, name=self.name(""),
                                bias=m.bias is not None)

    def _feature_dropout_module(self, m, node, x):
        y = x()
        return self._masked_dropout(y, m.p, self._channel_mask(y), self.name(""))

    def _upsample_module(self, m, node, x):
        # UpsamplingBilinear2d is nn.Upsample(mode='bilinear', align_corners=True)
        return self._upsample(x(), m.mode, m.align_corners, False, self.name(""))

    def _linear_module(self, m, node, x):
        return self.b.linear(x(), m.out_features, bias=m.bias is not None, name=self.name(""))

    def _batchnorm_module(self, m, node, x):   # BatchNorm1d: (batch, features)
        return self.b.batchnorm(x(), name=self.name(""), affine=m.affine)

    def _layernorm_module(self, m, node, x):
        return self.b.layernorm(x(), m.normalized_shape, m.elementwise_affine,
                                name=self.name(""), bias=m.bias is not None)

    def _groupnorm_module(self, m, node, x):
        return self.b.groupnorm(x(), m.num_groups, m.affine, name=self.name(""),
                                bias=m.bias is not None)

    def _module_activation(self, m) -> tuple[str, dict]:
        """(kind, attributes) of an activation module."""
        nn = self.nn
        plain = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.SiLU: "silu",
                 nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid", nn.Mish: "mish",
                 nn.SELU: "selu"}
        if type(m) in plain:
            return plain[type(m)], {}
        if type(m) in (nn.Hardtanh, nn.ReLU6):  # ReLU6 is a Hardtanh from 0 to 6
            return "hardtanh", {"min_val": m.min_val, "max_val": m.max_val}
        if type(m) is nn.LeakyReLU:
            return "leaky_relu", {"negative_slope": m.negative_slope}
        if type(m) is nn.ELU:
            return "elu", {"alpha": m.alpha}
        if type(m) is nn.GELU:
            return "gelu", {"approximate": m.approximate}
        return "softplus", {"beta": m.beta, "threshold": m.threshold}
