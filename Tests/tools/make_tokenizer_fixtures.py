#!/usr/bin/env python3
"""Make the SentencePiece tokenizer fixtures under Tests/Fixtures/tokenizer/.

T5's own spiece.model cannot be downloaded here, so this script trains small Unigram models with
the `sentencepiece` package on a corpus it generates (seeded), using T5's settings: unigram,
nmt_nfkc normalization (stored in the file as a precompiled charsmap), pad=0, eos=1, unk=2, no bos,
byte_fallback off. Two extra models exercise code paths T5 does not use (user-defined symbols and
byte fallback; an identity normalizer without whitespace clean-up).

For every model and every text of a varied test corpus it records:
  - `normalized`: SentencePieceProcessor.normalize(text)
  - `sp_ids`:     SentencePieceProcessor.encode(text)            (the reference for the Swift tokenizer)
  - `hf_ids`:     transformers.T5Tokenizer(text, truncation=True, max_length=225,
                  padding="max_length").input_ids, the CogView3 call (only for the T5-like models)
                  and `hf_raw_ids`: T5Tokenizer(text, add_special_tokens=False).input_ids

Usage: python3 Tests/tools/make_tokenizer_fixtures.py   (from the repository root; about 30 s)
"""

import json
import os
import random
import shutil
import sys
import tempfile

import sentencepiece as spm
import transformers
from transformers import T5Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "tokenizer")
SEED = 1234
MAX_LENGTH = 225

COMMON = """a an the of in on at to for with from by over under above below near behind beside between
photo painting drawing portrait landscape close-up shot render illustration sketch poster
cat dog bird horse fox owl lion tiger bear whale fish dragon robot astronaut wizard knight girl boy woman man
city forest mountain river lake ocean beach desert island village castle tower bridge street garden sky
red orange yellow green blue purple pink black white golden silver dark bright soft warm cold neon
big small tiny huge old young ancient futuristic cozy quiet stormy sunny rainy snowy foggy misty
sitting standing running flying walking sleeping reading dancing glowing floating made wearing holding
sunset sunrise night morning evening autumn winter spring summer light shadow reflection clouds stars moon
highly detailed realistic cinematic lighting sharp focus 4k 8k hdr trending style by artist oil watercolor
and or but with without is are was were has have this that these those very more most some many
""".split()

ACCENTED = """café naïve résumé Zürich São Paulo crème brûlée façade Ångström Ærøskøbing smörgåsbord
jalapeño piñata München Kraków Łódź Ελλάδα Москва Київ İstanbul Ça va déjà vu fiancée über straße""".split()

CJK = "東京塔夜景美丽的风景山水画猫狗城市花园春夏秋冬日月星辰天空海洋森林河流湖泊"
KANA = "ひらがなカタカナさくらやまねこいぬそらうみ"
HANGUL = "한국어서울고양이강아지하늘바다"
NFKC = ["ＡＢＣ", "１２３", "ﬁne", "x²", "①②", "Ⅻ", "ｶﾀｶﾅ", "㎏", "…", "™", "½"]
PUNCT = list(".,;:!?-()[]{}\"'/&%$#@*+=<>|~^_`")


def syllable_word(rng):
  cons = "bcdfghjklmnprstvwz"
  vows = "aeiou"
  return "".join(rng.choice(cons) + rng.choice(vows) for _ in range(rng.randint(1, 4)))


def training_corpus(rng, n):
  lines = []
  for _ in range(n):
    parts = []
    for _ in range(rng.randint(4, 24)):
      r = rng.random()
      if r < 0.55:
        w = rng.choice(COMMON)
      elif r < 0.70:
        w = syllable_word(rng)
      elif r < 0.77:
        w = rng.choice(ACCENTED)
      elif r < 0.82:
        w = "".join(rng.choice(CJK) for _ in range(rng.randint(1, 4)))
      elif r < 0.84:
        w = "".join(rng.choice(KANA) for _ in range(rng.randint(1, 4)))
      elif r < 0.86:
        w = "".join(rng.choice(HANGUL) for _ in range(rng.randint(1, 3)))
      elif r < 0.92:
        w = str(rng.randint(0, 100000))
      elif r < 0.94:
        w = rng.choice(NFKC)
      else:
        w = rng.choice(COMMON) + rng.choice(PUNCT)
      if rng.random() < 0.1:
        w = w.capitalize()
      parts.append(w)
    lines.append(" ".join(parts))
  return lines


