"""The embedded synthetic corpus: a small procedural sign language that has to be *translated*.

Why it looks the way it does:
- Translation, not recognition. The signed grammar is topic-first and verb-final
  (TIME SUBJECT OBJECT VERB NOT, adjectives after nouns, question words last) while the
  spoken side is English word order (SVO, adjectives first, question words first, time at the
  end of questions). Spoken function words (the, to, is, does, will, ...) and verb inflection
  are not signed: tense comes from the time sign, so a model must carry information across the
  sentence.
- Learnable on a laptop CPU at 32-64 px. Each sign is a combination of three factors that stay
  visible at low resolution: a handshape (drawn shape *and* glove colour, like the coloured
  gloves of early sign recognition work), a location relative to the drawn body (forehead, chin,
  chest, belly, either side) and a motion (hold, side-to-side, up-down, circle). The 106 signs
  are spread over the 8 x 6 handshape+location pairs, so a single frame already narrows a sign
  down to at most three, which then differ in motion.
- Signer variation: every signer has their own background, skin, hair and shirt colours,
  position, size and signing speed; every clip jitters them a little and adds pixel noise.
  Signs are joined by eased transitions, and clips start and end with the hands at rest.
- Unseen test sentences. A sentence's split is fixed by a hash of its text (80/10/10), for every
  seed: validation and test hold only sentences that no training set and no `synthetic_text(
  split="train")` call can ever produce, yet all of them come from the same grammar and lexicon.
- Fast and small. A raw dataset stores only a JSON render spec per clip (`video["synthetic"]`);
  `decode_video` renders the requested frames with vectorised numpy (the hand is drawn inside its
  bounding box only), thousands of frames per second at 48 px on one core.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import datasets
import numpy as np

from modeling_flallm.video_io import select_frames

from .common import SPLITS, SignCorpusBuilder, SignCorpusConfig, video_reference

# ---------------------------------------------------------------------------------------------
# Lexicon: sign glosses with their spoken forms

TIMES = {  # gloss: (spoken phrase, tense it sets)
    "YESTERDAY": ("yesterday", "past"),
    "LAST-WEEK": ("last week", "past"),
    "TODAY": ("today", "present"),
    "NOW": ("now", "present"),
    "EVERY-DAY": ("every day", "present"),
    "TOMORROW": ("tomorrow", "future"),
    "NEXT-WEEK": ("next week", "future"),
    "SOON": ("soon", "future"),
}
AGENTS = [
    "MAN",
    "WOMAN",
    "CHILD",
    "BOY",
    "GIRL",
    "TEACHER",
    "DOCTOR",
    "FRIEND",
    "MOTHER",
    "FATHER",
    "BROTHER",
    "SISTER",
    "FARMER",
    "STUDENT",
    "BAKER",
    "NEIGHBOUR",
    "DOG",
    "CAT",
    "HORSE",
    "BIRD",
]
FOOD, DRINK, TEXT = ["APPLE", "BREAD", "CAKE"], ["COFFEE", "WATER", "TEA"], ["BOOK", "LETTER"]
OBJECTS = (
    FOOD
    + DRINK
    + TEXT
    + [
        "CAR",
        "HOUSE",
        "BALL",
        "PHONE",
        "TABLE",
        "CHAIR",
        "DOOR",
        "WINDOW",
        "BIKE",
        "BOAT",
        "SHOE",
        "HAT",
        "KEY",
        "CUP",
        "FLOWER",
        "PICTURE",
        "COMPUTER",
    ]
)
# adjective: (describes people/animals, describes things, can be said of people/animals: "is happy")
ADJECTIVES = {
    "BIG": (True, True, True),
    "SMALL": (True, True, True),
    "OLD": (True, True, True),
    "NEW": (False, True, False),
    "RED": (False, True, False),
    "BLUE": (False, True, False),
    "GREEN": (False, True, False),
    "YELLOW": (False, True, False),
    "GOOD": (True, True, True),
    "BAD": (False, True, False),
    "HOT": (False, True, False),
    "COLD": (False, True, True),
    "HAPPY": (True, False, True),
    "SAD": (True, False, True),
    "TIRED": (True, False, True),
    "HUNGRY": (True, False, True),
}
VERBS = {  # gloss: (base, third person, past, objects it takes or None for any)
    "SEE": ("see", "sees", "saw", None),
    "BUY": ("buy", "buys", "bought", None),
    "SELL": ("sell", "sells", "sold", None),
    "EAT": ("eat", "eats", "ate", FOOD),
    "DRINK": ("drink", "drinks", "drank", DRINK),
    "WANT": ("want", "wants", "wanted", None),
    "LIKE": ("like", "likes", "liked", None),
    "FIND": ("find", "finds", "found", None),
    "LOSE": ("lose", "loses", "lost", None),
    "OPEN": ("open", "opens", "opened", ["DOOR", "WINDOW", "BOOK", "LETTER"]),
    "CLOSE": ("close", "closes", "closed", ["DOOR", "WINDOW", "BOOK"]),
    "CARRY": ("carry", "carries", "carried", None),
    "PAINT": ("paint", "paints", "painted", None),
    "WASH": ("wash", "washes", "washed", None),
    "READ": ("read", "reads", "read", TEXT),
    "WRITE": ("write", "writes", "wrote", TEXT),
    "COOK": ("cook", "cooks", "cooked", FOOD),
    "BRING": ("bring", "brings", "brought", None),
    "NEED": ("need", "needs", "needed", None),
    "MAKE": ("make", "makes", "made", None),
}
PLACES = ["SCHOOL", "PARK", "CITY", "SHOP", "GARDEN", "KITCHEN", "OFFICE", "HOSPITAL", "STATION", "BEACH", "LIBRARY"]
MOTION_VERBS = {"GO": ("go", "goes", "went"), "COME": ("come", "comes", "came")}
FUNCTION_SIGNS = ["NOT", "WHERE", "WHO", "WHAT"]

LEXICON = list(TIMES) + AGENTS + OBJECTS + list(ADJECTIVES) + list(VERBS) + PLACES + list(MOTION_VERBS) + FUNCTION_SIGNS

# ---------------------------------------------------------------------------------------------
# Visual form of a sign: handshape x location x motion

HANDSHAPES = ("fist", "flat", "point", "ring", "v", "square", "triangle", "cross")
GLOVE_COLOURS = np.array(
    [
        (225, 45, 45),
        (45, 95, 235),
        (40, 200, 70),
        (245, 215, 35),
        (215, 60, 210),
        (35, 210, 215),
        (250, 140, 25),
        (245, 245, 245),
    ],
    dtype=np.float32,
)
REST_COLOUR = np.array((150, 150, 150), dtype=np.float32)
# body units: x from the body's centre line (negative = the signer's dominant side, image left),
# y from the top of the frame; 1 unit = the frame height times the signer's scale
LOCATIONS = {
    "forehead": (0.0, 0.20),
    "chin": (0.0, 0.43),
    "chest": (0.0, 0.64),
    "belly": (0.0, 0.86),
    "side": (-0.27, 0.58),
    "other-side": (0.26, 0.74),
}
LOCATION_XY = np.array(list(LOCATIONS.values()), dtype=np.float32)
MOTIONS = ("hold", "side-to-side", "up-down", "circle")
REST_XY = (-0.24, 1.02)
HAND_SIZE = 0.085
MOTION_AMPLITUDE = 0.09
LANGUAGE_SEED = 20240318  # fixes which code each gloss gets; the same for every corpus seed


def _assign_codes() -> dict[str, tuple[int, int, int]]:
    """Spread the signs evenly: each handshape+location pair (what a single frame shows) is shared by
    at most three signs, far apart in the lexicon (so of different word classes), which differ in motion."""
    pairs = [(hand, place) for hand in range(len(HANDSHAPES)) for place in range(len(LOCATIONS))]
    order = np.random.default_rng(LANGUAGE_SEED).permutation(len(pairs))
    codes = {}
    for i, gloss in enumerate(LEXICON):
        slot = order[i % len(pairs)]
        codes[gloss] = (*pairs[slot], int((i // len(pairs) + slot) % len(MOTIONS)))
    return codes


SIGN_CODES = _assign_codes()


def describe_sign(gloss: str) -> str:
    """How a sign looks, in words (for documentation and debugging)."""
    hand, location, motion = SIGN_CODES[gloss]
    return f"{gloss}: {HANDSHAPES[hand]} hand at {list(LOCATIONS)[location]}, {MOTIONS[motion]}"


# ---------------------------------------------------------------------------------------------
# Grammar


@dataclass(frozen=True)
class SyntheticSentence:
    signs: tuple[str, ...]
    text: str
    template: str

    @property
    def gloss(self) -> str:
        return " ".join(self.signs)


def split_of_sentence(text: str) -> str:
    """train / validation / test for a spoken sentence (80/10/10 by a stable hash, independent of any seed)."""
    value = int.from_bytes(hashlib.md5(text.encode("utf-8")).digest()[:4], "big") / 2**32
    return "train" if value < 0.8 else "validation" if value < 0.9 else "test"


def _noun_phrase(noun: str, adjective: str | None = None) -> str:
    return " ".join(["the", *([adjective.lower()] if adjective else []), noun.lower()])


def _verb_phrase(forms: Sequence[str], tense: str, negated: bool) -> str:
    base, third, past = forms[:3]
    if tense == "past":
        return f"did not {base}" if negated else past
    if tense == "future":
        return f"will not {base}" if negated else f"will {base}"
    return f"does not {base}" if negated else third


def _copula(tense: str, negated: bool) -> str:
    word = {"past": "was", "future": "will be", "present": "is"}[tense]
    return word.replace("will", "will not") if negated and tense == "future" else word + (" not" if negated else "")


class SyntheticSignLanguage:
    """Lexicon + grammar of the synthetic sign language; samples (signs, spoken text) pairs.

    vocabulary_size: keep only this many signs (the first ones of each open word class, at
    least two per class, and all grammatical signs); None keeps all 106.
    """

    TEMPLATES = {"statement": 0.4, "motion": 0.15, "predicate": 0.15, "where": 0.1, "who": 0.1, "what": 0.1}

    def __init__(self, vocabulary_size: int | None = None):
        classes = {
            "time": list(TIMES),
            "agent": AGENTS,
            "object": OBJECTS,
            "adjective": list(ADJECTIVES),
            "verb": list(VERBS),
            "place": PLACES,
        }
        closed = len(MOTION_VERBS) + len(FUNCTION_SIGNS)
        if vocabulary_size is not None:
            open_total = sum(len(words) for words in classes.values())
            budget = vocabulary_size - closed
            if budget < 2 * len(classes):
                raise ValueError(
                    f"vocabulary_size={vocabulary_size} is too small; expected at least {closed + 2 * len(classes)}"
                )
            classes = {
                name: words[: max(2, round(len(words) * budget / open_total))] for name, words in classes.items()
            }
        self.times, self.agents, self.objects = classes["time"], classes["agent"], classes["object"]
        self.verbs, self.places = classes["verb"], classes["place"]
        adjectives = classes["adjective"]
        self.agent_adjectives = [a for a in adjectives if ADJECTIVES[a][0]] or adjectives
        self.object_adjectives = [a for a in adjectives if ADJECTIVES[a][1]] or adjectives
        self.predicate_adjectives = [a for a in adjectives if ADJECTIVES[a][2]] or adjectives
        self.vocabulary = [
            g for g in LEXICON if g in set().union(*classes.values()) or g in MOTION_VERBS or g in FUNCTION_SIGNS
        ]
        self._templates = list(self.TEMPLATES)
        self._template_p = np.array(list(self.TEMPLATES.values())) / sum(self.TEMPLATES.values())

    def _pick(self, rng: np.random.Generator, words: Sequence[str]) -> str:
        return words[int(rng.integers(len(words)))]

    def _maybe(self, rng: np.random.Generator, p: float, words: Sequence[str]) -> str | None:
        return self._pick(rng, words) if rng.random() < p else None

    def _objects_of(self, verb: str) -> list[str]:
        allowed = VERBS[verb][3]
        return (
            [o for o in self.objects if o in allowed]
            if allowed and any(o in allowed for o in self.objects)
            else self.objects
        )

    def sample(self, rng: np.random.Generator) -> SyntheticSentence:
        """One sentence; the spoken text is a function of the signs (the translation is well defined)."""
        template = self._templates[int(rng.choice(len(self._templates), p=self._template_p))]
        time = self._maybe(rng, 0.5, self.times)
        tense = TIMES[time][1] if time else "present"
        time_words = [TIMES[time][0]] if time else []
        time_signs = [time] if time else []
        negated = rng.random() < 0.2
        not_sign = ["NOT"] if negated else []
        if template in ("statement", "who", "what"):
            verb = self._pick(rng, self.verbs)
            obj = self._pick(rng, self._objects_of(verb))
        if template == "statement":
            agent, agent_adj = self._pick(rng, self.agents), self._maybe(rng, 0.2, self.agent_adjectives)
            obj_adj = self._maybe(rng, 0.35, self.object_adjectives)
            signs = [
                *time_signs,
                agent,
                *([agent_adj] if agent_adj else []),
                obj,
                *([obj_adj] if obj_adj else []),
                verb,
                *not_sign,
            ]
            words = [
                *time_words,
                _noun_phrase(agent, agent_adj),
                _verb_phrase(VERBS[verb], tense, negated),
                _noun_phrase(obj, obj_adj),
            ]
        elif template == "motion":
            agent, agent_adj = self._pick(rng, self.agents), self._maybe(rng, 0.2, self.agent_adjectives)
            place, verb = self._pick(rng, self.places), self._pick(rng, list(MOTION_VERBS))
            signs = [*time_signs, place, agent, *([agent_adj] if agent_adj else []), verb, *not_sign]
            words = [
                *time_words,
                _noun_phrase(agent, agent_adj),
                _verb_phrase(MOTION_VERBS[verb], tense, negated),
                "to",
                _noun_phrase(place),
            ]
        elif template == "predicate":
            agent, adjective = self._pick(rng, self.agents), self._pick(rng, self.predicate_adjectives)
            signs = [*time_signs, agent, adjective, *not_sign]
            words = [*time_words, _noun_phrase(agent), _copula(tense, negated), adjective.lower()]
        elif template == "where":
            if rng.random() < 0.5:
                noun, adjective = self._pick(rng, self.agents), self._maybe(rng, 0.35, self.agent_adjectives)
            else:
                noun, adjective = self._pick(rng, self.objects), self._maybe(rng, 0.35, self.object_adjectives)
            signs = [noun, *([adjective] if adjective else []), "WHERE"]
            words = ["where is", _noun_phrase(noun, adjective)]
        elif template == "who":
            obj_adj = self._maybe(rng, 0.35, self.object_adjectives)
            signs = [*time_signs, obj, *([obj_adj] if obj_adj else []), verb, "WHO"]
            words = ["who", _verb_phrase(VERBS[verb], tense, False), _noun_phrase(obj, obj_adj), *time_words]
        else:  # what
            agent = self._pick(rng, self.agents)
            auxiliary = {"past": "did", "future": "will", "present": "does"}[tense]
            signs = [*time_signs, agent, verb, "WHAT"]
            words = ["what", auxiliary, _noun_phrase(agent), VERBS[verb][0], *time_words]
        return SyntheticSentence(tuple(signs), " ".join(words), template)

    def sentences(
        self, num_sentences: int, seed: int = 0, split: str | None = "train", unique: bool = True
    ) -> list[SyntheticSentence]:
        """`num_sentences` sentences whose hash split is `split` (None: any split)."""
        if split is not None and split not in SPLITS:
            raise ValueError(f"split={split!r}; expected one of {SPLITS} or None")
        rng = np.random.default_rng(seed)
        found: list[SyntheticSentence] = []
        seen: set[str] = set()
        attempts = 0
        while len(found) < num_sentences:
            attempts += 1
            if attempts > 200 * num_sentences + 10_000:
                raise ValueError(
                    f"could only find {len(found)} distinct {split or ''} sentences of {num_sentences}; the grammar is too small (vocabulary_size?)"
                )
            sentence = self.sample(rng)
            if (unique and sentence.text in seen) or (split is not None and split_of_sentence(sentence.text) != split):
                continue
            seen.add(sentence.text)
            found.append(sentence)
        return found


def synthetic_text(
    num_sentences: int, seed: int = 0, split: str | None = "train", vocabulary_size: int | None = None
) -> list[str]:
    """Spoken sentences of the synthetic language, e.g. to pretrain a small LM on its text.

    With split="train" (the default) no sentence can be a validation/test sentence of any
    synthetic dataset, whatever its seed.
    """
    language = SyntheticSignLanguage(vocabulary_size)
    return [s.text for s in language.sentences(num_sentences, seed=seed, split=split)]


# ---------------------------------------------------------------------------------------------
# Signers and timelines


def _signer_pool(num_signers: int, seed: int) -> list[dict]:
    rng = np.random.default_rng([seed, 7])
    skins = np.array([(241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 219, 172), (110, 70, 40)])
    signers = []
    for _ in range(num_signers):
        grey = rng.uniform(45, 135)
        signers.append(
            {
                "background": rng.uniform(5, 80, 3) * np.array([1, 1, rng.uniform(0.8, 1.6)]),
                "skin": skins[rng.integers(len(skins))] + rng.uniform(-12, 12, 3),
                "hair": rng.uniform(10, 90) * np.array([1.0, rng.uniform(0.7, 1.0), rng.uniform(0.4, 0.9)]),
                "shirt": grey + rng.uniform(-25, 25, 3),
                "x": rng.uniform(-0.05, 0.05),
                "y": rng.uniform(-0.04, 0.04),
                "scale": rng.uniform(0.85, 1.05),
                "speed": rng.uniform(0.8, 1.25),
                "glove": rng.uniform(0.88, 1.05),
            }
        )
    return signers


def _round(values) -> list[float]:
    return [round(float(v), 4) for v in values]


def make_spec(
    signs: Sequence[str],
    signer: dict,
    rng: np.random.Generator,
    size: tuple[int, int],
    fps: float,
    sign_duration: float = 0.6,
    transition_duration: float = 0.2,
    noise: float = 4.0,
) -> dict:
    """The render spec of one clip: signer appearance for this clip and the sign timeline (seconds)."""
    speed = signer["speed"] * rng.uniform(0.93, 1.07)  # >1 = slower signer, longer signs
    transition = transition_duration * speed
    t = 0.3 * speed + transition  # rest, then the hand travels to the first sign
    timeline = []
    for gloss in signs:
        hand, location, motion = SIGN_CODES[gloss]
        duration = sign_duration * speed * rng.uniform(0.85, 1.15)
        timeline.append([round(t, 4), round(t + duration, 4), hand, location, motion])
        t += duration + transition
    total = t + 0.3 * speed  # back to rest and hold
    return {
        "version": 1,
        "size": [int(size[0]), int(size[1])],
        "fps": float(fps),
        "num_frames": max(1, math.ceil(total * fps)),
        "seed": int(rng.integers(2**31)),
        "noise": float(noise),
        "transition": round(transition, 4),
        "signer": {
            "x": round(signer["x"] + rng.normal(0, 0.015), 4),
            "y": round(signer["y"] + rng.normal(0, 0.01), 4),
            "scale": round(signer["scale"] * rng.uniform(0.97, 1.03), 4),
            "glove": round(signer["glove"], 4),
            **{k: _round(np.clip(signer[k], 0, 255)) for k in ("background", "skin", "hair", "shirt")},
        },
        "signs": timeline,
    }


# ---------------------------------------------------------------------------------------------
# Rendering


def _motion_offset(motion: int, u: float) -> tuple[float, float]:
    a, angle = MOTION_AMPLITUDE, 2 * math.pi * u
    if motion == 0:
        return 0.0, 0.025 * math.sin(2 * angle)
    if motion == 1:
        return a * math.sin(angle), 0.0
    if motion == 2:
        return 0.0, a * math.sin(angle)
    return a * math.sin(angle), -a * math.cos(angle)


def _hand_state(spec: dict, t: float) -> tuple[float, float, int]:
    """(x, y) in body units and handshape (-1 = at rest) at time t."""
    signs, transition = spec["signs"], spec["transition"]
    if not signs:
        return REST_XY[0], REST_XY[1], -1
    for k, (start, end, hand, _location, _motion) in enumerate(signs):
        if t < start:  # travelling from the previous sign (or rest) to this one
            previous = signs[k - 1] if k else None
            begin = previous[1] if previous else start - transition
            if t < begin:
                return REST_XY[0], REST_XY[1], -1
            x0, y0, h0 = _sign_position(previous, 1.0) if previous else (*REST_XY, -1)
            x1, y1, _ = _sign_position(signs[k], 0.0)
            u = (t - begin) / max(start - begin, 1e-6)
            s = u * u * (3 - 2 * u)
            return x0 + (x1 - x0) * s, y0 + (y1 - y0) * s, h0 if u < 0.5 else hand
        if t <= end:
            return _sign_position(signs[k], (t - start) / max(end - start, 1e-6))
    end = signs[-1][1]
    u = min(1.0, (t - end) / max(transition, 1e-6))
    x0, y0, h0 = _sign_position(signs[-1], 1.0)
    s = u * u * (3 - 2 * u)
    return x0 + (REST_XY[0] - x0) * s, y0 + (REST_XY[1] - y0) * s, h0 if u < 0.5 else -1


def _sign_position(sign, u: float) -> tuple[float, float, int]:
    _, _, hand, location, motion = sign
    dx, dy = _motion_offset(motion, u)
    return float(LOCATION_XY[location, 0] + dx), float(LOCATION_XY[location, 1] + dy), hand


def _paint(canvas: np.ndarray, sdf: np.ndarray, colour: np.ndarray, y0: int = 0, x0: int = 0) -> None:
    """Alpha-blend `colour` where the signed distance (pixels) is negative, anti-aliased over one pixel."""
    alpha = np.clip(0.5 - sdf, 0.0, 1.0)[..., None]
    region = canvas[y0 : y0 + sdf.shape[0], x0 : x0 + sdf.shape[1]]
    region += (colour - region) * alpha


def _ellipse_sdf(dx, dy, rx, ry):
    return (np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2) - 1.0) * min(rx, ry)


def _box_sdf(dx, dy, hx, hy):
    return np.maximum(np.abs(dx) - hx, np.abs(dy) - hy)


def _hand_sdf(shape: int, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    if shape == 0 or shape < 0:  # fist (and the relaxed hand at rest)
        return np.sqrt(dx * dx + dy * dy) - r * (1.0 if shape == 0 else 0.75)
    if shape == 1:  # flat hand
        return _ellipse_sdf(dx, dy, 1.5 * r, 0.55 * r)
    if shape == 2:  # pointing finger
        return _box_sdf(dx, dy, 0.4 * r, 1.4 * r)
    if shape == 3:  # ring / O
        return np.abs(np.sqrt(dx * dx + dy * dy) - 0.75 * r) - 0.3 * r
    if shape == 4:  # V: two fingertips
        return np.minimum(np.hypot(dx - 0.6 * r, dy + 0.3 * r), np.hypot(dx + 0.6 * r, dy + 0.3 * r)) - 0.6 * r
    if shape == 5:  # square palm
        return _box_sdf(dx, dy, 0.85 * r, 0.85 * r)
    if shape == 6:  # triangle, apex up
        return np.maximum(np.maximum(dy, -0.866 * dx - 0.5 * dy), 0.866 * dx - 0.5 * dy) - 0.6 * r
    return np.minimum(_box_sdf(dx, dy, 1.3 * r, 0.38 * r), _box_sdf(dx, dy, 0.38 * r, 1.3 * r))  # cross


class _Frame:
    """Pixel geometry of one clip: body units -> pixels, the static body drawn once."""

    def __init__(self, spec: dict):
        height, width = spec["size"]
        signer = spec["signer"]
        self.unit = height * signer["scale"]
        self.cx = width / 2 + signer["x"] * height
        self.cy = signer["y"] * height
        self.height, self.width = height, width
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
        canvas = np.empty((height, width, 3), dtype=np.float32)
        canvas[:] = np.asarray(signer["background"], dtype=np.float32)
        u, px, py = self.unit, self.cx, self.cy
        skin, hair, shirt = (np.asarray(signer[k], dtype=np.float32) for k in ("skin", "hair", "shirt"))
        _paint(canvas, _ellipse_sdf(xs - px, ys - (py + 1.05 * u), 0.34 * u, 0.52 * u), shirt)  # torso
        _paint(canvas, _box_sdf(xs - px, ys - (py + 0.48 * u), 0.055 * u, 0.06 * u), skin)  # neck
        _paint(canvas, _ellipse_sdf(xs - px, ys - (py + 0.27 * u), 0.125 * u, 0.1 * u), hair)  # hair
        _paint(canvas, _ellipse_sdf(xs - px, ys - (py + 0.33 * u), 0.11 * u, 0.135 * u), skin)  # face
        self.body = canvas
        self.glove = float(signer["glove"])

    def draw_hand(self, canvas: np.ndarray, x: float, y: float, shape: int) -> None:
        r = HAND_SIZE * self.unit
        px, py = self.cx + x * self.unit, self.cy + y * self.unit
        reach = 1.6 * r + 1
        x0, x1 = max(0, int(px - reach)), min(self.width, int(math.ceil(px + reach)))
        y0, y1 = max(0, int(py - reach)), min(self.height, int(math.ceil(py + reach)))
        if x0 >= x1 or y0 >= y1:
            return
        ys, xs = np.ogrid[y0:y1, x0:x1]
        dx = xs.astype(np.float32) + 0.5 - px
        dy = ys.astype(np.float32) + 0.5 - py
        colour = REST_COLOUR if shape < 0 else np.minimum(GLOVE_COLOURS[shape] * self.glove, 255)
        _paint(canvas, _hand_sdf(shape, dx, dy, r), colour, y0, x0)


def render_spec(spec: dict, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """uint8 (T,H,W,3) frames of a synthetic clip, rendering only `indices` (deterministic per frame)."""
    indices = select_frames(int(spec["num_frames"]), indices, "synthetic clip")
    frame = _Frame(spec)
    height, width = spec["size"]
    fps = float(spec["fps"])
    noise = float(spec.get("noise", 0.0))
    if noise:  # one noise field per clip; each frame takes its own window of it
        rng = np.random.default_rng(int(spec["seed"]))
        field = rng.standard_normal((height + 8, width + 8, 3), dtype=np.float32) * noise
        offsets = np.random.default_rng([int(spec["seed"]), 1]).integers(0, 9, size=(int(spec["num_frames"]), 2))
    out = np.empty((len(indices), height, width, 3), dtype=np.uint8)
    canvas = np.empty_like(frame.body)
    for j, i in enumerate(indices.tolist()):
        np.copyto(canvas, frame.body)
        x, y, shape = _hand_state(spec, i / fps)
        frame.draw_hand(canvas, x, y, shape)
        if noise:
            oy, ox = offsets[i]
            canvas += field[oy : oy + height, ox : ox + width]
        np.clip(canvas, 0, 255, out=canvas)
        out[j] = canvas
    return out


# ---------------------------------------------------------------------------------------------
# The datasets builder


def _resolution(value) -> tuple[int, int]:
    if isinstance(value, int):
        size = (value, value)
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        size = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"resolution={value!r}; expected an int (square) or (height, width)")
    if min(size) < 8:
        raise ValueError(f"resolution={value!r} is too small; expected at least 8 pixels")
    return size


@dataclass
class SyntheticConfig(SignCorpusConfig):
    """Options of the synthetic corpus (defaults sized for the CPU demo).

    seed: everything (sentences, signers, clips) follows from it.
    num_train / num_validation / num_test: clips per split.
    resolution: frame size, an int (square) or (height, width).
    fps: frames per second of the clips.
    num_signers: size of the signer pool the clips are drawn from.
    vocabulary_size: keep only this many signs (None: all 106).
    sign_duration / transition_duration: seconds, before each signer's speed factor (0.8-1.25).
    noise: standard deviation of the pixel noise (0-255 scale).
    """

    seed: int = 0
    num_train: int = 1000
    num_validation: int = 100
    num_test: int = 100
    resolution: int | tuple[int, int] = 48
    fps: float = 12.0
    num_signers: int = 8
    vocabulary_size: int | None = None
    sign_duration: float = 0.6
    transition_duration: float = 0.2
    noise: float = 4.0


class SyntheticSignBuilder(SignCorpusBuilder):
    """The synthetic corpus as a datasets builder (no download; generated from `seed`)."""

    BUILDER_CONFIG_CLASS = SyntheticConfig
    BUILDER_CONFIGS = [SyntheticConfig(name="default", version=datasets.Version("1.0.0"))]
    CORPUS = "synthetic"
    DESCRIPTION = "A procedural sign language (106 signs, verb-final signed grammar) rendered from a seed."
    HOMEPAGE = ""
    LICENSE = "apache-2.0"
    LANGUAGE = "en"
    PRETTY_NAME = "flallm synthetic sign language"
    SPOKEN_LANGUAGE = "English"
    SIGN_LANGUAGE = "a synthetic sign language"
    DOMAIN = "generated toy sentences"
    LIMITATIONS = (
        "Trained on the embedded synthetic corpus: a demonstration of the pipeline, "
        "useless on real sign language video."
    )
    CITATION = ""

    def split_rows(self) -> dict[str, list[dict]]:
        config = self.config
        size = _resolution(config.resolution)
        if config.fps <= 0 or config.num_signers < 1:
            raise ValueError(f"synthetic: fps={config.fps} and num_signers={config.num_signers} must be positive")
        language = SyntheticSignLanguage(config.vocabulary_size)
        signers = _signer_pool(config.num_signers, config.seed)
        sizes = {"train": config.num_train, "validation": config.num_validation, "test": config.num_test}
        rows = {}
        for split, count in sizes.items():
            if count < 0:
                raise ValueError(f"synthetic: num_{split}={count} must be >= 0")
            sentences = language.sentences(count, seed=[config.seed, SPLITS.index(split)], split=split)
            rng = np.random.default_rng([config.seed, SPLITS.index(split), 1])
            rows[split] = []
            for index, sentence in enumerate(sentences):
                signer = int(rng.integers(config.num_signers))
                spec = make_spec(
                    sentence.signs,
                    signers[signer],
                    rng,
                    size,
                    config.fps,
                    config.sign_duration,
                    config.transition_duration,
                    config.noise,
                )
                rows[split].append(
                    {
                        "id": f"synthetic-{split}-{index:06d}",
                        "text": sentence.text,
                        "gloss": sentence.gloss,
                        "signer": f"Signer{signer + 1:02d}",
                        "num_frames": spec["num_frames"],
                        "fps": config.fps,
                        "video": video_reference(synthetic=json.dumps(spec, separators=(",", ":"))),
                    }
                )
        return rows

    def resolve(self, row: dict) -> dict:
        return row
