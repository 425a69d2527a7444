"""dlib's face-recognition ResNet as a PyTorch backbone: `dlib-face_resnet.v1`.

dlib ships a 29-layer residual network trained to tell about 7,500 identities apart on about 3 million faces
(metric learning; it never saw gender labels, and Davis King left LFW's people out of its training set).
Its 128-D descriptor of an aligned 150 px face chip is a face representation learned on far more people than
any of our training sets, which is what a gender head needs to transfer across datasets. The weights come with
the `face-recognition-models` package (`dlib_face_recognition_resnet_model_v1.dat`, public domain), no download.

The .dat file is dlib's own binary serialization. It is read here without dlib and without pickle: a bounds-
checked scan for the layer records (`con_`, `affine_`, `max_pool_`, `avg_pool_`, `fc_`) whose tensors are raw
little-endian float32, checked against the shape of the network. The PyTorch module reproduces dlib's
computation, including its input scaling ((pixel - channel mean) / 256) and its residual sum over tensors of
different sizes (zero-padded at the end), so its descriptors match dlib's to float precision (tests).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from unifiedgender.errors import UserError

DLIB_FACE_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_INPUT_SIZE = 150  # dlib's input_rgb_image_sized<150>
DLIB_FACE_MARGIN = 0.25  # dlib frames its chips with this padding (get_face_chip_details(shape, 150, 0.25))
DLIB_CHANNEL_MEAN = (122.782, 117.001, 104.298)  # input_rgb_image's averages, subtracted before / 256
_RECORD = re.compile(rb"\x01[\x04-\x0a](con_[45]|affine_|max_pool_2|avg_pool_2|fc_2)")


@dataclass(frozen=True)
class _Layer:
    kind: str  # "con", "affine", "max_pool", "avg_pool", "fc"
    params: np.ndarray | None = None  # None for pools
    shape: tuple[int, ...] = ()  # con: (filters, rows, cols, stride, padding); pools: (rows, cols, stride, padding); fc: (in, out)


class _Reader:
    """dlib's serialization primitives over bytes, bounds-checked."""

    def __init__(self, data: bytes, source: str, position: int = 0) -> None:
        self.data, self.source, self.position = data, source, position

    def fail(self, what: str) -> UserError:
        return UserError(f"{self.source}: not a dlib face-recognition network ({what} at byte {self.position}); "
                         f"use {DLIB_FACE_FILE} from the face-recognition-models package")

    def integer(self) -> int:
        if self.position >= len(self.data):
            raise self.fail("file ends early")
        head = self.data[self.position]
        size = head & 0x0F
        if size > 8 or self.position + 1 + size > len(self.data):
            raise self.fail("bad integer")
        value = int.from_bytes(self.data[self.position + 1 : self.position + 1 + size], "little")
        self.position += 1 + size
        return -value if head & 0x80 else value

    def tensor(self) -> np.ndarray:
        if self.integer() != 2:
            raise self.fail("unknown tensor version")
        dims = [self.integer() for _ in range(4)]
        count = math.prod(dims)  # Python integers: a hostile header cannot overflow it
        end = self.position + 4 * count
        if min(dims) < 0 or end > len(self.data):
            raise self.fail("tensor larger than the file")
        values = np.frombuffer(self.data, "<f4", count, self.position).astype(np.float32)
        self.position = end
        return values


def read_dlib_layers(path: str | os.PathLike[str]) -> list[_Layer]:
    """The parameterised and pooling layers of a dlib DNN file, input first (pools: to check the network's shape)."""
    data = Path(path).read_bytes()
    reader = _Reader(data, str(path))
    layers: list[_Layer] = []
    while (match := _RECORD.search(data, reader.position)) is not None:
        reader.position = match.end()
        name = match.group(1).decode()
        if name.startswith("con_"):
            params = reader.tensor()
            filters, rows, cols, stride_y, stride_x, pad_y, pad_x = (reader.integer() for _ in range(7))
            if stride_y != stride_x or pad_y != pad_x or rows != cols:
                raise reader.fail("non-square convolution")
            layers.append(_Layer("con", params, (filters, rows, cols, stride_y, pad_y)))
        elif name == "affine_":
            layers.append(_Layer("affine", reader.tensor()))
        elif name == "fc_2":
            outputs, inputs = reader.integer(), reader.integer()
            params = reader.tensor()
            if params.size != inputs * outputs:
                raise reader.fail("fully connected layer with a bias")
            layers.append(_Layer("fc", params, (inputs, outputs)))
        else:
            rows, cols, stride_y, stride_x, pad_y, pad_x = (reader.integer() for _ in range(6))
            layers.append(_Layer(name[:-2], None, (rows, cols, stride_y, pad_y)))
    return layers


class _Affine(nn.Module):
    """dlib's affine layer (batch norm folded into a per-channel scale and shift)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def _padded_sum(y: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the sum over the larger of the two shapes, each tensor zero-padded at the end. In this
    network the block output never has fewer channels, nor more rows or columns, than its shortcut."""
    y = F.pad(y, (0, shortcut.shape[3] - y.shape[3], 0, shortcut.shape[2] - y.shape[2]))
    return y + F.pad(shortcut, (0, 0, 0, 0, 0, y.shape[1] - shortcut.shape[1]))


