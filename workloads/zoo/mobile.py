"""Mobile networks as torchvision builds them, on ImageNet (3x224x224): MobileNetV2 (Sandler
et al. 2018) and MobileNetV3-Large and -Small (Howard et al. 2019), and the blocks that
EfficientNet shares with them (efficientnet.py).

They stack inverted residual blocks: a 1x1 conv expanding the channels, a depthwise
k x k conv (groups = channels), optionally a squeeze-and-excitation gate, and a 1x1 conv
projecting back without an activation; where the block keeps its size and channels, the
input is added back. Every conv is torchvision's Conv2dNormActivation (conv without bias,
batch norm, activation: .0, .1, .2). The gate (SqueezeExcitation) is a global average pool,
1x1 conv, activation, 1x1 conv, sigmoid-like scale and the broadcast product. Op names are
torchvision's module paths (features.3.conv.1.0, features.4.block.2.fc1).

Parameters: mobilenet_v2 3,504,872; mobilenet_v3_large 5,483,032; mobilenet_v3_small
2,542,856 (torchvision's weights tables).
"""
from __future__ import annotations

from ..graph import OpGraph
from ._base import check_classes, check_width, imagenet_preset, start


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's make_divisible: channels rounded to a multiple of 8, never below 90%
    of the value asked for."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _act(b, x: str, kind: str | None, name: str) -> str:
    if kind is None:
        return x
    if kind == "relu":
        return b.relu(x, name=name)
    if kind == "relu6":   # nn.ReLU6 is hardtanh from 0 to 6
        return b.activation(x, "hardtanh", min_val=0.0, max_val=6.0, name=name)
    return b.activation(x, kind, name=name)


def conv_norm_act(b, x: str, out: int, kernel: int, name: str, stride: int = 1,
                  groups: int = 1, act: str | None = "relu") -> str:
    """torchvision's Conv2dNormActivation: conv (no bias, padding k // 2), batch norm and the
    activation, named <name>.0, <name>.1, <name>.2."""
    with b.scope(name):
        x = b.conv2d(x, out, kernel, stride=stride, padding=(kernel - 1) // 2, groups=groups,
                     name="0")
        return _act(b, b.batchnorm(x, name="1"), act, "2")


def squeeze_excitation(b, x: str, squeeze: int, act: str, scale: str, name: str) -> str:
    """torchvision's SqueezeExcitation: pool, fc1, activation, fc2, scale_activation, and the
    product of the input with the (N, C, 1, 1) gate."""
    channels = b.spec(x).shape[1]
    with b.scope(name):
        s = b.adaptive_avgpool(x, (1, 1), name="avgpool")
        s = _act(b, b.conv2d(s, squeeze, 1, bias=True, name="fc1"), act, "activation")
        s = b.activation(b.conv2d(s, channels, 1, bias=True, name="fc2"), scale,
                         name="scale_activation")
        return b.mul(x, s, name="mul")


def stochastic_depth(b, x: str, p: float, name: str, call: str = "stochastic_depth") -> str:
    """torchvision.ops.StochasticDepth(p, "row") in training, the module `name`: one draw per
    sample; p = 0 is the identity, as the import makes it. `call` names the op (a module
    called twice makes stochastic_depth, then stochastic_depth2)."""
    if p == 0.0:
        return x
    mask_shape = (b.spec(x).shape[0], *(1,) * (len(b.spec(x).shape) - 1))
    with b.scope(name):
        return b.op("dropout_broadcast", [x], name=call, p=p, mask_shape=mask_shape)


def classifier_head(b, x: str, hidden: list[tuple[int, str]], dropout: float,
                     num_classes: int, pool: str = "avgpool") -> None:
    """Pool, flatten, then the classifier's layers (linear and activation pairs), dropout and
    the last linear layer, numbered as torchvision's nn.Sequential numbers them."""
    x = b.flatten(b.adaptive_avgpool(x, (1, 1), name=pool), name="flatten")
    index = 0
    with b.scope("classifier"):
        for features, act in hidden:
            x = _act(b, b.linear(x, features, name=str(index)), act, str(index + 1))
            index += 2
        x = b.dropout(x, dropout, name=str(index))
        b.linear(x, num_classes, name=str(index + 1))


def stem(name: str, batch: int, num_classes: int, input_size: int | None, dtype_bytes: int,
         channels: int, act: str, resolution: int = 224):
    """The builder and the first conv, features.0: 3x3, stride 2."""
    check_classes(num_classes)
    b = start(name, (3, resolution, resolution), batch, input_size, dtype_bytes)
    return b, conv_norm_act(b, b.input(), channels, 3, "features.0", stride=2, act=act)


