"""A deterministic synthetic corpus: short stories, ChatML chats, JSON answers, Q/A, tool calls, thinking.

The text is simple on purpose: a model of a few million parameters learns it in minutes on a CPU
and then writes readable English, which is what the demo and the tests need.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from runtime.tinymodels.tokenizer import render_chat

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


Message = dict[str, Any]


def _turn(ask: str, answer: str, reasoning: str | None = None) -> list[Message]:
    reply: Message = {"role": "assistant", "content": answer}
    if reasoning:
        reply["reasoning_content"] = reasoning
    return [{"role": "user", "content": ask}, reply]


def _story_chat(rng: random.Random) -> list[Message]:
    name, animal = rng.choice(NAMES), rng.choice(ANIMALS)
    ask = rng.choice(
        [
            f"Tell me a story about a {animal}.",
            f"Tell me a story about a {animal} named {name}.",
            f"Can you tell me a short story about a {animal}?",
            f"Write a story about {name} the {animal}.",
        ]
    )
    return _turn(ask, _story(rng, name, animal))


def _json_chat(rng: random.Random) -> list[Message]:
    name, animal = rng.choice(NAMES), rng.choice(ANIMALS)
    ask = rng.choice(
        [
            f"Give me a JSON object for a {animal} named {name}.",
            f"Describe {name} the {animal} as JSON.",
        ]
    )
    return _turn(ask, _pet_json(rng, name, animal))


def _math_chat(rng: random.Random, think: bool = False) -> list[Message]:
    a, b = rng.randint(0, 20), rng.randint(0, 20)
    reasoning = f"The user asks for {a} plus {b}. {a} plus {b} is {a + b}." if think else None
    return _turn(f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.", reasoning)


def _color_chat(rng: random.Random, think: bool = False) -> list[Message]:
    color, thing, name = rng.choice(COLORS), rng.choice(OBJECTS), rng.choice(NAMES)
    reasoning = f"The user asks about the color of the {thing}. {name} has a {color} {thing}." if think else None
    return _turn(f"{name} has a {color} {thing}. What color is the {thing}?", f"The {thing} is {color}.", reasoning)


GREETINGS = ["Hello!", "Hi there.", "Hello, my name is {name}.", "Good morning!"]
GREETING_ANSWERS = [
    "Hello! How can I help you today?",
    "Hi! Would you like to hear a story?",
    "Good day! I can tell you a story or answer a question.",
]


def _greeting_chat(rng: random.Random) -> list[Message]:
    ask = rng.choice(GREETINGS).format(name=rng.choice(NAMES))
    return _turn(ask, rng.choice(GREETING_ANSWERS))


# The kinds of the plain chats (no tools, no thinking): the chat format of the first tiny-chat.
CHAT_KINDS: list[tuple[Callable[[random.Random], list[Message]], float]] = [
    (_story_chat, 6),
    (_json_chat, 2),
    (_math_chat, 0.5),
    (_color_chat, 0.5),
    (_greeting_chat, 1),
]

# Tools: a name, a description and the parameters (name -> JSON type), in the schema's key order.
TOOLS: dict[str, tuple[str, dict[str, str]]] = {
    "get_weather": ("Get the current weather in a city.", {"city": "string"}),
    "get_time": ("Get the local time in a city.", {"city": "string"}),
    "add": ("Add two integers.", {"a": "integer", "b": "integer"}),
    "find_animal": ("Find an animal in a place.", {"animal": "string", "place": "string"}),
    "set_alarm": ("Set an alarm.", {"hour": "integer", "minute": "integer"}),
}
CITIES = ["Paris", "Rome", "Tokyo", "London", "Berlin", "Madrid", "Oslo", "Cairo", "Lima", "Sydney", "Seoul", "Vienna"]
CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "snowy", "foggy"]
TOOL_ANIMALS = {"cat": "cats", "dog": "dogs", "fox": "foxes", "bird": "birds", "rabbit": "rabbits", "bear": "bears"}
TOOL_ANIMALS |= {"duck": "ducks", "frog": "frogs", "owl": "owls", "mouse": "mice", "deer": "deer", "bee": "bees"}
TOOL_PLACES = ["forest", "park", "river", "garden", "lake", "farm", "beach", "hill"]


def tool_schema(name: str) -> dict[str, Any]:
    """The OpenAI-style function definition of a corpus tool (what a client passes as `tools`)."""
    description, params = TOOLS[name]
    parameters = {"type": "object", "properties": {p: {"type": t} for p, t in params.items()}, "required": [*params]}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


@dataclass
class _Call:
    """One tool call of a request: the arguments, the tool's JSON result, the sentence that uses it."""

    name: str
    arguments: dict[str, Any]
    result: dict[str, Any]
    answer: str


