"""Train a 24-layer ReLU MLP on scikit-learn's digits, NumPy only, with four inits.

N(0, 1) ("naive") explodes, N(0, 0.01^2) ("small") and Xavier (gain 1) let
the signal shrink layer after layer, He (kaiming_normal) keeps it: only He
trains well (Xavier slowly). Forward pass, backward pass and Adam are
written out below; varinit only fills the weights. Adam rescales each
gradient coordinate, so vanishing gradients alone do not stop it: what stops
the small inits is a forward signal that no longer depends on the input, and
what stops N(0, 1) is logits of size 1e18.

    python examples/train_mlp_digits.py            # full run (< 60 s on one core)
    python examples/train_mlp_digits.py --quick    # CI-sized run (< 15 s)
    python examples/train_mlp_digits.py --plot loss.png

The digits (1797 8x8 images, 10 classes) ship inside scikit-learn: no download.
"""
import argparse
import math
import time

import numpy as np

import varinit
from varinit.diagnostics.mlp import init_weight

INITS = ("naive", "small", "xavier_normal", "kaiming_normal")
DEPTH = 24          # hidden ReLU layers
WIDTH = 64
BATCH = 64
# Adam (Kingma & Ba 2015), one learning rate for every init: a fair race.
LEARNING_RATE = 1e-3
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
EPOCHS = {"full": 30, "quick": 8}
TARGET_LOSS = 0.5


def load_digits_split(seed=0, test_fraction=0.2):
    """Standardized digits features, split into train and test sets by a seeded permutation."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.data.astype(np.float64)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    mean = x[train].mean(axis=0)
    std = x[train].std(axis=0)
    std[std == 0] = 1.0   # always-blank pixels
    x = (x - mean) / std
    return x[train], y[train], x[test], y[test]


def build_mlp(init, in_features, classes, depth=DEPTH, width=WIDTH, seed=0):
    """[(W, b)] for depth ReLU layers and a linear readout, weights drawn by `init`."""
    generator = varinit.Generator(seed)
    params = []
    fan_in = in_features
    for _ in range(depth):
        params.append((init_weight(np.empty((width, fan_in)), init, "relu", None, generator), np.zeros(width)))
        fan_in = width
    params.append((init_weight(np.empty((classes, fan_in)), init, None, None, generator), np.zeros(classes)))
    return params


def forward(params, x):
    """Logits and the per-layer (input, pre-activation) pairs backward() needs."""
    cache = []
    a = x
    for index, (w, b) in enumerate(params):
        z = a @ w.T + b
        cache.append((a, z))
        a = z if index == len(params) - 1 else np.maximum(z, 0.0)
    return a, cache


def cross_entropy(logits, y):
    """Mean softmax cross-entropy and its gradient with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(len(y)), y].mean()
    grad = np.exp(log_probs)
    grad[np.arange(len(y)), y] -= 1.0
    return loss, grad / len(y)


def backward(params, cache, grad_logits):
    """[(dW, db)] by backpropagation through the ReLU layers."""
    grads = [None] * len(params)
    g = grad_logits
    for index in range(len(params) - 1, -1, -1):
        a_in, z = cache[index]
        if index != len(params) - 1:
            g = g * (z > 0)
        grads[index] = (g.T @ a_in, g.sum(axis=0))
        g = g @ params[index][0]
    return grads


class Adam:
    """Adam on a list of (W, b) pairs, updated in place."""

    def __init__(self, params, lr=LEARNING_RATE):
        self.params, self.lr, self.step = params, lr, 0
        self.m = [[np.zeros_like(p) for p in pair] for pair in params]
        self.v = [[np.zeros_like(p) for p in pair] for pair in params]

    def update(self, grads):
        self.step += 1
        correct1, correct2 = 1.0 - BETA1 ** self.step, 1.0 - BETA2 ** self.step
        for pair, ms, vs, gs in zip(self.params, self.m, self.v, grads):
            for p, m, v, g in zip(pair, ms, vs, gs):
                m *= BETA1
                m += (1.0 - BETA1) * g
                v *= BETA2
                v += (1.0 - BETA2) * g * g
                p -= self.lr * (m / correct1) / (np.sqrt(v / correct2) + EPS)


