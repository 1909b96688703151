"""Matrix-vector products at GPT-2-small size, by kernel layout, with and without XLA.

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python benchmarks/gemv_layout.py

A `tf.while_loop` of 16 decoding-like steps; each step multiplies one row through
12 layers of four random float32 kernels of GPT-2 small's shapes (query/key/value
768x2304, output 768x768, feed-forward 768x3072 and 3072x768: 340 MB, far over the
caches), each product's input depending on the last. Layouts: Keras'
`(input_dim, units)` (`x @ W`), by rows with `transpose_b` (`x @ R^T`), and by rows
as `R @ x^T`. The kernels are constants here (in a model they are variables:
see BENCHMARKS.md, where XLA with kernels by rows was slower). Prints ms per step
(best and median of 5 calls) and the weight bytes streamed per second.
"""

import time

import numpy as np
import tensorflow as tf

STEPS = 16
SHAPES = [(768, 2304), (768, 768), (768, 3072), (3072, 768)]


def main():
    rng = np.random.default_rng(0)
    layers = [[rng.standard_normal(s, dtype=np.float32) * 0.02 for s in SHAPES] for _ in range(12)]
    native = [[tf.constant(w) for w in layer] for layer in layers]
    rows = [[tf.constant(np.ascontiguousarray(w.T)) for w in layer] for layer in layers]
    total = sum(w.nbytes for layer in layers for w in layer)

    def keras_layout(h):
        for a, b, c, d in native:
            q = tf.matmul(h, a)[:, :768]
            h = h + tf.matmul(q, b)
            h = h + tf.matmul(tf.nn.relu(tf.matmul(h, c)), d) * 1e-3
        return h

    def transpose_b(h):
        for a, b, c, d in rows:
            q = tf.matmul(h, a, transpose_b=True)[:, :768]
            h = h + tf.matmul(q, b, transpose_b=True)
            u = tf.nn.relu(tf.matmul(h, c, transpose_b=True))
            h = h + tf.matmul(u, d, transpose_b=True) * 1e-3
        return h

    def rows_first(h):
        for a, b, c, d in rows:
            q = tf.transpose(tf.matmul(a, h, transpose_b=True))[:, :768]
            h = h + tf.transpose(tf.matmul(b, q, transpose_b=True))
            u = tf.nn.relu(tf.transpose(tf.matmul(c, h, transpose_b=True)))
            h = h + tf.transpose(tf.matmul(d, u, transpose_b=True)) * 1e-3
        return h

    for name, step in [("x @ W", keras_layout), ("x @ R^T", transpose_b), ("R @ x^T", rows_first)]:
        for jit in (False, True):

            @tf.function(jit_compile=jit)
            def loop(x, step=step):
                def body(i, x):
                    return i + 1, step(x) / (1.0 + tf.reduce_max(tf.abs(x)))

                return tf.while_loop(lambda i, x: i < STEPS, body, (0, x))[1]

            x = tf.ones([1, 768])
            loop(x)
            seconds = []
            for _ in range(5):
                start = time.perf_counter()
                loop(x).numpy()
                seconds.append((time.perf_counter() - start) / STEPS)
            best, median = min(seconds), sorted(seconds)[2]
            print(
                f"{name:8s} xla={jit!s:5s} ms/step best {best * 1000:.1f} median "
                f"{median * 1000:.1f}  {total / best / 1e9:.1f} GB/s",
                flush=True,
            )


if __name__ == "__main__":
    main()
