"""Architectures for whole-model init, written here, each with example inputs,
and the measurement that judges an init: one forward and one backward pass.

`ZOO` maps a name to a factory returning (model, example_inputs). `profile`
measures the std of every weight layer's output (Linear, Conv, ConvTranspose,
LSTM, MultiheadAttention, Embedding, in call order) and of the gradient with
respect to it, for a unit-variance random gradient at the output.

The models are small enough for a CPU test run, and cover the kinds whose
dataflow the structure alone does not show: activations called in forward(),
residual additions with and without normalization, small feature maps where
zero padding matters, skip concatenations, gates, custom activations, tied
embeddings.
"""
import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

import varinit


class MLP(nn.Module):
    def __init__(self, depth, width, act):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.act = act

    def forward(self, x):
        for layer in self.layers:
            x = self.act(layer(x))
        return x


class BasicBlock(nn.Module):
    """torchvision's basic block: relu called in forward(), optional BatchNorm."""

    def __init__(self, channels, batch_norm):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm)
        self.bn1 = nn.BatchNorm2d(channels) if batch_norm else nn.Identity()
        self.bn2 = nn.BatchNorm2d(channels) if batch_norm else nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + x)


class ResNet(nn.Module):
    def __init__(self, blocks=8, channels=32, batch_norm=True, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.Sequential(*(BasicBlock(channels, batch_norm) for _ in range(blocks)))
        self.head = nn.Linear(channels, classes)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = self.blocks(x)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Bottleneck(nn.Module):
    """torchvision's bottleneck block: 1x1, 3x3 (with the stage's stride), 1x1, each
    followed by BatchNorm; one in-place ReLU module called three times; a strided
    1x1 conv and BatchNorm on the skip where the shape changes."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        width, out = planes, planes * 4
        self.conv1, self.bn1 = nn.Conv2d(inplanes, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class BottleneckResNet(nn.Module):
    """A ResNet-50-shaped network, narrow and shallow: a BatchNorm stem with max
    pooling, then stages of bottleneck blocks, the first of each with a projection."""

    def __init__(self, stages=(3, 4, 3), base=8, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, base, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        blocks, inplanes = [], base
        for i, count in enumerate(stages):
            planes = base * 2 ** i
            for j in range(count):
                blocks.append(Bottleneck(inplanes, planes, stride=2 if i > 0 and j == 0 else 1))
                inplanes = planes * 4
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(inplanes, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.blocks(x), 1), 1))


class DepthwiseSeparable(nn.Module):
    """MobileNet-style stack on a 4x4 map: a 3x3 depthwise conv there sees zero padding at 7 of 16 positions."""

    def __init__(self, depth=8, channels=64):
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 1)
        self.dw = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, groups=channels) for _ in range(depth))
        self.pw = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(depth))

    def forward(self, x):
        x = self.stem(x)
        for dw, pw in zip(self.dw, self.pw):
            x = F.relu(pw(F.relu(dw(x))))
        return x


class UNet(nn.Module):
    def __init__(self, channels=16):
        super().__init__()
        c = channels
        self.down1 = nn.Conv2d(3, c, 3, padding=1)
        self.down2 = nn.Conv2d(c, 2 * c, 3, padding=1)
        self.bottom = nn.Conv2d(2 * c, 2 * c, 3, padding=1)
        self.up2 = nn.ConvTranspose2d(2 * c, 2 * c, 2, stride=2)
        self.dec2 = nn.Conv2d(4 * c, c, 3, padding=1)
        self.up1 = nn.ConvTranspose2d(c, c, 2, stride=2)
        self.dec1 = nn.Conv2d(2 * c, c, 3, padding=1)
        self.out = nn.Conv2d(c, 3, 1)

    def forward(self, x):
        d1 = F.relu(self.down1(x))
        d2 = F.relu(self.down2(F.max_pool2d(d1, 2)))
        b = F.relu(self.bottom(F.max_pool2d(d2, 2)))
        u2 = F.relu(self.dec2(torch.cat([self.up2(b), d2], 1)))
        u1 = F.relu(self.dec1(torch.cat([self.up1(u2), d1], 1)))
        return self.out(u1)


class Inception(nn.Module):
    """Multi-branch blocks concatenated along channels, stacked."""

    def __init__(self, blocks=4, channels=32):
        super().__init__()
        b = channels // 4
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.ModuleList()
        for _ in range(blocks):
            self.blocks.append(nn.ModuleDict({
                "b1": nn.Conv2d(channels, b, 1),
                "b3a": nn.Conv2d(channels, b, 1), "b3b": nn.Conv2d(b, b, 3, padding=1),
                "b5a": nn.Conv2d(channels, b, 1), "b5b": nn.Conv2d(b, b, 5, padding=2),
                "bp": nn.Conv2d(channels, b, 1),
            }))

    def forward(self, x):
        x = F.relu(self.stem(x))
        for m in self.blocks:
            x = torch.cat([
                F.relu(m["b1"](x)),
                F.relu(m["b3b"](F.relu(m["b3a"](x)))),
                F.relu(m["b5b"](F.relu(m["b5a"](x)))),
                F.relu(m["bp"](F.max_pool2d(x, 3, stride=1, padding=1))),
            ], 1)
        return x


class SwiGLU(nn.Module):
    def __init__(self, width, hidden):
        super().__init__()
        self.gate_up = nn.Linear(width, 2 * hidden)
        self.down = nn.Linear(hidden, width)

    def forward(self, x):
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class GatedMLP(nn.Module):
    def __init__(self, depth=12, width=128):
        super().__init__()
        self.blocks = nn.ModuleList(SwiGLU(width, 2 * width) for _ in range(depth))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


class ScaledSwish(nn.Module):
    """A custom activation: x * sigmoid(1.5 x), in no gain table."""

    def forward(self, x):
        return x * torch.sigmoid(1.5 * x)


class ReluSquared(nn.Module):
    def forward(self, x):
        return torch.relu(x) ** 2


class PreLNBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyGPT(nn.Module):
    """Pre-LN decoder with token embeddings tied to the output head."""

    def __init__(self, vocab=512, d=64, heads=4, layers=6, context=32):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(context, d)
        self.blocks = nn.ModuleList(PreLNBlock(d, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.tok.weight

    def forward(self, ids):
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


class StackedLSTM(nn.Module):
    def __init__(self, inputs=32, hidden=64, layers=3):
        super().__init__()
        self.lstm = nn.LSTM(inputs, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, 8)

    def forward(self, x):
        return self.head(self.lstm(x)[0])


class CharGRU(nn.Module):
    """A character model: embedding, a 2-layer GRU, a head over the vocabulary."""

    def __init__(self, vocab=96, width=64, hidden=128):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.gru = nn.GRU(width, hidden, 2, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        return self.head(self.gru(self.embed(tokens))[0])


class LayerScaleBlock(nn.Module):
    """ConvNeXt's block: depthwise 7x7, LayerNorm, an inverted GELU MLP, a per-channel
    layer scale (1e-6 here, as ConvNeXt sets it) and stochastic depth on the branch.
    reshaped: the scale is stored (C,) and read as gamma.reshape(1, -1, 1, 1), as timm's does."""

    def __init__(self, channels, drop=0.1, reshaped=False):
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.fc1, self.fc2 = nn.Linear(channels, 4 * channels), nn.Linear(4 * channels, channels)
        self.layer_scale = nn.Parameter(torch.full((channels,) if reshaped else (channels, 1, 1), 1e-6))
        self.drop, self.reshaped = drop, reshaped

    def forward(self, x):
        h = self.dw(x).permute(0, 2, 3, 1)
        h = self.fc2(F.gelu(self.fc1(self.norm(h)))).permute(0, 3, 1, 2)
        h = (self.layer_scale.reshape(1, -1, 1, 1) if self.reshaped else self.layer_scale) * h
        if self.training and self.drop > 0:
            keep = x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(1 - self.drop) / (1 - self.drop)
            h = h * keep
        return x + h


class LayerScaleNet(nn.Module):
    def __init__(self, blocks=8, channels=48, classes=10, reshaped=False):
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 4, stride=4)
        self.blocks = nn.Sequential(*(LayerScaleBlock(channels, reshaped=reshaped) for _ in range(blocks)))
        self.norm = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(self.norm(x.mean((2, 3))))


