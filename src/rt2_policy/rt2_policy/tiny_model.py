"""A tiny, randomly initialised Idefics3 VLA built offline, for tests and CPU smoke runs.

The checkpoint has the *layout* of a real RT-2-style VLA — a SigLIP-style vision tower, a pixel
shuffle connector and a Llama decoder (``Idefics3ForConditionalGeneration``), an
``Idefics3Processor`` and an ``action_tokenizer_config.json`` — but about 6 M random parameters,
so its actions are meaningless. It needs no network access: the tokenizer is a word-level
``tokenizers`` model over a hand-written vocabulary that holds the integer tokens ``"0"``..``"255"``
(PaLI-X style, RT-2 §3.2) and a few hundred English words for prompts like
``"Q: what action should the robot take to pick up the red cube? A:"``.

Usage::

    python -m rt2_policy.tiny_model --output /tmp/tiny_vla --seed 0 [--words-file words.txt]

``extra_words`` / ``corpus`` (``--words-file``) extend the word list, so that a freshly built model
can spell every word of a training set's instructions and answers (the co-fine-tuning trainer,
:mod:`rt2_policy.training`, passes its datasets' texts); without them, words outside the
hand-written list map to ``<unk>``.

then ``AutoModelForImageTextToText.from_pretrained(dir)``, ``AutoProcessor.from_pretrained(dir)``
or :meth:`rt2_policy.vla_policy.VLAPolicy.from_pretrained`. Nothing here imports rclpy.
"""

from __future__ import annotations

import argparse
import os
import sys
import unicodedata
from collections.abc import Iterable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rt2_policy.action_tokenizer import ActionBounds, ActionTokenizer  # noqa: E402
from rt2_policy.token_mapping import ActionTokenMapping, save_action_config  # noqa: E402

#: Special tokens, in id order. ``Idefics3Processor`` needs the image ones and the
#: ``<row_i_col_j>`` tiles (looked up even when image splitting is off).
SPECIAL_TOKENS = (
    "<unk>",
    "<pad>",
    "<s>",
    "</s>",
    "<image>",
    "<fake_token_around_image>",
    "<global-img>",
    "<end_of_utterance>",
    *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)),
)

_WORDS = """
q a : ? . , ! ' - ( ) ; / plan what which where who how why when is are was were be do does did
can could should would will may might must the an this that these those it its there here of to
in on at by for with from into onto over under above below behind between near next beside
inside outside up down left right front back top bottom middle center side corner edge away
toward towards around through across along and or not no yes then after before while until
robot arm gripper hand action take move pick place put push pull lift lower raise drop grasp
grab hold release open close turn rotate slide knock stack unstack sort wipe pour point reach
go bring give throw flip fold insert remove set get use make find show hold touch tap press
red green blue yellow orange purple pink black white gray grey brown gold silver dark light
big small large little tiny tall short long round square flat empty full clean dirty new old
cube block ball box can cup mug bowl plate bottle jar lid sponge towel cloth napkin spoon fork
knife pen pencil marker book paper card toy figure doll car truck apple banana orange lemon
lime fruit vegetable carrot tomato potato bread chip chips bag snack drink water coke soda
table desk shelf drawer cabinet counter sink tray basket bin container pot pan stove oven
fridge microwave door window wall floor chair rack stand holder handle button switch object
objects thing things item items one two three four five six seven eight nine ten first second
third last other another same different all any each every some many most more less few
color colour shape size image picture scene camera view see look seen visible there's you i
me my your we our they them he she his her person people man woman child dog cat animal
star heart triangle circle rectangle letter number word symbol logo sign arrow
closest nearest farthest furthest highest lowest biggest smallest leftmost rightmost
tallest shortest heaviest lightest similar matching match pair together apart
task done finish stop start continue wait again now currently next step steps goal
""".split()


def _pre_tokenizer():
    """Whitespace split, then punctuation isolated: ``"cube?"`` → ``["cube", "?"]``."""
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(behavior="isolated")]
    )


