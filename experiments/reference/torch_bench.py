#!/usr/bin/env python3
"""PyTorch reference for `qnas bench`: the same network and the same protocol, in PyTorch.

The network is the one a `qnas bench --json` report measured: its `plan` (the member's resolved
layers, `spaces::Plan`) is rebuilt here layer by layer, so any space's member can be compared,
e.g. ResNet-20 (`spaces/presets/resnet20.ron`, the default of `qnas bench`) or the default
space's largest member (`spaces/presets/mnist.ron`). Each conv of the plan is a conv without bias
(padding kernel // 2, its stride and groups) + BN (momentum 0.1, eps 1e-5: burn's defaults too) +
its activation (none, ReLU or ReLU6); a block pools its input first when the plan says so, runs
its convs, adds its input (or its 1x1 projection shortcut's output) when residual, then its
post-activation; a head conv if any, global average pooling and the linear classifier (with
bias). Number formats are ignored: this is the fp32 network. The script refuses to run when its
MACs differ from the report's `macs` (the two networks are then not the same).

Protocol (as `qnas bench`): one seeded batch of standard-normal images and random labels,
reused every step. A training step is forward in train mode, cross-entropy, backward and an
SGD step (lr 0.01, momentum 0.9, dampening 0). An inference step is an eval-mode forward under
torch.no_grad(). The two layouts (NCHW and channels_last) alternate step by step, warm-up steps
first and not measured; the figures are medians over the measured steps. GFLOP/s count
2*MACs per image for inference and 3*2*MACs for training.

Prints one JSON document with the field names of `qnas bench --json` (schema qnas.bench/1,
docs/json.md): the variants are `fp32` (NCHW) and `fp32_channels_last`; there is no fake
quantization here, so `int4` and `fake_quant_overhead` are null.

    qnas bench --json [--space FILE] [--batch N] > qnas.json
    python experiments/reference/torch_bench.py --plan qnas.json [--batch 128] [--steps 10]
        [--warmup 2] [--threads 2] [--device cpu|cuda]

`--plan` takes a `qnas bench --json` report (its `plan`, `file` and `space` are used) or a bare
plan. With `--device cuda` the networks and the batch live on the first CUDA device and every
step is timed up to `torch.cuda.synchronize()` (the GPU's work finished, as `qnas bench` waits
for its results); `device` in the report is then `cuda` and the GPU's name is in `device_name`.
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


def bad_input(message):
    """Stops on a bad `--plan` with the message and exit code 2 (as qnas does on bad input)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def activation(name):
    """The plan's `Act` as a function."""
    acts = {"None": lambda x: x, "Relu": F.relu, "Relu6": F.relu6}
    if name not in acts:
        bad_input(f"--plan: unknown activation {name!r} (expected one of {sorted(acts)})")
    return acts[name]


class ConvBn(nn.Module):
    """One `ConvLayer` of the plan: conv (no bias) + BN + activation."""

    def __init__(self, layer):
        super().__init__()
        k, groups = layer["kernel"], layer["groups"]
        self.conv = nn.Conv2d(layer["in_channels"], layer["out_channels"], k, layer["stride"],
                              k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(layer["out_channels"], eps=1e-5, momentum=0.1)
        self.act = activation(layer["act"])

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Block(nn.Module):
    """One `BlockPlan`: optional 2x2/2 pooling, the main convs, the residual add, the
    post-activation."""

    def __init__(self, block):
        super().__init__()
        pools = {None: None, "StridedConv": None, "MaxPool": F.max_pool2d,
                 "AvgPool": F.avg_pool2d}
        if block["pool_before"] not in pools:
            bad_input(f"--plan: unknown pool_before {block['pool_before']!r}")
        self.pool = pools[block["pool_before"]]
        self.convs = nn.Sequential(*[ConvBn(c) for c in block["convs"]])
        self.residual = block["residual"]
        self.shortcut = ConvBn(block["shortcut"]) if block["shortcut"] is not None else None
        self.post = activation(block["post_act"])

    def forward(self, x):
        if self.pool is not None:
            x = self.pool(x, 2, 2)
        y = self.convs(x)
        if self.residual:
            y = y + (self.shortcut(x) if self.shortcut is not None else x)
        return self.post(y)


class PlanNet(nn.Module):
    """The network of a `spaces::Plan` (as `supernet/src/net/traversal.rs::run_plan` runs it)."""

    def __init__(self, plan):
        super().__init__()
        self.stem = ConvBn(plan["stem"])
        self.stem_pool = plan["stem_pool"]
        self.blocks = nn.Sequential(*[Block(b) for b in plan["blocks"]])
        self.head = ConvBn(plan["head_conv"]) if plan["head_conv"] is not None else None
        fc = plan["fc"]
        self.fc = nn.Linear(fc["in_features"], fc["out_features"])

    def forward(self, x):
        x = self.stem(x)
        if self.stem_pool is not None:
            p = self.stem_pool
            pool = F.max_pool2d if p["max"] else F.avg_pool2d
            x = pool(x, p["kernel"], p["stride"], p["kernel"] // 2)
        x = self.blocks(x)
        if self.head is not None:
            x = self.head(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def load_plan(path):
    """The plan (and the report it came from, or None) of a `qnas bench --json` report or a bare
    plan file."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        bad_input(f"--plan {path}: {e}")
    if isinstance(doc, dict) and "plan" in doc:
        return doc["plan"], doc
    if isinstance(doc, dict) and "stem" in doc and "fc" in doc:
        return doc, None
    bad_input(f"--plan {path}: neither a `qnas bench --json` report (no `plan` key) nor a plan")


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
    ap.add_argument("--plan", required=True,
                    help="a `qnas bench --json` report (or a bare plan) whose network is built")
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

    plan, qnas_report = load_plan(args.plan)
    stem = plan["stem"]
    shape = (stem["in_channels"], *stem["in_size"])
    classes = plan["fc"]["out_features"]
    x = torch.randn(args.batch, *shape).to(dev)
    y = torch.randint(0, classes, (args.batch,)).to(dev)
    layouts = {"fp32": torch.contiguous_format, "fp32_channels_last": torch.channels_last}

    reference = PlanNet(plan)
    macs = count_macs(reference, shape)
    if qnas_report is not None and qnas_report.get("macs") != macs:
        bad_input(f"--plan {args.plan}: the network built has {macs} MACs per image, the report "
                 f"{qnas_report.get('macs')}: not the network qnas measured")
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
        model = PlanNet(plan).to(dev).to(memory_format=fmt).train()
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
        model = PlanNet(plan).to(dev).to(memory_format=fmt)
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
        "file": qnas_report["file"] if qnas_report else args.plan,
        "space": qnas_report["space"] if qnas_report else None,
        "member": qnas_report["member"] if qnas_report else None,
        "input": list(shape),
        "classes": classes,
        "macs": macs,
        "params": params,
        "plan": plan,
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
