"""CN-vMF written from compnet.md §2.2-2.8 in PyTorch (not the released code), for the benchmarks
and the parity fixtures (crates/compnet/tests/fixtures/make_head_fixture.py,
make_best_fixture.py): `vgg16_features` in torchvision's layout (every width divided by
`divisor`), `head` = the vMF kernels (normalised every forward, zero features give cosine 0), the
strict-gated activation exp(kappa*cos)*[cos > 0], the mixtures and occluder models clamped and
L1-normalised, centre crop/pad, and the occlusion-robust score with one occluder per image or the
best one per position; `released_loss` = CE on the already-softmaxed p + alpha*cluster - beta*ml[y].
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16_features(divisor=1):
    layers, cin = [], 3
    for v in CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v // divisor, 3, padding=1), nn.ReLU(inplace=True)]
            cin = v // divisor
    return nn.Sequential(*layers)


def crop_or_pad_as(x, h, w):
    hi, wi = x.shape[-2:]
    ph, pw = max(0, h - hi), max(0, w - wi)
    x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    hp, wp = x.shape[-2:]
    y0, x0 = (hp - h) // 2, (wp - w) // 2
    return x[..., y0:y0 + h, x0:x0 + w]


def l1(x):
    x = x.clamp(0, 1)
    return x / x.sum(1, keepdim=True).clamp_min(1e-12)


def terms(f, w, mix, occl, kappa=30.0, occ=0.6):
    """fg [B, C*M, H*W], bg [B, N, H*W] (§2.6), the cosines and the unit features."""
    b, d, h, wd = f.shape
    norm = f.norm(dim=1, keepdim=True)
    fn = f / torch.where(norm == 0, torch.ones_like(norm), norm)
    wn = w / w.norm(dim=1, keepdim=True)
    cos = torch.einsum("kd,bdhw->bkhw", wn, fn)
    v = torch.exp(kappa * cos) * (cos > 0).float()
    mm = crop_or_pad_as(l1(mix), h, wd)
    beta = l1(occl)
    fg = torch.log((1 - occ) * torch.einsum("rkhw,bkhw->brhw", mm, v) + 1e-10).flatten(2)
    bg = torch.log(occ * torch.einsum("nk,bkhw->bnhw", beta, v) + 1e-10).flatten(2)
    return fg, bg, cos, fn


def head(f, w, mix, occl, m, mixture_bg, kappa=30.0, occ=0.6):
    """Scores [B, C] of features f [B, D, H, W]; also the cosines and the unit features."""
    b = f.shape[0]
    fg, bg, cos, fn = terms(f, w, mix, occl, kappa, occ)
    if mixture_bg:
        per_row = torch.maximum(fg, bg.max(1, keepdim=True).values).sum(2)
    else:
        per_row = torch.maximum(fg[:, :, None], bg[:, None]).sum(3).max(2).values
    scores = per_row.view(b, -1, m).max(2).values
    return scores, cos, fn


def occluder_maps(f, w, mix, occl, y, m, kappa=30.0, occ=0.6):
    """§2.7 mixture-bg occluder maps [B, H*W] for labels y: bg' - fg of the label's best mixture
    under the per-position best occluder (first on ties)."""
    fg, bg, _, _ = terms(f, w, mix, occl, kappa, occ)
    best_bg = bg.max(1).values  # [B, P]
    maps = []
    for i in range(f.shape[0]):
        rows = fg[i, y[i] * m:(y[i] + 1) * m]  # [M, P]
        idx = torch.maximum(rows, best_bg[i][None]).sum(1).argmax()
        maps.append(best_bg[i] - rows[idx])
    return torch.stack(maps)


def probabilities(scores, positions):
    """ml = scores / (H*W) and the temperature-2 softmax without max-subtraction."""
    ml = scores / positions
    p = torch.exp((2 * ml).clamp(-88.7, 88.7))
    return ml, p / p.sum(1, keepdim=True)


def released_loss(f, w, mix, occl, y, m, alpha=3.0, beta=3.0):
    """The released end-to-end loss (batch mean), zero feature vectors left out of the cluster
    loss."""
    scores, cos, _ = head(f, w, mix, occl, m, False)
    positions = f.shape[2] * f.shape[3]
    ml, p = probabilities(scores, positions)
    valid = (f.norm(dim=1) > 0).float().flatten(1)
    cluster = ((1 - cos.max(1).values.flatten(1)) * valid).sum(1) / positions
    ce = -torch.log_softmax(p, 1).gather(1, y[:, None]).squeeze(1)
    return (ce + alpha * cluster - beta * ml.gather(1, y[:, None]).squeeze(1)).mean(), scores, ml, p
