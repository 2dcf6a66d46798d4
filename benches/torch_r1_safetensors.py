"""Trains R1 in PyTorch and saves its weights as safetensors, for the import test.

    python benches/torch_r1_safetensors.py [--epochs 1] [--out tests/golden]

Writes `torch_r1.safetensors` (its `state_dict`, PyTorch's names: conv1, conv2, fc)
and `torch_r1.json` (its test accuracy, loss and predicted-class counts, computed
by PyTorch on the 10,000 test images of datasets/mnist with MNIST's normalisation),
which `tests/suite/io_import.rs` checks ferrocnn's evaluation of the imported weights
against. Needs torch and numpy only: the safetensors file is written by hand (an
8-byte header length, a JSON header, the raw little-endian data).
"""
import argparse, gzip, json, os, struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(__file__), "..")


class R1(nn.Module):  # the classic Keras MNIST convnet, as in the side-by-side bench
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
        self.drop, self.fc = nn.Dropout(0.5), nn.Linear(1600, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(self.drop(torch.flatten(x, 1)))


def idx(name):
    path = os.path.join(ROOT, "datasets", "mnist", name)
    opener = gzip.open if not os.path.exists(path) else open
    with opener(path if os.path.exists(path) else path + ".gz", "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def images(name):  # MNIST's normalisation, as ferrocnn's Normalize::MNIST
    x = idx(name).astype(np.float32) / 255.0
    return torch.from_numpy((x - 0.1307) / 0.3081).unsqueeze(1)


def save_safetensors(tensors, path):
    header, offset, blobs = {}, 0, []
    for name, t in sorted(tensors.items()):
        blob = t.detach().contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", default=os.path.join(ROOT, "tests", "golden"))
    args = parser.parse_args()
    torch.manual_seed(0)
    x, y = images("train-images-idx3-ubyte"), torch.from_numpy(idx("train-labels-idx1-ubyte").astype(np.int64))
    xt, yt = images("t10k-images-idx3-ubyte"), torch.from_numpy(idx("t10k-labels-idx1-ubyte").astype(np.int64))
    model = R1()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(args.epochs):
        model.train()
        for i in torch.randperm(len(x)).split(128):
            opt.zero_grad()
            F.cross_entropy(model(x[i]), y[i]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(xt[i : i + 1000]) for i in range(0, len(xt), 1000)])
    predicted = logits.argmax(1)
    report = {
        "accuracy": (predicted == yt).float().mean().item(),
        "loss": F.cross_entropy(logits, yt).item(),
        "predicted_counts": torch.bincount(predicted, minlength=10).tolist(),
        "first_logits": logits[0].tolist(),
    }
    save_safetensors(model.state_dict(), os.path.join(args.out, "torch_r1.safetensors"))
    with open(os.path.join(args.out, "torch_r1.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(report)


if __name__ == "__main__":
    main()
