"""Unit tests of the scene detector on generated ground truth (run: python3 -m unittest discover -s eval).

The detector must find every rendered object's colour, shape and grid position on rendered scenes
(train and held-out, 1-3 objects, base and relay sizes), and must not score a scene that does not
match its prompt.
"""

import sys
import unittest
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detector  # noqa: E402
import scenes  # noqa: E402


class DetectorTests(unittest.TestCase):
    def test_rendered_scenes_score_full_marks(self):
        total, exact = 0, 0
        for split in ("train", "heldout"):
            for i in range(40):
                s = scenes.make_scene(i, split)
                for size in (64, 128):
                    a = detector.adherence(scenes.render(s, size), s)
                    total += 1
                    exact += a["exact"] == 1.0 and a["position"] == 1.0
        self.assertGreaterEqual(exact / total, 0.98, f"{exact}/{total} rendered scenes detected exactly")

    def test_every_shape_and_colour_alone(self):
        for shape in scenes.SHAPES:
            for colour in scenes.COLOUR_NAMES:
                s = scenes.Scene([scenes.Obj(shape, colour, "medium", "center", "middle")], "white", "plain")
                got = [(d.colour, d.shape) for d in detector.detect(scenes.render(s, 64))]
                self.assertEqual(got, [(colour, shape)])

    def test_background_only_and_wrong_prompt(self):
        s = scenes.make_scene(3, "heldout", 1)
        empty = scenes.Scene([], s.background, s.texture, meta=s.meta)
        self.assertEqual(detector.detect(scenes.render(empty, 128)), [])
        o = s.objects[0]
        other = scenes.COLOUR_NAMES[(scenes.COLOUR_NAMES.index(o.colour) + 3) % 7]
        wrong = scenes.Scene([scenes.Obj(o.shape, other, o.size, o.col, o.row)], s.background, s.texture, meta=s.meta)
        self.assertEqual(detector.adherence(scenes.render(wrong, 128), s)["colour_shape"], 0.0)

    def test_sharpness_orders_blur(self):
        img = scenes.render(scenes.make_scene(5), 128)
        from PIL import Image

        blurred = np.asarray(Image.fromarray(img).resize((64, 64), Image.BILINEAR).resize((128, 128), Image.BILINEAR))
        self.assertGreater(detector.sharpness(img), 1.2 * detector.sharpness(blurred))
        self.assertGreater(detector.psnr(img, img), 90)


if __name__ == "__main__":
    unittest.main()
