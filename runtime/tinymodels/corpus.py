"""A deterministic synthetic corpus: short stories, ChatML chat turns, JSON answers and Q/A.

The text is simple on purpose: a model of a few million parameters learns it in minutes on a CPU
and then writes readable English, which is what the demo and the tests need.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator

NAMES = [
    "Lily",
    "Max",
    "Ben",
    "Mia",
    "Sam",
    "Anna",
    "Tom",
    "Lucy",
    "Leo",
    "Nora",
    "Ella",
    "Hugo",
    "Ruby",
    "Oscar",
    "Zoe",
    "Finn",
    "Ivy",
    "Jack",
    "Rosa",
    "Theo",
    "Maya",
    "Otto",
    "Ada",
    "Kai",
]
ANIMALS = [
    "cat",
    "dog",
    "fox",
    "bird",
    "rabbit",
    "bear",
    "duck",
    "mouse",
    "frog",
    "owl",
    "turtle",
    "lion",
    "horse",
    "fish",
    "bee",
    "tiger",
    "hedgehog",
    "squirrel",
    "dragon",
    "robot",
]
ADJECTIVES = [
    "little",
    "brave",
    "happy",
    "sleepy",
    "kind",
    "curious",
    "tiny",
    "big",
    "funny",
    "shy",
    "clever",
    "gentle",
    "busy",
    "quiet",
    "friendly",
]
COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "pink", "white", "black", "brown"]
OBJECTS = [
    "ball",
    "box",
    "flower",
    "kite",
    "hat",
    "book",
    "key",
    "shell",
    "stone",
    "feather",
    "boat",
    "cake",
    "lamp",
    "map",
    "cup",
    "drum",
    "star",
    "apple",
    "basket",
    "bell",
]
PLACES = [
    "the forest",
    "the park",
    "the river",
    "the garden",
    "the beach",
    "the hill",
    "the town",
    "the farm",
    "the lake",
    "the old house",
    "the meadow",
    "the school",
]
FEELINGS = ["happy", "excited", "surprised", "proud", "glad", "calm", "curious"]
FOODS = ["apples", "bread", "honey", "carrots", "cheese", "berries", "soup", "cookies"]
SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are a friendly storyteller.",
    "You answer briefly and kindly.",
]


def _story(rng: random.Random, name: str, animal: str) -> str:
    adjective, color, thing = rng.choice(ADJECTIVES), rng.choice(COLORS), rng.choice(OBJECTS)
    place, feeling, friend = rng.choice(PLACES), rng.choice(FEELINGS), rng.choice(NAMES)
    food = rng.choice(FOODS)
    sentences = [
        f"Once upon a time, there was a {adjective} {animal} named {name}.",
        f"{name} lived near {place} and loved to eat {food}.",
        f"One day, {name} went to {place} and found a {color} {thing}.",
        f"{name} was very {feeling}.",
        f'"Look at this {thing}!" said {name}. "It is so {color}!"',
        f"{name} showed the {thing} to a friend named {friend}.",
        f'{friend} smiled and said, "Let us play with it together."',
        f"They played with the {color} {thing} all day long.",
        f"When the sun went down, {name} went home and slept well.",
        "The end.",
    ]
    keep = sorted(rng.sample(range(1, len(sentences) - 1), rng.randint(4, 7)))
    return " ".join([sentences[0], *(sentences[i] for i in keep), sentences[-1]])


def _pet_json(rng: random.Random, name: str, animal: str) -> str:
    likes = rng.sample(OBJECTS + FOODS, rng.randint(1, 3))
    pet = {"name": name, "animal": animal, "age": rng.randint(1, 12), "color": rng.choice(COLORS), "likes": likes}
    return json.dumps(pet)


def _chat(turns: list[tuple[str, str]], system: str | None) -> str:
    parts = [f"<|im_start|>system\n{system}<|im_end|>\n"] if system else []
    parts += [f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in turns]
    return "".join(parts)


def _story_chat(rng: random.Random) -> list[tuple[str, str]]:
    name, animal = rng.choice(NAMES), rng.choice(ANIMALS)
    ask = rng.choice(
        [
            f"Tell me a story about a {animal}.",
            f"Tell me a story about a {animal} named {name}.",
            f"Can you tell me a short story about a {animal}?",
            f"Write a story about {name} the {animal}.",
        ]
    )
    return [("user", ask), ("assistant", _story(rng, name, animal))]


def _json_chat(rng: random.Random) -> list[tuple[str, str]]:
    name, animal = rng.choice(NAMES), rng.choice(ANIMALS)
    ask = rng.choice(
        [
            f"Give me a JSON object for a {animal} named {name}.",
            f"Describe {name} the {animal} as JSON.",
        ]
    )
    return [("user", ask), ("assistant", _pet_json(rng, name, animal))]


def _math_chat(rng: random.Random) -> list[tuple[str, str]]:
    a, b = rng.randint(0, 20), rng.randint(0, 20)
    return [("user", f"What is {a} plus {b}?"), ("assistant", f"{a} plus {b} is {a + b}.")]


def _color_chat(rng: random.Random) -> list[tuple[str, str]]:
    color, thing, name = rng.choice(COLORS), rng.choice(OBJECTS), rng.choice(NAMES)
    return [
        ("user", f"{name} has a {color} {thing}. What color is the {thing}?"),
        ("assistant", f"The {thing} is {color}."),
    ]


def _greeting_chat(rng: random.Random) -> list[tuple[str, str]]:
    name = rng.choice(NAMES)
    ask = rng.choice(["Hello!", "Hi there.", f"Hello, my name is {name}.", "Good morning!"])
    answer = rng.choice(
        [
            "Hello! How can I help you today?",
            "Hi! Would you like to hear a story?",
            "Good day! I can tell you a story or answer a question.",
        ]
    )
    return [("user", ask), ("assistant", answer)]


CHAT_KINDS: list[tuple[Callable[[random.Random], list[tuple[str, str]]], int]] = [
    (_story_chat, 6),
    (_json_chat, 2),
    (_math_chat, 1),
    (_color_chat, 1),
    (_greeting_chat, 1),
]


def documents(count: int, seed: int = 0) -> Iterator[str]:
    """Yield `count` documents; the same seed always yields the same text."""
    rng = random.Random(seed)
    makers, weights = zip(*CHAT_KINDS, strict=True)
    for _ in range(count):
        if rng.random() < 0.25:
            yield _story(rng, rng.choice(NAMES), rng.choice(ANIMALS))
            continue
        turns = rng.choices(makers, weights)[0](rng)
        if rng.random() < 0.2:
            turns += rng.choices(makers, weights)[0](rng)
        system = rng.choice(SYSTEM_PROMPTS) if rng.random() < 0.3 else None
        yield _chat(turns, system)
