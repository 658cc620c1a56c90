"""A seeded synthetic corpus for the embedding and reranking models: paraphrases, queries, passages.

The tiny chat model learns from stories; an embedder or a reranker has to learn *meaning*, which for
a model of a million parameters trained in minutes comes down to three things: which content words
mean the same (synonyms), which belong together (topics), and which words carry no meaning (function
words and sentence frames). So the corpus is built from ~60 everyday topics, each a small lexicon of
synonym groups (people, actions, things, places, qualities, activities, changes), rendered through
many sentence frames with real English inflection. Two renderings of the same choice of groups are a
paraphrase; a rendering of other groups of the same topic is a hard negative; the same frame filled
from another topic is a negative that shares only function words. Queries ("how do I bake bread")
come with passages that answer them, plus world facts (capitals, languages, definitions) so that a
reranker learns to match entities, not just topics.

No MLX import: the runtime and tests may import this (and `CHECK_*`) without the ML stack.
Held-out checks: `split="val"` uses sentence frames and instructions never used in training, and
`CHECK_TRIPLETS` / `CHECK_RANKINGS` are hand-written sentences that the generator does not produce.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

from runtime.tinymodels.rerank_format import DEFAULT_INSTRUCTION

Split = Literal["train", "val"]
NounKind = Literal["count", "mass", "plural", "name"]

# ----------------------------------------------------------------------------------------------
# English morphology: enough to inflect every verb and noun in the lexicon below correctly.

IRREGULAR_VERBS: dict[str, tuple[str, str]] = {
    "be": ("was", "been"),
    "beat": ("beat", "beaten"),
    "become": ("became", "become"),
    "begin": ("began", "begun"),
    "bend": ("bent", "bent"),
    "bite": ("bit", "bitten"),
    "blow": ("blew", "blown"),
    "break": ("broke", "broken"),
    "bring": ("brought", "brought"),
    "broadcast": ("broadcast", "broadcast"),
    "breed": ("bred", "bred"),
    "build": ("built", "built"),
    "burst": ("burst", "burst"),
    "babysit": ("babysat", "babysat"),
    "buy": ("bought", "bought"),
    "cast": ("cast", "cast"),
    "catch": ("caught", "caught"),
    "choose": ("chose", "chosen"),
    "come": ("came", "come"),
    "cost": ("cost", "cost"),
    "cut": ("cut", "cut"),
    "dig": ("dug", "dug"),
    "do": ("did", "done"),
    "draw": ("drew", "drawn"),
    "drink": ("drank", "drunk"),
    "drive": ("drove", "driven"),
    "eat": ("ate", "eaten"),
    "fall": ("fell", "fallen"),
    "feed": ("fed", "fed"),
    "feel": ("felt", "felt"),
    "fight": ("fought", "fought"),
    "find": ("found", "found"),
    "flee": ("fled", "fled"),
    "fly": ("flew", "flown"),
    "forecast": ("forecast", "forecast"),
    "forget": ("forgot", "forgotten"),
    "forgive": ("forgave", "forgiven"),
    "freeze": ("froze", "frozen"),
    "get": ("got", "gotten"),
    "give": ("gave", "given"),
    "go": ("went", "gone"),
    "grind": ("ground", "ground"),
    "grow": ("grew", "grown"),
    "hang": ("hung", "hung"),
    "have": ("had", "had"),
    "hear": ("heard", "heard"),
    "hide": ("hid", "hidden"),
    "hit": ("hit", "hit"),
    "hold": ("held", "held"),
    "hurt": ("hurt", "hurt"),
    "keep": ("kept", "kept"),
    "know": ("knew", "known"),
    "lay": ("laid", "laid"),
    "lead": ("led", "led"),
    "leave": ("left", "left"),
    "lend": ("lent", "lent"),
    "let": ("let", "let"),
    "lie": ("lay", "lain"),
    "light": ("lit", "lit"),
    "lose": ("lost", "lost"),
    "make": ("made", "made"),
    "meet": ("met", "met"),
    "overtake": ("overtook", "overtaken"),
    "pay": ("paid", "paid"),
    "put": ("put", "put"),
    "quit": ("quit", "quit"),
    "read": ("read", "read"),
    "repay": ("repaid", "repaid"),
    "rebuild": ("rebuilt", "rebuilt"),
    "rewrite": ("rewrote", "rewritten"),
    "ride": ("rode", "ridden"),
    "ring": ("rang", "rung"),
    "rise": ("rose", "risen"),
    "run": ("ran", "run"),
    "say": ("said", "said"),
    "see": ("saw", "seen"),
    "sell": ("sold", "sold"),
    "send": ("sent", "sent"),
    "set": ("set", "set"),
    "shake": ("shook", "shaken"),
    "shine": ("shone", "shone"),
    "shoot": ("shot", "shot"),
    "shrink": ("shrank", "shrunk"),
    "shut": ("shut", "shut"),
    "sing": ("sang", "sung"),
    "sink": ("sank", "sunk"),
    "sit": ("sat", "sat"),
    "sleep": ("slept", "slept"),
    "slide": ("slid", "slid"),
    "speak": ("spoke", "spoken"),
    "speed": ("sped", "sped"),
    "spend": ("spent", "spent"),
    "spin": ("spun", "spun"),
    "split": ("split", "split"),
    "spread": ("spread", "spread"),
    "stand": ("stood", "stood"),
    "steal": ("stole", "stolen"),
    "stick": ("stuck", "stuck"),
    "sting": ("stung", "stung"),
    "stink": ("stank", "stunk"),
    "strike": ("struck", "struck"),
    "sweep": ("swept", "swept"),
    "swim": ("swam", "swum"),
    "swing": ("swung", "swung"),
    "take": ("took", "taken"),
    "teach": ("taught", "taught"),
    "tear": ("tore", "torn"),
    "tell": ("told", "told"),
    "think": ("thought", "thought"),
    "throw": ("threw", "thrown"),
    "understand": ("understood", "understood"),
    "unwind": ("unwound", "unwound"),
    "wake": ("woke", "woken"),
    "wear": ("wore", "worn"),
    "weep": ("wept", "wept"),
    "win": ("won", "won"),
    "withdraw": ("withdrew", "withdrawn"),
    "write": ("wrote", "written"),
}
# Stress on the last syllable: the final consonant doubles although the word has two syllables.
DOUBLING_VERBS = {
    "begin",
    "control",
    "prefer",
    "admit",
    "commit",
    "submit",
    "regret",
    "equip",
    "unplug",
    "forget",
    "program",
    "babysit",
    "unwrap",
    "transfer",
    "debug",
}
IRREGULAR_PLURALS: dict[str, str] = {
    "man": "men",
    "woman": "women",
    "child": "children",
    "person": "people",
    "foot": "feet",
    "tooth": "teeth",
    "mouse": "mice",
    "goose": "geese",
    "wolf": "wolves",
    "knife": "knives",
    "leaf": "leaves",
    "loaf": "loaves",
    "wife": "wives",
    "shelf": "shelves",
    "thief": "thieves",
    "calf": "calves",
    "potato": "potatoes",
    "tomato": "tomatoes",
    "hero": "heroes",
    "volcano": "volcanoes",
    "tornado": "tornadoes",
    "mosquito": "mosquitoes",
    "series": "series",
    "quiz": "quizzes",
    "hypothesis": "hypotheses",
    "scarf": "scarves",
    "aircraft": "aircraft",
}
SAME_PLURAL = {"fish", "sheep", "deer", "salmon", "trout", "cod", "tuna", "species"}
NOT_MAN = {"human", "german", "roman", "shaman"}
_VOWELS = "aeiou"
_SHORT_CVC = re.compile(r"^[^aeiou]*[aeiou][^aeiouwxy]$")


def _doubles(word: str) -> bool:
    """Whether the final consonant doubles before -ed/-ing (stop -> stopped, but cook -> cooked)."""
    last = word.split("-")[-1]
    return last in DOUBLING_VERBS or bool(_SHORT_CVC.match(last))


def _regular_past(verb: str) -> str:
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and len(verb) > 1 and verb[-2] not in _VOWELS:
        return verb[:-1] + "ied"
    if verb.endswith("c"):
        return verb + "ked"  # panic -> panicked
    return verb + verb[-1] + "ed" if _doubles(verb) else verb + "ed"


def _gerund(verb: str) -> str:
    if verb == "be":
        return "being"
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith(("ee", "ye", "oe")) or verb in {"be"}:
        return verb + "ing"
    if verb.endswith("e") and len(verb) > 2:
        return verb[:-1] + "ing"
    if verb.endswith("c"):
        return verb + "king"
    return verb + verb[-1] + "ing" if _doubles(verb) else verb + "ing"


def _third_person(verb: str) -> str:
    special = {"be": "is", "have": "has", "do": "does", "go": "goes", "undo": "undoes", "redo": "redoes"}
    if verb in special:
        return special[verb]
    if verb.endswith(("s", "x", "z", "ch", "sh")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in _VOWELS:
        return verb[:-1] + "ies"
    return verb + "s"


VerbForm = Literal["base", "past", "pp", "ing", "3s"]


def inflect(phrase: str, form: VerbForm) -> str:
    """Inflect the first word of a verb phrase ("go up" -> "went up", "sit down" -> "sitting down")."""
    head, _, rest = phrase.partition(" ")
    if form == "base":
        word = head
    elif form == "past":
        word = IRREGULAR_VERBS[head][0] if head in IRREGULAR_VERBS else _regular_past(head)
    elif form == "pp":
        word = IRREGULAR_VERBS[head][1] if head in IRREGULAR_VERBS else _regular_past(head)
    elif form == "ing":
        word = _gerund(head)
    else:
        word = _third_person(head)
    return f"{word} {rest}" if rest else word


def _plural_word(word: str) -> str:
    lower = word.lower()
    if lower in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[lower]
    if lower in SAME_PLURAL:
        return word
    if lower.endswith("man") and lower not in NOT_MAN:
        return word[:-3] + "men"
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if lower.endswith("y") and lower[-2] not in _VOWELS:
        return word[:-1] + "ies"
    return word + "s"


def pluralize(noun: str) -> str:
    """Plural of a noun phrase: the head is the word before "of", else the last word."""
    if " of " in noun:
        head, _, tail = noun.partition(" of ")
        return f"{pluralize(head)} of {tail}"
    *front, last = noun.split(" ")
    return " ".join([*front, _plural_word(last)])


def indefinite(noun: str) -> str:
    """ "a" or "an", by the sound of the first word (an hour, a unit, an apple)."""
    lower = noun.lower()
    if lower.startswith(("hour", "honest", "honor", "heir")):
        return "an"
    if lower.startswith(("uni", "use", "usu", "eu", "one", "once", "ufo")):
        return "a"
    first = noun.split(" ")[0]
    if len(first) > 1 and first.isupper() and first[0] in "FHLMNRSX":
        return "an"  # an SUV, an SD card: the letter's name starts with a vowel sound
    return "an" if lower[:1] in _VOWELS else "a"


# ----------------------------------------------------------------------------------------------
# The lexicon. One topic per entry; within a field, ", " separates synonym groups and "|" separates
# synonyms. Nouns: "*" mass (the bread, some bread), "+" plural (the eggs), "~" a name without a
# determiner (Mars, ancient Rome), otherwise countable. Places: "prep:" before a group sets its
# preposition (default "in"). Actions take a thing as object, doings are what people do, changes are
# what things do.

TOPIC_SPECS: list[dict[str, str]] = [
    {
        "name": "cooking",
        "people": "chef|cook, home cook, kitchen assistant|kitchen helper, food blogger",
        "actions": "cook|prepare|make, boil, fry, roast, grill|barbecue, chop|cut|slice, stir|mix, season, "
        "taste|try, serve, reheat|warm up|heat up, peel",
        "things": "*soup|*stew|*broth, *pasta|*spaghetti|+noodles, *chicken, *pepper|*black pepper, *salt, *rice, "
        "+vegetables|+veggies, "
        "+potatoes, +eggs, *steak|*beef, *salad, *sauce, +onions, +carrots, *fish|*salmon, *curry, "
        "omelette|omelet, +mushrooms, *garlic, +beans|+lentils, *tofu, dinner|meal|dish",
        "places": "kitchen, on:stove|cooktop, in:pan|frying pan|skillet, in:pot|saucepan, at:~home",
        "qualities": "delicious|tasty, spicy|hot, fresh, salty, healthy|nutritious, crispy|crunchy, tender|soft, "
        "bland|plain, burnt|overcooked, vegetarian|meatless",
        "doings": "cook dinner|make dinner, have lunch|eat lunch, have breakfast|eat breakfast, "
        "do the dishes|wash the dishes, follow a recipe, set the table",
        "changes": "burn, boil over, cool down|get cold, smell good|smell delicious",
        "guides": "recipe",
    },
    {
        "name": "baking",
        "people": "baker|pastry chef, apprentice baker, grandmother|grandma",
        "actions": "bake, knead, decorate|frost|ice, roll out, measure|weigh, whisk|beat, sift, buy, make",
        "things": "bread|loaf|loaf of bread, cake, *dough, +cookies|+biscuits, pie|tart, +muffins|+cupcakes, "
        "*flour, *butter, *sugar, +croissants|+pastries, *yeast, *cream|*whipped cream, *chocolate, "
        "*cinnamon, +pancakes|+waffles, *frosting|*icing, +brownies, birthday cake, sourdough",
        "places": "oven, bakery|bake shop, kitchen, on:baking tray|baking sheet, in:bowl|mixing bowl, at:~home",
        "qualities": "homemade|made at home, sweet|sugary, fresh|freshly baked, soft|fluffy, golden|golden brown, "
        "crusty, gluten-free, chewy, warm",
        "doings": "bake|do some baking, follow the recipe, preheat the oven|heat the oven, clean up the kitchen",
        "changes": "rise, burn, cool|cool down, melt, turn golden",
        "guides": "recipe",
    },
    {
        "name": "restaurants",
        "people": "waiter|server|waitress, customer|diner|guest, restaurant owner|manager, food critic|reviewer",
        "actions": "order, eat|have, recommend|suggest, serve|bring, pay for, review|rate, book|reserve, share, "
        "enjoy|like",
        "things": "pizza, burger|hamburger, *sushi, sandwich, *dessert, *coffee, table, *bill|*check, *menu, "
        "*tip, +fries|+chips, *wine, *ice cream, *lunch, *dinner|*supper, meal|dish, +tacos, *takeout|*takeaway",
        "places": "restaurant|diner|bistro, cafe|coffee shop, pizzeria|pizza place, at:bar|pub, at:food court",
        "qualities": "delicious|tasty|good, expensive|pricey, cheap|affordable|inexpensive, crowded|busy|packed, "
        "cozy, slow, friendly, cold, fancy|upscale, thin|thin-crust",
        "doings": "eat out|dine out, wait for a table, leave a tip, order takeout|get takeout, have dinner|eat dinner",
        "changes": "arrive late|come late, get cold, sell out",
    },
    {
        "name": "weather",
        "people": "forecaster|weather forecaster|meteorologist, weatherman|weather reporter, farmer, pilot",
        "actions": "predict|forecast, expect, warn about|warn of, report, measure|record, track|follow",
        "things": "*rain|+showers|*rainfall, *snow|*snowfall, storm|thunderstorm, *wind|+strong winds, "
        "heat wave, *fog|*mist, *hail, *sunshine, hurricane|tropical storm, tornado, +clouds, *temperature, "
        "*weather, *frost|*ice, *humidity, flood, *lightning, drought, blizzard|snowstorm, rainbow, *forecast",
        "places": "city|town, mountains|hills, on:coast|shore, valley, across:region|area, in:~the north, "
        "in:~the south, "
        "at:airport",
        "qualities": "sunny|bright, cloudy|overcast|gray, rainy|wet, cold|chilly|freezing, hot|warm, humid|muggy, "
        "foggy|misty, mild|pleasant, icy, dry, heavy|strong|intense, light|gentle, windy|stormy",
        "doings": "stay inside|stay indoors, carry an umbrella|take an umbrella, shovel snow|clear the snow, "
        "check the forecast|check the weather, wear a raincoat",
        "changes": "stop|end, start|begin, get worse|intensify, clear up|pass, move east|head east, arrive|hit",
    },
    {
        "name": "rain and snow",
        "people": "~it",
        "animals": "yes",
        "actions": "bring|cause, leave, hit|strike, cover, damage",
        "things": "*rain|*heavy rain, *snow, storm, *wind, *hail, *ice, puddle|+puddles, umbrella, roof, "
        "street|road, +cars, *sky, *thunder, *flooding, +trees",
        "places": "-:~outside, city|town, across:country, mountains, on:coast, -:~all day|~all night, -:~here",
        "qualities": "heavy|hard, light, cold|freezing, wet, gray|grey, dark, icy, bright",
        "doings": "rain|pour|pour down, snow, hail, drizzle, thunder, get dark, freeze, get windy, "
        "get cold|turn cold, warm up|get warmer, clear up|brighten up",
        "changes": "melt, freeze|ice over, flood|overflow, dry up|dry out",
    },
    {
        "name": "soccer",
        "people": "striker|forward, goalkeeper|goalie, coach|manager, referee|ref, player|footballer, "
        "captain, fan|supporter, defender",
        "actions": "score, win, lose, play, miss, save|stop|block, watch, coach|train, sign|hire, kick",
        "things": "goal, match|game|soccer match|football game, penalty|penalty kick, ball|soccer ball|football, "
        "final|cup final, trophy|title, free kick, corner|corner kick, tournament|league, season, "
        "contract|deal, +tickets, jersey|shirt, team|side|club, World Cup",
        "places": "at:stadium|arena, on:field|pitch, at:training ground, in:league",
        "qualities": "exciting|thrilling, close|tight, important|big|crucial, boring|dull, late|last-minute, "
        "difficult|tough|hard, winning",
        "doings": "score a goal, win the game|win the match, lose the game|lose the match, train|practice, "
        "play football|play soccer, cheer|shout",
        "changes": "start|kick off|begin, end|finish, go to extra time, get postponed|get cancelled",
    },
    {
        "name": "ball sports",
        "people": "athlete|player, tennis player, basketball player, pitcher, golfer, umpire|referee, "
        "coach|trainer, teammate",
        "actions": "throw|toss, catch, hit|strike|smash, serve, shoot, dribble, win, lose, practice|train for, watch",
        "things": "ball, basketball, tennis ball, baseball, golf ball, *tennis, *golf, *volleyball, racket|racquet, "
        "bat|baseball bat, net, hoop|basket, point, set|round, serve, game|match, +sneakers|+shoes, "
        "championship|tournament, *baseball game|*ball game",
        "places": "on:court|tennis court|basketball court, at:gym|sports hall, on:field|baseball field, "
        "at:golf course, at:club|sports club",
        "qualities": "fast|quick, powerful|strong, accurate|precise, long, professional|pro, friendly, competitive",
        "doings": "play tennis, play basketball, play baseball, play golf, play volleyball, warm up|stretch, compete",
        "changes": "bounce, fly out|go out, hit the net",
    },
    {
        "name": "fitness",
        "people": "trainer|personal trainer|coach, runner|jogger, athlete, yoga teacher|yoga instructor, swimmer",
        "actions": "lift, run, stretch, train|exercise, build|strengthen, burn, track|count|measure, "
        "finish|complete, join|sign up for, skip",
        "things": "+weights|+dumbbells, marathon, race, +muscles, +calories, +push-ups, +sit-ups, +squats, "
        "workout|exercise|training session, *yoga, *cardio, mile, treadmill|running machine, "
        "*heart rate|*pulse, *weight|*body weight, +running shoes|+sneakers, *stamina|*endurance, "
        "gym membership|membership",
        "places": "at:gym|fitness center|health club, park, on:track|running track, in:pool|swimming pool, "
        "in:yoga class|class",
        "qualities": "hard|tough|intense|difficult, easy|light, long, short|quick, healthy, strong, daily|regular",
        "doings": "go running|jog|go for a run, go to the gym|work out|exercise, swim|go swimming, "
        "stretch|warm up, lose weight, keep fit|stay in shape|stay fit, go for a walk|take a walk, "
        "rest|take a break",
        "changes": "improve|get better, hurt|ache|get sore, grow|get bigger, drop|go down",
    },
    {
        "name": "stock market",
        "people": "investor|trader|shareholder, analyst|market analyst, broker|stockbroker, banker, economist, "
        "fund manager",
        "actions": "buy|purchase, sell, trade, invest in, own|hold, watch|track|follow, predict|forecast, "
        "recommend, value",
        "things": "+stocks|+shares, stock market|market|stock exchange, *bitcoin|*crypto|*cryptocurrency, "
        "+bonds, index|stock index, fund|mutual fund|index fund, *gold, portfolio|investment portfolio, "
        "+profits|+earnings, +dividends, company|firm|corporation, +tech stocks|+technology shares, "
        "*oil|*crude oil, +stock prices|+share prices, *dollar|*currency, +losses",
        "places": "on:~Wall Street, at:stock exchange|exchange, in:~New York, in:~London, in:~Tokyo, market",
        "qualities": "volatile|unstable|risky, safe|stable, profitable, cheap|undervalued, expensive|overvalued, "
        "strong, weak, global|international",
        "doings": "invest|invest money, trade stocks, panic|sell everything, diversify, buy the dip",
        "changes": "rise|go up|climb|gain|increase|rally, fall|drop|go down|decline|slide|tumble|plunge, "
        "crash|collapse, recover|bounce back|rebound, stay flat|hold steady",
    },
    {
        "name": "banking",
        "people": "banker|bank teller|teller, customer|client|account holder, accountant, loan officer, "
        "financial advisor|financial planner, borrower",
        "actions": "deposit, earn|make, withdraw|take out, save, borrow, lend|loan, pay|pay off|repay, "
        "transfer|send, open, "
        "close, check",
        "things": "*money|*cash, +dollars, account|bank account|savings account|checking account, loan, "
        "mortgage|home loan, "
        "credit card|card, *debt, +interest rates|+rates, *interest, *budget, *salary|*pay|+wages, "
        "+fees|+charges, +bills, check|cheque, *balance|*account balance, *pension|*retirement savings, "
        "+taxes|*tax, *insurance, +savings",
        "places": "at:bank, at:ATM|cash machine, at:branch|bank branch, at:~home",
        "qualities": "high, low, monthly, expensive|costly, free, personal, secure|safe, late|overdue",
        "doings": "save money|put money aside, spend money|spend, budget|plan a budget, go into debt, "
        "get paid|receive a paycheck",
        "changes": "rise|go up|increase|climb, fall|drop|go down|decrease, double, grow",
    },
    {
        "name": "economy",
        "people": "government, central bank, economist, politician|lawmaker, finance minister|minister, "
        "worker|employee, business owner",
        "actions": "raise|increase, cut|lower|reduce, spend, fund, announce, control|fight, create, "
        "boost|stimulate, measure",
        "things": "*inflation, *unemployment, +jobs, *economy, +prices|*cost of living, +wages|+salaries, "
        "+taxes, *budget|*national budget, *debt|*national debt, *growth|*economic growth, "
        "recession|downturn|slump, +exports, +imports, *trade, +interest rates, +benefits|*welfare, "
        "*spending|*public spending, *demand",
        "places": "country|nation, in:~Europe, in:~America, capital, in:~China, in:~Japan",
        "qualities": "high, low, rising|growing, falling|shrinking, weak|slow, strong|healthy, national, global",
        "doings": "go on strike|strike, vote, protest, borrow money",
        "changes": "rise|go up|increase|climb, fall|drop|go down|decrease, slow down|stall, grow|expand, "
        "shrink|contract",
    },
    {
        "name": "programming",
        "people": "programmer|developer|coder|software engineer, tester|QA engineer, computer science student, "
        "intern, data scientist",
        "actions": "write|code, fix|debug, test, run|execute, deploy|release|ship, install, "
        "refactor|clean up|rewrite, compile|build, review, update|upgrade",
        "things": "bug|error, *code|*source code, program|application|app, function|method, script|Python script, "
        "*Python code, *JavaScript code, website|web app, database, API, library|package, test|unit test, "
        "loop, variable, class, server|backend, feature, *software, algorithm, compiler, "
        "query|SQL query, pull request, *Python, *Java, *Rust",
        "places": "in:editor|code editor|IDE, on:server|production server, on:laptop|computer, "
        "in:repository|repo, in:terminal|command line, in:cloud",
        "qualities": "buggy|broken, slow, fast|efficient, clean|readable, new|latest, old|legacy, "
        "complex|complicated, simple|easy, open source",
        "doings": "program|code, debug, write tests, fix bugs, deploy to production, learn to code|learn programming",
        "changes": "crash|fail, break|stop working, run|work, compile, time out|hang|freeze, slow down|lag",
        "guides": "tutorial",
    },
    {
        "name": "computers",
        "people": "technician|IT technician|repair technician, gamer, user, student, engineer",
        "actions": "install|set up, repair|fix, upgrade, restart|reboot, clean, replace, plug in|connect, charge, "
        "buy|purchase, turn on|switch on, turn off|switch off|shut down, back up",
        "things": "computer|PC, laptop|notebook, keyboard, mouse, screen|monitor|display, printer, "
        "hard drive|disk|drive, battery, *memory|*RAM, graphics card|GPU|video card, processor|CPU|chip, "
        "*software, operating system, +files|+documents, webcam|camera, charger|power cable, router|modem, "
        "fan|cooling fan, +updates, tablet",
        "places": "on:desk, office, at:repair shop|computer store, in:lab|computer lab, at:~home",
        "qualities": "slow, fast|quick|speedy, new, old|outdated, broken|damaged|faulty, expensive, cheap, "
        "noisy|loud, wireless",
        "doings": "type, print, browse the web|surf the internet, reboot|restart",
        "changes": "crash|freeze, overheat|get hot, shut down|turn off, run out of power|die, "
        "stop working|break, run slowly|slow down|lag, make noise",
    },
    {
        "name": "phones and internet",
        "people": "user|customer, teenager|teen, influencer, blogger, hacker",
        "actions": "send|text, download, upload|post|share, call|phone, charge, search|look up, install, "
        "delete|remove, stream|watch, follow, reset|change, click|tap|press",
        "things": "phone|smartphone|cell phone|mobile phone, message|text message|text, email, app, video, "
        "photo|picture, *wifi|*internet, password, account|profile, *social media, website|site, post, "
        "*data|*mobile data, *signal|*reception, video call, notification, phone battery, charger, screen, link, "
        "login page|sign-in page, button, username",
        "places": "on:internet|web, in:group chat|chat, on:tablet, at:~home, on:phone",
        "qualities": "new|latest, slow, fast, free, private|secure, viral|popular, fake|false, long, short",
        "doings": "go online|get online, scroll through social media|browse social media, "
        "text|send messages, log in|sign in, log out|sign out, take a selfie",
        "changes": "die|run out of battery, go viral|spread, crash|freeze, load slowly|take forever to load, ring|buzz",
    },
    {
        "name": "air travel",
        "people": "traveler|passenger|flyer, pilot|captain, flight attendant|cabin crew, tourist, travel agent",
        "actions": "book|reserve, cancel, delay|postpone, board|get on, miss, catch|take, check, pack, carry, find",
        "things": "flight, plane|airplane|jet|aircraft, ticket|plane ticket|airline ticket, passport, "
        "*luggage|*baggage, suitcase|bag, boarding pass, seat|window seat|aisle seat, visa, trip|journey, "
        "gate, connecting flight|connection, airline|carrier, *jet lag",
        "places": "at:airport, at:gate|departure gate, on:plane|flight|airplane, at:security|security check, "
        "at:terminal, to:~London, to:~Paris, to:~New York, to:~Tokyo, to:~Rome, to:~Berlin",
        "qualities": "cheap|low-cost|budget|inexpensive, expensive|pricey, long|long-haul, short|quick, "
        "direct|nonstop, delayed|late, cancelled|canceled, overbooked|full, international",
        "doings": "fly|travel by plane|take a plane, land|touch down, take off|depart, arrive|get there, "
        "wait at the gate, travel abroad|go abroad",
        "changes": "take off|depart|leave, land|arrive, get delayed|run late, get cancelled, start boarding",
    },
    {
        "name": "vacations",
        "people": "guest|visitor, receptionist|front desk clerk, tourist|holidaymaker|vacationer, "
        "tour guide|guide, host|owner, housekeeper|cleaner",
        "actions": "book|reserve, cancel, visit|see|explore, recommend, rent|hire, enjoy|love, "
        "photograph|take pictures of, plan|organize",
        "things": "hotel|inn, room|hotel room|suite, vacation|holiday|trip, pool|swimming pool, *breakfast, "
        "tour|guided tour, reservation|booking, resort, apartment|vacation rental|holiday home, *sightseeing, "
        "+souvenirs|+gifts, cruise, map|city map, balcony, *view|*sea view, museum, old town",
        "places": "at:hotel|inn, at:resort, in:~Paris, in:~Rome, in:~Spain, in:~Italy, in:~Greece, "
        "in:city center|town center, on:island, by:sea|ocean",
        "qualities": "beautiful|lovely|stunning, relaxing|peaceful|quiet, expensive|luxurious, "
        "cheap|affordable, crowded|busy, clean, comfortable|comfy, famous|popular|well-known, historic|old",
        "doings": "go on vacation|go on holiday|take a vacation, travel|go traveling, relax|unwind|rest, "
        "go sightseeing, stay at a hotel|stay in a hotel, sunbathe|lie on the beach",
        "changes": "fill up|get booked up, open|reopen, close|shut down",
    },
    {
        "name": "public transport",
        "people": "commuter|passenger|rider, bus driver|driver, conductor|ticket inspector, train driver, tourist",
        "actions": "catch|take|ride, miss, wait for, board|get on, get off, buy, check, run|operate, cancel, announce",
        "things": "train, bus, subway|metro|underground, tram|streetcar, ticket|train ticket|fare, platform, "
        "schedule|timetable, route|line, seat, travel pass|season ticket, taxi|cab, ferry, stop|bus stop, "
        "*traffic, delay, rail strike|strike",
        "places": "at:station|train station|railway station, at:bus stop, on:platform, on:train, city|town",
        "qualities": "late|delayed, early, crowded|packed|full|busy, empty, fast|express|high-speed, slow, "
        "cheap|free, on time|punctual",
        "doings": "commute|travel to work, take the bus|ride the bus, take the train|go by train, "
        "walk to the station, change trains|transfer",
        "changes": "arrive|come in, leave|depart, run late|get delayed|run behind schedule, break down|stop",
    },
    {
        "name": "health",
        "people": "doctor|physician|family doctor, nurse, patient, pharmacist, dentist, surgeon, therapist",
        "actions": "treat|cure, examine, prescribe, take, prevent|avoid, diagnose, test for|check for, "
        "recommend|advise|suggest, cause",
        "things": "*flu|*influenza, cold|common cold, *fever, *cough, headache|migraine, *pain|*back pain, "
        "infection, *medicine|*medication|+pills, *blood pressure, *diabetes, allergy|+allergies, "
        "vaccine|shot|vaccination, *stress|*anxiety, *sleep|*rest, +symptoms, injury, *sore throat, "
        "appointment|checkup, prescription, *cancer, heart attack, *asthma, tooth|+teeth",
        "places": "at:clinic|doctor's office, in:hospital, at:pharmacy|drugstore, in:emergency room|ER, at:~home",
        "qualities": "serious|severe|bad, mild|minor, chronic|long-term, common, painful|sore, healthy, sick|ill, "
        "contagious|infectious",
        "doings": "see a doctor|go to the doctor, get some rest|rest, stay in bed, get better|recover, "
        "catch a cold|get sick, sleep more|get more sleep, take medicine|take pills, get vaccinated",
        "changes": "get worse|worsen, get better|improve|ease, spread, go away|disappear|clear up, last|continue",
    },
    {
        "name": "nutrition",
        "people": "nutritionist|dietitian, athlete, vegetarian, dieter",
        "actions": "eat, drink, avoid|cut out, count|track, cut down on|reduce, add|include, prepare, buy, "
        "recommend, need",
        "things": "+vegetables|+veggies, *fruit, *protein, *sugar, *fat|+fats, +calories, +vitamins, *water, "
        "*fiber, +carbohydrates|+carbs, *breakfast, snack, *salt, *meat, *fish, +nuts, *milk|*dairy, "
        "*oatmeal|*oats|*porridge, *yogurt, +eggs, +beans, *juice|*fruit juice, *junk food|*fast food, "
        "*diet, apple, banana, +berries",
        "places": "kitchen, at:supermarket|grocery store, at:~home, at:cafeteria|canteen",
        "qualities": "healthy|nutritious|good for you, unhealthy, low-fat|lean, sugary|sweet, balanced, fresh, "
        "organic, whole-grain|whole-wheat, processed",
        "doings": "go on a diet|diet, lose weight|slim down, eat healthy|eat well, skip breakfast|skip meals, "
        "drink more water|stay hydrated, fast",
        "changes": "spoil|go bad|go off, drop, go up",
        "guides": "recipe",
    },
    {
        "name": "music lessons",
        "people": "guitarist|guitar player, pianist|piano player, drummer, violinist|violin player, "
        "singer|vocalist, music teacher, musician, music student|learner",
        "actions": "play, practice|rehearse, tune, learn, teach, write|compose, record, sing, strum, perform",
        "things": "guitar|acoustic guitar|electric guitar, piano|keyboard, +drums|drum kit, violin|fiddle, "
        "song|tune|piece, *music, chord, melody, lesson|music lesson, flute, trumpet, saxophone|sax, cello, "
        "note, *sheet music, scale, +strings, rhythm|beat",
        "places": "studio|recording studio, at:music school|conservatory, on:stage, band, at:~home",
        "qualities": "beautiful|lovely, loud, quiet|soft, difficult|hard|tricky, easy|simple, classical, catchy, "
        "out of tune, old|vintage",
        "doings": "play music, sing|sing along, practice|rehearse, play in a band, take lessons|take music lessons, "
        "read music",
        "changes": "sound great|sound good, go out of tune, break|snap",
    },
    {
        "name": "concerts",
        "people": "band|group, singer|pop star, fan, DJ, rapper, producer|record producer",
        "actions": "release|put out, record, perform|play, sing, announce, cancel, buy|get, stream|listen to, "
        "love|enjoy, headline",
        "things": "album|record, song|single|track, concert|show|gig, tour|world tour, festival|music festival, "
        "ticket|concert ticket, playlist, hit|hit song, music video|video, *rock|*rock music, *jazz, "
        "*hip hop|*rap, *pop music|*pop, encore, +lyrics, award|music award",
        "places": "at:concert hall, at:festival, at:stadium|arena, at:club|nightclub, on:radio, on:stage",
        "qualities": "new|latest, popular|famous|well-known, sold-out, amazing|great|fantastic|awesome, loud, "
        "live, catchy, classic|old",
        "doings": "go to a concert|see a concert, dance, sing along, go on tour|tour, listen to music",
        "changes": "sell out, start|begin, end|finish, top the charts|go to number one, go viral",
    },
    {
        "name": "movies",
        "people": "actor|actress|movie star, director|filmmaker, critic|film critic|reviewer, viewer|moviegoer, "
        "screenwriter|writer, producer",
        "actions": "watch|see, film|shoot|make, direct, review|rate, release, stream, recommend, love|enjoy|like, "
        "hate|dislike",
        "things": "movie|film, show|TV show|series, episode, trailer|preview, comedy, documentary, "
        "horror movie|horror film, cartoon|animated film, sequel, scene, *plot|*story|*storyline, ending, "
        "character, role|part, +subtitles, Oscar|award, *soundtrack, *popcorn, thriller, *drama",
        "places": "at:cinema|movie theater|theater, on:TV|television, on:~Netflix|streaming service, "
        "at:film festival, in:~Hollywood",
        "qualities": "good|great|excellent|fantastic|awesome, bad|terrible|awful, boring|dull|slow, "
        "funny|hilarious, scary|frightening, new|latest, long, sad|moving|emotional, popular|successful",
        "doings": "go to the movies|go to the cinema|see a movie, binge-watch|binge, laugh, cry",
        "changes": "start|begin, end, come out|premiere|open, flop|fail",
    },
    {
        "name": "books",
        "people": "librarian, author|writer|novelist, reader, student, publisher|editor, poet",
        "actions": "read, write, borrow|check out, return|bring back, publish, recommend|suggest, review, buy, "
        "lend, finish",
        "things": "book, novel, story|short story, poem, chapter, magazine, newspaper|paper, *fiction, "
        "biography|memoir, library card, e-book|ebook, comic|comic book, dictionary, book series|series, "
        "textbook, *literature, bestseller, essay, article, *poetry",
        "places": "library|public library, at:bookstore|bookshop, classroom, on:shelf|bookshelf, bed",
        "qualities": "long, short, interesting|fascinating|gripping, boring|dull, famous|classic|popular, "
        "old|rare, new|recent, thick|heavy, difficult|hard, romantic",
        "doings": "read|do some reading, write|do some writing, study, join a book club",
        "changes": "sell well|become a bestseller, go out of print, get lost|go missing, fall apart",
    },
    {
        "name": "cats",
        "people": "cat|kitten|kitty, old cat, black cat, neighbor's cat",
        "animals": "yes",
        "actions": "feed, pet|stroke, chase, catch, groom|brush, adopt, scratch, hunt, play with, watch",
        "things": "cat|kitten|kitty, vet|veterinarian, mouse, bird, *cat food, toy|cat toy, "
        "ball of yarn|ball of wool, litter box, *milk, fish, "
        "*fur, collar, scratching post, *catnip, bowl|food bowl, cat bed|basket, string, fly|insect, whiskers",
        "places": "on:mat|rug|carpet, on:sofa|couch, on:windowsill|window ledge, garden|yard|backyard, on:bed, "
        "box, under:table, on:roof, by:fire|fireplace, on:chair",
        "qualities": "fluffy|furry|soft, cute|adorable, lazy, playful, hungry, sleepy|tired, black, white, "
        "orange|ginger, old, little|small|tiny",
        "doings": "sit|sit down, sleep|nap|take a nap|doze, purr, meow, play, hide, jump|leap, climb, "
        "run away|escape, lie down|lie, wait, stretch",
        "changes": "fall, roll, disappear|go missing",
    },
    {
        "name": "dogs",
        "people": "dog|puppy|pup, sheepdog, guide dog, stray dog",
        "animals": "yes",
        "actions": "walk, train|teach, reward|praise, feed, chase|run after, fetch|bring back, bark at, bite, "
        "pet, wash|bathe, "
        "adopt|rescue",
        "things": "ball|tennis ball, stick, bone, leash|lead, collar, *dog food, treat|biscuit, toy|chew toy, "
        "frisbee, cat, squirrel, tail, bowl|water bowl, kennel|dog house, command|trick, "
        "*good behavior|*behavior, dog|puppy, "
        "mailman|postman|mail carrier, dog walker, dog trainer|trainer, vet|veterinarian",
        "places": "park|dog park, yard|garden|backyard, on:beach, on:sofa|couch, at:vet|animal clinic, "
        "at:shelter|animal shelter, along:street|road",
        "qualities": "friendly|nice, loyal, big|large|huge, small|little|tiny, playful|energetic, "
        "well-trained|obedient, hungry, muddy|dirty|wet, old, brown",
        "doings": "bark, run|run around, sleep|nap, play|play outside, dig|dig a hole, growl, howl, sit|sit down, "
        "swim, wag its tail",
        "changes": "roll away, break, get lost|go missing",
    },
    {
        "name": "wild animals",
        "people": "lion, tiger, elephant, wolf, bear|grizzly bear, cheetah, monkey|chimpanzee, gorilla, "
        "fox, snake, crocodile, giraffe, zebra",
        "animals": "yes",
        "actions": "hunt, chase|pursue, eat|devour, catch, attack, protect|guard, track|follow, study|observe, "
        "feed, photograph",
        "things": "prey, *meat, zebra, antelope|gazelle, deer, rabbit|hare, fish, *grass, *fruit, +bananas, "
        "nest, cub|baby, tree, watering hole, mouse, +leaves, zookeeper|keeper, wildlife researcher|biologist, "
        "lion, elephant, monkey",
        "places": "jungle|rainforest|forest, on:savanna|grassland|plains, at:zoo, wild, desert, cage|enclosure, "
        "river, national park|nature reserve, in:~Africa",
        "qualities": "wild, dangerous|fierce, endangered|rare, huge|enormous|large|big, fast|quick, hungry, "
        "young|baby, old",
        "doings": "run|sprint, roar, hunt, sleep|rest, climb trees|climb, swim, hide, migrate",
        "changes": "run away|escape|flee, die out|disappear, grow",
    },
    {
        "name": "birds",
        "people": "bird, eagle|hawk, owl, parrot, penguin, duck, seagull|gull, crow, robin, swan",
        "animals": "yes",
        "actions": "build|make, catch, eat, feed, spot|see|watch, lay, carry, protect",
        "things": "nest, egg|+eggs, worm|+worms, +seeds, fish, +feathers, insect|bug, +crumbs|*bread, "
        "+binoculars, branch|tree branch, +chicks|+baby birds, bird feeder|feeder, *birdsong",
        "places": "tree, on:branch, sky|air, on:lake|pond, on:roof, at:bird feeder|feeder, garden",
        "qualities": "colorful|bright, small|little|tiny, big|large, rare, white, loud|noisy",
        "doings": "fly|fly away, sing|chirp|tweet, migrate|fly south, land, swim, build nests",
        "changes": "hatch, fall, blow away",
    },
    {
        "name": "farming",
        "people": "farmer|rancher, horse rider|rider|jockey, farmhand|farm worker, cowboy",
        "actions": "ride, feed, milk, herd|round up, plow, harvest|gather|pick, plant|sow, raise|breed, sell, "
        "groom|brush",
        "things": "horse|pony, cow|+cattle, sheep, pig, +chickens|+hens, goat, field, *wheat, *corn|*maize, *hay, "
        "tractor, barn|stable, +eggs, *milk, +crops, fence, saddle, *grain, +apples, *farmland|land",
        "places": "on:farm|ranch, field|meadow|pasture, barn|stable, countryside|country, village",
        "qualities": "white, brown, young, old, big, strong, organic, healthy, ripe",
        "doings": "ride|go riding|go horseback riding, work in the fields|work on the farm, "
        "get up early|wake up early, feed the animals, milk the cows",
        "changes": "grow, ripen, fail|die",
    },
    {
        "name": "driving",
        "people": "driver|motorist, passenger, police officer|cop|policeman, taxi driver|cab driver, "
        "learner driver|student driver, driving instructor|instructor",
        "actions": "drive, park, wash|clean, buy|purchase, sell, rent|hire, crash|wreck, stop|pull over, start, "
        "fill up|refuel",
        "things": "car|vehicle|automobile, truck|pickup truck, van, motorcycle|motorbike, *gas|*petrol|*fuel, "
        "license|driver's license|driving license, seat belt|seatbelt, ticket|speeding ticket|parking ticket, "
        "traffic light|light, *traffic, road|highway|motorway|freeway, parking space|parking spot, "
        "electric car, SUV, *speed, route, steering wheel|wheel, horn, road trip|drive, "
        "price of gas|gas price|fuel price",
        "places": "on:highway|motorway|freeway, garage, parking lot|car park, on:road|street, "
        "at:gas station|petrol station, traffic jam|traffic",
        "qualities": "fast|quick, slow, new, used|second-hand, electric, expensive, cheap, red, black, safe, "
        "dangerous|risky",
        "doings": "drive|drive to work, speed|drive too fast, turn left, turn right, brake|hit the brakes, honk, "
        "get stuck in traffic|sit in traffic, go on a road trip|take a road trip, learn to drive",
        "changes": "break down|stall, stop|come to a stop, speed up|accelerate, slow down, skid|slide, "
        "run out of gas|run out of fuel",
    },
    {
        "name": "car repair",
        "people": "mechanic|auto mechanic|repairman, car owner|owner, technician, tow truck driver",
        "actions": "fix|repair, replace|change, check|inspect|test, tighten, drain, clean, install|fit, order, "
        "charge, jump-start",
        "things": "engine|motor, *oil|*engine oil|*motor oil, tire|tyre, +brakes, battery|car battery, "
        "flat tire|flat, *brake fluid, spark plug|+spark plugs, air filter|filter, +headlights, radiator, "
        "exhaust|exhaust pipe|muffler, gearbox|transmission, windshield|windscreen, +windshield wipers|+wipers, "
        "clutch, bumper, car alarm|alarm, warning light",
        "places": "garage|workshop|auto shop|repair shop, at:dealership|dealer, on:roadside|side of the road, "
        "under:hood, on:driveway",
        "qualities": "broken|damaged|faulty, worn|worn out, new|brand new, flat, dead|drained, noisy|loud, "
        "leaking|leaky, cheap, expensive|costly, dirty",
        "doings": "work on the car|work on cars, change the oil|do an oil change, rotate the tires",
        "changes": "break down|fail, overheat|get too hot, leak|drip, squeal|squeak|make a noise, start|turn over, "
        "wear out|wear down, fail to start|refuse to start",
    },
    {
        "name": "cycling",
        "people": "cyclist|biker|bike rider|rider, bike mechanic|mechanic, commuter, racer",
        "actions": "ride, repair|fix, pump up|inflate, lock, park, clean, adjust, buy, oil|grease, patch",
        "things": "bike|bicycle, tire|bike tire|tyre, chain|bike chain, helmet, wheel|front wheel|back wheel, "
        "+pedals, seat|saddle, +brakes, lock|bike lock, pump|bike pump, inner tube|tube, puncture|flat tire, "
        "+gears, +handlebars, mountain bike, bike light|light",
        "places": "on:bike path|cycle path|bike lane, on:road|street, park, on:trail|mountain trail, "
        "at:bike shop|cycle shop, shed|garage",
        "qualities": "flat, new, old|rusty, fast|light, heavy, broken, electric, cheap, safe, muddy",
        "doings": "cycle|ride a bike|bike, ride to work|bike to work|cycle to work, fall off|crash, "
        "go for a ride|go cycling, race",
        "changes": "go flat|get a puncture, break|snap, squeak|creak, rust|get rusty, slip|come off",
    },
    {
        "name": "gardening",
        "people": "gardener, neighbor|neighbour, florist, landscaper, gardening club",
        "actions": "plant|sow, water, grow|raise, prune|trim|cut back, pick|harvest, dig|dig up, weed, mow|cut, "
        "fertilize|feed, spray",
        "things": "+tomatoes|+tomato plants, +roses|+rose bushes, lawn|*grass, +seeds, +flowers, "
        "tree|fruit tree|apple tree, hedge, +vegetables, +weeds, *soil|*dirt, *compost|*fertilizer|*manure, "
        "+herbs|*basil, +potatoes, +peppers, +carrots, +strawberries, +tulips|+bulbs, +leaves, "
        "plant|houseplant, +pests|+slugs|+bugs, sunflower|+sunflowers, *lettuce",
        "places": "garden|vegetable garden, yard|backyard|back yard, greenhouse, pot|flower pot|planter, "
        "flower bed|bed, on:balcony, allotment",
        "qualities": "green, ripe, fresh, tall|high, dry, wet|damp, healthy, organic, red, colorful|bright",
        "doings": "garden|do some gardening|work in the garden, mow the lawn|cut the grass, rake leaves, dig",
        "changes": "grow|sprout|come up, bloom|blossom|flower, wilt|droop, die|die off, ripen",
    },
    {
        "name": "space",
        "people": "astronaut|spaceman|cosmonaut, astronomer|space scientist, rocket engineer|engineer, "
        "stargazer|amateur astronomer, space agency|~NASA",
        "actions": "launch|send, land, observe|see|watch|spot, study|research|explore, discover|find, "
        "orbit|circle, photograph, build, track|follow, reach|get to",
        "things": "rocket|spacecraft|spaceship, moon, planet, star, ~Mars, ~Jupiter, ~Saturn, ~Venus, comet, "
        "asteroid, galaxy, telescope, satellite, space station|International Space Station, black hole, sun, "
        "eclipse|solar eclipse, meteor|shooting star, crater, orbit, universe, probe|space probe, "
        "~the Milky Way, ~Earth|~the earth",
        "places": "space|outer space, on:moon|surface of the moon, on:~Mars, in:~orbit, at:observatory, "
        "sky|night sky, at:launch pad",
        "qualities": "distant|faraway, bright, biggest|largest, huge|giant|massive, small|tiny, "
        "new|newly discovered, dark, red, "
        "frozen|icy, rocky",
        "doings": "float|float around, orbit the earth|circle the earth, walk in space|go on a spacewalk, "
        "stargaze|look at the stars, blast off|lift off|take off",
        "changes": "explode|blow up, shine|glow, collide|crash, disappear|vanish, appear|show up, rise, set",
    },
    {
        "name": "history",
        "people": "king, queen, emperor, soldier|warrior, historian, general|commander, army, knight, explorer, "
        "pharaoh",
        "actions": "conquer|invade, rule|govern, build|construct, defeat|beat, destroy|ruin, found|establish, "
        "discover, sign, lead|command, study|research",
        "things": "empire|kingdom, war, castle|fortress, city|town, battle, treaty|peace treaty, "
        "pyramid|+pyramids, temple, ~ancient Rome, ~ancient Egypt, revolution, *history, civilization, "
        "wall|city wall, monument, *treasure|*gold, land|territory, fleet|warship, +artifacts|+relics, "
        "~World War II|~the Second World War, ~World War I|~the First World War, *slavery, colony",
        "places": "in:~Europe, in:~Egypt, in:~Greece, in:~Rome, in:~China, in:Middle Ages|~medieval times, "
        "in:~ancient times, museum, in:~the 1800s|~the nineteenth century",
        "qualities": "ancient|old, medieval, powerful|mighty|strong, famous|legendary, great, long, "
        "Roman, Greek, Egyptian, bloody|brutal",
        "doings": "fight|go to war, reign|rule for decades, surrender|give up, win the war, lose the war",
        "changes": "fall|collapse, begin|start|break out, end, spread|grow|expand",
    },
    {
        "name": "politics",
        "people": "president, prime minister|leader, politician, voter|citizen, senator|lawmaker|legislator, "
        "candidate, mayor, governor",
        "actions": "vote for|support|back, elect|choose, win, lose, pass|approve, reject|block|vote against, sign, "
        "announce, campaign for, debate",
        "things": "election|vote|poll, law|bill|legislation, campaign, government, party|political party, policy, "
        "debate, speech, parliament|congress, reform, budget, +seats, referendum, +election results|+results, "
        "constitution, tax law",
        "places": "parliament|congress|senate, capital, city hall|town hall, at:polling station|polls, in:~Washington",
        "qualities": "new, controversial, popular, unpopular, national, local, important, close|tight, fair",
        "doings": "vote|go to the polls, campaign|run for office, resign|step down, protest|march, debate",
        "changes": "pass, fail, start|begin, end",
    },
    {
        "name": "crime",
        "people": "police officer|officer|cop|policeman, detective|investigator, judge, lawyer|attorney, "
        "thief|burglar|robber, witness, suspect, criminal",
        "actions": "arrest|detain, steal|rob|take, investigate|look into, charge, find|catch, sentence, "
        "defend|represent, report, question|interview, release|free",
        "things": "wallet|purse, car, *money|*cash, phone, bike|bicycle, *jewelry, crime|offense, case|court case, "
        "*evidence, trial, +fingerprints, gun|weapon, lawsuit, fine|penalty, burglary|break-in|robbery, "
        "verdict|ruling, statement",
        "places": "court|courtroom|courthouse, at:police station, prison|jail, at:crime scene|scene, on:street, "
        "at:bank",
        "qualities": "guilty, innocent, stolen, serious|major, violent, minor|petty, famous|high-profile, old",
        "doings": "commit a crime|break the law, go to jail|go to prison, escape|run away|flee, call the police, "
        "testify|give evidence, plead guilty",
        "changes": "go missing|disappear|vanish, go to trial, increase|go up|rise, drop|fall",
    },
    {
        "name": "school",
        "people": "teacher|schoolteacher, student|pupil|schoolchild, principal|headteacher, parent, classmate, tutor",
        "actions": "teach|explain, learn|study, grade|mark, pass, fail, write, read, finish|complete|hand in|submit, "
        "solve, prepare for|study for",
        "things": "*homework|assignment, exam|test|final exam, *math|*mathematics, *science, *English, essay, "
        "lesson|class, question, problem|math problem|equation, report card|+grades, textbook, "
        "project|school project, *spelling, quiz, *algebra, *geography, *grammar, *vocabulary, "
        "semester|term, subject, +notes, *French, *Spanish",
        "places": "at:~school, classroom|class, library|school library, at:~home, playground",
        "qualities": "difficult|hard|tough, easy|simple, long, short, boring|dull, interesting, important, final, "
        "extra",
        "doings": "study|do homework, go to school|attend school, skip class|miss class, graduate, take notes, "
        "take an exam|sit an exam",
        "changes": "start|begin, end|finish, get cancelled",
    },
    {
        "name": "science",
        "people": "scientist|researcher, professor|lecturer, graduate student|PhD student, chemist, physicist, "
        "biologist, lab assistant|lab technician",
        "actions": "study|research|investigate, discover|find, publish, test|measure, analyze|examine, observe, "
        "prove|show|demonstrate, develop|create|design, fund|finance, repeat|replicate",
        "things": "experiment, theory, study|research paper|paper, cell|+cells, *DNA|gene|+genes, "
        "molecule|+molecules, atom|+atoms, virus|+bacteria, *data, sample|+samples, microscope, vaccine, "
        "hypothesis, result|+results|+findings, drug|new drug, reaction|chemical reaction, *gravity, *energy, "
        "protein, element",
        "places": "lab|laboratory, at:university|college, in:journal|science journal, at:research center|institute, "
        "at:conference",
        "qualities": "new|novel, important|significant|major, surprising|unexpected, scientific, "
        "complex|complicated, tiny|microscopic, chemical, medical, early",
        "doings": "do research|conduct research, run experiments|do experiments, give a lecture|lecture, "
        "get a degree|graduate, apply for a grant",
        "changes": "grow, divide|split, react, mutate|change, spread|multiply",
    },
    {
        "name": "housework",
        "people": "cleaner|housekeeper, roommate|flatmate, mom|mother, dad|father, husband, wife, teenager",
        "actions": "clean|tidy|tidy up, wash, vacuum|hoover, sweep, mop, dust, wipe|wipe down, fold, iron, "
        "empty|take out",
        "things": "floor|+floors, +dishes|+plates, *laundry|+clothes, carpet|rug, window|+windows, toilet, "
        "*trash|*garbage|*rubbish, +sheets|+bed sheets, kitchen table|table, *dust, oven, fridge|refrigerator, "
        "sink, shirt, +stairs, mirror, counter|countertop, bathtub|bath, vacuum cleaner|vacuum",
        "places": "kitchen, bathroom, living room|lounge, bedroom, house|home|apartment|flat, garage, at:laundromat",
        "qualities": "dirty|filthy|messy, clean|spotless|neat|tidy, dusty, wet, sticky, smelly, white, full",
        "doings": "clean up|tidy up, do the laundry|wash clothes, do the dishes|wash the dishes|wash up, "
        "do chores|do housework, take out the trash|take out the garbage, make the bed",
        "changes": "dry, smell|stink, pile up|build up, get dirty|get messy, break|crack",
    },
    {
        "name": "home repair",
        "people": "plumber, electrician, carpenter|builder|contractor|handyman, painter|decorator, roofer, "
        "homeowner, landlord",
        "actions": "fix|repair|mend, paint, build, install|fit|put in, replace, drill, hang|put up, measure, "
        "remove|tear out|take out, seal",
        "things": "roof, wall, door|front door, window, pipe|water pipe|+pipes, faucet|tap, sink, toilet, "
        "shelf|+shelves, fence, floor|+floorboards, deck|porch, heater|boiler|furnace, ceiling, *wiring, "
        "lamp|light fixture, *paint, +tiles, cabinet|cupboard|+kitchen cabinets, lock|door lock, leak, "
        "+stairs|staircase",
        "places": "kitchen, bathroom, basement|cellar, attic|loft, garage|workshop, at:hardware store|DIY store, "
        "house|home",
        "qualities": "broken|damaged, leaky|leaking|dripping, new, old, wooden, loose, cracked, rotten, white, blue",
        "doings": "renovate|remodel, do some DIY, move house|move, call a plumber",
        "changes": "leak|drip, break|crack, collapse|fall down, rot, squeak|creak, flood|overflow, burst",
    },
    {
        "name": "fashion",
        "people": "shopper|customer|buyer, shop assistant|sales assistant|salesperson, "
        "fashion designer|designer, model, tailor, cashier",
        "actions": "buy|purchase|get, wear|put on, try on, return|take back, sell, order, design, pay for, "
        "choose|pick|pick out, fit",
        "things": "dress, shirt|blouse|top, +jeans|+trousers|+pants, jacket|coat, +shoes|+boots|+sneakers, "
        "hat|cap, skirt, sweater|jumper|pullover, suit, scarf, bag|handbag|purse, *jewelry, "
        "+glasses|+sunglasses, gift|present, receipt, +socks, T-shirt, belt, *clothes|*clothing, outfit, "
        "uniform, watch|wristwatch, *color|*colour",
        "places": "at:mall|shopping mall|shopping center, at:store|shop, at:market|flea market, at:boutique, "
        "changing room|fitting room, at:checkout",
        "qualities": "new, cheap|inexpensive|affordable, expensive|pricey, fashionable|stylish|trendy, warm, red, "
        "blue, black, white, small|tight, large|big|loose, second-hand|used|vintage, comfortable|comfy, favorite",
        "doings": "go shopping|shop, window-shop|browse, pay by card|pay with a card, pay cash|pay in cash, "
        "get dressed|dress up",
        "changes": "go on sale, sell out, shrink, tear|rip, fade",
    },
    {
        "name": "groceries",
        "people": "shopper|customer, cashier|checkout clerk, grocer|shopkeeper|store owner, delivery driver",
        "actions": "buy|get|pick up|purchase, pay for, carry|bring home, compare, weigh, deliver, stock|restock, "
        "pack|bag, scan, store|keep",
        "things": "+groceries|*food, *milk, bread|loaf of bread, +eggs, *cheese, +apples, +bananas, +vegetables, "
        "*meat, *coffee, *rice, cart|shopping cart|trolley, basket|shopping basket, shopping list|list, "
        "coupon|+coupons, +store brands|+brands, receipt, bag|shopping bag|plastic bag, +prices, *cereal, "
        "*chicken, *butter",
        "places": "at:supermarket|grocery store, at:market|farmers market, at:corner shop|convenience store, "
        "at:checkout|register|till, fridge|refrigerator",
        "qualities": "cheap|affordable|low-cost, expensive|pricey, fresh, organic, local, frozen, big|large, "
        "heavy, weekly",
        "doings": "go grocery shopping|do the shopping|go to the store, stand in line|wait in line|queue, "
        "save money|spend less, shop online|order online",
        "changes": "go up|rise|increase, go down|drop|fall, run out|sell out, go bad|spoil|go off",
    },
    {
        "name": "art",
        "people": "artist|painter, sculptor, curator, museum visitor|visitor, art student, collector|art collector",
        "actions": "paint, draw|sketch, sculpt|carve, display|exhibit|show, sell, buy, restore|repair, "
        "admire|look at|view, frame, steal",
        "things": "painting|picture|artwork|work of art, portrait, landscape, sculpture|statue, drawing|sketch, "
        "canvas, *paint|+oil paints, brush|paintbrush, exhibition|exhibit, mural, masterpiece, "
        "*watercolor|+watercolors, *clay, *marble, pencil, ~the Mona Lisa",
        "places": "museum, at:gallery|art gallery, studio|art studio, at:auction|auction house, on:wall, in:~Paris, "
        "park",
        "qualities": "beautiful|lovely|stunning, famous|well-known, old|antique, modern|contemporary, abstract, "
        "colorful|bright, valuable|priceless|expensive, huge|large",
        "doings": "paint, draw|sketch, visit a museum|go to a museum|go to an art gallery, "
        "take an art class|take art lessons",
        "changes": "fade, sell for millions, go on display|go on show, crack|get damaged",
    },
    {
        "name": "photography",
        "people": "photographer|cameraman, tourist, model, photo editor|editor, photojournalist",
        "actions": "take|shoot|snap, edit, print, frame, share|post|upload, capture|photograph, crop, delete, develop",
        "things": "photo|picture|photograph|shot|snapshot, camera|digital camera, lens|zoom lens, *lighting|*light, "
        "portrait, selfie, sunset, landscape, flash, tripod, album|photo album, *film|roll of film, "
        "memory card|SD card, video|video clip, filter",
        "places": "studio|photo studio, at:wedding, on:beach, darkroom, on:phone, park",
        "qualities": "beautiful|gorgeous, blurry|out of focus|fuzzy, sharp|crisp|clear, dark, bright, old|vintage, "
        "black and white, digital, professional",
        "doings": "take pictures|take photos, pose|smile for the camera, edit photos",
        "changes": "fade, come out blurry, turn out well|come out well",
    },
    {
        "name": "ocean",
        "people": "swimmer, surfer, sailor, diver|scuba diver, lifeguard, tourist|beachgoer, marine biologist",
        "actions": "swim in, surf|ride, sail, catch, explore, spot|see|watch, collect|gather|pick up, build, "
        "clean|clean up, protect",
        "things": "wave|+waves, ocean|sea, boat|sailboat|yacht, whale, dolphin, shark, +shells|+seashells, "
        "sandcastle, *sand, coral reef|reef, *seaweed, crab, fish, surfboard|board, *tide, island, "
        "*sunscreen|*sunblock, towel|beach towel, jellyfish",
        "places": "on:beach|shore|seashore|coast, ocean|sea|water, on:island, at:harbor|port|marina, on:boat",
        "qualities": "blue, big|huge|giant|enormous, calm, rough|choppy|stormy, warm, cold|freezing, sandy, deep, "
        "salty, dangerous",
        "doings": "swim|go swimming|take a swim, surf|go surfing, sunbathe|lie in the sun, "
        "dive|go diving|snorkel, sail|go sailing, build sandcastles",
        "changes": "rise|come in, go out, crash|break, calm down|settle, get bigger|grow",
    },
    {
        "name": "hiking",
        "people": "hiker|walker|trekker, climber|mountaineer|rock climber, camper, mountain guide|guide, "
        "park ranger|ranger, scout",
        "actions": "climb|scale, hike|walk, reach|get to, pitch|set up|put up, pack, carry, light|start|build, "
        "cross, explore, follow",
        "things": "mountain|peak|summit, trail|path|hiking trail, tent, backpack|rucksack, campfire|fire, "
        "map|trail map, compass, river|stream, hill, waterfall, cliff, *rope, sleeping bag, forest|woods, lake, "
        "cabin|hut, +hiking boots|+boots, valley, glacier",
        "places": "mountains|hills, forest|woods, at:campsite|campground|camp, on:trail|path, "
        "national park|park, at:summit|top, by:lake",
        "qualities": "steep, high|tall, rocky, snowy, long, hard|difficult|tough|challenging, easy, beautiful|scenic, "
        "remote, wet|muddy, dark",
        "doings": "go hiking|hike|go for a hike, go camping|camp, climb|go climbing, get lost, "
        "sleep outside|sleep under the stars, go walking|walk",
        "changes": "rise, flow|run, freeze|ice over, melt",
    },
    {
        "name": "family",
        "people": "baby|infant|newborn, toddler, mother|mom|mum, father|dad, parent, grandfather|grandpa, "
        "grandmother|grandma, babysitter|nanny, child|kid, brother, sister",
        "actions": "feed, hold|carry, hug|cuddle, bathe|wash, dress, raise|bring up, "
        "look after|take care of|care for|babysit, rock, kiss, adopt",
        "things": "baby|infant, bottle|baby bottle, diaper|nappy, crib|cot, stroller|pram|buggy, "
        "toy|teddy bear|stuffed animal, *milk|*formula, blanket, birthday party, bedtime story|story, +twins, "
        "daughter, son, grandchild|+grandchildren, lullaby",
        "places": "crib|cot, at:~home, nursery|bedroom, at:park|playground, at:daycare|kindergarten, stroller|pram",
        "qualities": "sleepy|tired, hungry, happy|cheerful, little|small|tiny, newborn|new, cute|adorable|sweet, "
        "noisy|loud, quiet|calm",
        "doings": "sleep|nap|take a nap, cry|scream, laugh|giggle, crawl, smile, play|play together, learn to walk",
        "changes": "grow up, fall asleep, wake up",
    },
    {
        "name": "celebrations",
        "people": "bride, groom|bridegroom, wedding guest|guest, host|hostess, caterer, best man, "
        "birthday girl, birthday boy",
        "actions": "celebrate, plan|organize|arrange, host|throw|hold, invite, attend|go to, decorate, cut, "
        "open|unwrap, make, cancel|call off",
        "things": "wedding|wedding ceremony, party|celebration, birthday|birthday party, cake|wedding cake, "
        "gift|present, invitation|invite, *champagne, +balloons, +decorations, anniversary, speech|toast, "
        "first dance|dance, ring|engagement ring|wedding ring, dress|wedding dress, *music, +candles, reception, "
        "+fireworks, ~Christmas, ~New Year's Eve",
        "places": "at:church|chapel, garden, at:hall|reception hall|venue, at:restaurant, on:beach, at:~home, at:club",
        "qualities": "big|large|huge, small|intimate|little, beautiful|lovely, fun|enjoyable, formal|elegant|fancy, "
        "surprise, expensive, traditional",
        "doings": "get married|marry|tie the knot, dance, celebrate|party, sing, make a toast|give a toast, "
        "get engaged|propose",
        "changes": "start|begin, end, go well",
    },
    {
        "name": "work",
        "people": "employee|worker|staff member, manager|boss|supervisor, colleague|coworker, "
        "secretary|assistant, CEO|chief executive, recruiter|hiring manager, intern, freelancer",
        "actions": "hire|employ|recruit, fire|dismiss|lay off, promote, interview, pay, schedule|arrange|set up, "
        "attend, send|email, write|draft, finish|complete",
        "things": "job|position, meeting|team meeting, report, email|message, *salary|*pay, interview|job interview, "
        "contract, deadline, project, presentation, promotion, raise|pay raise, resume|CV, team, client|customer, "
        "spreadsheet, schedule, video call|conference call, shift|night shift, office",
        "places": "at:office|workplace, meeting room|conference room, at:headquarters|head office, at:~home, at:~work",
        "qualities": "new, important|urgent, long, boring|dull, busy|hectic, full-time, part-time, remote, "
        "well-paid, difficult|hard|demanding",
        "doings": "work from home|work remotely, work late|stay late|work overtime, quit|resign, commute, retire, "
        "take a day off|take time off, apply for a job|look for a job",
        "changes": "start|begin, end|finish, run late|run over",
    },
    {
        "name": "energy",
        "people": "engineer, climate scientist|scientist, electrician, activist|environmentalist, homeowner, "
        "power company|energy company",
        "actions": "save|conserve, use|consume, produce|generate, reduce|cut|lower, install|put up, recycle, "
        "waste, pollute, measure, ban",
        "things": "*electricity|*power, *energy, +solar panels|solar panel, +wind turbines|wind turbine, *coal, "
        "*natural gas|*gas, *oil, +carbon emissions|+emissions|*carbon dioxide, *pollution|*air pollution, "
        "*climate change|*global warming, power plant|power station, battery, *plastic|+plastic bottles, "
        "electricity bill|energy bill|power bill, *heat, *waste, light bulb|bulb, *water, *nuclear power",
        "places": "on:roof, factory, city, in:~Europe, at:power plant|power station, at:~home, on:planet|~Earth",
        "qualities": "green|clean|renewable, dirty, cheap, expensive|costly, efficient, solar, nuclear, global, "
        "high, low",
        "doings": "recycle, turn off the lights|switch off the lights, save energy, go green",
        "changes": "rise|go up|increase, fall|drop|go down|decrease, melt|shrink, go out|fail|cut out",
    },
    {
        "name": "geology",
        "people": "geologist, volcanologist, seismologist, resident|local|villager, rescue worker|rescuer",
        "actions": "study|monitor|watch, measure|record|detect, predict, evacuate, destroy|damage, hit|strike|shake, "
        "bury|cover, dig|drill, warn, rebuild",
        "things": "earthquake|quake|tremor, volcano, *lava|*magma, eruption, *ash|*volcanic ash, "
        "tsunami|tidal wave, landslide|mudslide, crater, rock|+rocks, *ground|*soil, mountain, fault|fault line, "
        "cave, mineral|+minerals|crystal, fossil|+fossils, plate, *earth's crust",
        "places": "in:~Japan, in:~Iceland, in:~Italy, in:~California, near:coast|shore, village|town, cave, on:island",
        "qualities": "powerful|strong|massive|huge|major, small|minor|weak, active, dormant|sleeping, "
        "deadly|dangerous, hot|molten, deep, ancient",
        "doings": "evacuate|flee, rebuild, take shelter",
        "changes": "happen|occur|take place, erupt|explode, shake|tremble|rumble, collapse|crumble, flow, cool|harden",
    },
    {
        "name": "games",
        "people": "player|gamer, chess player, opponent|rival, champion|winner, game designer",
        "actions": "play, beat|defeat, lose, download|install, buy, pause, save, finish|complete, cheat at, learn",
        "things": "game|video game|computer game, *chess, board game, card game, puzzle|jigsaw|jigsaw puzzle, "
        "level, console|game console, controller|gamepad, match|round, *poker, +cards|deck of cards, +dice, "
        "*Monopoly, crossword|crossword puzzle, high score|score, tournament, +points",
        "places": "on:console, on:computer|PC, at:~home, tournament, at:arcade, on:phone",
        "qualities": "fun|enjoyable|entertaining, hard|difficult|tricky, easy, new|latest, old|retro|classic, "
        "addictive, multiplayer|online, boring",
        "doings": "play games|play video games|game, win|come first, lose, cheat, take turns, roll the dice",
        "changes": "crash|freeze, load|start, end|finish",
    },
    {
        "name": "fishing",
        "people": "fisherman|angler, captain|skipper, sailor, boat owner",
        "actions": "catch|land|hook, cast|throw, bait, release|throw back, row|paddle, steer|pilot, "
        "anchor|moor|tie up, repair|fix, buy",
        "things": "fish, trout, salmon, *bait|worm, rod|fishing rod|fishing pole, hook|fish hook, "
        "net|fishing net, line|fishing line, boat|fishing boat, canoe|kayak, cod, tuna, "
        "fishing license|license, anchor, oar|paddle",
        "places": "on:lake|pond, river|stream|creek, at:~sea, on:pier|dock|jetty, harbor|port, on:boat",
        "qualities": "big|large|huge, small|little|tiny, fresh, wet, long, heavy, quiet|calm|peaceful",
        "doings": "fish|go fishing, row|go rowing, sail|go sailing, wait patiently|wait",
        "changes": "bite, sink, float|drift, get away|escape|swim away, break|snap",
    },
    {
        "name": "drinks",
        "people": "barista, coffee drinker|customer, bartender|barman",
        "actions": "brew|make, drink|sip|have, order|get, pour, grind, serve, add, spill, buy, heat|warm up",
        "things": "*coffee|cup of coffee, *tea|cup of tea, espresso, latte|cappuccino, *milk, *sugar, mug|cup, "
        "*orange juice|*juice, smoothie, *water|glass of water, *wine|glass of wine, *beer|pint of beer, "
        "cocktail, +ice cubes|*ice, kettle, coffee maker|coffee machine, +coffee beans, "
        "*hot chocolate|*cocoa, *soda|*soft drink, *green tea",
        "places": "at:cafe|coffee shop, at:bar|pub, kitchen, at:~work, on:terrace|patio",
        "qualities": "hot, cold|iced, strong, weak, sweet, bitter, fresh, black, decaf|decaffeinated, warm",
        "doings": "have a coffee|grab a coffee|get coffee, have a drink|grab a drink, take a coffee break|take a break",
        "changes": "get cold|go cold|cool down, boil, go flat",
        "guides": "recipe",
    },
    {
        "name": "news",
        "people": "journalist|reporter, editor, news anchor|newsreader, spokesperson|spokesman, blogger",
        "actions": "report|cover, write|publish, broadcast|air, interview, investigate, read|watch, share|spread, "
        "deny, confirm, quote",
        "things": "story|news story, article|report|piece, headline, *news, interview, newspaper|paper, scandal, "
        "rumor|rumour, statement, broadcast|news broadcast|bulletin, magazine, column, front page, +facts, "
        "*fake news|*misinformation, podcast",
        "places": "on:TV|television, newspaper|paper, on:radio, at:newsroom|studio, on:website|news site",
        "qualities": "breaking|latest, shocking|surprising, fake|false, true|accurate, local, "
        "international|world|global, important|major|big, political",
        "doings": "watch the news, read the paper|read the newspaper, go on air",
        "changes": "spread|go viral, break|come out, leak",
    },
    {
        "name": "theater",
        "people": "dancer|ballerina, actor|actress, choreographer, theater director|director, performer",
        "actions": "perform|put on|stage, rehearse|practice, watch|see, direct, learn, buy, applaud|clap for, "
        "write, review",
        "things": "play|stage play, ballet, musical, show|performance, dance|routine, *salsa, *tango, waltz, scene, "
        "costume, +tickets|ticket, script, rehearsal, *opera, role|part|lead role, +lines",
        "places": "at:theater|theatre|playhouse, on:stage, at:opera house, dance studio|studio, on:~Broadway",
        "qualities": "new, famous|classic, long, funny|comic, sad|tragic, beautiful|graceful|elegant, "
        "amazing|wonderful|brilliant, modern, sold-out",
        "doings": "dance, take a bow|bow, go to the theater|see a play, sing",
        "changes": "start|begin|open, end|close, sell out",
    },
    {
        "name": "friends and feelings",
        "people": "friend|best friend|buddy|pal, girlfriend, boyfriend, husband, wife, sister, brother, neighbor, "
        "stranger, partner",
        "actions": "love|adore, miss, hug|embrace, call|phone|ring, visit|see, meet, thank, forgive, help|support, "
        "trust",
        "things": "friend|best friend, sister, brother, +parents, neighbor, girlfriend, boyfriend, family, partner, "
        "cousin, old classmate|classmate",
        "places": "at:party, at:~home, at:cafe, at:~school, at:~work, park",
        "qualities": "happy|glad|cheerful, sad|unhappy|upset, angry|mad|furious, lonely, nervous|anxious|worried, "
        "excited|thrilled, tired|exhausted, proud, calm|relaxed, scared|afraid|frightened",
        "doings": "cry|weep, laugh, smile|grin, argue|fight|quarrel, make up, fall in love, break up|split up, "
        "worry, relax|calm down, talk|chat",
        "changes": "get angry|get upset, cheer up",
    },
    {
        "name": "housing",
        "people": "landlord|landlady, tenant|renter, real estate agent|estate agent|realtor, home buyer|buyer, "
        "roommate|flatmate",
        "actions": "rent|lease, buy|purchase, sell, move into, pay, share, view|look at|tour, list|advertise, renovate",
        "things": "house|home, apartment|flat, *rent, room|bedroom, neighborhood|area, lease|rental agreement, "
        "deposit|security deposit, key|+keys, studio|studio apartment, property, condo, garden|yard",
        "places": "city|city center, in:~the suburbs, neighborhood|area, near:park, in:~London, by:sea",
        "qualities": "big|large|spacious, small|tiny|cramped, expensive|pricey, cheap|affordable, new|modern, old, "
        "quiet|peaceful, noisy|loud, furnished, empty",
        "doings": "move house|move|relocate, move out, move in, pay rent, look for an apartment|look for a flat",
        "changes": "go up|rise|increase, go down|fall|drop, sell quickly",
    },
    {
        "name": "construction",
        "people": "builder|construction worker, architect, engineer, city council|council, mayor, crane operator",
        "actions": "build|construct|put up, design|plan, repair|fix, demolish|tear down|knock down, open, close, "
        "widen, pave, inspect",
        "things": "bridge, building|office building, road|street, tunnel, skyscraper|high-rise|tower, "
        "+houses|+homes, park, *concrete|*cement, +bricks, crane, *steel, hospital, airport, stadium, "
        "sidewalk|pavement, railway|railroad, dam",
        "places": "city|town|downtown, near:river, on:hill, in:~the suburbs, across:river",
        "qualities": "new, tall|high, old|historic, modern, huge|massive|giant|enormous, long, busy, safe|sturdy, "
        "dangerous|unsafe",
        "doings": "work on the site|work on a building site, wear a hard hat, go on strike",
        "changes": "collapse|fall down|cave in, open|reopen, close|shut, crack",
    },
    {
        "name": "emergencies",
        "people": "firefighter|fireman, paramedic|ambulance crew, rescue team|rescuer, volunteer, witness",
        "actions": "put out|extinguish, rescue|save, evacuate, call|phone, treat|help, carry, fight, report, spray, "
        "search",
        "things": "fire|blaze|+flames, building|house|apartment building, ambulance, fire truck|fire engine, "
        "*smoke, alarm|fire alarm|smoke alarm, accident|crash|car crash, victim|+victims, hose|fire hose, "
        "*water, ladder, wildfire|forest fire|bush fire, emergency, explosion|blast",
        "places": "building, forest|woods, on:highway, at:scene|scene of the accident, hospital, on:street",
        "qualities": "huge|large|massive|big, small|minor, dangerous|deadly, serious, quick|fast, burning, thick",
        "doings": "call for help, run outside|flee|escape, stay calm",
        "changes": "spread, burn|burn down, go out|die down, start|break out, explode|blow up",
    },
    {
        "name": "insects",
        "people": "bee|honeybee, ant, spider, butterfly, mosquito, wasp, fly|housefly, ladybug",
        "animals": "yes",
        "actions": "sting|bite, collect|gather, build|make, spin, carry, eat, spray, swat|kill, catch, study",
        "things": "beekeeper, *honey, hive|beehive, web|spider web, nest|anthill, flower|+flowers, *pollen|*nectar, "
        "leaf|+leaves, bug|insect, fly, caterpillar, *bug spray|*insect repellent, net, jar, *sugar, crumb",
        "places": "garden, on:flower, on:leaf, hive|beehive, on:wall, kitchen, on:window",
        "qualities": "tiny|small|little, busy, yellow, black, annoying, dangerous, colorful|bright, poisonous",
        "doings": "buzz, fly|fly around, crawl, sting, hide, swarm",
        "changes": "hatch, grow, turn into a butterfly, die|die off",
    },
]

# Subjects shared by every topic (people in everyday sentences), with their number for agreement.
GENERIC_SUBJECTS: list[tuple[str, str, str]] = [
    ("I", "me", "1s"),
    ("we", "us", "pl"),
    ("they", "them", "pl"),
    ("you", "you", "2"),
    ("my friend|a friend of mine|my buddy", "", "3s"),
    ("a man|a guy", "", "3s"),
    ("a woman|a lady", "", "3s"),
    ("the kids|the children", "", "pl"),
    ("my neighbor|the neighbor next door", "", "3s"),
    ("someone|somebody", "", "3s"),
    ("my sister", "", "3s"),
    ("my brother", "", "3s"),
    ("my parents", "", "pl"),
    ("a young girl|a little girl", "", "3s"),
    ("a young boy|a little boy", "", "3s"),
    ("two men", "", "pl"),
    ("my dad|my father", "", "3s"),
    ("my mom|my mother", "", "3s"),
    ("he", "him", "3s"),
    ("she", "her", "3s"),
    ("people|many people|lots of people", "", "pl"),
    ("my family", "", "3s"),
]

TIMES: dict[str, list[str]] = {
    "past": [
        "yesterday",
        "last night|yesterday evening",
        "this morning|earlier today",
        "last week",
        "last weekend|over the weekend",
        "recently|a few days ago",
        "again|once again",
        "last year",
        "two hours ago|a couple of hours ago",
        "on Monday|last Monday",
        "in August|last August",
        "last month|a month ago",
        "at noon|at midday",
        "five minutes ago|a few minutes ago",
        "in 2019|back in 2019",
        "on Friday night",
    ],
    "prog": ["right now|at the moment|now", "today", "this afternoon", "tonight|this evening", "this week"],
    "habit": [
        "every day|daily|each day",
        "every morning|each morning",
        "on weekends|at the weekend",
        "every week|once a week",
        "at night|in the evening",
        "regularly|often",
        "every summer|each summer",
        "every five minutes|every few minutes",
        "on Tuesdays|every Tuesday",
        "twice a month",
        "in the spring|every spring",
        "in winter|every winter",
        "after work|after school",
        "three times a week",
    ],
    "future": [
        "tomorrow",
        "next week",
        "tonight|this evening",
        "soon|shortly",
        "this weekend",
        "next year",
        "at noon tomorrow",
        "in November|next November",
        "next month|in a month",
        "in two weeks|two weeks from now",
        "at eight o'clock|at eight",
        "on Sunday",
    ],
}
ADVERBS = [
    "sharply|steeply|dramatically",
    "slightly|a little|a bit",
    "quickly|rapidly|fast",
    "slowly|gradually",
    "suddenly|all of a sudden",
    "again|once again|once more",
    "heavily|hard",
    "badly|terribly",
    "steadily|consistently",
]
# Details a sentence may add or leave out without changing what it is about (a paraphrase may have one).
TAILS = [
    "before lunch",
    "after work",
    "at noon",
    "for a couple of hours",
    "for about twenty minutes",
    "as usual",
    "with some help",
    "without any help",
    "until the evening",
    "on Monday",
    "in August",
    "in the spring",
    "for the first time",
    "one more time",
    "because it was late",
    "while it was still dark",
    "as soon as possible",
    "before the holidays",
    "in the afternoon",
    "at eight o'clock",
]
RECIPIENTS = [
    "me",
    "him",
    "her",
    "us",
    "them",
    "my friend|a friend of mine",
    "the kids|the children",
    "my sister",
    "my brother",
    "everyone|everybody",
]
DEGREES = ["very", "really", "so", "quite", "extremely", "pretty", "incredibly"]
GUIDES = ["guide", "tutorial", "how-to guide", "walkthrough", "set of instructions", "handbook", "article"]
GUIDE_ADJECTIVES = ["simple", "quick", "complete", "beginner's", "step-by-step", "short", "practical", "easy"]


@dataclass(frozen=True)
class Word:
    text: str
    kind: NounKind = "count"


Group = tuple[Word, ...]


@dataclass(frozen=True)
class PlaceGroup:
    prep: str
    forms: Group


@dataclass(frozen=True)
class Topic:
    name: str
    people: tuple[Group, ...]
    actions: tuple[Group, ...]
    things: tuple[Group, ...]
    places: tuple[PlaceGroup, ...]
    qualities: tuple[Group, ...]
    doings: tuple[Group, ...]
    changes: tuple[Group, ...]
    guides: tuple[str, ...] = ()
    animals: bool = False  # the people are animals: their doings ("purr") take no human subject


_KIND_MARKS: dict[str, NounKind] = {"*": "mass", "+": "plural", "~": "name"}


def _word(raw: str) -> Word:
    raw = raw.strip()
    if raw[:1] in _KIND_MARKS:
        return Word(raw[1:], _KIND_MARKS[raw[0]])
    return Word(raw)


def _groups(spec: str) -> tuple[Group, ...]:
    return tuple(tuple(_word(w) for w in group.split("|")) for group in spec.split(", ") if group.strip())


def _places(spec: str) -> tuple[PlaceGroup, ...]:
    out = []
    for group in spec.split(", "):
        prep, _, forms = group.rpartition(":")
        out.append(PlaceGroup(prep or "in", tuple(_word(w) for w in forms.split("|"))))
    return tuple(out)


def _topic(spec: dict[str, str]) -> Topic:
    return Topic(
        name=spec["name"],
        people=_groups(spec["people"]),
        actions=_groups(spec["actions"]),
        things=_groups(spec["things"]),
        places=_places(spec["places"]),
        qualities=_groups(spec["qualities"]),
        doings=_groups(spec["doings"]),
        changes=_groups(spec["changes"]),
        guides=tuple(spec.get("guides", "").split(", ")) if spec.get("guides") else (),
        animals=spec.get("animals") == "yes",
    )


TOPICS: tuple[Topic, ...] = tuple(_topic(spec) for spec in TOPIC_SPECS)

# ----------------------------------------------------------------------------------------------
# World facts: what a reranker must match by entity (France, not Germany), not only by topic.

COUNTRIES: list[tuple[str, str, str, str]] = [
    # country, capital, main language, continent
    ("France", "Paris", "French", "Europe"),
    ("Germany", "Berlin", "German", "Europe"),
    ("Spain", "Madrid", "Spanish", "Europe"),
    ("Italy", "Rome", "Italian", "Europe"),
    ("Portugal", "Lisbon", "Portuguese", "Europe"),
    ("the Netherlands", "Amsterdam", "Dutch", "Europe"),
    ("Austria", "Vienna", "German", "Europe"),
    ("Poland", "Warsaw", "Polish", "Europe"),
    ("Sweden", "Stockholm", "Swedish", "Europe"),
    ("Norway", "Oslo", "Norwegian", "Europe"),
    ("Denmark", "Copenhagen", "Danish", "Europe"),
    ("Finland", "Helsinki", "Finnish", "Europe"),
    ("Greece", "Athens", "Greek", "Europe"),
    ("Ireland", "Dublin", "English", "Europe"),
    ("the United Kingdom", "London", "English", "Europe"),
    ("Russia", "Moscow", "Russian", "Europe"),
    ("Ukraine", "Kyiv", "Ukrainian", "Europe"),
    ("Hungary", "Budapest", "Hungarian", "Europe"),
    ("Czechia", "Prague", "Czech", "Europe"),
    ("Turkey", "Ankara", "Turkish", "Asia"),
    ("Egypt", "Cairo", "Arabic", "Africa"),
    ("Kenya", "Nairobi", "Swahili", "Africa"),
    ("Nigeria", "Abuja", "English", "Africa"),
    ("Morocco", "Rabat", "Arabic", "Africa"),
    ("Ethiopia", "Addis Ababa", "Amharic", "Africa"),
    ("China", "Beijing", "Chinese", "Asia"),
    ("Japan", "Tokyo", "Japanese", "Asia"),
    ("South Korea", "Seoul", "Korean", "Asia"),
    ("India", "New Delhi", "Hindi", "Asia"),
    ("Thailand", "Bangkok", "Thai", "Asia"),
    ("Vietnam", "Hanoi", "Vietnamese", "Asia"),
    ("Indonesia", "Jakarta", "Indonesian", "Asia"),
    ("Iran", "Tehran", "Persian", "Asia"),
    ("Saudi Arabia", "Riyadh", "Arabic", "Asia"),
    ("Pakistan", "Islamabad", "Urdu", "Asia"),
    ("the Philippines", "Manila", "Filipino", "Asia"),
    ("Australia", "Canberra", "English", "Oceania"),
    ("New Zealand", "Wellington", "English", "Oceania"),
    ("Canada", "Ottawa", "English", "North America"),
    ("the United States", "Washington", "English", "North America"),
    ("Mexico", "Mexico City", "Spanish", "North America"),
    ("Cuba", "Havana", "Spanish", "North America"),
    ("Brazil", "Brasilia", "Portuguese", "South America"),
    ("Argentina", "Buenos Aires", "Spanish", "South America"),
    ("Chile", "Santiago", "Spanish", "South America"),
    ("Peru", "Lima", "Spanish", "South America"),
    ("Colombia", "Bogota", "Spanish", "South America"),
]

# (term with its article, definition): "What is a volcano?" -> "A volcano is an opening ...".
DEFINITIONS: list[tuple[str, str]] = [
    ("photosynthesis", "the process plants use to turn sunlight, water and carbon dioxide into sugar and oxygen"),
    ("gravity", "the force that pulls objects toward each other, which is why things fall to the ground"),
    ("inflation", "a general rise in prices that makes money worth less over time"),
    ("a volcano", "an opening in the surface of the earth where hot lava, ash and gas escape"),
    ("democracy", "a system of government in which citizens choose their leaders by voting"),
    ("a vaccine", "a substance that trains the immune system to fight a disease"),
    ("an atom", "the smallest unit of a chemical element"),
    ("DNA", "the molecule that carries the genetic instructions of living things"),
    ("a recession", "a period when the economy shrinks and many people lose their jobs"),
    ("a mortgage", "a loan used to buy a house, paid back over many years"),
    ("an algorithm", "a set of step-by-step instructions for solving a problem"),
    ("the internet", "a global network that connects computers around the world"),
    ("a black hole", "a region of space where gravity is so strong that not even light can escape"),
    ("evaporation", "the process of a liquid turning into a gas, like water drying in the sun"),
    ("a hurricane", "a large tropical storm with very strong winds and heavy rain"),
    ("a marathon", "a running race of about 42 kilometers, or 26 miles"),
    ("an allergy", "a reaction of the immune system to something harmless, such as pollen or peanuts"),
    ("a noun", "a word that names a person, place or thing"),
    ("a verb", "a word that describes an action or a state"),
    ("a budget", "a plan for how to spend and save money"),
    ("a calorie", "a unit that measures the energy in food"),
    ("a symphony", "a long piece of music for a full orchestra"),
    ("a haiku", "a short Japanese poem with three lines"),
    ("a tsunami", "a series of huge ocean waves, usually caused by an earthquake under the sea"),
    ("a virus", "a tiny germ that can only reproduce inside the cells of a living host"),
    ("a password", "a secret word or phrase used to log in to an account"),
    ("a compiler", "a program that translates source code into machine code"),
    ("a database", "an organized collection of data stored on a computer"),
    ("a galaxy", "a huge system of stars, gas and dust held together by gravity"),
    ("a glacier", "a large mass of ice that moves slowly over land"),
    ("a desert", "a dry region that gets very little rain"),
    ("a monarchy", "a country ruled by a king or a queen"),
    ("a tax", "money that people and businesses must pay to the government"),
    ("a currency", "the money used in a country, such as the dollar or the euro"),
    ("a thermometer", "a tool for measuring temperature"),
    ("a telescope", "an instrument that makes distant objects such as stars look closer"),
    ("a microscope", "an instrument that makes very small things look bigger"),
    ("a fever", "a body temperature higher than normal, often a sign of an infection"),
    ("a recipe", "a set of instructions for cooking a dish"),
    ("a solar panel", "a device that turns sunlight into electricity"),
    ("a pandemic", "an outbreak of a disease that spreads across many countries"),
    ("a referendum", "a vote in which all citizens decide on a single question"),
    ("an orchestra", "a large group of musicians who play classical instruments together"),
    ("oxygen", "a gas in the air that people and animals need to breathe"),
    ("a mammal", "a warm-blooded animal that feeds its young with milk"),
    ("a reptile", "a cold-blooded animal with scales, such as a snake or a lizard"),
    ("an insect", "a small animal with six legs and a body in three parts"),
    ("a spreadsheet", "a program that arranges numbers in rows and columns and calculates with them"),
    ("a hybrid car", "a car that uses both a gasoline engine and an electric motor"),
    ("a dividend", "a share of a company's profits paid to its shareholders"),
    ("a comet", "a ball of ice and dust that travels around the sun with a glowing tail"),
    ("the immune system", "the body's defense against germs and disease"),
    ("a thunderstorm", "a storm with thunder, lightning and heavy rain"),
    ("a verdict", "the decision of a jury or a judge at the end of a trial"),
    ("a sonnet", "a poem of fourteen lines"),
    ("an antibiotic", "a medicine that kills bacteria or stops them from growing"),
    ("a kilometer", "a unit of length equal to one thousand meters"),
    ("a cappuccino", "a coffee made with espresso and hot foamed milk"),
    ("a stock", "a share in the ownership of a company"),
]


# ----------------------------------------------------------------------------------------------
# Rendering: a Concept is a choice of synonym groups; each rendering picks synonyms, determiners and
# a sentence frame on its own, so two renderings of one concept are paraphrases.

Family = Literal["event", "doing", "change", "state"]
TenseClass = Literal["past", "prog", "habit", "future", "imp", "advice"]


@dataclass(frozen=True)
class Concept:
    topic: int
    family: Family
    tense: TenseClass
    subject: tuple[str, int, bool]  # ("generic" | "person", index, plural)
    verb: int  # action (event), doing, or change, by family
    thing: tuple[int, bool]  # (index, plural)
    place: int | None
    quality: int
    time: int | None
    adverb: int | None
    degree: bool = False
    recipient: int = 0


@dataclass(frozen=True)
class Frame:
    tense: TenseClass
    text: str
    held_out: bool = False


def _frames(spec: dict[TenseClass, list[str]], held_out: dict[TenseClass, list[str]]) -> list[Frame]:
    frames = [Frame(tense, text) for tense, texts in spec.items() for text in texts]
    return frames + [Frame(tense, text, True) for tense, texts in held_out.items() for text in texts]


IMPERATIVES = {
    prefix: [
        f"Please {{{prefix}base}}{obj}{{_L}}.",
        f"Remember to {{{prefix}base}}{obj}{{_L}}.",
        f"You should {{{prefix}base}}{obj}{{_L}}.",
        f"Make sure you {{{prefix}base}}{obj}{{_L}}.",
        f"Could you {{{prefix}base}}{obj}{{_L}}?",
        f"{{{prefix}base}}{obj}{{_L}}, please.",
    ]
    for prefix, obj in (("V", " {T}"), ("D", ""))
}
ADVICE = {
    prefix: [
        f"{{S}} told {{R}} to {{{prefix}base}}{obj}{{_L}}.",
        f"{{S}} advised {{R}} to {{{prefix}base}}{obj}{{_L}}.",
        f"{{S}} asked {{R}} to {{{prefix}base}}{obj}{{_L}}.",
        f"{{S}} wanted {{R}} to {{{prefix}base}}{obj}{{_L}}.",
    ]
    for prefix, obj in (("V", " {T}"), ("D", ""))
}

# Slots: S subject, O subject as object, T thing, V* verb forms, be/was/have agree with S, tbe/twas
# with T; a leading "_" means "with a leading space, or empty"; Time/Now/Habit/Future lead a sentence.
FRAMES: dict[Family, list[Frame]] = {
    "event": _frames(
        {
            "past": [
                "{S} {Vpast} {T}{_L}{_time}.",
                "{S} {was} {Ving} {T}{_L}{_time}.",
                "{T} {twas} {Vpp} by {O}{_L}{_time}.",
                "{Time}, {S} {Vpast} {T}{_L}.",
                "{L}, {S} {Vpast} {T}{_time}.",
                "{S} {have} just {Vpp} {T}{_L}.",
                "{S} finally {Vpast} {T}{_L}.",
            ],
            "prog": [
                "{S} {be} {Ving} {T}{_L}{_now}.",
                "{Now}, {S} {be} {Ving} {T}{_L}.",
                "{T} {tbe} being {Vpp} by {O}{_L}.",
                "{L}, {S} {be} {Ving} {T}.",
            ],
            "habit": [
                "{S} {Vpres} {T}{_L}{_habit}.",
                "{Habit}, {S} {Vpres} {T}{_L}.",
                "{S} usually {Vpres} {T}{_L}.",
                "{S} {like} to {Vbase} {T}{_L}{_habit}.",
            ],
            "future": [
                "{S} will {Vbase} {T}{_L}{_future}.",
                "{S} {be} going to {Vbase} {T}{_L}{_future}.",
                "{Future}, {S} {be} going to {Vbase} {T}{_L}.",
                "{T} will be {Vpp} by {O}{_L}{_future}.",
            ],
            "imp": IMPERATIVES["V"],
            "advice": ADVICE["V"],
        },
        {
            "past": ["{S} managed to {Vbase} {T}{_L}{_time}.", "{T} got {Vpp} by {O}{_L}."],
            "prog": ["{S} {be} busy {Ving} {T}{_L}."],
            "habit": ["{S} {tend} to {Vbase} {T}{_L}."],
            "future": ["{S} {plan} to {Vbase} {T}{_L}{_future}."],
            "imp": ["Don't forget to {Vbase} {T}{_L}."],
            "advice": ["{S} reminded {R} to {Vbase} {T}{_L}."],
        },
    ),
    "doing": _frames(
        {
            "past": [
                "{S} {Dpast}{_adv}{_L}{_time}.",
                "{S} {was} {Ding}{_adv}{_L}{_time}.",
                "{Time}, {S} {Dpast}{_L}.",
                "{L}, {S} {was} {Ding}.",
            ],
            "prog": ["{S} {be} {Ding}{_adv}{_L}{_now}.", "{L}, {S} {be} {Ding}.", "{Now}, {S} {be} {Ding}{_L}."],
            "habit": ["{S} {Dpres}{_L}{_habit}.", "{Habit}, {S} {Dpres}{_L}.", "{S} often {Dpres}{_L}."],
            "future": ["{S} will {Dbase}{_L}{_future}.", "{S} {be} going to {Dbase}{_L}{_future}."],
            "imp": IMPERATIVES["D"],
            "advice": ADVICE["D"],
        },
        {
            "past": ["{S} spent the day {Ding}{_L}."],
            "prog": ["{S} {be} currently {Ding}{_L}."],
            "habit": ["{S} {like} to {Dbase}{_L}."],
            "future": ["{S} {want} to {Dbase}{_L}{_future}."],
            "imp": ["Don't forget to {Dbase}{_L}."],
            "advice": ["{S} reminded {R} to {Dbase}{_L}."],
        },
    ),
    "change": _frames(
        {
            "past": ["{T} {Cpast}{_adv}{_time}.", "{Time}, {T} {Cpast}{_adv}.", "{T}{_L} {Cpast}{_adv}."],
            "prog": ["{T} {tbe} {Cing}{_adv}{_now}.", "{Now}, {T} {tbe} {Cing}{_adv}."],
            "habit": ["{T} often {Cpres}{_L}.", "{Habit}, {T} {Cpres}{_adv}."],
            "future": ["{T} will {Cbase}{_adv}{_future}.", "{T} {tbe} expected to {Cbase}{_adv}{_future}."],
        },
        {
            "past": ["{T} {twas} {Cing}{_adv}{_time}."],
            "prog": ["{T}{_L} {tbe} {Cing}{_adv}."],
            "habit": ["{T} {ttend} to {Cbase}{_L}."],
            "future": ["{T} might {Cbase}{_adv}{_future}."],
        },
    ),
    "state": _frames(
        {
            "past": ["{T}{_L} {twas} {deg}{A}{_time}.", "{Time}, {T}{_L} {twas} {deg}{A}.", "{T} looked {deg}{A}{_L}."],
            "prog": ["{T}{_L} {tbe} {deg}{A}.", "{L}, {T} {tbe} {deg}{A}.", "I think {T}{_L} {tbe} {deg}{A}."],
            "habit": ["{T}{_L} {tbe} usually {deg}{A}.", "{T}{_L} {tlook} {deg}{A}."],
            "future": ["{T}{_L} will be {deg}{A}{_future}.", "{T} {tbe} going to be {deg}{A}{_L}."],
        },
        {
            "past": ["{T} felt {deg}{A}{_L}."],
            "prog": ["{T}{_L} {tseem} {deg}{A}."],
            "habit": ["{T}{_L} {ttend} to be {deg}{A}."],
            "future": ["{T} should be {deg}{A}{_L}{_future}."],
        },
    ),
}


def _pick(rng: random.Random, group: Group | list[str] | tuple[str, ...]) -> str:
    choice = rng.choice(group)
    return choice.text if isinstance(choice, Word) else str(choice)


def _present(verb: str, number: str) -> str:
    return inflect(verb, "3s") if number == "3s" else verb


def _agree(number: str) -> dict[str, str]:
    be = {"1s": "am", "3s": "is"}.get(number, "are")
    was = "was" if number in ("1s", "3s") else "were"
    return {"be": be, "was": was, "have": "has" if number == "3s" else "have"}


def _noun_phrase(rng: random.Random, word: Word, plural: bool, determiners: bool = True) -> tuple[str, str]:
    """A determiner and the noun, and its number: "the cat" 3s, "some eggs" pl, "Mars" 3s."""
    if word.kind == "name":
        return word.text, "3s"
    if word.kind == "mass":
        det = (
            rng.choice(["the", "the", "the", "some", "some", "my", "this", "our", "his", "her"]) if determiners else ""
        )
        return f"{det} {word.text}".strip(), "3s"
    if word.kind == "plural" or plural:
        noun = word.text if word.kind == "plural" else pluralize(word.text)
        det = rng.choice(["the", "the", "the", "", "", "some", "my", "these"]) if determiners else ""
        return f"{det} {noun}".strip(), "pl"
    det = (
        rng.choice(["the", "the", "the", "the", "a", "a", "a", "my", "this", "our", "his", "her"])
        if determiners
        else ""
    )
    det = indefinite(word.text) if det == "a" else det
    return f"{det} {word.text}".strip(), "3s"


def _subject(rng: random.Random, topic: Topic, choice: tuple[str, int, bool]) -> tuple[str, str, str]:
    """(nominative, objective, number) for the concept's subject."""
    kind, index, plural = choice
    if kind == "generic":
        forms, objective, number = GENERIC_SUBJECTS[index]
        text = _pick(rng, forms.split("|"))
        return text, objective or text, number
    word = rng.choice(topic.people[index])
    if word.kind == "name":
        return word.text, word.text, "3s"
    if plural:
        noun = pluralize(word.text)
        det = rng.choice(["the", "", "some", "two", "many", "our"])
        text = f"{det} {noun}".strip()
        return text, text, "pl"
    det = rng.choice(["the", "the", "the", "a", "a", "my", "our"])
    det = indefinite(word.text) if det == "a" else det
    text = f"{det} {word.text}"
    return text, text, "3s"