def _weather_call(rng: random.Random, city: str) -> _Call:
    degrees, condition = rng.randint(-5, 35), rng.choice(CONDITIONS)
    result = {"city": city, "temperature": degrees, "condition": condition}
    return _Call("get_weather", {"city": city}, result, f"It is {condition} and {degrees} degrees in {city}.")


def _time_call(rng: random.Random, city: str) -> _Call:
    clock = f"{rng.randint(0, 23):02d}:{rng.choice(range(0, 60, 5)):02d}"
    return _Call("get_time", {"city": city}, {"city": city, "time": clock}, f"It is {clock} in {city}.")


def _tool_request(rng: random.Random, kind: str) -> tuple[str, list[_Call], str]:
    """A request for one call of tool `kind`: (user text, [call], what the user wants, for the reasoning)."""
    if kind == "get_weather":
        city = rng.choice(CITIES)
        ask = rng.choice(
            [
                f"What is the weather in {city}?",
                f"How is the weather in {city} today?",
                f"Is it sunny in {city}?",
                f"Tell me the weather in {city}.",
            ]
        )
        return ask, [_weather_call(rng, city)], f"the weather in {city}"
    if kind == "get_time":
        city = rng.choice(CITIES)
        ask = rng.choice(
            [f"What time is it in {city}?", f"Tell me the time in {city}.", f"What is the time in {city}?"]
        )
        return ask, [_time_call(rng, city)], f"the time in {city}"
    if kind == "add":
        a, b = rng.randint(0, 50), rng.randint(0, 50)
        ask = rng.choice([f"Add {a} and {b}.", f"Please add {a} and {b}.", f"What is the sum of {a} and {b}?"])
        call = _Call("add", {"a": a, "b": b}, {"result": a + b}, f"{a} plus {b} is {a + b}.")
        return ask, [call], f"the sum of {a} and {b}"
    if kind == "find_animal":
        animal, place = rng.choice(list(TOOL_ANIMALS)), rng.choice(TOOL_PLACES)
        plural, count = TOOL_ANIMALS[animal], rng.randint(2, 9)
        ask = rng.choice(
            [
                f"Can you find a {animal} in the {place}?",
                f"Find a {animal} in the {place}.",
                f"Are there any {plural} in the {place}?",
            ]
        )
        result = {"animal": animal, "place": place, "count": count}
        call = _Call(
            "find_animal", {"animal": animal, "place": place}, result, f"I found {count} {plural} in the {place}."
        )
        return ask, [call], f"a {animal} in the {place}"
    hour, minute = rng.randint(5, 11), rng.choice([0, 10, 15, 20, 30, 40, 45, 50])
    clock = f"{hour}:{minute:02d}"
    ask = rng.choice([f"Set an alarm for {clock}.", f"Wake me up at {clock}.", f"Please set an alarm at {clock}."])
    result = {"hour": hour, "minute": minute, "status": "set"}
    call = _Call("set_alarm", {"hour": hour, "minute": minute}, result, f"Your alarm is set for {clock}.")
    return ask, [call], f"an alarm at {clock}"


def _parallel_request(rng: random.Random, offered: list[str]) -> tuple[str, list[_Call], str] | None:
    """A request that needs two calls in one turn (parallel tool calls), if the offered tools allow one."""
    first, second = rng.sample(CITIES, 2)
    if "get_weather" in offered and "get_time" in offered and rng.random() < 0.4:
        ask = rng.choice(
            [f"What is the weather and the time in {first}?", f"Tell me the weather and the time in {first}."]
        )
        return ask, [_weather_call(rng, first), _time_call(rng, first)], f"the weather and the time in {first}"
    kinds = [kind for kind in ("get_weather", "get_time") if kind in offered]
    if not kinds:
        return None
    if rng.choice(kinds) == "get_weather":
        ask = rng.choice(
            [f"What is the weather in {first} and {second}?", f"How is the weather in {first} and {second}?"]
        )
        return ask, [_weather_call(rng, first), _weather_call(rng, second)], f"the weather in {first} and {second}"
    ask = rng.choice([f"What time is it in {first} and {second}?", f"Tell me the time in {first} and {second}."])
    return ask, [_time_call(rng, first), _time_call(rng, second)], f"the time in {first} and {second}"


