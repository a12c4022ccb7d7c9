"""Serves the digit classifier train.py saved: a small HTTP server on the standard library.

  GET  /healthz   200 once the model is loaded (the ModelServer's readiness probe)
  GET  /          what is served: the model's settings and accuracy
  POST /predict   {"image": [[...8 numbers...] x 8]} (or 64 numbers, pixel values 0-16)
                  -> {"class": 3}

The model folder is $KILN_MODEL_DIR (where a Kiln ModelServer mounts it) and the port
$KILN_PORT; both can be given as arguments too.
"""

import argparse
import json
import os
import pickle
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 * 1024


def load(model_dir):
    with open(os.path.join(model_dir, "model.pkl"), "rb") as f:
        model = pickle.load(f)
    info = {}
    try:
        with open(os.path.join(model_dir, "model.json")) as f:
            info = json.load(f)
    except OSError:
        pass
    return model, info


def pixels(body):
    """The 64 pixel values of the request's image, or a ValueError saying what is wrong."""
    image = json.loads(body).get("image")
    if isinstance(image, list) and len(image) == 8 and all(isinstance(r, list) for r in image):
        image = [v for row in image for v in row]
    if not isinstance(image, list) or len(image) != 64:
        raise ValueError('"image" must be 8 rows of 8 numbers, or 64 numbers')
    values = [float(v) for v in image]
    if any(v < 0 or v > 16 for v in values):
        raise ValueError("pixel values must be between 0 and 16")
    return values


def handler(model, info):
    class Handler(BaseHTTPRequestHandler):
        def reply(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/healthz":
                self.reply(200, {"status": "ok"})
            elif self.path == "/":
                self.reply(200, {"model": info})
            else:
                self.reply(404, {"error": "not found: try POST /predict"})

        def do_POST(self):
            if self.path != "/predict":
                self.reply(404, {"error": "not found: try POST /predict"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.reply(413, {"error": "request too large"})
                return
            try:
                values = pixels(self.rfile.read(length))
            except (ValueError, TypeError, AttributeError) as e:
                self.reply(400, {"error": str(e)})
                return
            self.reply(200, {"class": int(model.predict([values])[0])})

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=os.environ.get("KILN_MODEL_DIR", "."))
    parser.add_argument("--port", type=int, default=int(os.environ.get("KILN_PORT", "8080")))
    args = parser.parse_args()
    model, info = load(args.model_dir)
    server = ThreadingHTTPServer(("", args.port), handler(model, info))
    print(f"serving {args.model_dir} on :{args.port} ({info})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