def _place(rng: random.Random, group: PlaceGroup) -> str:
    word = rng.choice(group.forms)
    if group.prep == "-":
        return word.text  # "outside", "all day": no preposition
    if word.kind == "name":
        return f"{group.prep} {word.text}"
    det = rng.choice(["the", "the", "the", "the", "the", "a", "my"])
    det = indefinite(word.text) if det == "a" else det
    return f"{group.prep} {det} {word.text}"


def _verb_slots(prefix: str, verb: str, number: str) -> dict[str, str]:
    return {
        f"{prefix}base": verb,
        f"{prefix}past": inflect(verb, "past"),
        f"{prefix}pp": inflect(verb, "pp"),
        f"{prefix}ing": inflect(verb, "ing"),
        f"{prefix}pres": _present(verb, number),
    }


def _time_slots(rng: random.Random, concept: Concept) -> dict[str, str]:
    slots = {}
    for name, tense in (("time", "past"), ("now", "prog"), ("habit", "habit"), ("future", "future")):
        phrases = TIMES[tense]
        index = concept.time if concept.time is not None and concept.tense == tense else None
        text = _pick(rng, phrases[index % len(phrases)].split("|")) if index is not None else ""
        # A frame that leads with the time needs one even when the concept has none.
        lead = text or _pick(rng, phrases[0].split("|"))
        slots[f"_{name}"] = f" {text}" if text else ""
        slots[name.capitalize()] = lead
    return slots


