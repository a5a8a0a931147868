"""Writes the bundled prompt set: prompts/train.jsonl and prompts/eval.jsonl.

Everyday requests for help, composed from topics, tasks and phrasings written for this project.
Each line is {"prompt": ..., "topic": ..., "task": ...}; the topic and task let the built-in
corpus write relevant (and deliberately irrelevant) responses for the demo's base model.
Deterministic: rerunning gives the same files. Standard library only.

    python3 prompts/make_prompts.py
"""
import json, os, random

TOPICS = {
    "cooking": ["cook rice", "make a quick dinner", "chop onions without crying", "season a soup", "cook pasta"],
    "baking": ["bake bread", "make cookies", "frost a cake", "bake muffins", "knead dough"],
    "gardening": ["grow tomatoes", "water my garden", "start a compost pile", "plant tulip bulbs", "keep weeds away"],
    "houseplants": ["keep my basil alive", "repot a plant", "care for a cactus", "help a droopy fern", "choose a plant for a dark room"],
    "bikes": ["fix a flat tire", "oil my bike chain", "adjust my bike brakes", "ride safely at night", "pick a bike helmet"],
    "dogs": ["train my dog to sit", "walk a dog that pulls", "calm a nervous dog", "brush my dog", "feed a puppy"],
    "cats": ["keep my cat entertained", "trim my cat's claws", "introduce a new cat", "stop my cat scratching the sofa", "choose cat litter"],
    "sleep": ["fall asleep faster", "wake up early", "nap without feeling groggy", "sleep on a plane", "keep a sleep schedule"],
    "exercise": ["start running", "stretch after a workout", "do a push-up", "stay active at a desk job", "warm up before exercise"],
    "studying": ["study for an exam", "take better notes", "focus while studying", "remember vocabulary", "plan my study week"],
    "travel": ["pack a small suitcase", "find cheap flights", "beat jet lag", "plan a weekend trip", "travel with kids"],
    "money": ["save money on groceries", "make a budget", "save for a holiday", "cut my phone bill", "stop impulse buying"],
    "coffee": ["brew good coffee", "make a latte at home", "clean a coffee maker", "grind coffee beans", "make cold brew"],
    "tea": ["brew green tea", "make iced tea", "choose a calming tea", "brew loose leaf tea", "make chai"],
    "music": ["practice guitar", "learn to read music", "tune a guitar", "practice piano daily", "sing in tune"],
    "reading": ["read more books", "pick my next book", "start a book club", "read faster", "keep reading every day"],
    "coding": ["learn to code", "fix a bug", "write clean code", "learn a new language", "name my variables"],
    "writing": ["write a thank you note", "write a polite email", "start a journal", "write a short story", "write a birthday card"],
    "cleaning": ["clean my kitchen", "remove a coffee stain", "keep my room tidy", "clean windows", "wash a wool sweater"],
    "moving": ["pack for a move", "find a new flat", "meet my new neighbours", "move a heavy sofa", "settle into a new city"],
    "camping": ["pitch a tent", "stay warm while camping", "cook on a camp stove", "pack for a camping trip", "choose a campsite"],
    "photography": ["take better photos", "shoot photos at night", "photograph my pet", "edit a photo", "frame a landscape shot"],
    "chess": ["get better at chess", "learn chess openings", "avoid blunders in chess", "teach a child chess", "practice chess endgames"],
    "languages": ["learn Spanish", "practice speaking a language", "learn new words every day", "understand a film without subtitles", "keep a language streak"],
    "gifts": ["pick a gift for my mum", "choose a gift for a coworker", "wrap a present", "make a homemade gift", "pick a gift for a friend"],
    "work": ["prepare for a job interview", "ask for a raise", "run a short meeting", "say no to extra work", "give feedback kindly"],
    "friends": ["make new friends", "apologise to a friend", "plan a game night", "stay in touch with old friends", "cheer up a sad friend"],
    "weather": ["dress for cold weather", "stay cool in a heat wave", "plan a picnic around rain", "dry clothes on a rainy day", "keep my home warm"],
    "health": ["drink more water", "eat more vegetables", "take a break from screens", "reduce stress", "build a healthy habit"],
    "crafts": ["start knitting", "paint with watercolours", "fold a paper crane", "sew a button", "make a greeting card"],
}

PHRASINGS = [
    "How do I {task}?",
    "Can you give me a tip to {task}?",
    "What is a good way to {task}?",
    "Any advice on how to {task}?",
    "I want to {task}. Where do I start?",
    "Please help me {task}.",
    "What should I know before I {task}?",
    "Is there an easy way to {task}?",
]


def main():
    rng = random.Random(20261121)
    items = []
    for topic, tasks in TOPICS.items():
        for task in tasks:
            for phrasing in PHRASINGS:
                items.append({"prompt": phrasing.format(task=task), "topic": topic, "task": task})
    rng.shuffle(items)
    # Every task appears in training; a fifth of the phrasings of each task go to eval.
    train, evals = [], []
    seen = {}
    for item in items:
        n = seen.get(item["task"], 0)
        seen[item["task"]] = n + 1
        (evals if n < 1 or (n == 1 and rng.random() < 0.3) else train).append(item)
    train, evals = train[:400], evals[:120]
    here = os.path.dirname(os.path.abspath(__file__))
    for name, rows in [("train.jsonl", train), ("eval.jsonl", evals)]:
        with open(os.path.join(here, name), "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"train {len(train)}, eval {len(evals)}")


if __name__ == "__main__":
    main()
