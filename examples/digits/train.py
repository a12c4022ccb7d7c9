"""Trains a digit classifier on scikit-learn's bundled 8x8 digits and saves it for serving.

A support-vector classifier with an RBF kernel; its two hyperparameters come from the
command line (--C, --gamma) or the environment (KILN_PARAM_C, KILN_PARAM_GAMMA, as a Kiln
Sweep sets them). Accuracy on a held-out quarter of the data is reported with Kiln's metrics
protocol, and the model is written to $KILN_OUTPUT_DIR/model.pkl with a model.json beside it.
"""

import argparse
import json
import os
import pickle
import time

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

# The defaults are a plausible first guess, not a tuned setting: gamma=0.01 makes the kernel
# too narrow for pixel values of 0-16 (about 0.80 accuracy; scikit-learn's own gamma="scale"
# would be about 0.0009 here and reach about 0.99).
DEFAULT_C = 1.0
DEFAULT_GAMMA = 0.01


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--C", type=float, default=float(os.environ.get("KILN_PARAM_C", DEFAULT_C)),
                        help="regularisation: larger fits the training data more closely")
    parser.add_argument("--gamma", type=float, default=float(os.environ.get("KILN_PARAM_GAMMA", DEFAULT_GAMMA)),
                        help="RBF kernel width: larger makes each training image's reach smaller")
    parser.add_argument("--output", default=os.environ.get("KILN_OUTPUT_DIR", "."),
                        help="folder for model.pkl and model.json")
    args = parser.parse_args()

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target)
    print(f"training SVC(C={args.C:g}, gamma={args.gamma:g}) on {len(x_train)} images, "
          f"testing on {len(x_test)}", flush=True)
    start = time.monotonic()
    model = SVC(C=args.C, gamma=args.gamma).fit(x_train, y_train)
    accuracy = model.score(x_test, y_test)
    print(f"trained in {time.monotonic() - start:.2f}s", flush=True)
    # Kiln's metrics protocol (docs/sweep.md): a Sweep reads this line from the log.
    print(f"kiln-metric step=1 accuracy={accuracy:.4f}", flush=True)

    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "model.pkl"), "wb") as f:
        pickle.dump(model, f)
    with open(os.path.join(args.output, "model.json"), "w") as f:
        json.dump({"estimator": "SVC", "C": args.C, "gamma": args.gamma, "accuracy": accuracy,
                   "classes": [int(c) for c in model.classes_]}, f)
    print(f"saved {os.path.join(args.output, 'model.pkl')}", flush=True)


if __name__ == "__main__":
    main()