def render(rng: random.Random, concept: Concept, frame: Frame) -> str:
    """One sentence for `concept` in `frame`; synonyms and determiners are drawn from `rng`."""
    topic = TOPICS[concept.topic]
    subject, objective, number = _subject(rng, topic, concept.subject)
    thing_word = rng.choice(topic.things[concept.thing[0]])
    thing, thing_number = _noun_phrase(rng, thing_word, concept.thing[1])
    slots: dict[str, str] = {"S": subject, "O": objective, "T": thing, **_agree(number)}
    slots.update({f"t{k}": v for k, v in _agree(thing_number).items()})
    for word, name in (("look", "tlook"), ("seem", "tseem"), ("tend", "ttend")):
        slots[name] = _present(word, thing_number)
    for word in ("like", "tend", "plan", "want"):
        slots[word] = _present(word, number)
    verb_groups = {"event": topic.actions, "doing": topic.doings, "change": topic.changes, "state": topic.actions}
    verb = _pick(rng, verb_groups[concept.family][concept.verb % len(verb_groups[concept.family])])
    verb_number = thing_number if concept.family == "change" else number
    for prefix in ("V", "D", "C"):
        slots.update(_verb_slots(prefix, verb, verb_number))
    place = _place(rng, topic.places[concept.place]) if concept.place is not None else ""
    slots["_L"] = f" {place}" if place else ""
    slots["L"] = place or _place(rng, topic.places[0])
    slots["A"] = _pick(rng, topic.qualities[concept.quality])
    slots["deg"] = f"{rng.choice(DEGREES)} " if concept.degree else ""
    adverb = _pick(rng, ADVERBS[concept.adverb].split("|")) if concept.adverb is not None else ""
    slots["_adv"] = f" {adverb}" if adverb else ""
    slots.update(_time_slots(rng, concept))
    recipient = _pick(rng, RECIPIENTS[concept.recipient].split("|"))
    if subject.lower() in ("i", "we") and recipient in ("me", "us"):
        recipient = "him"  # not "I told me to ..."
    slots["R"] = recipient
    text = frame.text.format(**slots)
    if text.endswith(".") and rng.random() < 0.12:
        text = f"{text[:-1]} {rng.choice(TAILS)}."
    return _finish(text)