def words_from_texts(texts: Iterable[str]) -> list[str]:
    """The distinct words of ``texts`` as the tiny tokenizer splits them, in first-seen order.

    Texts are NFKC-normalised and lower-cased, then split on whitespace with punctuation
    isolated — the same normalizer and pre-tokenizer as :func:`build_tokenizer`, so every word
    returned becomes exactly one token. Special tokens (``<image>``…) are dropped.

    Args:
        texts: instructions, questions, answers, plans…; non-strings raise.

    Returns:
        list of str (may be empty).

    Raises:
        ValueError: when an item of ``texts`` is not a string.
    """
    pre = _pre_tokenizer()
    specials = set(SPECIAL_TOKENS)
    seen: set[str] = set()
    words: list[str] = []
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(f"texts: expected strings, got {type(text).__name__}")
        for special in SPECIAL_TOKENS:
            if special in text:
                text = text.replace(special, " ")
        normalized = unicodedata.normalize("NFKC", text).lower()
        for word, _span in pre.pre_tokenize_str(normalized):
            if word and word not in seen and word not in specials:
                seen.add(word)
                words.append(word)
    return words


def build_vocabulary(extra_words: Iterable[str] = ()) -> list[str]:
    """All tokens in id order: specials, ``"0"``..``"255"``, the built-in words, ``extra_words``.

    Words are lower-cased and deduplicated (first occurrence wins), so the ids of the built-in
    vocabulary do not depend on ``extra_words``; pass ``extra_words`` through
    :func:`words_from_texts` when they come from sentences.

    Raises:
        ValueError: when an extra word is empty or contains whitespace.
    """
    tokens = list(SPECIAL_TOKENS) + [str(i) for i in range(256)]
    seen = set(tokens)
    extra = list(extra_words)
    for word in extra:
        if not isinstance(word, str) or not word or any(c.isspace() for c in word):
            raise ValueError(f"extra_words: expected single words without spaces, got {word!r}")
    for word in (*_WORDS, *extra):
        word = unicodedata.normalize("NFKC", word).lower()
        if word not in seen:
            seen.add(word)
            tokens.append(word)
    return tokens


def build_tokenizer(extra_words: Iterable[str] = ()):
    """A word-level fast tokenizer over :func:`build_vocabulary` (``extra_words`` appended).

    Text is NFKC-normalised and lower-cased, split on whitespace and isolated punctuation
    (``"cube?"`` → ``["cube", "?"]``); unknown words map to ``<unk>``; ``<s>`` is prepended.
    Padding is on the left (needed for batched decoding).

    Returns:
        ``transformers.PreTrainedTokenizerFast``.
    """
    from tokenizers import AddedToken, Tokenizer, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(build_vocabulary(extra_words))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = _pre_tokenizer()
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        padding_side="left",
        extra_special_tokens={
            "image_token": "<image>",
            "end_of_utterance_token": "<end_of_utterance>",
        },
    )


def build_processor(
    tokenizer,
    image_size: int = 96,
    image_seq_len: int | None = None,
    patch_size: int = 16,
    scale_factor: int = 2,
):
    """``Idefics3Processor`` with a PIL image processor resizing to ``image_size`` square.

    Image splitting is off, so each image becomes
    ``<fake_token_around_image><global-img><image>×image_seq_len<fake_token_around_image>``;
    ``image_seq_len`` defaults to ``(image_size // patch_size) ** 2 // scale_factor ** 2``.
    """
    from transformers import Idefics3ImageProcessorPil, Idefics3Processor

    image_processor = Idefics3ImageProcessorPil(
        do_resize=True,
        size={"longest_edge": image_size},
        max_image_size={"longest_edge": image_size},
        do_image_splitting=False,
        do_pad=True,
    )
    if image_seq_len is None:
        image_seq_len = (image_size // patch_size) ** 2 // scale_factor**2
    return Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=image_seq_len
    )


