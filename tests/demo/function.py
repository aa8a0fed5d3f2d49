#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""An image-recognition function, after SeBS 411.image-recognition: load a
torchvision model and its weights, read an image, preprocess it (resize 256,
centre crop 224, normalise), classify it, return the top class.

  function.py prepare OUTDIR MODEL...   deterministic weights (OUTDIR/MODEL.pt)
                                        and input image (OUTDIR/input.jpg)
  function.py serve MODEL WEIGHTS IMAGE one instance: cold start, then
                                        commands on stdin, replies on stdout

An instance's cold start is: import torch, load the model, classify the image
once. It then reports {"ready": ...} and waits, as a warm instance, for
commands, one a line, each answered with one line of JSON:
  advise tensors|process          MADV_UPM on the model's tensors, or on every
                                  private anonymous region of the process
  mergeable tensors|process       MADV_MERGEABLE on the same (for ksmd)
  unmerge                         MADV_UNMERGEABLE on every private anonymous
                                  region (undoes either)
  invoke                          classify the image again (a warm call)
  domain N                        join merge domain N (PR_SET_UPM_DOMAIN), as
                                  a platform would put a tenant's instance
  exit
"""
import json
import os
import sys
import time

T_START = time.perf_counter()
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "python"))

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
SEED = 411


def make_image(path):
    """A deterministic 640x480 test picture: gradients, discs and bars."""
    from PIL import Image, ImageDraw
    w, h = 640, 480
    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = ((x * 255) // w, (y * 255) // h, ((x + y) * 97) % 256)
    d = ImageDraw.Draw(img)
    for i in range(12):
        x, y, r = (i * 149) % w, (i * 83) % h, 20 + (i * 37) % 60
        d.ellipse((x - r, y - r, x + r, y + r),
                  fill=((i * 71) % 256, (i * 29) % 256, (i * 113) % 256))
    for i in range(8):
        d.rectangle((i * 80, 400, i * 80 + 40, 470), fill=(255 - i * 30, i * 30, 128))
    img.save(path, quality=90)


def build(model_name):
    """The architecture, without random initialisation: every parameter is
    overwritten by load_state_dict, so drawing random numbers first (seconds
    under QEMU's TCG) would change nothing but the time."""
    import torch
    from torchvision import models
    init = torch.nn.init
    names = [n for n in dir(init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(init, n) for n in names}
    try:
        for n in names:
            setattr(init, n, lambda t, *a, **k: t)
        model = getattr(models, model_name)()
    finally:
        for n, f in saved.items():
            setattr(init, n, f)
    return model


def prepare(outdir, model_names):
    """Write OUTDIR/MODEL.pt (a seeded model's state_dict) and the image;
    files already there are kept."""
    import torch
    from torchvision import models
    os.makedirs(outdir, exist_ok=True)
    for name in model_names:
        path = os.path.join(outdir, f"{name}.pt")
        if os.path.exists(path):
            continue
        torch.manual_seed(SEED)
        model = getattr(models, name)()
        torch.save(model.state_dict(), path + ".tmp")
        os.replace(path + ".tmp", path)
    image = os.path.join(outdir, "input.jpg")
    if not os.path.exists(image):
        make_image(image + ".tmp.jpg")
        os.replace(image + ".tmp.jpg", image)


class Function:
    """The function's state between calls (a warm instance keeps it)."""

    def __init__(self, model_name, weights):
        import torch
        from torchvision import transforms
        self.torch = torch
        self.model = build(model_name)
        self.model.load_state_dict(torch.load(weights))
        self.model.eval()
        self.preprocess = transforms.Compose([
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=MEAN, std=STD),
        ])

    def handler(self, image_path):
        from PIL import Image
        t = time.perf_counter()
        img = Image.open(image_path).convert("RGB")
        batch = self.preprocess(img).unsqueeze(0)
        with self.torch.no_grad():
            out = self.model(batch)
        prob = self.torch.nn.functional.softmax(out[0], dim=0)
        top = int(prob.argmax())
        return {"class": top, "probability": float(prob[top]),
                "seconds": time.perf_counter() - t}


def serve(model_name, weights, image):
    t0 = T_START
    import torch
    import torchvision  # noqa: F401  (part of the function's import cost)
    import upm
    torch.set_num_threads(1)
    t_import = time.perf_counter()
    fn = Function(model_name, weights)
    t_load = time.perf_counter()
    result = fn.handler(image)
    t_ready = time.perf_counter()
    reply({"ready": True, "pid": os.getpid(), "result": result,
           "import_s": t_import - t0, "load_s": t_load - t_import,
           "classify_s": t_ready - t_load, "cold_s": t_ready - t0})
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd, arg = words[0], (words[1] if len(words) > 1 else "")
        try:
            if cmd in ("advise", "mergeable"):
                advice = upm.MADV_UPM if cmd == "advise" else upm.MADV_MERGEABLE
                if arg == "tensors":
                    r = upm.advise(fn.model, advice=advice)
                elif arg == "process":
                    r = upm.advise_process(advice=advice)
                else:
                    raise ValueError(f"advise what? {arg!r}")
                reply({"ok": True, **r.as_dict()})
            elif cmd == "unmerge":
                reply({"ok": True, **upm.advise_process(advice=upm.MADV_UNMERGEABLE).as_dict()})
            elif cmd == "domain":
                upm.set_domain(int(arg))
                reply({"ok": True, "domain": upm.get_domain()})
            elif cmd == "invoke":
                reply({"ok": True, "result": fn.handler(image)})
            elif cmd == "exit":
                reply({"ok": True})
                return
            else:
                raise ValueError(f"unknown command {cmd!r}")
        except (OSError, ValueError) as e:
            reply({"ok": False, "error": str(e),
                   "errno": getattr(e, "errno", None)})


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv):
    if len(argv) >= 3 and argv[0] == "prepare":
        prepare(argv[1], argv[2:])
    elif len(argv) == 4 and argv[0] == "serve":
        serve(*argv[1:])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