def _tool_chat(rng: random.Random, system: list[Message]) -> tuple[list[Message], list[dict[str, Any]], bool]:
    """A conversation with 1-3 tools offered and 1-3 requests, each answered with tool calls (their results
    and a sentence that uses them follow) or, for a greeting, in words: (messages, tools, whether the
    last request turns thinking off)."""
    offered = rng.sample(list(TOOLS), rng.choices([1, 2, 3], [0.45, 0.35, 0.2])[0])
    messages = list(system)
    exchanges = rng.choices([1, 2, 3], [0.5, 0.35, 0.15])[0]
    thinking_off = False
    for exchange in range(exchanges):
        last = exchange == exchanges - 1
        if rng.random() < 0.1:  # nothing to call: a plain answer
            messages += _greeting_chat(rng)
            continue
        request = _parallel_request(rng, offered) if rng.random() < 0.25 else None
        ask, calls, wanted = request or _tool_request(rng, rng.choice(offered))
        reply: Message = {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls],
        }
        style = rng.random()
        if last and style < 0.15:
            names = " and ".join(dict.fromkeys(call.name for call in calls))
            reply["reasoning_content"] = f"The user wants {wanted}. I will call {names}."
        thinking_off = last and 0.15 <= style < 0.25
        messages += [{"role": "user", "content": ask}, reply]
        if not last or rng.random() < 0.55:  # the results come back and the model answers with them
            messages += [{"role": "tool", "content": json.dumps(call.result)} for call in calls]
            messages.append({"role": "assistant", "content": " ".join(call.answer for call in calls)})
    rng.shuffle(offered)
    return messages, [tool_schema(name) for name in offered], thinking_off


def _render(messages: list[Message], tools: list[dict[str, Any]] | None, thinking_off: bool) -> str:
    """The conversation as the template renders it; with `thinking_off`, as the last request sees it
    (`enable_thinking=False`: an empty think block after the generation prompt) plus its answer."""
    full = render_chat(messages, tools)
    if not thinking_off:
        return full
    history = messages[:-1]
    assert messages[-1]["role"] == "assistant" and not messages[-1].get("reasoning_content")
    prompt = render_chat(history, tools, add_generation_prompt=True)
    assert full.startswith(prompt)
    return render_chat(history, tools, add_generation_prompt=True, enable_thinking=False) + full[len(prompt) :]


def _thinking_chat(rng: random.Random) -> tuple[list[Message], bool]:
    """A sum or colour question answered after a <think> section, or directly with thinking off."""
    history = rng.choices(CHAT_KINDS, [w for _, w in CHAT_KINDS])[0][0](rng) if rng.random() < 0.15 else []
    thinking_off = rng.random() < 0.3
    turn = (_math_chat if rng.random() < 0.6 else _color_chat)(rng, think=not thinking_off)
    return [*history, *turn], thinking_off


# Shares of the chat documents: the first tiny-chat's plain chats, thinking, tools.
CHAT_MIX = {"plain": 0.47, "thinking": 0.2, "tools": 0.33}


def documents(count: int, seed: int = 0) -> Iterator[str]:
    """Yield `count` documents; the same seed always yields the same text."""
    rng = random.Random(seed)
    makers, weights = zip(*CHAT_KINDS, strict=True)
    for _ in range(count):
        if rng.random() < 0.22:
            yield _story(rng, rng.choice(NAMES), rng.choice(ANIMALS))
            continue
        kind = rng.choices(list(CHAT_MIX), list(CHAT_MIX.values()))[0]
        system = [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}] if rng.random() < 0.3 else []
        if kind == "plain":
            turns = rng.choices(makers, weights)[0](rng)
            if rng.random() < 0.2:
                turns += rng.choices(makers, weights)[0](rng)
            yield render_chat([*system, *turns])
        elif kind == "thinking":
            turns, thinking_off = _thinking_chat(rng)
            yield _render([*system, *turns], None, thinking_off)
        else:
            messages, tools, thinking_off = _tool_chat(rng, system)
            yield _render(messages, tools, thinking_off)