def build_config(
    tokenizer,
    image_size: int = 96,
    patch_size: int = 16,
    scale_factor: int = 2,
    *,
    text_hidden_size: int = 256,
    text_layers: int = 4,
    text_heads: int = 4,
    vision_hidden_size: int = 192,
    vision_layers: int = 4,
    vision_heads: int = 4,
):
    """``Idefics3Config`` of the tiny model (~6 M parameters with the defaults).

    Vision (SigLIP): ``vision_layers`` layers, width ``vision_hidden_size``, ``vision_heads``
    heads, MLP 4× wide, patch ``patch_size`` px; text (Llama): ``text_layers`` layers, width
    ``text_hidden_size``, ``text_heads`` query heads sharing ``text_heads // 2`` KV heads, MLP 3×
    wide; pixel-shuffle ``scale_factor``, so an image costs
    ``(image_size // patch_size) ** 2 // scale_factor ** 2`` tokens (9 at 96 px).

    Raises:
        ValueError: when ``image_size`` is not a multiple of ``patch_size * scale_factor``, a
            width is not divisible by its head count, ``text_heads`` is odd or a count is < 1.
    """
    from transformers import Idefics3Config

    if image_size % (patch_size * scale_factor):
        raise ValueError(
            f"image_size: expected a multiple of {patch_size * scale_factor}, got {image_size}"
        )
    for name, value in (("text_layers", text_layers), ("vision_layers", vision_layers),
                        ("text_heads", text_heads), ("vision_heads", vision_heads),
                        ("text_hidden_size", text_hidden_size),
                        ("vision_hidden_size", vision_hidden_size)):
        if value < 1:
            raise ValueError(f"{name}: expected >= 1, got {value}")
    if text_heads % 2 or text_hidden_size % (2 * text_heads):
        raise ValueError(
            f"text_heads: expected an even divisor of text_hidden_size={text_hidden_size} "
            f"with an even head width, got {text_heads}"
        )
    if vision_hidden_size % vision_heads:
        raise ValueError(
            f"vision_heads: expected a divisor of vision_hidden_size={vision_hidden_size}, "
            f"got {vision_heads}"
        )
    vocab_size = len(tokenizer)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<pad>", "<s>", "</s>", "<image>")}
    text_config = {
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": text_hidden_size,
        "intermediate_size": 3 * text_hidden_size,
        "num_hidden_layers": text_layers,
        "num_attention_heads": text_heads,
        "num_key_value_heads": text_heads // 2,
        "max_position_embeddings": 1024,
        "rms_norm_eps": 1e-5,
        "pad_token_id": ids["<pad>"],
        "bos_token_id": ids["<s>"],
        "eos_token_id": ids["</s>"],
        "tie_word_embeddings": False,
    }
    vision_config = {
        "hidden_size": vision_hidden_size,
        "intermediate_size": 4 * vision_hidden_size,
        "num_hidden_layers": vision_layers,
        "num_attention_heads": vision_heads,
        "image_size": image_size,
        "patch_size": patch_size,
    }
    return Idefics3Config(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<image>"],
        scale_factor=scale_factor,
        tie_word_embeddings=False,
        pad_token_id=ids["<pad>"],
    )