class _Residual(nn.Module):
    """conv-affine-relu-conv-affine plus the input (average-pooled 2x2 when the block downsamples), then relu."""

    def __init__(self, channels_in: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels, 3, stride, 0 if stride > 1 else 1)
        self.affine1 = _Affine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.affine2 = _Affine(channels)
        self.downsample = stride > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.downsample else x
        return F.relu(_padded_sum(y, shortcut))


# (channels, stride) of the residual blocks, input first: dlib's alevel4 ... alevel0
DLIB_FACE_BLOCKS = [(32, 1)] * 3 + [(64, 2)] + [(64, 1)] * 3 + [(128, 2)] + [(128, 1)] * 2 + [(256, 2)] + [(256, 1)] * 2 + [(256, 2)]


class DlibFaceResNet(nn.Module):
    """Input standardised with `DLIB_DATA_CONFIG` (i.e. (pixel - mean) / 256) -> the 128-D face descriptor."""

    num_features = 128

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 7, 2, 0), _Affine(32), nn.ReLU(), nn.MaxPool2d(3, 2))
        blocks, channels_in = [], 32
        for channels, stride in DLIB_FACE_BLOCKS:
            blocks.append(_Residual(channels_in, channels, stride))
            channels_in = channels
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels_in, self.num_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))

    def groups(self) -> list[list[str]]:
        """Parameter names as [stem, block 1, ..., block N + descriptor layer] (for the Z2/Z3 policies)."""
        names = [n for n, _ in self.named_parameters()]
        groups = [[n for n in names if n.startswith("stem.")]]
        groups += [[n for n in names if n.startswith(f"blocks.{i}.")] for i in range(len(self.blocks))]
        groups[-1] += [n for n in names if n.startswith("fc.")]
        return groups


DLIB_DATA_CONFIG = {
    "input_size": [3, DLIB_INPUT_SIZE, DLIB_INPUT_SIZE],
    "mean": [m / 255 for m in DLIB_CHANNEL_MEAN],
    "std": [256 / 255] * 3,
    "interpolation": "bilinear",
    "crop_pct": 1.0,
    "crop_mode": "center",
    "face_margin": DLIB_FACE_MARGIN,  # the framing of dlib's chips, which --face-crop then uses (crop.face.face_margin)
}


def _expected_pools() -> list[tuple[str, tuple[int, ...]]]:
    """The pooling records of dlib's file, input first: the stem's 3x3/2 max pool, a 2x2/2 average pool per
    downsampling block, then the global average (dlib writes it as a 0x0 window, stride 1)."""
    downsampling = sum(stride > 1 for _, stride in DLIB_FACE_BLOCKS)
    return [("max_pool", (3, 3, 2, 0))] + [("avg_pool", (2, 2, 2, 0))] * downsampling + [("avg_pool", (0, 0, 1, 0))]


def dlib_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict of `DlibFaceResNet` from dlib's .dat file; UserError when the file holds another network."""
    layers = read_dlib_layers(path)
    expected = DlibFaceResNet()
    convs = [(n, m) for n, m in expected.named_modules() if isinstance(m, nn.Conv2d)]
    affines = [(n, m) for n, m in expected.named_modules() if isinstance(m, _Affine)]
    found_convs = [layer for layer in layers if layer.kind == "con"]
    found_affines = [layer for layer in layers if layer.kind == "affine"]
    found_fc = [layer for layer in layers if layer.kind == "fc"]
    found_pools = [(layer.kind, layer.shape) for layer in layers if layer.kind.endswith("_pool")]
    problem = None
    if len(found_convs) != len(convs) or len(found_affines) != len(affines) or len(found_fc) != 1:
        problem = f"{len(found_convs)} convolutions, {len(found_affines)} affine layers, {len(found_fc)} fc layers"
    elif found_pools != _expected_pools():
        problem = f"pooling layers {found_pools}"
    elif found_fc[0].shape != (expected.fc.in_features, expected.fc.out_features):
        problem = f"a descriptor layer {found_fc[0].shape}"
    else:
        for (_, conv), layer in zip(convs, found_convs):
            wanted = (conv.out_channels, conv.kernel_size[0], conv.kernel_size[1], conv.stride[0], conv.padding[0])
            if layer.shape != wanted or layer.params.size != conv.weight.numel() + conv.out_channels:
                problem = f"a convolution {layer.shape} where {wanted} was expected"
                break
        for (name, affine), layer in zip(affines, found_affines):
            if layer.params.size != 2 * affine.weight.numel():
                problem = f"affine layer {name} with {layer.params.size} values, not {2 * affine.weight.numel()}"
                break
    if problem:
        raise UserError(f"{path}: not dlib's face-recognition ResNet ({problem}); use {DLIB_FACE_FILE} "
                        "from the face-recognition-models package")
    state = {}
    for (name, conv), layer in zip(convs, found_convs):  # dlib stores a convolution's filters, then its biases
        split = conv.weight.numel()
        state[f"{name}.weight"] = torch.from_numpy(layer.params[:split]).view_as(conv.weight)
        state[f"{name}.bias"] = torch.from_numpy(layer.params[split:])
    for (name, affine), layer in zip(affines, found_affines):  # gamma, then beta
        half = affine.weight.numel()
        state[f"{name}.weight"], state[f"{name}.bias"] = torch.from_numpy(layer.params[:half]), torch.from_numpy(layer.params[half:])
    inputs, outputs = found_fc[0].shape  # dlib multiplies x (N x in) by W (in x out); Linear holds W transposed
    state["fc.weight"] = torch.from_numpy(found_fc[0].params.reshape(inputs, outputs).T.copy())
    return state
