"""Fit y = 2x + 1 by gradient descent and save the model where Kiln asks.

Standard library only, so `kubectl kiln build` can lay it on any Python base image.
"""
import json
import os

xs = [i / 10 for i in range(50)]
ys = [2 * x + 1 for x in xs]
w, b, lr = 0.0, 0.0, 0.05
epochs = int(os.environ.get("EPOCHS", "200"))
for epoch in range(epochs):
    gw = sum((w * x + b - y) * x for x, y in zip(xs, ys)) / len(xs)
    gb = sum((w * x + b - y) for x, y in zip(xs, ys)) / len(xs)
    w, b = w - lr * gw, b - lr * gb
    if epoch % 50 == 0:
        loss = sum((w * x + b - y) ** 2 for x, y in zip(xs, ys)) / len(xs)
        print(f"epoch {epoch} loss {loss:.5f}", flush=True)

out = os.environ.get("KILN_OUTPUT_DIR")
if out:
    with open(os.path.join(out, "model.json"), "w") as f:
        json.dump({"w": w, "b": b}, f)
print(f"w={w:.3f} b={b:.3f}")