def build_tiny_vla(
    output_dir: str | Path,
    seed: int = 0,
    image_size: int = 96,
    bounds: ActionBounds | None = None,
    token_scheme: str = "integer_tokens",
    *,
    patch_size: int = 16,
    extra_words: Iterable[str] = (),
    corpus: Iterable[str] = (),
    text_hidden_size: int = 256,
    text_layers: int = 4,
    text_heads: int = 4,
    vision_hidden_size: int = 192,
    vision_layers: int = 4,
    vision_heads: int = 4,
    image_position: str = "prefix",
    scale_factor: int = 2,
) -> Path:
    """Build and save the tiny VLA: model, processor and action config in one directory.

    Args:
        output_dir: created if missing; existing files of the same names are overwritten.
        seed: torch seed for the random weights (same seed and vocabulary → same weights).
        image_size: square input resolution in pixels; multiple of ``2 * patch_size``.
        bounds: action ranges stored in ``action_tokenizer_config.json`` (default
            :class:`~rt2_policy.action_tokenizer.ActionBounds`).
        token_scheme: ``"integer_tokens"`` (default) or ``"last_n"``; ``"least_used"`` counts
            token use over prompts built from the tiny vocabulary (and ``corpus``).
        patch_size: vision patch size in pixels.
        extra_words: single words appended to the vocabulary (see :func:`build_vocabulary`).
        corpus: texts (instructions, questions, answers) whose words (:func:`words_from_texts`)
            are appended after ``extra_words``; with ``"least_used"`` they are counted too.
        text_hidden_size, text_layers, text_heads, vision_hidden_size, vision_layers,
            vision_heads: architecture, see :func:`build_config`.
        image_position: prompt layout stored with the model, ``"prefix"`` or ``"suffix"``
            (:func:`rt2_policy.prompts.with_image`).
        scale_factor: pixel-shuffle factor of the connector (1 = one token per patch).

    Returns:
        ``Path(output_dir)``, loadable with ``AutoModelForImageTextToText.from_pretrained`` /
        ``AutoProcessor.from_pretrained`` / ``VLAPolicy.from_pretrained``.

    Raises:
        ValueError: on an invalid architecture or extra word.
    """
    import torch
    from transformers import GenerationConfig, Idefics3ForConditionalGeneration

    corpus = [str(t) for t in corpus]
    words = [*extra_words, *words_from_texts(corpus)]
    out = Path(output_dir)
    tokenizer = build_tokenizer(words)
    processor = build_processor(tokenizer, image_size=image_size, patch_size=patch_size,
                                scale_factor=scale_factor)
    config = build_config(
        processor.tokenizer,
        image_size=image_size,
        patch_size=patch_size,
        scale_factor=scale_factor,
        text_hidden_size=text_hidden_size,
        text_layers=text_layers,
        text_heads=text_heads,
        vision_hidden_size=vision_hidden_size,
        vision_layers=vision_layers,
        vision_heads=vision_heads,
    )
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    tok = processor.tokenizer
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id,
        eos_token_id=[tok.eos_token_id, tok.convert_tokens_to_ids("<end_of_utterance>")],
        pad_token_id=tok.pad_token_id,
        do_sample=False,
        max_new_tokens=32,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)

    action_tokenizer = ActionTokenizer(bounds or ActionBounds())
    if token_scheme == "least_used":
        from rt2_policy.prompts import action_prompt

        prompts = [action_prompt(f"{v} the {c} {o}") for v in ("pick up", "move", "push")
                   for c in ("red", "green", "blue") for o in ("cube", "ball", "can")]
        mapping = ActionTokenMapping.least_used(
            tok, corpus=[*prompts, *corpus], vocab_size=len(tok)
        )
    else:
        mapping = ActionTokenMapping.from_tokenizer(tok, token_scheme)
    save_action_config(out, action_tokenizer, mapping, image_position)
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI ``build_tiny_model --output DIR [--seed N] [--image-size PX] [--words-file F] …``."""
    parser = argparse.ArgumentParser(
        prog="build_tiny_model",
        description="Build a tiny random-weight Idefics3 VLA checkpoint offline.",
    )
    parser.add_argument("--output", required=True, type=Path, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="torch seed (default 0)")
    parser.add_argument("--image-size", type=int, default=96, help="square image size, px")
    parser.add_argument("--patch-size", type=int, default=16, help="vision patch size, px")
    parser.add_argument(
        "--token-scheme",
        default="integer_tokens",
        choices=("integer_tokens", "least_used", "last_n"),
        help="action token scheme (default integer_tokens)",
    )
    parser.add_argument(
        "--words-file",
        type=Path,
        action="append",
        default=[],
        help="UTF-8 text file whose words join the vocabulary (repeatable)",
    )
    args = parser.parse_args(argv)
    corpus = [f.read_text(encoding="utf-8") for f in args.words_file]
    path = build_tiny_vla(
        args.output,
        seed=args.seed,
        image_size=args.image_size,
        token_scheme=args.token_scheme,
        patch_size=args.patch_size,
        corpus=corpus,
    )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