class WindowBlock(nn.Module):
    """Swin's block without the shift: the map is zero padded to a multiple of the
    window, attention (written out: softmax(q k^T) @ v) runs in each window with the
    module's weights passed to F.linear, and the padding is cropped away."""

    def __init__(self, d, heads, window):
        super().__init__()
        self.heads, self.window = heads, window
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def attention(self, x):
        b, h, w, d = x.shape
        win = self.window
        x = F.pad(x, (0, 0, 0, (-w) % win, 0, (-h) % win))
        hp, wp = x.shape[1], x.shape[2]
        x = x.view(b, hp // win, win, wp // win, win, d).permute(0, 1, 3, 2, 4, 5).reshape(-1, win * win, d)
        q, k, v = F.linear(x, self.qkv.weight, self.qkv.bias).reshape(
            x.shape[0], win * win, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, dim=-1)
        x = (a @ v).transpose(1, 2).reshape(-1, win * win, d)
        x = F.linear(x, self.proj.weight, self.proj.bias)
        x = x.view(b, hp // win, wp // win, win, win, d).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, d)
        return x[:, :h, :w, :].contiguous()

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class WindowTransformer(nn.Module):
    """Patch embedding, then window-attention blocks on a 5x5 map with 4x4 windows:
    the windows hold 16 positions, of which the padding fills 7 to 15 in three of four."""

    def __init__(self, blocks=4, d=64, heads=4, window=4, classes=10):
        super().__init__()
        self.embed = nn.Conv2d(3, d, 4, stride=4)
        self.blocks = nn.Sequential(*(WindowBlock(d, heads, window) for _ in range(blocks)))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        x = self.blocks(self.embed(x).permute(0, 2, 3, 1))
        return self.head(self.norm(x).mean((1, 2)))


class WrittenRMSNorm(nn.Module):
    """Hugging Face's Llama RMSNorm, written out: x * rsqrt(mean(x^2) + eps) * weight."""

    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class TokenStack(nn.Module):
    """Token embedding, `depth` blocks made by `block(d)` in sequence, a written-out
    RMSNorm and a head over the vocabulary: a decoder's skeleton around its blocks."""

    def __init__(self, block, depth=4, d=64, vocab=256, head_bias=True, eps=1e-6):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(block(d) for _ in range(depth))
        self.norm = WrittenRMSNorm(d, eps)
        self.head = nn.Linear(d, vocab, bias=head_bias)

    def forward(self, ids):
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def _rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class LlamaBlock(nn.Module):
    """Pre-norm block as Llama writes it: rotary q and k, grouped key/value heads,
    causal scaled_dot_product_attention, a SwiGLU MLP, no biases."""

    def __init__(self, d, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, d // heads
        self.attn_norm, self.mlp_norm = WrittenRMSNorm(d), WrittenRMSNorm(d)
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, kv_heads * self.head_dim, bias=False)
        self.v = nn.Linear(d, kv_heads * self.head_dim, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.gate, self.up = nn.Linear(d, 4 * d, bias=False), nn.Linear(d, 4 * d, bias=False)
        self.down = nn.Linear(4 * d, d, bias=False)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        h = self.attn_norm(x)
        q = self.q(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        repeat = self.heads // self.kv_heads
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.o(a)
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class LlamaStyle(nn.Module):
    def __init__(self, vocab=256, d=64, heads=4, kv_heads=2, layers=6):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(LlamaBlock(d, heads, kv_heads) for _ in range(layers))
        self.norm, self.head = WrittenRMSNorm(d), nn.Linear(d, vocab, bias=False)
        self.register_buffer("inv_freq", 1.0 / 10000 ** (torch.arange(0, d // heads, 2).float() / (d // heads)),
                             persistent=False)

    def forward(self, ids):
        angles = torch.arange(ids.shape[1], device=ids.device).float()[:, None] * self.inv_freq[None, :]
        angles = torch.cat((angles, angles), dim=-1)
        cos, sin = angles.cos(), angles.sin()
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.head(self.norm(x))


class Conv1D(nn.Module):
    """Hugging Face's GPT-2 layer: weight stored (in, out), applied by torch.addmm."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.02)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class GPT2Block(nn.Module):
    """GPT-2's block as Hugging Face writes it: Conv1D layers, the tanh GELU written out,
    a key/value cache concatenated to an empty tensor, a causal mask from a buffer."""

    def __init__(self, d, heads, context):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = Conv1D(d, 3 * d), Conv1D(d, d)
        self.c_fc, self.c_out = Conv1D(d, 4 * d), Conv1D(4 * d, d)
        self.register_buffer("bias", torch.tril(torch.ones(context, context, dtype=torch.bool)), persistent=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        k = torch.cat([k.new_empty(0), k], dim=2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)
        scores = torch.where(self.bias[:t, :t], scores, torch.finfo(scores.dtype).min)
        a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.c_proj(a)
        h = self.c_fc(self.ln2(x))
        h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))
        return x + self.c_out(h)


class GPT2Style(nn.Module):
    def __init__(self, vocab=256, d=64, heads=4, layers=6, context=32):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(context, d)
        self.blocks = nn.ModuleList(GPT2Block(d, heads, context) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def init_with_warnings(model, x, **kwargs):
    """init_module with one call and no hints (generator 0; `kwargs` passed on): the
    report and the messages of the warnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = varinit.torch.init_module(model, x, generator=0, **kwargs)
    return report, [str(w.message) for w in caught]


def batchnorm_chain(depth=12, channels=32, activation=nn.ReLU):
    """conv, then `depth` times BatchNorm, the activation and a conv, without skips: the
    gradient grows by pi / (pi - 1) per norm after ReLU (Yang et al. 2019)."""
    layers = [nn.Conv2d(3, channels, 3, padding=1)]
    for _ in range(depth):
        layers += [nn.BatchNorm2d(channels), activation(), nn.Conv2d(channels, channels, 3, padding=1)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10))


def _images(batch=16, size=16):
    return torch.randn(batch, 3, size, size)


ZOO = {
    "mlp_relu": lambda: (MLP(20, 256, nn.ReLU()), torch.randn(256, 256)),
    "mlp_gelu": lambda: (MLP(30, 256, nn.GELU()), torch.randn(256, 256)),
    "mlp_tanh": lambda: (MLP(20, 256, nn.Tanh()), torch.randn(256, 256)),
    "mlp_custom_activation": lambda: (MLP(20, 256, ScaledSwish()), torch.randn(256, 256)),
    "resnet_batchnorm": lambda: (ResNet(batch_norm=True), _images()),
    "resnet_no_norm": lambda: (ResNet(batch_norm=False), _images()),
    "resnet_bottleneck": lambda: (BottleneckResNet(), _images(8, 64)),
    "depthwise_small_maps": lambda: (DepthwiseSeparable(), _images(32, 4)),
    "unet": lambda: (UNet(), _images(8, 16)),
    "inception": lambda: (Inception(), _images(8, 16)),
    "gated_mlp": lambda: (GatedMLP(), torch.randn(256, 128)),
    "transformer_pre_ln": lambda: (
        nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 256, activation="gelu", batch_first=True,
                                                         norm_first=True), 6, enable_nested_tensor=False),
        torch.randn(16, 32, 64)),
    "transformer_pre_ln_final_norm": lambda: (
        nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 256, activation="gelu", batch_first=True,
                                                         norm_first=True), 4, norm=nn.LayerNorm(64),
                              enable_nested_tensor=False),
        torch.randn(16, 32, 64)),
    "transformer_post_ln": lambda: (
        nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 256, activation="gelu", batch_first=True),
                              6, enable_nested_tensor=False),
        torch.randn(16, 32, 64)),
    "tiny_gpt_tied": lambda: (TinyGPT(), torch.randint(0, 512, (16, 32))),
    "lstm_stacked": lambda: (StackedLSTM(), torch.randn(16, 20, 32)),
    "char_gru": lambda: (CharGRU(), torch.randint(0, 96, (16, 40))),
    "convnext_layer_scale": lambda: (LayerScaleNet(), _images(8, 32)),
    "window_attention_padded": lambda: (WindowTransformer(), _images(8, 20)),
    "llama_style": lambda: (LlamaStyle(), torch.randint(0, 256, (8, 32))),
    "gpt2_conv1d": lambda: (GPT2Style(), torch.randint(0, 256, (8, 32))),
}
# A degree-2 homogeneous activation: no initialization keeps it stable over depth.
UNSTABLE = {"mlp_relu_squared": lambda: (MLP(12, 256, ReluSquared()), torch.randn(256, 256))}

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                 nn.ConvTranspose3d, nn.LSTM, nn.GRU, nn.MultiheadAttention, nn.Embedding, Conv1D)


