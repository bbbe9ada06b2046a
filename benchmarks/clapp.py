"""Training step of lib/clapp.py: this version against the step before issue 29, per method.

The same encoder (the book's three modules, 16-32-64 channels, 8 x 8 patches on a 6 x 6 grid of
28 x 28 images), the same batches, one training step after the other in one process, one
thread, for CLAPP, CLAPP-s and the two end-to-end methods (hinge-loss CPC: the CLAPP loss end to
end; the CLAPP-s loss end to end), each in two versions:

- *now*: :class:`lib.clapp.Encoder` converts every module's input to channels-last memory (the
  first module's 1-channel input left module 2 in the contiguous format, where its convolution
  runs slower and its max-pool about five times slower) and averages each patch in the
  ``(N, h, w, C)`` view (``z.mean((2, 3))`` made the max-pool's backward copy its gradient
  between formats); :func:`lib.clapp.clapp_s_loss` scores every context against every future
  cell in one matrix product and picks the negatives from it;
- *before*: the encoder's forward and the CLAPP-s loss as they were (kept here, verbatim in
  effect), swapped in for the timed steps.

It prints ms per step and images per second of each (the fastest of many short interleaved
blocks, robust to a busy machine), the speed-up of each method, and the ratio CLAPP / hinge CPC.
A side-by-side comparison, not a timed test.

``--layers 8-16-16`` times the narrower encoder that the chapter's ``book`` preset trains since
issue 29 (the default, 16-32-64, is :data:`lib.clapp.LAYERS_WIDE`).

Usage: ``python benchmarks/clapp.py [--layers 16-32-64|8-16-16] [--batch 32] [--steps 60]
[--blocks 6] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lib import clapp, torchkit  # noqa: E402
from lib.protocols import clapp as clapp_protocol  # noqa: E402


def _forward_before(self, images, detach=True, inputs=False):
    """:meth:`lib.clapp.Encoder.forward` before issue 29."""
    x = clapp.patchify(images, self.patch, self.stride).contiguous(
        memory_format=torch.channels_last)
    B, G = images.shape[0], clapp.grid_size(images.shape[2], self.patch, self.stride)
    hs, xs = [], []
    for block in self.blocks:
        xs.append(x)
        z = block(x)
        hs.append(z.mean((2, 3)).reshape(B, G, G, -1).permute(0, 3, 1, 2))
        x = z.detach() if detach else z
    return (hs, xs) if inputs else hs


def _clapp_s_loss_before(h, W, negatives):
    """:func:`lib.clapp.clapp_s_loss` before issue 29 (gathered negatives), on the same draws."""
    K = W.shape[0]
    B, C, G, G2 = h.shape
    loss = h.new_zeros(())
    up, un = [], []
    for k in range(K):
        d = k + 2
        c, z = h[:, :, :-d], h[:, :, d:]
        idx = negatives[k]
        pool = z.permute(0, 2, 3, 1).reshape(-1, C)
        pred = torch.einsum("bcrg,cd->brgd", c, W[k])
        u_pos = torch.einsum("brgd,bdrg->brg", pred, z)
        u_neg = torch.einsum("brgd,brgnd->brgn", pred, pool[idx])
        loss = loss + (F.relu(clapp.MARGIN - u_pos).mean()
                       + F.relu(clapp.MARGIN + u_neg).mean()) / K
        up.append(u_pos.detach().flatten())
        un.append(u_neg.detach().flatten())
    return loss, clapp._stats(torch.cat(up), torch.cat(un))


@contextlib.contextmanager
def before():
    """The encoder's forward and the CLAPP-s loss of before issue 29, inside the block."""
    fwd, loss = clapp.Encoder.forward, clapp.clapp_s_loss
    clapp.Encoder.forward, clapp.clapp_s_loss = _forward_before, _clapp_s_loss_before
    try:
        yield
    finally:
        clapp.Encoder.forward, clapp.clapp_s_loss = fwd, loss


#: The encoders timed: the default (the book's until issue 29) and the book's since issue 29.
WIDTHS = {"16-32-64": clapp.LAYERS_WIDE, "8-16-16": clapp_protocol.preset("book").layers}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default="16-32-64", choices=tuple(WIDTHS),
                    help="channels of the three modules (default 16-32-64)")
    ap.add_argument("--batch", type=int, default=32, help="images per step (default 32)")
    ap.add_argument("--steps", type=int, default=60, help="steps per pass (default 60)")
    ap.add_argument("--blocks", type=int, default=6, help="timed blocks per pass (default 6)")
    ap.add_argument("--repeat", type=int, default=3, help="passes over the blocks (default 3)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    xs = torch.rand(args.steps, args.batch, 1, 28, 28, generator=gen)

    variants = {}
    for method in clapp.METHODS:
        for version in ("before", "now"):
            torchkit.seed_all(0)  # the same initial encoder for every method
            net = clapp.CLAPPNet(method, layers=WIDTHS[args.layers])
            opts = [torch.optim.Adam(ps, lr=1e-3) for ps in net.module_parameters()]
            draws = torch.Generator().manual_seed(1)
            ctx = before if version == "before" else contextlib.nullcontext
            variants[(method, version)] = (
                lambda x, net=net, opts=opts, draws=draws: net.step(x, draws, opts), ctx)
    best = dict.fromkeys(variants, float("inf"))
    block = max(1, args.steps // args.blocks)
    for step, ctx in variants.values():
        with ctx():
            step(xs[0])  # warm-up
    for _ in range(args.repeat):
        for b in range(args.blocks):
            for key, (step, ctx) in variants.items():
                with ctx():
                    t0 = time.perf_counter()
                    for s in range(b * block, (b + 1) * block):
                        step(xs[s])
                    best[key] = min(best[key], (time.perf_counter() - t0) / block)
    print(f"modules {args.layers}, batch {args.batch}, one thread, fastest of {args.blocks * args.repeat} blocks of "
          f"{block} steps")
    for method in clapp.METHODS:
        tb, tn = best[(method, "before")], best[(method, "now")]
        print(f"  {clapp.METHODS[method]:62s} before {1e3 * tb:6.1f} ms/step, now "
              f"{1e3 * tn:6.1f} ms/step ({args.batch / tn:5.0f} images/s): {tb / tn:.2f}x")
    clapp_t, e2e_t = best[("clapp", "now")], best[("hinge-cpc", "now")]
    print(f"CLAPP throughput / hinge CPC throughput (now): {e2e_t / clapp_t:.2f}x")


if __name__ == "__main__":
    main()
