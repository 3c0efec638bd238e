"""sbibm's C2ST classifier, re-implemented by hand in torch so that many fits run as one
batched computation; scikit-learn's ``MLPClassifier`` stays the reference
(:func:`c2st_sklearn`, ``eval.c2st_impl=sklearn``) and ``tests/test_c2st.py`` cross-checks
the two (initial weights, loss and weights over the first epochs, fold accuracies).

The metric (Lueckmann et al. 2021, ``sbibm/metrics/c2st.py``): both sample sets are z-scored
with the mean and unbiased std of the reference, cast to float32, labelled 0 (reference) and
1 (samples), split by ``KFold(n_folds, shuffle=True, random_state=seed)``; on each fold an
``MLPClassifier(activation="relu", hidden_layer_sizes=(10 d, 10 d), solver="adam",
max_iter=10000, random_state=seed)`` is fitted on the training part and its accuracy on the
rest is the fold's score; C2ST is the mean over folds (0.5: indistinguishable, 1: disjoint).

Why by hand: scikit-learn fits one classifier at a time, a Python loop of small float32
matrix products (80 steps per epoch, hundreds of epochs at 2 x 10^4 samples): tens of
CPU-seconds per fold. Here every fold of every sample pair given at once is one classifier
on a leading axis of batched products (``torch.bmm``, one thread); each stops at its own
epoch and leaves the batch. The batch removes the per-step overhead, not the products
themselves (about half of scikit-learn's time), so the gain is about 2x in CPU time
(``benchmarks/bench_c2st.py``). Nothing else differs; :class:`_BatchedMLP` follows
scikit-learn 1.x's ``_fit_stochastic``:

* init: Glorot uniform, bound ``sqrt(6 / (fan_in + fan_out))``, drawn from
  ``np.random.RandomState(seed)`` per layer (weights, then biases), in float64, cast to float32;
* epochs: the training indices re-shuffled by the same RandomState (``sample_idx =
  sample_idx[rs.shuffle(arange(n))]``), mini-batches of ``min(200, n)``, the last one shorter;
* loss: binary cross-entropy of the float32 logistic output clipped to [eps, 1 - eps]
  (float32 eps), averaged in float64, plus ``0.5 alpha sum(W^2) / batch_n`` (alpha 1e-4);
  gradients ``(a^T delta + alpha W) / batch_n``, biases ``sum(delta) / batch_n``;
* Adam: lr 1e-3, betas 0.9/0.999, eps 1e-8, step ``lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt v
  + eps)`` (scikit-learn computes it in float64 before adding it to the float32 parameters,
  here in float32: one more rounding, below the differences of summation order);
* stop: after an epoch whose mean training loss is not below the best minus tol (1e-4) more
  than ``n_iter_no_change`` (10) times in a row, or after ``max_iter`` epochs;
* predict: class 1 where the logistic output is > 0.5.

Rounding: float32 products summed in another order than scikit-learn's BLAS (and scipy's
``expit``) differ by ulps; over hundreds of epochs that can move a stopping epoch or flip a
borderline prediction, so the accuracies agree within the tolerance ``tests/test_c2st.py``
states, not bit for bit. The value is deterministic: the same inputs give the same number,
whatever the load or torch's thread count (the batch is fixed by the inputs; which folds
share it can change MKL's summation order through memory alignment, within that tolerance).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

ALPHA, LR, BETA1, BETA2, ADAM_EPS, TOL, N_NO_CHANGE, MAX_ITER = 1e-4, 1e-3, 0.9, 0.999, 1e-8, 1e-4, 10, 10000


def prepare(reference: np.ndarray, samples: np.ndarray, seed: int = 1, n_folds: int = 5,
            z_score: bool = True) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """sbibm's C2ST inputs: float32 data (n + m, d) z-scored by the reference, labels (0:
    reference, 1: samples) and the ``KFold`` (train, test) index pairs (module docstring)."""
    from sklearn.model_selection import KFold

    X = np.asarray(reference, np.float64)
    Y = np.asarray(samples, np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError(f"c2st needs two (n, d) sample arrays of equal d, got {X.shape} and {Y.shape}")
    if z_score:
        mean, std = X.mean(0), X.std(0, ddof=1)
        X, Y = (X - mean) / std, (Y - mean) / std
    data = np.concatenate([X, Y]).astype(np.float32)
    target = np.concatenate([np.zeros(len(X)), np.ones(len(Y))])
    folds = list(KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(data, target))
    return data, target, folds


def c2st_sklearn(reference: np.ndarray, samples: np.ndarray, seed: int = 1, n_folds: int = 5,
                 z_score: bool = True) -> float:
    """The reference implementation: scikit-learn's ``MLPClassifier`` on each fold (what
    ``cross_val_score`` does), with the BLAS/OpenMP pools limited to one thread so that the
    value does not depend on the load (a multi-threaded BLAS may sum in another order)."""
    from sklearn.metrics import accuracy_score
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    data, target, folds = prepare(reference, samples, seed, n_folds, z_score)
    d = data.shape[1]
    scores = []
    for train, test in folds:
        clf = MLPClassifier(activation="relu", hidden_layer_sizes=(10 * d, 10 * d), max_iter=MAX_ITER,
                            solver="adam", random_state=seed)
        with threadpool_limits(limits=1):
            clf.fit(data[train], target[train])
            scores.append(float(accuracy_score(target[test], clf.predict(data[test]))))
    return float(np.mean(scores))


def c2st(reference: np.ndarray, samples: np.ndarray, seed: int = 1, n_folds: int = 5, z_score: bool = True) -> float:
    """sbibm's C2ST accuracy between ``reference`` (n, d) and ``samples`` (m, d), by the
    batched re-implementation (module docstring)."""
    return c2st_many([(reference, samples)], seed, n_folds, z_score)[0]


def c2st_many(pairs: Sequence[tuple[np.ndarray, np.ndarray]], seed: int = 1, n_folds: int = 5, z_score: bool = True,
              on_done: Callable[[int, float], None] | None = None,
              on_epoch: Callable[[int, int], None] | None = None) -> list[float]:
    """C2ST of every ``(reference, samples)`` pair, all folds of all pairs of equal dimension
    trained together. ``on_done(i, c2st)`` is called as soon as pair ``i``'s folds have all
    stopped, ``on_epoch(epoch, n_still_training)`` after every epoch."""
    prepared = [prepare(r, s, seed, n_folds, z_score) for r, s in pairs]
    out: list[float] = [float("nan")] * len(pairs)
    scores: list[dict[int, float]] = [{} for _ in pairs]
    # one batch per (dimension, training size): no padding, so a fold's computation does not
    # depend on what else is in the batch (KFold's training parts differ by one row at most)
    groups: dict[tuple[int, int], list[tuple[int, int, np.ndarray, np.ndarray]]] = {}
    for i, (data, _, folds) in enumerate(prepared):
        for f, (tr, te) in enumerate(folds):
            groups.setdefault((data.shape[1], len(tr)), []).append((i, f, tr, te))
    waiting = sum(len(g) for g in groups.values())

    def fold_done(i: int, f: int, acc: float) -> None:
        scores[i][f] = acc
        if len(scores[i]) == n_folds:
            out[i] = float(np.mean([scores[i][f] for f in range(n_folds)]))
            if on_done is not None:
                on_done(i, out[i])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # small products: threads cost more than they bring on a loaded machine
    try:
        for members in groups.values():
            waiting -= len(members)
            jobs = [(prepared[i][0][tr], prepared[i][1][tr], prepared[i][0][te], prepared[i][1][te])
                    for i, _, tr, te in members]
            _BatchedMLP(jobs, seed).run(
                lambda j, acc, members=members: fold_done(members[j][0], members[j][1], acc),
                None if on_epoch is None else lambda e, n, w=waiting: on_epoch(e, n + w))
    finally:
        torch.set_num_threads(threads)
    return out


def init_weights(layer_units: Sequence[int], rs: np.random.RandomState) -> list[np.ndarray]:
    """scikit-learn's initial float32 parameters ``[W1, b1, W2, b2, ...]`` for ``layer_units``
    drawn from ``rs`` (``_init_coef``: Glorot uniform with relu's factor 6, weights then biases
    per layer)."""
    params = []
    for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        params.append(rs.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32))
        params.append(rs.uniform(-bound, bound, fan_out).astype(np.float32))
    return params


class _BatchedMLP:
    """B binary MLP classifiers (relu, two hidden layers of 10 d units, logistic output)
    trained at once, one per ``(x_train, y_train, x_test, y_test)`` job (module docstring).
    Every job has its own training set, shuffle stream, Adam state and stopping epoch."""

    def __init__(self, jobs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], seed: int,
                 max_iter: int = MAX_ITER):
        self.jobs, self.seed, self.max_iter = jobs, seed, max_iter
        d = jobs[0][0].shape[1]
        self.units = [d, 10 * d, 10 * d, 1]
        #: per job, once it stopped: epochs run (``n_iter_``), mean training loss per epoch
        #: (``loss_curve_``), final parameters ``[W1, b1, W2, b2, W3, b3]``
        self.n_iter: dict[int, int] = {}
        self.loss_curve: dict[int, list[float]] = {j: [] for j in range(len(jobs))}
        self.params: dict[int, list[torch.Tensor]] = {}

    def run(self, fold_done: Callable[[int, float], None], on_epoch: Callable[[int, int], None] | None) -> None:
        """Train until every job stopped; ``fold_done(job, accuracy)`` as each one does."""
        jobs = self.jobs
        n = len(jobs[0][0])
        if any(len(j[0]) != n for j in jobs):
            raise ValueError("c2st: the jobs of one batch need training sets of one size")
        # job index of each row of the batch; -1: a copy of the only other row (a batch of one
        # multiplies in another order than a batch of two or more: keep B >= 2, so that a fold's
        # value does not depend on what it is batched with)
        alive = np.arange(len(jobs)) if len(jobs) > 1 else np.array([0, -1])
        rows = np.maximum(alive, 0)
        x = torch.from_numpy(np.stack([np.asarray(jobs[j][0], np.float32) for j in rows]))
        y = torch.from_numpy(np.stack([np.asarray(jobs[j][1], np.float32) for j in rows]))[:, :, None]
        rs = np.random.RandomState(self.seed)     # scikit-learn's: the initial weights, then the shuffles
        params = [torch.from_numpy(p).expand(len(rows), *p.shape).clone() for p in init_weights(self.units, rs)]
        m = [torch.zeros_like(p) for p in params]
        v = [torch.zeros_like(p) for p in params]
        best = np.full(len(rows), np.inf)
        stale = np.zeros(len(rows), int)
        sample_idx = np.arange(n)
        batch, t = min(200, n), 0
        for epoch in range(1, self.max_iter + 1):
            order = np.arange(n)
            rs.shuffle(order)
            sample_idx = sample_idx[order]
            idx = torch.from_numpy(sample_idx)
            xe, ye = x[:, idx], y[:, idx]
            loss_sum = torch.zeros(len(alive), dtype=torch.float64)
            for start in range(0, n, batch):
                t += 1
                loss_sum += _step(params, m, v, t, xe[:, start:start + batch], ye[:, start:start + batch]) \
                    * min(batch, n - start)
            loss = (loss_sum / n).numpy()
            stale = np.where(loss > best - TOL, stale + 1, 0)
            best = np.minimum(best, loss)
            for r, b in enumerate(alive):
                if b >= 0:
                    self.loss_curve[b].append(float(loss[r]))
            stop = ((stale > N_NO_CHANGE) | (epoch == self.max_iter)) & (alive >= 0)
            if stop.any():
                for r in np.flatnonzero(stop):
                    b = int(alive[r])
                    self.n_iter[b], self.params[b] = epoch, [p[r].clone() for p in params]
                    fold_done(b, _accuracy(self.params[b], *jobs[b][2:]))
                sel = np.flatnonzero(~stop & (alive >= 0))
                if not len(sel):
                    break
                new_alive = alive[sel] if len(sel) > 1 else np.array([alive[sel[0]], -1])
                sel = sel if len(sel) > 1 else np.array([sel[0], sel[0]])
                keep = torch.from_numpy(sel)
                params, m, v = ([p[keep] for p in ps] for ps in (params, m, v))
                x, y = x[keep], y[keep]
                alive, best, stale = new_alive, best[sel], stale[sel]
            if on_epoch is not None:
                on_epoch(epoch, int((alive >= 0).sum()))
        if on_epoch is not None:
            on_epoch(epoch, 0)


def _step(params, m, v, t: int, xb, yb) -> torch.Tensor:
    """Adam step ``t`` of every classifier on its mini-batch ``xb`` (B, k, d), labels ``yb``
    (B, k, 1); returns each classifier's batch loss (float64, before the step)."""
    W1, b1, W2, b2, W3, b3 = params
    k = xb.shape[1]
    a1 = torch.bmm(xb, W1).add_(b1[:, None]).relu_()
    a2 = torch.bmm(a1, W2).add_(b2[:, None]).relu_()
    out = torch.bmm(a2, W3).add_(b3[:, None]).sigmoid_()
    eps = float(np.finfo(np.float32).eps)
    clipped = out.clamp(eps, 1 - eps)
    yd = yb.double()
    ll = yd * clipped.double().log_() + (1 - yd) * (1 - clipped).double().log_()   # 1 - p in float32
    l2 = W1.square().sum((1, 2)) + W2.square().sum((1, 2)) + W3.square().sum((1, 2))
    loss = -ll.mean((1, 2)) + ((0.5 * ALPHA) * l2 / k).double()
    delta = out - yb
    gW3 = torch.baddbmm(W3, a2.transpose(1, 2), delta, beta=ALPHA).div_(k)
    gb3 = delta.sum(1).div_(k)
    delta = torch.ops.aten.threshold_backward(torch.bmm(delta, W3.transpose(1, 2)), a2, 0)
    gW2 = torch.baddbmm(W2, a1.transpose(1, 2), delta, beta=ALPHA).div_(k)
    gb2 = delta.sum(1).div_(k)
    delta = torch.ops.aten.threshold_backward(torch.bmm(delta, W2.transpose(1, 2)), a1, 0)
    gW1 = torch.baddbmm(W1, xb.transpose(1, 2), delta, beta=ALPHA).div_(k)
    gb1 = delta.sum(1).div_(k)
    lr = LR * np.sqrt(1 - BETA2 ** t) / (1 - BETA1 ** t)
    for p, g, mi, vi in zip(params, [gW1, gb1, gW2, gb2, gW3, gb3], m, v):   # scikit-learn's AdamOptimizer
        mi.mul_(BETA1).add_(g * (1 - BETA1))
        vi.mul_(BETA2).add_(g.square().mul_(1 - BETA2))
        p.addcdiv_(mi * -lr, vi.sqrt().add_(ADAM_EPS))
    return loss


def _accuracy(params: list[torch.Tensor], x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Accuracy on the test part of one classifier's parameters ``[W1, b1, ...]``: class 1
    where the logistic output is > 0.5."""
    W1, b1, W2, b2, W3, b3 = params
    a = torch.from_numpy(np.ascontiguousarray(x_test, np.float32))
    a = (a @ W1 + b1).relu_()
    a = (a @ W2 + b2).relu_()
    pred = torch.sigmoid(a @ W3 + b3)[:, 0] > 0.5
    return float(np.mean(pred.numpy() == (np.asarray(y_test) > 0.5)))

