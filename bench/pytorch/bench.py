#!/usr/bin/env python3
"""The PyTorch side of `cargo xtask bench`: the same cases, shapes and timing method as vireo's
registry (crates/vireo/src/bench/cases.rs), served one command at a time so that the two sides can
alternate in one run.

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout.
  {"cmd": "info"}                                    -> {"torch": ..., "threads": ..., "device": ...}
  {"cmd": "prepare", "case": NAME, "warmup_s": S, "data_dir": DIR?}
                                                     -> {"items": ITEMS_PER_ITERATION} | {"error": ...}
  {"cmd": "measure", "case": NAME, "reps": R, "min_rep_s": T}
                                                     -> {"seconds": [per-iteration seconds, ...]}
  {"cmd": "release", "case": NAME}                   -> {"ok": true}
A case this script does not have answers {"error": "unknown case ..."}; vireo then reports it alone.

Run by hand: python3 bench/pytorch/bench.py --threads 2 --device cpu --list
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------
# Layers, written as the official code bases write them (ws.md §2.1, bcn.md §2.1).


class WSConv2d(nn.Conv2d):
    """Weight Standardization, the official PyTorch formula: unbiased std, `std + 1e-5`."""

    def forward(self, x):
        w = self.weight
        w = w - w.mean(dim=(1, 2, 3), keepdim=True)
        std = w.view(w.size(0), -1).std(dim=1).view(-1, 1, 1, 1) + 1e-5
        return F.conv2d(x, w / std, self.bias, self.stride, self.padding, self.dilation, self.groups)


class BCN(nn.Module):
    """Batch-Channel Normalization: BatchNorm2d, then per-sample group standardisation with a
    per-group affine [1, G, 1] (bcn.md §2.1)."""

    def __init__(self, channels, groups=32, eps=1e-5):
        super().__init__()
        self.pbn = nn.BatchNorm2d(channels)
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(1, groups, 1))
        self.bias = nn.Parameter(torch.zeros(1, groups, 1))

    def forward(self, x):
        shape = x.shape
        x = self.pbn(x).reshape(shape[0], self.groups, -1)
        mean = x.mean(dim=2, keepdim=True)
        var = x.var(dim=2, unbiased=False, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return (x * self.weight + self.bias).reshape(shape)


def to_ws(module):
    """Every nn.Conv2d of `module` becomes a WSConv2d with the same weights."""
    for name, child in module.named_children():
        if type(child) is nn.Conv2d:
            ws = WSConv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                          child.padding, child.dilation, child.groups, child.bias is not None)
            ws.weight = child.weight
            ws.bias = child.bias
            setattr(module, name, ws)
        else:
            to_ws(child)
    return module


def resnet(depth, norm):
    import torchvision.models as tvm
    norm_layer = {"bn": nn.BatchNorm2d, "gn": lambda c: nn.GroupNorm(32, c)}[norm]
    model = {18: tvm.resnet18, 50: tvm.resnet50}[depth](num_classes=1000, norm_layer=norm_layer)
    return to_ws(model) if norm == "gn" else model


def smoke_net():
    """The WS smoke preset's network (crates/classification/presets/ws/smoke.toml): GN(8)+WS basic ResNet,
    blocks [1,1,1,1], widths 16-128, small 3x3 stem, 10 classes."""
    import torchvision.models.resnet as tvr
    model = tvr.ResNet(tvr.BasicBlock, [1, 1, 1, 1], num_classes=10,
                       norm_layer=lambda c: nn.GroupNorm(8, c))
    widths = [16, 32, 64, 128]
    # Rebuild the stages at the smoke widths (torchvision fixes 64-512).
    model.inplanes = 16
    model.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
    model.bn1 = nn.GroupNorm(8, 16)
    model.maxpool = nn.Identity()
    model.layer1 = model._make_layer(tvr.BasicBlock, widths[0], 1)
    model.layer2 = model._make_layer(tvr.BasicBlock, widths[1], 1, stride=2)
    model.layer3 = model._make_layer(tvr.BasicBlock, widths[2], 1, stride=2)
    model.layer4 = model._make_layer(tvr.BasicBlock, widths[3], 1, stride=2)
    model.fc = nn.Linear(128, 10)
    return to_ws(model)


# ---------------------------------------------------------------------------------------------
# Cases: each returns (items per iteration, one iteration as a function).


def layer_case(device, layer, backward):
    x = torch.randn(8, 64, 56, 56, device=device, requires_grad=backward)
    layer = layer.to(device).train()
    if backward:
        def step():
            layer.zero_grad(set_to_none=True)
            x.grad = None
            layer(x).sum().backward()
    else:
        def step():
            with torch.no_grad():
                layer(x)
    return 8, step


def axial_layer():
    """The axial-attention layer of Axial-DeepLab (axial.py): 128 -> 128 channels, height axis,
    span 56, 8 heads."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from axial import AxialAttention
    return AxialAttention(128, 128, 8, 56)