# MobileNetV2: (expansion t, channels c, repeats n, first stride s), the paper's Table 2
_V2_SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
               (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2(batch: int = 1, num_classes: int = 1000, width: float = 1.0,
                 input_size: int | None = None, dtype_bytes: int = 4) -> OpGraph:
    channels = make_divisible(32 * check_width(width))
    b, x = stem("mobilenet_v2", batch, num_classes, input_size, dtype_bytes, channels, "relu6")
    index = 1
    for t, c, n, s in _V2_SETTING:
        out = make_divisible(c * width)
        for i in range(n):
            stride = s if i == 0 else 1
            with b.scope(f"features.{index}"), b.scope("conv"):
                hidden, y, layer = channels * t, x, 0
                if t != 1:
                    y = conv_norm_act(b, y, hidden, 1, "0", act="relu6")
                    layer = 1
                y = conv_norm_act(b, y, hidden, 3, str(layer), stride=stride, groups=hidden,
                                  act="relu6")
                y = b.batchnorm(b.conv2d(y, out, 1, name=str(layer + 1)),
                                name=str(layer + 2))
            if stride == 1 and channels == out:
                y = b.add(x, y, name=f"features.{index}.add")
            x, channels, index = y, out, index + 1
    x = conv_norm_act(b, x, make_divisible(1280 * max(1.0, width)), 1, f"features.{index}",
                      act="relu6")
    classifier_head(b, x, [], 0.2, num_classes, pool="adaptive_avgpool")
    return b.build()


# MobileNetV3-Large and -Small: (kernel, expanded, out, squeeze-excitation, activation,
# stride), the paper's Tables 1 and 2
_V3_LARGE = [(3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2),
             (3, 72, 24, False, "relu", 1), (5, 72, 40, True, "relu", 2),
             (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
             (3, 240, 80, False, "hardswish", 2), (3, 200, 80, False, "hardswish", 1),
             (3, 184, 80, False, "hardswish", 1), (3, 184, 80, False, "hardswish", 1),
             (3, 480, 112, True, "hardswish", 1), (3, 672, 112, True, "hardswish", 1),
             (5, 672, 160, True, "hardswish", 2), (5, 960, 160, True, "hardswish", 1),
             (5, 960, 160, True, "hardswish", 1)]


_V3_SMALL = [(3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2),
             (3, 88, 24, False, "relu", 1), (5, 96, 40, True, "hardswish", 2),
             (5, 240, 40, True, "hardswish", 1), (5, 240, 40, True, "hardswish", 1),
             (5, 120, 48, True, "hardswish", 1), (5, 144, 48, True, "hardswish", 1),
             (5, 288, 96, True, "hardswish", 2), (5, 576, 96, True, "hardswish", 1),
             (5, 576, 96, True, "hardswish", 1)]
# each size's blocks and the width of its classifier's hidden layer
V3_CONFIGS = {"mobilenet_v3_large": (_V3_LARGE, 1280), "mobilenet_v3_small": (_V3_SMALL, 1024)}


def _mobilenet_v3(name: str, batch: int, num_classes: int, width: float,
                  input_size: int | None, dtype_bytes: int) -> OpGraph:
    setting, last_channel = V3_CONFIGS[name]
    channels = make_divisible(16 * check_width(width))
    b, x = stem(name, batch, num_classes, input_size, dtype_bytes, channels, "hardswish")
    for index, (kernel, expanded, out, se, act, stride) in enumerate(setting, start=1):
        expanded, out = make_divisible(expanded * width), make_divisible(out * width)
        with b.scope(f"features.{index}"):
            with b.scope("block"):
                y, layer = x, 0
                if expanded != channels:
                    y, layer = conv_norm_act(b, y, expanded, 1, "0", act=act), 1
                y = conv_norm_act(b, y, expanded, kernel, str(layer), stride=stride,
                                  groups=expanded, act=act)
                if se:
                    layer += 1
                    y = squeeze_excitation(b, y, make_divisible(expanded // 4), "relu",
                                           "hardsigmoid", str(layer))
                y = conv_norm_act(b, y, out, 1, str(layer + 1), act=None)
            if stride == 1 and channels == out:
                y = b.add(y, x, name="add")
        x, channels = y, out
    x = conv_norm_act(b, x, 6 * channels, 1, f"features.{len(setting) + 1}", act="hardswish")
    classifier_head(b, x, [(make_divisible(last_channel * width), "hardswish")], 0.2,
                    num_classes)
    return b.build()


mobilenet_v3_large = imagenet_preset(_mobilenet_v3, "mobilenet_v3_large")
mobilenet_v3_small = imagenet_preset(_mobilenet_v3, "mobilenet_v3_small")
