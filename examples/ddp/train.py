"""Distributed data-parallel training of a small regression network with PyTorch on CPUs.

Run by torchrun (python3 -m torch.distributed.run), which reads its settings from PET_*
variables (Kiln's pytorch framework sets them) and gives each process RANK, WORLD_SIZE,
MASTER_ADDR and MASTER_PORT. Each rank trains on its own shard of a synthetic data set;
DistributedDataParallel averages the gradients over gloo, so every rank holds the same
weights after each step and prints the same final loss.
"""

import os
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

EPOCHS = 20
BATCH = 32


def main():
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    print(f"rank {rank} of {world}: rendezvous at {os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}",
          flush=True)

    # The same data on every rank (same seed); each rank trains on every world-th sample.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 16, generator=g)
    true_w = torch.randn(16, 1, generator=g)
    y = torch.sin(x @ true_w / 4) + 0.05 * torch.randn(2048, 1, generator=g)
    x_local, y_local = x[rank::world], y[rank::world]

    torch.manual_seed(0)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    model = DistributedDataParallel(torch.nn.Sequential(
        torch.nn.Linear(16, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1)))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.MSELoss()

    start = time.monotonic()
    for epoch in range(1, EPOCHS + 1):
        order = torch.randperm(len(x_local), generator=torch.Generator().manual_seed(epoch))
        total = torch.zeros(1)
        for i in range(0, len(order), BATCH):
            idx = order[i:i + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(x_local[idx]), y_local[idx])
            loss.backward()  # gradients are averaged over all ranks here
            opt.step()
            total += loss.detach() * len(idx)
        dist.all_reduce(total)  # the epoch's mean loss over every rank's samples
        mean = total.item() / len(x)
        print(f"epoch {epoch:2d} loss {mean:.6f}", flush=True)
        if rank == 0:
            print(f"kiln-metric step={epoch} loss={mean:.6f}", flush=True)

    with torch.no_grad():
        final = loss_fn(model.module(x), y).item()  # every rank's weights are the same
    print(f"final loss {final:.6f} (rank {rank}, {time.monotonic() - start:.1f}s)", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