def axial_case(device, backward):
    x = torch.randn(8, 128, 56, 56, device=device, requires_grad=backward)
    layer = axial_layer().to(device)
    if backward:
        layer.train()

        def step():
            layer.zero_grad(set_to_none=True)
            x.grad = None
            layer(x).sum().backward()
    else:
        layer.eval()

        def step():
            with torch.no_grad():
                layer(x)
    return 8, step


def axial26s():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from axial import axial26s as build
    return build()


def elastic_resnext(layers, elastic):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from elastic import resnext
    return resnext(layers, elastic)


def train_case(device, model, batch, size, classes=1000):
    model = model.to(device).train()
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, classes, (batch,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return batch, step


def infer_case(device, model, batch, size):
    model = model.to(device).eval()
    x = torch.randn(batch, 3, size, size, device=device)

    def step():
        with torch.no_grad():
            model(x)
    return batch, step


def image_folder_case(device, data_dir, threads):
    """JPEG decode + RandomResizedCrop(224) + flip + normalise through a DataLoader with as many
    workers as threads; one iteration is one pass over the folder."""
    import torchvision.datasets as tvd
    import torchvision.transforms as T
    transform = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    dataset = tvd.ImageFolder(f"{data_dir}/train", transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=True,
                                         num_workers=threads, persistent_workers=True)

    def step():
        for _ in loader:
            pass
    return len(dataset), step


def co2_loss(q, k, queue, t=0.2, tau_con=0.04, alpha=1.0):
    """InfoNCE + alpha * the symmetric CO2 term (crates/co2/src/loss.rs, co2-moco.md 2.1-2.2)."""
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue], 1) / t
    info_nce = F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))
    log_q = F.log_softmax(q @ queue / tau_con, 1)
    log_p = F.log_softmax(k @ queue / tau_con, 1).detach()
    kl = lambda a, b: (a.exp() * (a - b)).sum(1)
    return info_nce + alpha * (0.5 * (kl(log_p, log_q) + kl(log_q, log_p))).mean()


def co2_loss_case(device, backward):
    unit = lambda *shape: F.normalize(torch.randn(*shape, device=device), dim=1)
    q, k, queue = unit(256, 128), unit(256, 128), unit(65536, 128).t().contiguous()
    if backward:
        q.requires_grad_(True)
        def step():
            q.grad = None
            co2_loss(q, k, queue).backward()
    else:
        def step():
            with torch.no_grad():
                co2_loss(q, k, queue)
    return 256, step