def profile(model, inputs, seed=0, layers=WEIGHT_LAYERS):
    """Per weight layer, in call order: (name, activation std, gradient std), and the output std.

    The model runs in its current mode on `inputs`; the gradient injected at the
    output is N(0, 1) from torch.Generator(seed). `layers`: the module classes measured.
    An embedding's positions that read its padding_idx are left out of its stds.
    """
    records, handles = [], []

    def hook(name):
        def record(module, args, output):
            out = output[0] if isinstance(output, tuple) else output
            if not isinstance(out, torch.Tensor) or not out.is_floating_point():
                return None
            out.retain_grad()
            # an embedding's padding row is zero and takes no gradient: its positions are left out
            # (behind a zero vector an RMSNorm's gradient is 1 / sqrt(eps), reaching no parameter)
            padded = isinstance(module, nn.Embedding) and module.padding_idx is not None
            records.append((name, out, args[0] != module.padding_idx if padded else None))
            # what follows gets a copy: an in-place activation after the layer
            # (ReLU(inplace=True)) must not change the recorded output or its gradient
            copy = out.clone()
            return (copy,) + tuple(output[1:]) if isinstance(output, tuple) else copy
        return record

    for name, module in model.named_modules():
        if isinstance(module, layers) and not (
                isinstance(module, nn.Linear) and name.endswith("out_proj")):
            handles.append(module.register_forward_hook(hook(name)))
    try:
        y = model(inputs)
    finally:
        for h in handles:
            h.remove()
    g = varinit.normal_(torch.empty_like(y, memory_format=torch.contiguous_format),
                        generator=varinit.Generator(seed).stream("upstream 0"))
    y.backward(g)
    rows = [(name, float(_kept(t.detach(), live).std()),
             float(_kept(t.grad, live).std()) if t.grad is not None else math.nan)
            for name, t, live in records]
    return rows, float(y.detach().std())


def _kept(t, live):
    """t at the positions `live` marks (all of them when None, or when none or all are)."""
    return t if live is None or not bool(live.any()) or bool(live.all()) else t[live]


def verdict(rows, output_std):
    """The figures the issue judges: activation std max/min over depth, output std,
    and the gradient std ratio between the first and the last hidden layer."""
    act = [r[1] for r in rows]
    grads = [r[2] for r in rows if math.isfinite(r[2])]
    hidden = grads[:-1] if len(grads) > 1 else grads
    return {
        "act_ratio": max(act) / min(act) if min(act) > 0 else math.inf,
        "output_std": output_std,
        "grad_ratio": hidden[0] / hidden[-1] if hidden and hidden[-1] > 0 else math.inf,
    }