def test_corpus(rng):
  texts = [
      "",
      " ",
      "   \t \n ",
      "a",
      "Hello world",
      "A photo of a cat sitting on a mat.",
      "  leading and trailing spaces  ",
      "multiple     spaces\tand\ttabs\nand\nnewlines\r\nCRLF",
      "a beautiful sunset over the mountains, highly detailed, 8k, trending on artstation",
      "Numbers: 0 1 12 123 1234 12345 3.14159 -42 1,000,000 2024-06-01 10:30pm",
      "Punctuation!!! ??? ... --- (parens) [brackets] {braces} \"quotes\" 'single' `back`",
      "café naïve résumé Zürich São Paulo crème brûlée",
      "e\u0301 combining acute, n\u0303, A\u030a",
      "Ελληνικά και Русский текст",
      "東京タワーの夜景、美しい風景画。",
      "中文提示词：一只可爱的猫坐在窗台上，阳光明媚",
      "한국어 프롬프트: 바다 위의 고양이",
      "Emoji: 🐱🐶🚀✨ 👩‍👩‍👧 🇯🇵 ❤️",
      "unknowns 𝄞𝄞𝄞 and 𓀀𓀁 in a row",
      "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ １２３ ｶﾀｶﾅ",
      "ligatures ﬁ ﬂ ﬀ, superscripts x² y³, fractions ½ ¼, roman Ⅻ, circled ①②③, units ㎏ ㎞",
      "zero\u200bwidth\u200cjoiners\u200d and soft\u00adhyphen",
      "nbsp\u00a0here, ideographic\u3000space, thin\u2009space, em\u2003space",
      "control\x01chars\x7f and \x00 nul",
      "</s> <pad> <unk> <extra_id_0> literal special-token text",
      "word</s>word",
      "a<pad>b <unk>c <extra_id_10> d<extra_id_1>0 e<extra_id_99>f <extra_id_100> <extra_id_>",
      "</s></s>  </s>",
      "<extra_id_0>",
      "▁ already-escaped ▁▁ spaces",
      "ALL CAPS PROMPT WITH MIXED case",
      "http://example.com/path?query=1&x=y#frag user@mail.com",
      "tabs\t\t\tonly",
      "\u2028line separator\u2029paragraph separator",
      "math ∑∫∂√∞≈≠≤≥ ±×÷",
      "quotes “curly” ‘single’ «guillemets» „low“",
      "dashes – — ‒ ― and ellipsis …",
      "A" * 300,
      "ab" * 150,
  ]
  long_prompt = " ".join(rng.choice(COMMON) for _ in range(400))
  texts.append(long_prompt)
  texts.append("An extremely long prompt: " + ", ".join(rng.choice(COMMON) for _ in range(300)))
  # Random mixtures, some with characters never seen in training.
  rare = "ʘʬʭϞϟԶԷ߷ࠀ௵௶௷ꙮ𝔸𝔹𝕏𝟘𝟙🜂🜃🜄"
  pool = COMMON + ACCENTED + NFKC + PUNCT + [CJK[i : i + 2] for i in range(0, len(CJK), 2)] + list(rare)
  for _ in range(40):
    n = rng.randint(1, 30)
    seps = [" ", " ", " ", "  ", "\t", "", "\n", "   "]
    texts.append("".join(rng.choice(pool) + rng.choice(seps) for _ in range(n)))
  return texts


MODELS = [
    # name, vocab, extra trainer options, T5-like (run transformers' T5Tokenizer too)
    ("t5like_300", 300, {}, True),
    ("t5like_1000", 1000, {}, True),
    ("t5like_4000", 4000, {}, True),
    ("userdef_bytefallback_500", 500,
     {"user_defined_symbols": ["<cat>", "photo of", "1", "🐱"], "control_symbols": ["<ctl>"],
      "byte_fallback": True}, False),
    ("identity_nodummy_400", 400,
     {"normalization_rule_name": "identity", "add_dummy_prefix": False,
      "remove_extra_whitespaces": False}, False),
]


def main():
  os.makedirs(OUT, exist_ok=True)
  rng = random.Random(SEED)
  corpus = training_corpus(rng, 6000)
  tests = test_corpus(random.Random(SEED + 1))
  summary = {
      "script": "Tests/tools/make_tokenizer_fixtures.py",
      "command": "python3 Tests/tools/make_tokenizer_fixtures.py",
      "seed": SEED,
      "versions": {"sentencepiece": spm.__version__, "transformers": transformers.__version__,
                   "python": sys.version.split()[0]},
      "max_length": MAX_LENGTH,
      "tolerance": "exact id equality",
      "models": [],
  }
  for name, vocab, extra, t5like in MODELS:
    options = dict(
        model_type="unigram", vocab_size=vocab, normalization_rule_name="nmt_nfkc",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, byte_fallback=False, num_threads=1,
        shuffle_input_sentence=False, character_coverage=0.9995, max_sentence_length=8192,
    )
    options.update(extra)
    with tempfile.TemporaryDirectory() as tmp:
      prefix = os.path.join(tmp, name)
      spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_prefix=prefix, **options)
      shutil.copy(prefix + ".model", os.path.join(OUT, name + ".model"))
      sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
      hf = None
      if t5like:
        folder = os.path.join(tmp, "hf")
        os.makedirs(folder)
        shutil.copy(prefix + ".model", os.path.join(folder, "spiece.model"))
        hf = T5Tokenizer.from_pretrained(folder)
      cases = []
      for text in tests:
        case = {"text": text, "normalized": sp.normalize(text), "sp_ids": sp.encode(text),
                "sp_pieces": sp.encode(text, out_type=str)}
        if hf is not None:
          case["hf_ids"] = hf(text, truncation=True, max_length=MAX_LENGTH, padding="max_length").input_ids
          case["hf_raw_ids"] = hf(text, add_special_tokens=False).input_ids
        cases.append(case)
      record = {"model": name + ".model", "vocab_size": sp.get_piece_size(), "trainer_options": options,
                "t5like": t5like, "cases": cases}
      if hf is not None:
        record["hf_len"] = len(hf)
        record["hf_extra_ids"] = {t: hf.convert_tokens_to_ids(t) for t in ["<extra_id_0>", "<extra_id_99>"]}
      with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
        json.dump(record, f, ensure_ascii=False, separators=(",", ":"))
      differ = sum(1 for c in cases if hf is not None and c["hf_raw_ids"] != c["sp_ids"])
      summary["models"].append({"model": name + ".model", "vocab": vocab, "cases": len(cases),
                                "hf_raw_differs_from_sp": differ if hf is not None else None})
      print(name, "cases", len(cases), "hf differs from sp on", differ)
  with open(os.path.join(OUT, "fixtures.json"), "w") as f:
    json.dump(summary, f, indent=1)


if __name__ == "__main__":
  main()
