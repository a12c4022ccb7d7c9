"""Asks a digits prediction server for the class of one held-out image and prints the answer.

  python3 predict.py http://digits.<namespace>.svc [INDEX]

The image is the INDEX-th (default 0) of the quarter of the data train.py holds out, so the
model never saw it. Prints one line, `prediction: class P for an image of a T` (plus the JSON
answer), and exits 1 if the server could not be asked.
"""

import json
import sys
import time
import urllib.error
import urllib.request

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def main():
    url = sys.argv[1].rstrip("/")
    index = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    digits = load_digits()
    _, x_test, _, y_test = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target)
    image = [[int(v) for v in x_test[index][row * 8:row * 8 + 8]] for row in range(8)]
    for row in image:
        print(" ".join(".:-=+*#%@"[min(v * 9 // 17, 8)] for v in row), flush=True)
    body = json.dumps({"image": image}).encode()
    # The Service may have just got its endpoint; a few tries cover DNS and the proxy catching up.
    for attempt in range(1, 11):
        try:
            req = urllib.request.Request(url + "/predict", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                answer = json.load(resp)
            break
        except (urllib.error.URLError, OSError) as e:
            print(f"attempt {attempt}: {e}", flush=True)
            time.sleep(2)
    else:
        sys.exit(1)
    print(f"prediction: class {answer['class']} for an image of a {int(y_test[index])} {json.dumps(answer)}", flush=True)


if __name__ == "__main__":
    main()