def moco_train_case(device):
    """One MoCo v2 + CO2 step as crates/co2 runs it: ResNet-18 with the v2 head, B64 64^2, queue
    4096, momentum update, key forward in 2 BN groups of a permuted batch, SGD, enqueue."""
    import torchvision.models.resnet as tvr
    def encoder():
        net = tvr.resnet18()
        net.fc = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 128))
        return net.to(device).train()
    encoder_q, encoder_k = encoder(), encoder()
    encoder_k.load_state_dict(encoder_q.state_dict())
    for p in encoder_k.parameters():
        p.requires_grad = False
    queue = F.normalize(torch.randn(128, 4096, device=device), dim=0)
    state = {"ptr": 0}
    optimizer = torch.optim.SGD(encoder_q.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    xq, xk = torch.randn(64, 3, 64, 64, device=device), torch.randn(64, 3, 64, 64, device=device)
    order = torch.arange(63, -1, -1, device=device)
    inverse = torch.argsort(order)
    def step():
        with torch.no_grad():
            for pk, pq in zip(encoder_k.parameters(), encoder_q.parameters()):
                pk.mul_(0.999).add_(pq.detach(), alpha=0.001)
        q = F.normalize(encoder_q(xq), dim=1)
        with torch.no_grad():
            shuffled = xk[order]
            k = torch.cat([encoder_k(part) for part in shuffled.chunk(2)])[inverse]
            k = F.normalize(k, dim=1)
        loss = co2_loss(q, k, queue)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ptr = state["ptr"]
        queue[:, ptr:ptr + 64] = k.t()
        state["ptr"] = (ptr + 64) % 4096
    return 64, step


def sake_train_case(device):
    """One SAKE step as crates/sake runs it: the CSE-ResNet-50 student (D 64, 220 classes) in
    training mode on 4 sketches + 36 photos 224^2, the frozen teacher in eval mode under no_grad,
    CE + 1.0 * soft CE on the photos, backward, Adam (lr 1e-4, weight decay 5e-4)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from sake import CSEResNet, KDHashing, soft_ce
    student = KDHashing(64, 220).to(device).train()
    teacher = CSEResNet().to(device).eval()
    for p in teacher.parameters():
        p.requires_grad = False
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-4, weight_decay=5e-4)
    x = torch.randn(40, 3, 224, 224, device=device)
    y = torch.cat([torch.zeros(4, 1), torch.ones(36, 1)]).to(device)
    labels = torch.randint(0, 220, (40,), device=device)
    relations = torch.zeros(40, 1000, device=device)
    def step():
        logits, logits_kd = student(x, y)
        with torch.no_grad():
            z_t = teacher(x, y)
        loss = F.cross_entropy(logits, labels) + soft_ce(logits_kd, z_t, y[:, 0], relations)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return 40, step


def sake_rank_case(device, hamming):
    """Every query's full ranking of the gallery (what mAP@all needs): 1,000 queries, 10,000
    items, 64-d unit features by -Euclidean distance, or 64-bit codes by Hamming distance; stable
    sort (ties by gallery index)."""
    q = F.normalize(torch.rand(1000, 64, device=device) * 2 - 1, dim=1)
    g = F.normalize(torch.rand(10000, 64, device=device) * 2 - 1, dim=1)
    if hamming:
        q, g = torch.where(q >= 0, 1.0, -1.0), torch.where(g >= 0, 1.0, -1.0)
    def step():
        with torch.no_grad():
            if hamming:
                scores = -(64 - q @ g.t()) / 2
            else:
                scores = -torch.cdist(q, g)
            torch.sort(scores, dim=1, descending=True, stable=True)
    return 1000, step


def compnet_parts(device):
    """The released CN-vMF shapes (compnet.md §3): VGG-16 pool5, 512 vMF kernels, 12 classes x 4
    mixtures of 7 x 7, 7 occluder models; random weights."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import compnet
    backbone = compnet.vgg16_features().to(device).eval()
    for p in backbone.parameters():
        p.requires_grad = False
    w = F.normalize(torch.randn(512, 512, device=device), dim=1)
    mix = torch.rand(48, 512, 7, 7, device=device)
    occl = torch.rand(7, 512, device=device)
    return compnet, backbone, w, mix, occl


def compnet_infer_case(device):
    """CN-vMF inference, B16 224^2: frozen VGG-16 pool5 features, then the head's scores."""
    compnet, backbone, w, mix, occl = compnet_parts(device)
    x = torch.randn(16, 3, 224, 224, device=device)
    def step():
        with torch.no_grad():
            compnet.head(backbone(x), w, mix, occl, 4, False)
    return 16, step


def compnet_train_case(device):
    """One released training step (batch 1, 224^2): frozen backbone under no_grad, the released
    loss, backward into the kernels and mixtures, Adagrad (lr 1e-2)."""
    compnet, backbone, w, mix, occl = compnet_parts(device)
    w, mix = w.clone().requires_grad_(True), mix.clone().requires_grad_(True)
    optimizer = torch.optim.Adagrad([w, mix], lr=1e-2)
    x = torch.randn(1, 3, 224, 224, device=device)
    y = torch.randint(0, 12, (1,), device=device)
    def step():
        with torch.no_grad():
            f = backbone(x)
        loss, _, _, _ = compnet.released_loss(f, w, mix, occl, y, 4)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return 1, step


def vmfmm_case(device):
    """One vMF-EM iteration as the released vMFMM.py (float64): E-step logP = kappa F mu^T + log pi,
    softmax, mean log-likelihood; M-step pi, mu = normalise(p^T F / sum p) with the +1e-6 rule;
    100,000 x 512 unit features, K = 512."""
    x = torch.randn(100000, 512, dtype=torch.float64, device=device)
    x = x / (x.norm(dim=1, keepdim=True) + 1e-6)
    state = {"mu": x[:512].clone(), "pi": torch.full((512,), 1 / 512, dtype=torch.float64, device=device)}
    def step():
        logp = 30 * x @ state["mu"].t() + state["pi"].log()
        torch.logsumexp(logp, 1).mean()
        p = torch.softmax(logp, 1)
        mass = p.sum(0)
        state["pi"] = mass / x.shape[0]
        mu = p.t() @ x / mass[:, None]
        state["mu"] = mu / (mu.norm(dim=1, keepdim=True) + 1e-6)
    return 100000, step


def make_case(name, device, threads, data_dir):
    conv = lambda ws: (WSConv2d if ws else nn.Conv2d)(64, 64, 3, padding=1, bias=False)
    cases = {
        "conv3x3_fwd": lambda: layer_case(device, conv(False), False),
        "conv3x3_fwd_bwd": lambda: layer_case(device, conv(False), True),
        "ws_conv3x3_fwd": lambda: layer_case(device, conv(True), False),
        "ws_conv3x3_fwd_bwd": lambda: layer_case(device, conv(True), True),
        "gn32_fwd_bwd": lambda: layer_case(device, nn.GroupNorm(32, 64), True),
        "bcn32_fwd_bwd": lambda: layer_case(device, BCN(64, 32), True),
        "axial_h56_fwd": lambda: axial_case(device, False),
        "axial_h56_fwd_bwd": lambda: axial_case(device, True),
        "axial26s_train_b8_224": lambda: train_case(device, axial26s(), 8, 224),
        "co2_loss_b256_k65536_fwd": lambda: co2_loss_case(device, False),
        "co2_loss_b256_k65536_fwd_bwd": lambda: co2_loss_case(device, True),
        "moco_v2_co2_train_b64_64": lambda: moco_train_case(device),
        "sake_train_b40_224": lambda: sake_train_case(device),
        "compnet_vmf_infer_b16_224": lambda: compnet_infer_case(device),
        "compnet_vmf_train_b1_224": lambda: compnet_train_case(device),
        "compnet_vmfmm_em_n100k_k512": lambda: vmfmm_case(device),
        "sake_rank_real_q1000_g10000": lambda: sake_rank_case(device, False),
        "sake_rank_hamming_q1000_g10000": lambda: sake_rank_case(device, True),
        "resnet50_gnws_train_b8_224": lambda: train_case(device, resnet(50, "gn"), 8, 224),
        "resnext50_twopath_train_b8_224":
            lambda: train_case(device, elastic_resnext([3, 4, 6, 3], False), 8, 224),
        "resnext50_elastic_train_b8_224":
            lambda: train_case(device, elastic_resnext([6, 8, 5, 3], True), 8, 224),
        "resnext50_twopath_infer_b8_224":
            lambda: infer_case(device, elastic_resnext([3, 4, 6, 3], False), 8, 224),
        "resnext50_elastic_infer_b8_224":
            lambda: infer_case(device, elastic_resnext([6, 8, 5, 3], True), 8, 224),
        "resnet50_gnws_infer_b8_224": lambda: infer_case(device, resnet(50, "gn"), 8, 224),
        "resnet50_gnws_train_b32_64": lambda: train_case(device, resnet(50, "gn"), 32, 64),
        "resnet50_gnws_infer_b32_64": lambda: infer_case(device, resnet(50, "gn"), 32, 64),
        "resnet18_bn_train_b32_32": lambda: train_case(device, resnet(18, "bn"), 32, 32),
        "resnet18_bn_infer_b32_32": lambda: infer_case(device, resnet(18, "bn"), 32, 32),
        "ws_smoke_train_b32_32": lambda: train_case(device, smoke_net(), 32, 32, classes=10),
        "imagefolder_rrc_224": lambda: image_folder_case(device, data_dir, threads),
    }
    if name not in cases:
        return None
    return cases[name]()


# Cases with no PyTorch counterpart, and why.
VIREO_ONLY = {
    "shapeworld_64_loader": "vireo only: ShapeWorld is vireo's own image generator",
    "ws_smoke_loader": "vireo only: ShapeWorld is vireo's own image generator",
}


# ---------------------------------------------------------------------------------------------
# Timing: the same method as crates/vireo/src/bench/measure.rs.


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def warm_up(step, device, seconds):
    """Runs `step` for at least `seconds` (and at least twice); returns seconds per iteration."""
    start, n = time.perf_counter(), 0
    while n < 2 or time.perf_counter() - start < seconds:
        step()
        sync(device)
        n += 1
    return (time.perf_counter() - start) / n


def measure(step, device, reps, min_rep_s, per_iteration):
    """`reps` samples of seconds per iteration, each sample timing enough iterations to last
    `min_rep_s`."""
    inner = max(1, math.ceil(min_rep_s / max(per_iteration, 1e-9)))
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(inner):
            step()
        sync(device)
        samples.append((time.perf_counter() - start) / inner)
    return samples


def serve(args):
    torch.set_num_threads(args.threads)
    prepared = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        cmd = request.get("cmd")
        try:
            if cmd == "info":
                name = (torch.cuda.get_device_name(0) if args.device.startswith("cuda")
                        else "cpu")
                reply = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                         "device": name}
            elif cmd == "prepare":
                case = make_case(request["case"], args.device, args.threads,
                                 request.get("data_dir"))
                if case is None:
                    reply = {"error": VIREO_ONLY.get(request["case"],
                                                     f"unknown case {request['case']}")}
                else:
                    items, step = case
                    per_iteration = warm_up(step, args.device, request.get("warmup_s", 1.0))
                    prepared[request["case"]] = (items, step, per_iteration)
                    reply = {"items": items}
            elif cmd == "measure":
                items, step, per_iteration = prepared[request["case"]]
                reply = {"seconds": measure(step, args.device, request["reps"],
                                            request.get("min_rep_s", 0.2), per_iteration)}
            elif cmd == "release":
                prepared.pop(request["case"], None)
                reply = {"ok": True}
            else:
                reply = {"error": f"unknown command {cmd}"}
        except Exception as e:  # reported to vireo, which names the case
            reply = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--list", action="store_true", help="print the case names and exit")
    args = parser.parse_args()
    if args.list:
        for name in ["conv3x3_fwd", "conv3x3_fwd_bwd", "ws_conv3x3_fwd", "ws_conv3x3_fwd_bwd",
                     "gn32_fwd_bwd", "bcn32_fwd_bwd", "axial_h56_fwd", "axial_h56_fwd_bwd",
                     "axial26s_train_b8_224", "co2_loss_b256_k65536_fwd",
                     "co2_loss_b256_k65536_fwd_bwd", "moco_v2_co2_train_b64_64",
                     "resnet50_gnws_train_b8_224",
                     "resnet50_gnws_infer_b8_224", "resnet50_gnws_train_b32_64",
                     "resnet50_gnws_infer_b32_64", "resnet18_bn_train_b32_32",
                     "resnet18_bn_infer_b32_32", "ws_smoke_train_b32_32", "imagefolder_rrc_224",
                     "resnext50_twopath_train_b8_224", "resnext50_elastic_train_b8_224",
                     "resnext50_twopath_infer_b8_224", "resnext50_elastic_infer_b8_224"]:
            print(name)
        return
    serve(args)


if __name__ == "__main__":
    main()
