"""The top eigenvalue of a symmetric operator by Lanczos iteration, for a traced graph.

The rule: k steps of Lanczos from a start vector build an orthonormal basis of the Krylov space
{v, Hv, ..., H^(k-1) v} and the k x k tridiagonal matrix T of H in it; T's largest eigenvalue
(the top Ritz value) approaches H's largest eigenvalue from below, much faster than power
iteration's Rayleigh quotient does for the same number of products (for a symmetric H the
Krylov space holds the power-iteration vector and better ones), and it is the largest
*algebraic* one, so a loss surface that curves down more than up needs no second, shifted pass.
The basis is not kept: without reorthogonalisation float32 rounding lets a converged direction
come back as a second copy of the same Ritz value, which leaves the largest one where it was
(and keeping it cost more per step than the Hessian-vector product itself, measured).
"""

from __future__ import annotations

from collections.abc import Callable

from gradviz.training.tf_setup import tf


def top_eigenvalue(product: Callable[[list[tf.Tensor]], list[tf.Tensor]], start: list[tf.Tensor],
                   steps: int | tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The largest eigenvalue of the symmetric operator `product`, inside a tf.function.

    Args:
        product: v -> H v, on lists of tensors shaped like `start` (e.g. a Hessian-vector product).
        start: the start vector (any scale; seeded random in practice).
        steps: Lanczos steps (at least 2; a tensor is fine), each one product (the graph traces
            `product` once, in a while loop).
    Returns:
        (the top Ritz value after `steps` steps, the one after `steps` - 1): their gap says how
        far it converged.
    """
    shapes = [v.shape for v in start]
    sizes = [int(v.shape.num_elements()) for v in start]

    def flat(vectors):
        return tf.concat([tf.reshape(v, [-1]) for v in vectors], 0)

    def apply(vector):
        parts = tf.split(vector, sizes)
        return flat(product([tf.reshape(p, s) for p, s in zip(parts, shapes)]))

    first = flat(start)
    first = first / tf.norm(first)

    def step(i, vector, previous, beta, alphas, betas):
        w = apply(vector) - beta * previous
        alpha = tf.tensordot(w, vector, 1)
        w = w - alpha * vector
        norm = tf.norm(w)
        following = w / tf.maximum(norm, 1e-30)  # norm 0: an invariant subspace, every later step adds zeros
        return i + 1, following, vector, norm, alphas.write(i, alpha), betas.write(i, norm)

    loop = (tf.constant(0), first, tf.zeros_like(first), tf.constant(0.0, first.dtype),
            tf.TensorArray(first.dtype, size=steps), tf.TensorArray(first.dtype, size=steps))
    *_, alphas, betas = tf.while_loop(lambda i, *_: i < steps, step, loop)
    alphas, betas = alphas.stack(), betas.stack()
    return _top_ritz(alphas, betas), _top_ritz(alphas[:-1], betas[:-1])


def _top_ritz(alphas: tf.Tensor, betas: tf.Tensor) -> tf.Tensor:
    """The largest eigenvalue of the tridiagonal matrix with diagonal `alphas` and off-diagonal
    betas[:-1] (the last beta leads out of the Krylov space built so far)."""
    k = tf.shape(alphas)[0]
    off = tf.linalg.diag(betas[:-1], k=1, num_rows=k, num_cols=k)
    return tf.reduce_max(tf.linalg.eigvalsh(tf.linalg.diag(alphas) + off + tf.transpose(off)))
