"""Scale: train-step time on one device vs MirroredStrategy over two logical CPU devices, and the
peak memory of the Fisher computation for 1000 and 10000 samples.

Usage: python bench/scale.py [--jit-compile]

Each measurement runs in a fresh process (logical devices must be set before TensorFlow starts;
peak memory is the process's maximum resident size). Target: the Fisher's peak for 10000 samples
stays within 1.5x of that for 1000 (it works in bounded chunks).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

STEP = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, "bench")
    import _common
    import numpy as np, tensorflow as tf, keras
    strategy_name, jit = sys.argv[1], sys.argv[2] == "1"
    if strategy_name == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    else:
        strategy = tf.distribute.get_strategy()
    from sequential_learning.importance.penalty import ConsolidationPenalty
    from sequential_learning.training import ConsolidationTrainer
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((8192, 784)).astype("float32")
    y = np.random.default_rng(1).integers(0, 10, 8192)
    with strategy.scope():
        inp = keras.Input((784,))
        base = keras.Model(inp, keras.layers.Dense(400, activation="relu")(
            keras.layers.Dense(400, activation="relu")(inp)))
        model = keras.Model(inp, keras.layers.Dense(10)(base(inp)))
        penalty = ConsolidationPenalty(base.trainable_variables, 100.0)
        penalty.consolidate([np.ones(v.shape, "float32") for v in base.trainable_variables])
        trainer = ConsolidationTrainer(model, penalty, None, base.trainable_variables)
        trainer.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        jit_compile=jit)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(256).cache()
    trainer.fit(data, epochs=1, verbose=0, shuffle=False)
    start = time.perf_counter()
    trainer.fit(data, epochs=2, verbose=0, shuffle=False)
    steps = 2 * 8192 // 256
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      "step_ms": (time.perf_counter() - start) / steps * 1000}))
    """
)

MEMORY = textwrap.dedent(
    """
    import json, resource, sys
    sys.path.insert(0, "bench")
    import _common
    import numpy as np, keras
    from sequential_learning.importance.fisher import fisher_information
    n = int(sys.argv[1])
    keras.utils.set_random_seed(0)
    inp = keras.Input((784,))
    h = keras.layers.Dense(400, activation="relu")(inp)
    h = keras.layers.Dense(400, activation="relu")(h)
    model = keras.Model(inp, keras.layers.Dense(10)(h))
    x = np.random.default_rng(0).random((n, 784)).astype("float32")
    fisher_information(model, model.trainable_variables, x[:8])  # warm up the runtime
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fisher_information(model, model.trainable_variables, x, mode="exact")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"samples": n, "peak_mib": after / 1024, "growth_mib": (after - before) / 1024}))
    """
)


def _child(code, *args):
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jit-compile", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, "bench")
    import _common

    print(_common.device_line())
    jit = "1" if args.jit_compile else "0"
    one = _child(STEP, "default", jit)
    two = _child(STEP, "mirrored", jit)
    print("train step (MLP 784-400-400-10, Fisher penalty on, global batch 256)")
    print(f"  one device                          {one['step_ms']:7.2f} ms/step")
    print(f"  MirroredStrategy, 2 logical CPUs    {two['step_ms']:7.2f} ms/step "
          f"({two['step_ms'] / one['step_ms']:.2f}x; both share the same 2 cores here)")
    small = _child(MEMORY, "1000")
    large = _child(MEMORY, "10000")
    print("exact Fisher peak resident memory (MLP 784-400-400-10)")
    for r in (small, large):
        print(f"  {r['samples']:6d} samples   peak {r['peak_mib']:8.1f} MiB "
              f"(grew {r['growth_mib']:6.1f} MiB during the Fisher)")
    print(f"  10000 / 1000 peak ratio: {large['peak_mib'] / small['peak_mib']:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
