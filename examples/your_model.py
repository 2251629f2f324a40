"""gradviz on your own Keras model: check it at initialization, watch it train, save the run, fix it.

    python examples/your_model.py                  # writes deep_sigmoid.gradviz and deep_relu.gradviz
    python -m gradviz view deep_sigmoid.gradviz    # the same run in the app's "Open a run" page

In a notebook, `gradviz.show(callback.result)` draws the heatmap, the loss and the findings inline.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a clone's gradviz/ (or `pip install -e .` it)

import gradviz  # noqa: E402
from gradviz.data import load_dataset  # noqa: E402
from gradviz.training.tf_setup import keras  # noqa: E402 - TensorFlow and Keras 3, as gradviz imports them


def deep_model(activation: str, initializer: str) -> keras.Model:
    """Ten hidden Dense layers: the seed article's deep network."""
    hidden = [keras.layers.Dense(128, activation=activation, kernel_initializer=initializer, name=f"hidden_{i}")
              for i in range(10)]
    output = keras.layers.Dense(10, name="logits")
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), *hidden, output])
    model.compile(optimizer=keras.optimizers.SGD(0.05), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main(images: int, epochs: int, out: str) -> None:
    data = load_dataset(images)  # real MNIST (GRADVIZ_DATA_DIR, the Keras cache, or a download)
    x, y = data.x_train, data.y_train
    for name, activation, initializer in (("deep_sigmoid", "sigmoid", "glorot_uniform"),
                                          ("deep_relu", "relu", "he_normal")):
        keras.utils.set_random_seed(0)
        model = deep_model(activation, initializer)
        probe = gradviz.probe_model(model, x[:256], y[:256])            # 1. before training
        callback = gradviz.watch(model, x=x)                            # 2. while it trains
        model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, callbacks=[callback],
                  validation_data=(data.x_val, data.y_val))
        path = callback.result.save(f"{out}/{name}.gradviz")           # 3. a run file: numbers only
        print(f"\n{name}: validation accuracy {callback.result.val_accuracy[-1]:.1%}, saved {path}")
        for finding in gradviz.diagnose_model(probe) + gradviz.diagnose_model(callback.result):
            print(f"  {finding.kind}: {finding.message}\n    try: {finding.evidence['keras']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    main(args.images, args.epochs, args.out)