def train(init, data, epochs, seed=0):
    """Per-epoch training loss and final test accuracy of one init; stops if the loss is not finite."""
    x_train, y_train, x_test, y_test = data
    params = build_mlp(init, x_train.shape[1], 10, seed=seed)
    optimizer = Adam(params)
    rng = np.random.default_rng(seed + 1)
    losses = []
    diverged = False
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(epochs):
            order = rng.permutation(len(x_train))
            total = 0.0
            for start in range(0, len(order), BATCH):
                batch = order[start:start + BATCH]
                logits, cache = forward(params, x_train[batch])
                loss, grad = cross_entropy(logits, y_train[batch])
                total += loss * len(batch)
                optimizer.update(backward(params, cache, grad))
            epoch_loss = total / len(order)
            losses.append(epoch_loss)
            if not math.isfinite(epoch_loss):
                diverged = True
                break
        logits, _ = forward(params, x_test)
    accuracy = float(np.mean(np.argmax(np.nan_to_num(logits, nan=0.0), axis=1) == y_test))
    return {"losses": losses, "final_loss": losses[-1] if not diverged else math.inf,
            "test_accuracy": accuracy, "diverged": diverged}


def run(quick=False, seed=0, inits=INITS):
    """Train every init; returns {init: result of train()}."""
    data = load_digits_split(seed)
    epochs = EPOCHS["quick" if quick else "full"]
    return {init: train(init, data, epochs, seed) for init in inits}


def print_table(results):
    """One row per init: first and last training loss, test accuracy, when the loss fell below TARGET_LOSS."""
    print(f"{'init':<16}{'loss epoch 1':>14}{'final loss':>12}{'test acc':>10}{'loss<' + str(TARGET_LOSS) + ' at':>14}  outcome")
    for init, r in results.items():
        first = r["losses"][0]
        final = "diverged" if r["diverged"] else f"{r['final_loss']:.4g}"
        reached = next((e + 1 for e, loss in enumerate(r["losses"]) if loss < TARGET_LOSS), None)
        when = f"epoch {reached}" if reached else "never"
        trained = not r["diverged"] and r["final_loss"] < 0.5 * math.log(10)
        outcome = "diverged (inf/nan)" if r["diverged"] else ("trains" if trained else "does not train")
        print(f"{init:<16}{first:>14.4g}{final:>12}{r['test_accuracy']:>10.3f}{when:>14}  {outcome}")


def plot_losses(results, path=None):
    """Training loss per epoch and init, log scale; saved to `path` (and closed) when given."""
    from varinit.diagnostics.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    ceiling = 10.0   # N(0, 1)'s losses (~1e16) would flatten every other curve
    for init, r in results.items():
        losses = np.array(r["losses"], dtype=np.float64)
        losses[~np.isfinite(losses)] = np.nan
        label = init if np.nanmin(losses) < ceiling else f"{init} (off the scale: ~{np.nanmin(losses):.0e})"
        ax.plot(np.arange(1, len(losses) + 1), np.minimum(losses, ceiling), "o-", ms=3, label=label)
    ax.axhline(math.log(10), color="0.5", ls=":", label="chance (ln 10)")
    ax.set_yscale("log")
    ax.set_ylim(top=ceiling)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(f"{DEPTH}-layer ReLU MLP on digits, Adam lr {LEARNING_RATE}")
    ax.legend()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{EPOCHS['quick']} epochs instead of {EPOCHS['full']}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=None, metavar="PATH", help="save the loss curves there (needs matplotlib)")
    args = parser.parse_args()
    start = time.perf_counter()
    results = run(quick=args.quick, seed=args.seed)
    print(f"{DEPTH} hidden ReLU layers of width {WIDTH}, Adam lr {LEARNING_RATE}, batch {BATCH}, "
          f"{EPOCHS['quick' if args.quick else 'full']} epochs")
    print_table(results)
    print(f"({time.perf_counter() - start:.1f} s)")
    if args.plot:
        plot_losses(results, args.plot)
        print(f"loss curves saved to {args.plot}")


if __name__ == "__main__":
    main()
