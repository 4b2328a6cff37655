#!/usr/bin/env python3
"""PyTorch reference for `qnas bench`: the same ResNet-20 and the same protocol, in PyTorch.

The network is the largest member of spaces/presets/resnet20.ron as `spaces/src/plan.rs` resolves
it and the supernet runs it: a 3x3 stem conv (3 -> 16, stride 1) + BN + ReLU; three stages of
three basic blocks (widths 16/32/64, first-block strides 1/2/2), each block
conv3x3-BN-ReLU, conv3x3-BN, plus the input or, where the shape changes, a 1x1 projection conv
+ BN (stride of the block), then ReLU; global average pooling; a linear classifier (64 -> 10,
with bias). Convs have no bias and padding kernel // 2; BN momentum 0.1, eps 1e-5 (burn's
defaults too). Input 32x32x3, 10 classes.

Protocol (as `qnas bench`): one seeded batch of standard-normal images and random labels,
reused every step. A training step is forward in train mode, cross-entropy, backward and an
SGD step (lr 0.01, momentum 0.9, dampening 0). An inference step is an eval-mode forward under
torch.no_grad(). The two layouts (NCHW and channels_last) alternate step by step, warm-up steps
first and not measured; the figures are medians over the measured steps. GFLOP/s count
2*MACs per image for inference and 3*2*MACs for training.

Prints one JSON document with the field names of `qnas bench --json` (schema qnas.bench/1,
docs/json.md): the variants are `fp32` (NCHW) and `fp32_channels_last`; there is no fake
quantization here, so `int4` and `fake_quant_overhead` are null.

    python experiments/reference/resnet20_bench.py [--batch 128] [--steps 10] [--warmup 2]
        [--threads 2] [--device cpu|cuda]

With `--device cuda` the networks and the batch live on the first CUDA device and every step is
timed up to `torch.cuda.synchronize()` (the GPU's work finished, as `qnas bench` waits for its
results); `device` in the report is then `cuda` and the GPU's name is in `device_name`.
"""

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

FLOP_CONVENTION = "inference 2*MACs per image, training 3*2*MACs per image"


class ConvBn(nn.Module):
    def __init__(self, cin, cout, kernel, stride, relu):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.relu = relu

    def forward(self, x):
        y = self.bn(self.conv(x))
        return F.relu(y) if self.relu else y


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = ConvBn(cin, cout, 3, stride, relu=True)
        self.conv2 = ConvBn(cout, cout, 3, 1, relu=False)
        needs_projection = stride != 1 or cin != cout
        self.shortcut = ConvBn(cin, cout, 1, stride, relu=False) if needs_projection else None

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        skip = self.shortcut(x) if self.shortcut is not None else x
        return F.relu(y + skip)


class ResNet20(nn.Module):
    def __init__(self, classes=10, stem=16, widths=(16, 32, 64), strides=(1, 2, 2), depth=3):
        super().__init__()
        self.stem = ConvBn(3, stem, 3, 1, relu=True)
        blocks, cin = [], stem
        for width, stride in zip(widths, strides):
            for j in range(depth):
                blocks.append(BasicBlock(cin, width, stride if j == 0 else 1))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def count_macs(model, shape):
    """MACs per image of the convs and the linear layer (what the qnas cost model counts)."""
    macs = 0

    def conv_hook(m, inp, out):
        nonlocal macs
        k = m.kernel_size[0] * m.kernel_size[1]
        macs += out[0].numel() * (m.in_channels // m.groups) * k

    def fc_hook(m, inp, out):
        nonlocal macs
        macs += m.in_features * m.out_features

    hooks = [
        m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else fc_hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in hooks:
        h.remove()
    return macs


def measurement(step_s, batch, flop_per_image):
    median_s = statistics.median(step_s)
    img_per_s = batch / median_s
    return {
        "img_per_s": img_per_s,
        "median_s": median_s,
        "step_s": step_s,
        "gflop_per_s": flop_per_image * img_per_s / 1e9,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = ap.parse_args()
    if args.batch < 1 or args.steps < 1 or args.warmup < 0 or args.threads < 1:
        ap.error("--batch, --steps and --threads must be at least 1, --warmup at least 0")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: this PyTorch sees no CUDA device")
    dev = torch.device(args.device)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    shape = (3, 32, 32)
    x = torch.randn(args.batch, *shape).to(dev)
    y = torch.randint(0, 10, (args.batch,)).to(dev)
    layouts = {"fp32": torch.contiguous_format, "fp32_channels_last": torch.channels_last}

    reference = ResNet20()
    macs = count_macs(reference, shape)
    params = sum(p.numel() for p in reference.parameters())
    layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in reference.modules())
    total = 2 * len(layouts) * (args.warmup + args.steps)
    done = 0

    def progress(mode, name, i, seconds):
        nonlocal done
        done += 1
        kind = "warm-up" if i < args.warmup else "step"
        k = i if i < args.warmup else i - args.warmup
        of = args.warmup if i < args.warmup else args.steps
        print(f"[{done}/{total}] {mode} {name} {kind} {k + 1}/{of}: {seconds:.3f} s",
              file=sys.stderr, flush=True)

    # training
    runs = {}
    for name, fmt in layouts.items():
        model = ResNet20().to(dev).to(memory_format=fmt).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, dampening=0.0)
        runs[name] = (model, opt, x.contiguous(memory_format=fmt))
    train_times = {name: [] for name in layouts}
    for i in range(args.warmup + args.steps):
        for name, (model, opt, xi) in runs.items():
            sync()
            t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xi), y)
            loss.backward()
            opt.step()
            sync()
            seconds = time.perf_counter() - t
            if not torch.isfinite(loss):
                sys.exit(f"the {name} training loss is not finite ({loss.item()})")
            progress("train", name, i, seconds)
            if i >= args.warmup:
                train_times[name].append(seconds)
    del runs

    # inference (one untimed train-mode forward first gives BN running statistics, as qnas's
    # recalibration pass does)
    nets = {}
    for name, fmt in layouts.items():
        model = ResNet20().to(dev).to(memory_format=fmt)
        xi = x.contiguous(memory_format=fmt)
        with torch.no_grad():
            model.train()(xi)
        nets[name] = (model.eval(), xi)
    infer_times = {name: [] for name in layouts}
    with torch.no_grad():
        for i in range(args.warmup + args.steps):
            for name, (model, xi) in nets.items():
                sync()
                t = time.perf_counter()
                model(xi)
                sync()
                seconds = time.perf_counter() - t
                progress("infer", name, i, seconds)
                if i >= args.warmup:
                    infer_times[name].append(seconds)

    def mode_report(times, flop_per_image):
        out = {name: measurement(ts, args.batch, flop_per_image) for name, ts in times.items()}
        out["int4"] = None
        out["fake_quant_overhead"] = None
        return out

    report = {
        "schema": "qnas.bench/1",
        "implementation": f"pytorch {torch.__version__}",
        "device": args.device,
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "file": "spaces/presets/resnet20.ron",
        "space": "resnet20",
        "member": "largest",
        "input": list(shape),
        "classes": 10,
        "macs": macs,
        "params": params,
        "formats": {name: {"fp32/fp32": layers} for name in layouts},
        "batch": args.batch,
        "warmup": args.warmup,
        "steps": args.steps,
        "flop_convention": FLOP_CONVENTION,
        "train": mode_report(train_times, 6 * macs),
        "infer": mode_report(infer_times, 2 * macs),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