def _finish(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = text.replace(" ,", ",").replace(" .", ".").replace(" ?", "?")
    return text[:1].upper() + text[1:]


def _frame_fits(frame: Frame, concept: Concept) -> bool:
    """A frame that leads with a place or a time needs a concept that has one."""
    if concept.place is None and "{L}" in frame.text:
        return False
    return concept.time is not None or not any(
        lead in frame.text for lead in ("{Time}", "{Now}", "{Habit}", "{Future}")
    )


def random_concept(rng: random.Random, topic: int | None = None, family: Family | None = None) -> Concept:
    """A random choice of groups in one topic; the family decides which of them the sentence uses."""
    index = rng.randrange(len(TOPICS)) if topic is None else topic
    t = TOPICS[index]
    families: list[Family] = ["event", "event", "event", "doing", "change", "state"]
    fam: Family = family if family is not None else rng.choice(families)
    verbs = {"event": t.actions, "doing": t.doings, "change": t.changes, "state": t.actions}[fam]
    tenses: list[TenseClass] = ["past", "past", "prog", "habit", "future"]
    if fam in ("event", "doing"):
        tenses += ["imp", "advice"]
    tense = rng.choice(tenses)
    if rng.random() < 0.45 and not (t.animals and fam == "doing"):
        subject = ("generic", rng.randrange(len(GENERIC_SUBJECTS)), False)
    else:
        subject = ("person", rng.randrange(len(t.people)), rng.random() < 0.25)
    return Concept(
        topic=index,
        family=fam,
        tense=tense,
        subject=subject,
        verb=rng.randrange(len(verbs)),
        thing=(rng.randrange(len(t.things)), rng.random() < 0.2),
        place=rng.randrange(len(t.places)) if rng.random() < 0.55 else None,
        quality=rng.randrange(len(t.qualities)),
        time=rng.randrange(8) if rng.random() < 0.4 else None,
        adverb=rng.randrange(len(ADVERBS)) if rng.random() < 0.5 else None,
        degree=rng.random() < 0.4,
        recipient=rng.randrange(len(RECIPIENTS)),
    )


def _frames_for(concept: Concept, split: Split) -> list[Frame]:
    frames = [f for f in FRAMES[concept.family] if f.tense == concept.tense]
    frames = [f for f in frames if _frame_fits(f, concept)] or frames
    return [f for f in frames if not f.held_out] if split == "train" else frames


def _frame_pair(rng: random.Random, concept: Concept, split: Split) -> tuple[Frame, Frame]:
    frames = _frames_for(concept, split)
    if split == "val":
        held = [f for f in frames if f.held_out]
        first = rng.choice(held) if held else rng.choice(frames)
        rest = [f for f in frames if f != first and not f.held_out] or [first]
        return first, rng.choice(rest)
    first = rng.choice(frames)
    rest = [f for f in frames if f != first] or [first]
    return first, rng.choice(rest)


def _different(rng: random.Random, size: int, current: int) -> int:
    if size < 2:
        return current
    choice = rng.randrange(size - 1)
    return choice + 1 if choice >= current else choice


def _hard_negative(rng: random.Random, concept: Concept) -> Concept:
    """Same topic and frame, other content: the pair differs in meaning, not in form."""
    t = TOPICS[concept.topic]
    verbs = {"event": t.actions, "doing": t.doings, "change": t.changes, "state": t.actions}[concept.family]
    new_thing = (_different(rng, len(t.things), concept.thing[0]), concept.thing[1])
    new_verb = _different(rng, len(verbs), concept.verb)
    new_quality = _different(rng, len(t.qualities), concept.quality)
    roll = rng.random()
    if concept.family == "doing":
        place = _different(rng, len(t.places), concept.place) if concept.place is not None else None
        return replace(concept, verb=new_verb, place=place if roll < 0.5 else concept.place)
    if concept.family == "state":
        return replace(concept, thing=new_thing, quality=new_quality if roll < 0.6 else concept.quality)
    if concept.family == "change":
        return replace(concept, thing=new_thing if roll < 0.7 else concept.thing, verb=new_verb)
    return replace(concept, thing=new_thing, verb=new_verb if roll < 0.6 else concept.verb)


def _other_topic(rng: random.Random, concept: Concept) -> Concept:
    """Same family, tense and frame filled from another topic: only function words are shared."""
    other = random_concept(rng, topic=_different(rng, len(TOPICS), concept.topic), family=concept.family)
    place = other.place if concept.place is None else (other.place if other.place is not None else 0)
    return replace(other, tense=concept.tense, place=None if concept.place is None else place, subject=concept.subject)


def _keep_subject(concept: Concept, other: Concept) -> Concept:
    """Topic people do not exist in another topic: fall back to a generic subject."""
    if other.subject[0] == "person" and other.topic != concept.topic:
        return replace(other, subject=("generic", other.subject[1] % len(GENERIC_SUBJECTS), False))
    return other


@dataclass(frozen=True)
class Triplet:
    anchor: str
    positive: str
    negative: str
    kind: str = ""
    topic: str = ""


def paraphrase_triplet(rng: random.Random, split: Split = "train") -> Triplet:
    """Two renderings of one concept (a paraphrase) and a rendering of a different concept."""
    concept = random_concept(rng)
    first, second = _frame_pair(rng, concept, split)
    anchor = render(rng, concept, first)
    # A paraphrase may leave out a detail (place or time) the other side states.
    positive_concept = concept
    if rng.random() < 0.15 and _frame_fits(second, replace(concept, time=None)):
        positive_concept = replace(concept, time=None)
    positive = render(rng, positive_concept, second)
    if rng.random() < 0.65:
        negative_concept, kind = _hard_negative(rng, concept), "paraphrase/topic"
    else:
        negative_concept, kind = _keep_subject(concept, _other_topic(rng, concept)), "paraphrase/frame"
    negative = render(rng, negative_concept, first if rng.random() < 0.7 else second)
    return Triplet(anchor, positive, negative, kind, TOPICS[concept.topic].name)


# ----------------------------------------------------------------------------------------------
# Queries and the passages that answer them.


@dataclass(frozen=True)
class QueryFrame:
    kind: Literal["how", "find", "news", "activity"]
    text: str
    held_out: bool = False


QUERY_FRAMES: list[QueryFrame] = [
    QueryFrame("how", "How do I {Vbase} {Tq}{_L}?"),
    QueryFrame("how", "How can I {Vbase} {A} {Tbare}?"),
    QueryFrame("how", "What is the best way to {Vbase} {Tq}?"),
    QueryFrame("how", "What is the easiest way to {Vbase} {Tq}?"),
    QueryFrame("how", "ideas for {Ving} {Tbare}"),
    QueryFrame("how", "Should I {Vbase} {Tq}{_L}?"),
    QueryFrame("how", "best way to {Vbase} {Tbare}"),
    QueryFrame("how", "tips for {Ving} {Tbare}"),
    QueryFrame("how", "{Ving} {Tbare} for beginners"),
    QueryFrame("how", "how to {Vbase} {Tbare}{_L}"),
    QueryFrame("how", "Is it hard to {Vbase} {Tq}?"),
    QueryFrame("how", "how long does it take to {Vbase} {Tq}"),
    QueryFrame("how", "What do I need to {Vbase} {Tq}?"),
    QueryFrame("how", "Can you help me {Vbase} {Tq}?"),
    QueryFrame("how", "{Tbare} {Ving} tips"),
    QueryFrame("how", "I want to {Vbase} {Tq}{_L}, any advice?", True),
    QueryFrame("how", "Explain how to {Vbase} {Tq}", True),
    QueryFrame("how", "steps to {Vbase} {Tbare}", True),
    QueryFrame("find", "{A} {Tbare}{_L}"),
    QueryFrame("find", "where to find {A} {Tbare}"),
    QueryFrame("find", "Why {qbe} my {Tbare} so {A}?"),
    QueryFrame("find", "best {A} {Tbare}{_L}"),
    QueryFrame("find", "{Qbe} {Tq} usually {A}?"),
    QueryFrame("find", "looking for {A} {Tbare}"),
    QueryFrame("find", "{A} {Tbare} ideas"),
    QueryFrame("find", "price of {A} {Tbare}"),
    QueryFrame("find", "what makes {Tpl} {A}", True),
    QueryFrame("news", "Why did {T} {Cbase}{_time}?"),
    QueryFrame("news", "{Tbare} {Cing}{_time}"),
    QueryFrame("news", "news about {Tbare}"),
    QueryFrame("news", "What happened to {T}{_time}?"),
    QueryFrame("news", "Why did this happen to {T}?"),
    QueryFrame("news", "latest on {Tbare} {Cing}", True),
    QueryFrame("activity", "Where can I {Dbase}{_L}?"),
    QueryFrame("activity", "best place to {Dbase}"),
    QueryFrame("activity", "How do I start to {Dbase}?"),
    QueryFrame("activity", "Is it a good idea to {Dbase}{_habit}?"),
    QueryFrame("activity", "reasons to {Dbase}"),
    QueryFrame("activity", "ideas for people who like to {Dbase}", True),
]

PASSAGE_LEADS: dict[str, list[str]] = {
    "how": [
        "{Guide} to {Ving} {A} {Tbare}{_L}.",
        "To {Vbase} {Tq}{_L}, {start}.",
        "This {guide} explains how to {Vbase} {Tq}{_L} step by step.",
        "Learn how to {Vbase} {Tbare} like a {P}.",
        "{Ving} {Tbare} is easier than most people think.",
        "The best way to {Vbase} {Tq} is to take your time{_L}.",
        "Many {Ppl} {Vbase} {Tbare}{_L}, and {start_b}.",
        "Our {P} shares tips for {Ving} {A} {Tbare}.",
        "If you want to {Vbase} {Tq}, {start}.",
    ],
    "find": [
        "{T}{_L} {tbe} often {A}, and {start_b}.",
        "Looking for {A} {Tbare}? {L} you will find plenty.",
        "Why {Tbare} can be so {A}, and what to do about it.",
        "There are many ways to get {A} {Tbare}{_L}.",
        "{A} {Tbare} {qbe} popular{_L}, according to a {P}.",
    ],
    "news": [
        "{T} {Cpast}{_adv}{_time}, a {P} said.",
        "{Time}, {T} {Cpast}{_adv}.",
        "Reports say {T} {Cpast}{_adv}{_time}.",
        "{T} {Cpast}{_adv}{_time}, and {Ppl} expect more.",
    ],
    "activity": [
        "{L}, you can {Dbase} whenever you like.",
        "Many people like to {Dbase}{_L}{_habit}.",
        "If you want to {Dbase}, try it{_L} first.",
        "{Ding} {_L} is a good way to spend a weekend.",
        "A {P} explains why it is fun to {Dbase}{_L}.",
    ],
}
STARTS = [
    "start with {T2}",
    "you will need {T2} and {T3}",
    "follow a few simple steps",
    "it helps to ask a {P} first",
    "begin by checking {T2}",
    "make sure {T2} is ready",
]


def _query_concept(rng: random.Random, topic: int | None = None) -> tuple[Concept, QueryFrame]:
    kind = rng.choice(["how", "how", "how", "find", "news", "activity"])
    family: Family = {"how": "event", "find": "state", "news": "change", "activity": "doing"}[kind]  # type: ignore[assignment]
    concept = random_concept(rng, topic=topic, family=family)
    concept = replace(concept, tense="past" if kind == "news" else "habit")
    frames = [f for f in QUERY_FRAMES if f.kind == kind]
    return concept, rng.choice(frames)


def _query_slots(rng: random.Random, concept: Concept) -> dict[str, str]:
    topic = TOPICS[concept.topic]
    word = rng.choice(topic.things[concept.thing[0]])
    bare, number = _noun_phrase(rng, word, concept.thing[1], determiners=False)
    plural = pluralize(word.text) if word.kind == "count" else word.text
    if word.kind == "name":
        query_np = word.text
    elif word.kind == "count" and not concept.thing[1]:
        query_np = f"{rng.choice([indefinite(word.text), 'my', 'the'])} {word.text}"
    else:
        query_np = rng.choice([bare, f"my {bare}", f"the {bare}"])
    person = _pick(rng, topic.people[rng.randrange(len(topic.people))])
    others = [_noun_phrase(rng, rng.choice(g), False)[0] for g in rng.sample(topic.things, 2)]
    guide = rng.choice(list(topic.guides) + GUIDES)
    guide_np = f"{rng.choice(GUIDE_ADJECTIVES)} {guide}"
    slots = {
        "Tq": query_np,
        "Tbare": bare,
        "Tpl": plural,
        "P": person,
        "Ppl": pluralize(person),
        "guide": guide,
        "Guide": f"{indefinite(guide_np)} {guide_np}",
        "T2": others[0],
        "T3": others[1],
        "qbe": "are" if number == "pl" else "is",
        "Qbe": "Are" if number == "pl" else "Is",
    }
    start = rng.choice(STARTS).format(**slots)
    return {**slots, "start": start, "start_b": rng.choice(["it is worth it", "the results are great", start])}


def _render_query(rng: random.Random, concept: Concept, text: str) -> str:
    base = render_slots(rng, concept)
    return _finish(text.format(**base, **_query_slots(rng, concept)))


def render_slots(rng: random.Random, concept: Concept) -> dict[str, str]:
    """The slots of `render` that queries and passages use (no subject: they address the reader)."""
    captured: dict[str, str] = {}
    topic = TOPICS[concept.topic]
    thing_word = rng.choice(topic.things[concept.thing[0]])
    thing, thing_number = _noun_phrase(rng, thing_word, concept.thing[1])
    verb_groups = {"event": topic.actions, "doing": topic.doings, "change": topic.changes, "state": topic.actions}
    verb = _pick(rng, verb_groups[concept.family][concept.verb % len(verb_groups[concept.family])])
    captured.update({"T": thing, **{f"t{k}": v for k, v in _agree(thing_number).items()}})
    number = thing_number if concept.family == "change" else "pl"
    for prefix in ("V", "D", "C"):
        captured.update(_verb_slots(prefix, verb, number))
    place = _place(rng, topic.places[concept.place]) if concept.place is not None else ""
    captured["_L"] = f" {place}" if place else ""
    captured["L"] = place or _place(rng, topic.places[0])
    captured["A"] = _pick(rng, topic.qualities[concept.quality])
    adverb = _pick(rng, ADVERBS[concept.adverb].split("|")) if concept.adverb is not None else ""
    captured["_adv"] = f" {adverb}" if adverb else ""
    captured.update(_time_slots(rng, concept))
    return captured


def _support(rng: random.Random, concept: Concept) -> str:
    """A further sentence on the same thing (or activity), so passages read like passages."""
    family: Family = "doing" if concept.family == "doing" else rng.choice(["event", "state", "change"])
    t = TOPICS[concept.topic]
    verbs = {"event": t.actions, "doing": t.doings, "change": t.changes, "state": t.actions}[family]
    other = random_concept(rng, topic=concept.topic, family=family)
    other = replace(other, thing=concept.thing, verb=concept.verb if family == "doing" else rng.randrange(len(verbs)))
    return render(rng, other, rng.choice(_frames_for(other, "train")))


def passage(rng: random.Random, concept: Concept, kind: str, split: Split = "train") -> str:
    leads = PASSAGE_LEADS[kind]
    lead = leads[-1] if split == "val" and kind == "how" else rng.choice(leads[:-1] if kind == "how" else leads)
    sentences = [_render_query(rng, concept, lead)]
    for _ in range(rng.choice([1, 1, 2])):
        sentences.append(_support(rng, concept))
    return " ".join(sentences)


def _query_hard_negative(rng: random.Random, concept: Concept) -> Concept:
    t = TOPICS[concept.topic]
    verbs = {"event": t.actions, "doing": t.doings, "change": t.changes, "state": t.actions}[concept.family]
    if concept.family == "doing" or rng.random() < 0.3:
        return replace(concept, verb=_different(rng, len(verbs), concept.verb))
    return replace(concept, thing=(_different(rng, len(t.things), concept.thing[0]), concept.thing[1]))


def topic_query_triplet(rng: random.Random, split: Split = "train") -> Triplet:
    """A query, a passage that answers it, and a passage on the same topic (or frame) that does not."""
    concept, frame = _query_concept(rng)
    if split == "train" and frame.held_out:
        frame = rng.choice([f for f in QUERY_FRAMES if f.kind == frame.kind and not f.held_out])
    elif split == "val":
        frame = rng.choice([f for f in QUERY_FRAMES if f.kind == frame.kind and f.held_out])
    query = _render_query(rng, concept, frame.text)
    positive = passage(rng, concept, frame.kind, split)
    if rng.random() < 0.7:
        negative_concept, kind = _query_hard_negative(rng, concept), "query/topic"
    else:
        negative_concept, kind = _keep_subject(concept, _other_topic(rng, concept)), "query/frame"
    negative = passage(rng, replace(negative_concept, tense=concept.tense), frame.kind, split)
    return Triplet(query, positive, negative, kind, TOPICS[concept.topic].name)


# ---- facts ----

CAPITAL_QUESTIONS = [
    "What is the capital of {country}?",
    "capital of {country}",
    "Which city is the capital of {country}?",
    "{country} capital city",
    "What city is the capital of {country}?",
    "Tell me the capital of {country}.",
]
CAPITAL_QUESTIONS_HELD_OUT = ["Name the capital city of {country}.", "where is the government of {country} based"]
CAPITAL_ANSWERS = [
    "{capital} is the capital of {country}.",
    "The capital of {country} is {capital}.",
    "{capital} is the capital city of {country} and the seat of its government.",
    "{country}'s capital is {capital}, a city in {continent}.",
]
LANGUAGE_QUESTIONS = [
    "What language do people speak in {country}?",
    "main language of {country}",
    "Which language is spoken in {country}?",
    "what do they speak in {country}",
]
LANGUAGE_QUESTIONS_HELD_OUT = ["What is the official language of {country}?"]
LANGUAGE_ANSWERS = [
    "The main language of {country} is {language}.",
    "Most people in {country} speak {language}.",
    "In {country}, people mostly speak {language}.",
]
WHERE_QUESTIONS = ["Where is {capital}?", "Which country is {capital} in?", "{capital} is in which country"]
WHERE_QUESTIONS_HELD_OUT = ["In what country can I find {capital}?"]
WHERE_ANSWERS = [
    "{capital} is a city in {country}, in {continent}.",
    "{capital} is in {country}; it is the country's capital.",
]
DEFINITION_QUESTIONS = [
    "What is {term}?",
    "what does {bare} mean",
    "define {bare}",
    "{bare} definition",
    "Explain {bare}.",
    "Can you explain what {term} is?",
    "meaning of {bare}",
    "Tell me about {bare}.",
]
DEFINITION_QUESTIONS_HELD_OUT = ["What exactly is {term}?", "{bare} explained simply"]
DEFINITION_ANSWERS = [
    "{Term} is {definition}.",
    "In simple terms, {term} is {definition}.",
    "{Bare} means {definition}.",
    "The word {bare} refers to {definition}.",
]


def _country_fields(country: tuple[str, str, str, str]) -> dict[str, str]:
    name, capital, language, continent = country
    return {"country": name, "capital": capital, "language": language, "continent": continent}


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _definition_fields(entry: tuple[str, str]) -> dict[str, str]:
    term, definition = entry
    bare = term.split(" ", 1)[1] if term.split(" ", 1)[0] in ("a", "an", "the") else term
    return {
        "term": term,
        "Term": _capitalized(term),
        "bare": bare,
        "Bare": _capitalized(bare),
        "definition": definition,
    }


def _fact_questions(questions: list[str], held_out: list[str], split: Split) -> list[str]:
    return held_out if split == "val" else questions


def fact_triplet(rng: random.Random, split: Split = "train") -> Triplet:
    """A factual question, the passage that answers it, and a like passage about another entity."""
    kind = rng.choice(["capital", "capital", "language", "where", "definition", "definition", "definition"])
    if kind == "definition":
        first, second = rng.sample(DEFINITIONS, 2)
        fields, other = _definition_fields(first), _definition_fields(second)
        query = rng.choice(_fact_questions(DEFINITION_QUESTIONS, DEFINITION_QUESTIONS_HELD_OUT, split))
        answers = DEFINITION_ANSWERS
    else:
        table = {
            "capital": (CAPITAL_QUESTIONS, CAPITAL_QUESTIONS_HELD_OUT, CAPITAL_ANSWERS),
            "language": (LANGUAGE_QUESTIONS, LANGUAGE_QUESTIONS_HELD_OUT, LANGUAGE_ANSWERS),
            "where": (WHERE_QUESTIONS, WHERE_QUESTIONS_HELD_OUT, WHERE_ANSWERS),
        }
        questions, held_out, answers = table[kind]
        first_c, second_c = rng.sample(COUNTRIES, 2)
        fields, other = _country_fields(first_c), _country_fields(second_c)
        query = rng.choice(_fact_questions(questions, held_out, split))
    positive = _capitalized(rng.choice(answers).format(**fields))
    negative = _capitalized(rng.choice(answers).format(**other))
    return Triplet(_capitalized(query.format(**fields)), positive, negative, f"fact/{kind}", "facts")


def query_paraphrase_triplet(rng: random.Random, split: Split = "train") -> Triplet:
    """Two phrasings of one search (same need, other words), and a like query for something else."""
    concept, frame = _query_concept(rng)
    frames = [f for f in QUERY_FRAMES if f.kind == frame.kind and (split == "val" or not f.held_out)]
    first, second = rng.sample(frames, 2)
    negative = _query_hard_negative(rng, concept) if rng.random() < 0.6 else _other_topic(rng, concept)
    negative = _keep_subject(concept, replace(negative, tense=concept.tense))
    return Triplet(
        _render_query(rng, concept, first.text),
        _render_query(rng, concept, second.text),
        _render_query(rng, negative, first.text),
        "query/paraphrase",
        TOPICS[concept.topic].name,
    )


# The mix every model trains on: sentence paraphrases, queries with passages, facts.
MIX: list[tuple[float, str]] = [
    (0.45, "paraphrase"),
    (0.30, "query"),
    (0.12, "fact"),
    (0.13, "query_paraphrase"),
]


def triplet(rng: random.Random, split: Split = "train") -> Triplet:
    roll, total, kind = rng.random(), 0.0, MIX[-1][1]
    for weight, name in MIX:
        total += weight
        if roll < total:
            kind = name
            break
    maker = {
        "paraphrase": paraphrase_triplet,
        "query": topic_query_triplet,
        "fact": fact_triplet,
        "query_paraphrase": query_paraphrase_triplet,
    }[kind]
    return maker(rng, split)


def triplets(count: int, seed: int, split: Split = "train") -> list[Triplet]:
    """`count` triplets, deterministic in `seed` (validation uses held-out frames: pass another seed)."""
    rng = random.Random(seed)
    return [triplet(rng, split) for _ in range(count)]


def texts_for_tokenizer(count: int, seed: int) -> Iterator[str]:
    """Sentences from the training distribution, for training a tokenizer."""
    for item in triplets(count, seed):
        yield item.anchor
        yield item.positive
        yield item.negative


# ----------------------------------------------------------------------------------------------
# Reranking: (instruction, query, document) -> relevant or not.

INSTRUCTIONS = [
    "Given a question, retrieve passages that answer the question",
    "Given a user query, find documents that are relevant to it",
    "Retrieve the passage that best answers the question",
    "Given a search query, find relevant web pages",
    "Find documents that help answer the user's question",
    "Given a web search query, retrieve relevant documents",
]
INSTRUCTIONS_HELD_OUT = ["Judge whether the document is useful for the query"]
SIMILARITY_INSTRUCTIONS = [
    "Retrieve sentences that have the same meaning as the query",
    "Given a sentence, find a paraphrase of it",
    "Retrieve semantically similar text",
]


@dataclass(frozen=True)
class RerankExample:
    instruction: str
    query: str
    document: str
    relevant: bool
    kind: str = field(default="")


def _instruction(rng: random.Random, split: Split, similarity: bool) -> str:
    if similarity:
        return rng.choice(SIMILARITY_INSTRUCTIONS)
    if split == "val" and rng.random() < 0.3:
        return rng.choice(INSTRUCTIONS_HELD_OUT)
    return DEFAULT_INSTRUCTION if rng.random() < 0.55 else rng.choice(INSTRUCTIONS)


def rerank_group(rng: random.Random, split: Split = "train") -> list[RerankExample]:
    """One query with its relevant document, a hard negative and an unrelated document."""
    item = triplet(rng, split)
    similarity = item.kind.startswith("paraphrase") or item.kind == "query/paraphrase"
    instruction = _instruction(rng, split, similarity)
    unrelated = triplet(rng, split)
    while unrelated.topic == item.topic:
        unrelated = triplet(rng, split)
    far = unrelated.positive if rng.random() < 0.5 else unrelated.anchor
    return [
        RerankExample(instruction, item.anchor, item.positive, True, item.kind),
        RerankExample(instruction, item.anchor, item.negative, False, item.kind),
        RerankExample(instruction, item.anchor, far, False, "unrelated"),
    ]


# ----------------------------------------------------------------------------------------------
# Hand-written checks, in ordinary English and not produced by the generator above.

# (anchor, paraphrase, unrelated)
CHECK_TRIPLETS: list[tuple[str, str, str]] = [
    ("The cat sat on the mat.", "A cat was sitting on the mat.", "Interest rates rose again."),
    (
        "How do I bake bread at home?",
        "What is the easiest way to make homemade bread?",
        "The stock market fell sharply today.",
    ),
    (
        "It is raining heavily outside.",
        "There is a lot of rain falling right now.",
        "She bought a new laptop for school.",
    ),
    ("The team won the football match.", "Our side beat them in the soccer game.", "I need to water the tomatoes."),
    (
        "My car will not start in the morning.",
        "The engine of my car fails to start.",
        "The museum has a new exhibition about ancient Egypt.",
    ),
    (
        "The doctor told him to get more sleep.",
        "His physician advised him to rest more at night.",
        "The band played their new song at the concert.",
    ),
    ("A man is playing the guitar.", "Someone is playing a guitar.", "The price of gas went up this week."),
    (
        "The flight to London was delayed by two hours.",
        "Our plane to London left two hours late.",
        "He planted roses in the backyard.",
    ),
    (
        "The company reported higher profits this year.",
        "The firm earned more money than last year.",
        "The puppy chased the ball across the yard.",
    ),
    (
        "I fixed the bug in my Python code.",
        "The error in the Python program is now solved.",
        "Snow is expected in the mountains tonight.",
    ),
    (
        "Astronauts landed on the moon.",
        "A crew of astronauts reached the surface of the moon.",
        "She is learning to knit.",
    ),
    (
        "The children are swimming in the lake.",
        "Kids are playing in the water of the lake.",
        "The bank raised its fees for checking accounts.",
    ),
    (
        "She is reading a novel in the library.",
        "A woman reads a book at the library.",
        "The mechanic changed the oil in the truck.",
    ),
    ("The new movie was really good.", "The latest film was excellent.", "The train to Paris leaves at noon."),
    (
        "Please turn off the lights when you leave.",
        "Switch off the lamps before you go out.",
        "The election results will be announced tomorrow.",
    ),
    ("The dog barked at the mailman.", "A dog was barking at the postman.", "The recipe calls for two cups of flour."),
    (
        "He goes running in the park every morning.",
        "Every morning he jogs in the park.",
        "The server crashed after the software update.",
    ),
    (
        "The government passed a new tax law.",
        "Lawmakers approved a new law on taxes.",
        "My grandmother grows tomatoes and peppers.",
    ),
    (
        "The hotel room had a beautiful view of the sea.",
        "From our hotel room we could see the ocean.",
        "The computer needs more memory.",
    ),
    ("The baby is sleeping in her crib.", "The infant is asleep in the crib.", "Stock prices dropped after the news."),
    (
        "The kids are playing soccer in the park.",
        "Children play football in the park.",
        "The kids are playing video games at home.",
    ),
    ("I lost my wallet on the bus.", "My wallet went missing while I was on the bus.", "I lost the chess game."),
]

# (query, relevant document, three irrelevant documents)
CHECK_RANKINGS: list[tuple[str, str, tuple[str, str, str]]] = [
    (
        "How do I bake bread at home?",
        "A simple recipe for homemade bread: mix flour, water, yeast and salt, then bake the dough in a hot oven.",
        (
            "The stock market fell sharply today.",
            "Our team won the basketball game last night.",
            "Rain is expected across the region this weekend.",
        ),
    ),
    (
        "What is the capital of France?",
        "Paris is the capital and largest city of France.",
        ("Berlin is the capital of Germany.", "The cat slept on the sofa all afternoon.", "Interest rates rose again."),
    ),
    (
        "best way to learn to play the guitar",
        "Beginners learning guitar should practice simple chords for fifteen minutes every day.",
        (
            "The piano concert starts at eight tonight.",
            "Change your car's oil every five thousand miles.",
            "Tomatoes need plenty of sun and water.",
        ),
    ),
    (
        "symptoms of the flu",
        "Common flu symptoms include fever, cough, sore throat and body aches.",
        (
            "The flight was cancelled because of the storm.",
            "Our new phone has a bigger screen.",
            "The museum is closed on Mondays.",
        ),
    ),
    (
        "How can I save money on groceries?",
        "To spend less at the supermarket, make a shopping list, compare prices and buy store brands.",
        (
            "The soccer season starts in August.",
            "Jupiter is the largest planet in the solar system.",
            "The vet gave the dog a vaccine.",
        ),
    ),
    (
        "Why is the sky blue?",
        "The sky looks blue because the air scatters blue sunlight more than red light.",
        (
            "Blue is my favorite color for a car.",
            "Bake the cake for thirty minutes.",
            "The train arrives at platform four.",
        ),
    ),
    (
        "how to fix a flat bike tire",
        "To repair a flat bicycle tire, remove the wheel, patch the hole in the tube and pump it back up.",
        (
            "The bakery on Main Street sells fresh bread.",
            "The election will be held in November.",
            "Cats sleep for most of the day.",
        ),
    ),
    (
        "what do cats eat",
        "Cats are carnivores and need a diet of meat, such as chicken or fish.",
        (
            "Dogs need a walk every day.",
            "The stock exchange closes at four.",
            "Paint the walls before laying the carpet.",
        ),
    ),
    (
        "weather forecast for tomorrow",
        "Tomorrow will be cloudy in the morning with showers in the afternoon.",
        (
            "The team signed a new striker.",
            "Add salt and pepper to the soup.",
            "The library has thousands of old books.",
        ),
    ),
    (
        "how to reset my password",
        "To reset your password, click 'Forgot password' on the login page and follow the link sent to your email.",
        (
            "The hikers reached the top of the mountain.",
            "Mix the paint with a little water.",
            "Elephants live in large family groups.",
        ),
    ),
    (
        "When did World War II end?",
        "The Second World War ended in 1945 after Germany and Japan surrendered.",
        (
            "The painting was sold for millions of dollars.",
            "The war movie won three awards.",
            "Plant the seeds in early spring.",
        ),
    ),
    (
        "healthy breakfast ideas",
        "Oatmeal with fruit, yogurt, or eggs with whole-grain toast make a healthy breakfast.",
        (
            "The bus leaves every twenty minutes.",
            "The band released a new album.",
            "He repaired the roof after the storm.",
        ),
    ),
    (
        "how to train a puppy",
        "Teach your puppy simple commands like sit and stay, and reward good behavior with treats.",
        (
            "The stock price doubled this year.",
            "The spaceship orbited Mars for a month.",
            "Wash the vegetables before cooking them.",
        ),
    ),
    (
        "cheap flights to New York",
        "Compare airline prices to find low-cost flights to New York.",
        ("New York pizza has a thin crust.", "The garden needs weeding.", "My laptop battery drains quickly."),
    ),
    (
        "what causes earthquakes",
        "Earthquakes happen when tectonic plates in the earth's crust suddenly move.",
        (
            "The volleyball team practices on Tuesdays.",
            "Bake the cookies until golden.",
            "The bank opens at nine.",
        ),
    ),
]
