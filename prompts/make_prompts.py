"""Writes the bundled prompt set (prompts/train.jsonl, prompts/eval.jsonl) and the corpus the
built-in base model is pretrained on (prompts/corpus.txt).

Everyday requests for help, composed from topics, tasks and phrasings written for this project.
Each prompt line is {"prompt": ..., "topic": ..., "task": ...}. The corpus holds documents
"Q: {prompt}\nA: {response}" separated by lines "<|endoftext|>"; the responses vary in tone (kind,
neutral, rude), in length and in relevance (some answer another topic), so that a person or the
`lexicon` simulated labeler has real reasons to prefer one over another. All text here was
written for this project. Deterministic: rerunning gives the same files. Standard library only.

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

# Advice per topic: imperative phrases that complete "To <task>, ...".
TIPS = {
    "cooking": ["rinse the ingredients and keep the heat at a gentle simmer", "taste as you go and add salt a little at a time",
                "use a sharp knife and chill the onion for ten minutes first", "cook the pasta in plenty of salted water and stir it often"],
    "baking": ["weigh the flour instead of using cups", "let the dough rest until it doubles in size",
               "preheat the oven and keep the door closed while it bakes", "cool the cake fully before you add the frosting"],
    "gardening": ["water early in the morning at the roots", "give the plants at least six hours of sun",
                  "mix old leaves and kitchen scraps in a shaded corner", "pull weeds after rain when the soil is soft"],
    "houseplants": ["water only when the top of the soil feels dry", "move the pot closer to a bright window",
                    "pick a pot one size larger with a drainage hole", "choose a snake plant or a pothos for low light"],
    "bikes": ["find the leak with soapy water and patch the tube", "put one drop of oil on each link and wipe off the rest",
              "tighten the brake cable until the lever stops two fingers from the bar", "wear bright colours and use front and rear lights"],
    "dogs": ["reward the dog with a treat the moment it sits", "stop walking whenever the lead gets tight",
             "keep a calm voice and give the dog a quiet corner", "brush along the coat in short gentle strokes"],
    "cats": ["play with a string toy for ten minutes twice a day", "trim only the clear tip of each claw",
             "keep the new cat in its own room for a few days", "put a scratching post right next to the sofa"],
    "sleep": ["keep the same bedtime every night, even at weekends", "put the phone away an hour before bed",
              "nap for twenty minutes at most", "keep the bedroom cool, dark and quiet"],
    "exercise": ["start with short runs and walk breaks", "stretch each muscle slowly for thirty seconds",
                 "stand up and walk for a few minutes every hour", "warm up with five minutes of easy movement"],
    "studying": ["study in short blocks with small breaks", "write notes in your own words",
                 "test yourself instead of rereading", "plan each day with one clear goal"],
    "travel": ["roll your clothes and pack only what you will wear", "compare prices on a few days around your date",
               "get daylight and stay awake until the local evening", "book the first night and keep the rest flexible"],
    "money": ["write a shopping list and stick to it", "track every expense for one month",
              "move a small amount into savings on payday", "wait a day before buying anything you did not plan"],
    "coffee": ["use fresh beans and water just off the boil", "steam the milk until the jug feels hot to touch",
               "run a cycle of water and vinegar through the machine", "grind the beans right before you brew"],
    "tea": ["steep green tea in water that is not quite boiling", "brew the tea strong and pour it over plenty of ice",
            "try chamomile or mint in the evening", "give loose leaves room to open in a large infuser"],
    "music": ["practise for fifteen minutes every day", "learn the notes on the lines and spaces first",
              "use a tuner app and tune each string slowly", "sing along with a recording and listen closely"],
    "reading": ["carry a book with you and read a few pages at a time", "ask friends what they loved this year",
                "pick a short book for the first meeting", "set a small goal of ten pages a day"],
    "coding": ["build a tiny project that you care about", "read the error message and test one change at a time",
               "give things clear names and keep functions short", "write small programs in the new language every day"],
    "writing": ["say what they did and why it mattered to you", "keep the email short, clear and polite",
                "write three lines every evening", "start with a character who wants something"],
    "cleaning": ["clean from top to bottom and finish with the floor", "blot the stain and rinse it with cold water",
                 "put things back as soon as you finish with them", "wash the wool by hand in cool water and dry it flat"],
    "moving": ["pack one room at a time and label every box", "visit the area at different times of day",
               "knock on the door and introduce yourself", "lift with your legs and ask a friend to help"],
    "camping": ["practise pitching the tent at home first", "bring a warm sleeping bag and a hat for the night",
                "cook on a flat spot away from the tent", "pick a flat site with shade and shelter from wind"],
    "photography": ["shoot in soft morning or evening light", "hold the camera still or use a tripod",
                    "get down to your pet's eye level", "keep the horizon straight and the subject off centre"],
    "chess": ["play slowly and check every capture", "learn the ideas behind one opening",
              "look for your opponent's threats before every move", "practise king and pawn endings"],
    "languages": ["learn a few words every day and use them", "talk with a partner for ten minutes a day",
                  "watch shows you like with subtitles in the language", "review old words before you learn new ones"],
    "gifts": ["think about what they enjoy in their free time", "choose something small and useful",
              "use a little tape and fold the corners neatly", "make something by hand, like a card or a jar of cookies"],
    "work": ["prepare short stories about your past work", "bring examples of what you achieved",
             "share an agenda and end on time", "explain your current load politely and offer another time"],
    "friends": ["join a club or class about something you enjoy", "say sorry clearly and listen to how they feel",
                "invite a few people and pick simple games", "send a short message now and then"],
    "weather": ["wear thin layers and a warm hat", "close the curtains in the day and drink water often",
                "pick a spot with shelter and check the forecast", "hang clothes near a warm, airy spot indoors"],
    "health": ["keep a bottle of water on your desk", "add one vegetable to every meal",
               "look away from the screen every twenty minutes", "take slow deep breaths and go for a short walk"],
    "crafts": ["start with a simple scarf and thick yarn", "wet the paper and let the colours mix",
               "follow the folds one step at a time", "use a strong thread and tie a knot at the end"],
}

KIND_OPEN = ["Happy to help!", "Great question!", "Sure, glad you asked.", "Of course!", "What a lovely thing to try.",
             "Thanks for asking!", "Good idea, I am glad you want to try."]
KIND_CLOSE = ["Take your time and enjoy it.", "You will do great, good luck!", "I hope this helps, and thanks for asking.",
              "Be patient with yourself; it gets easy with practice.", "Have fun, and I hope it goes well!",
              "Well done for giving it a try."]
RUDE_OPEN = ["Ugh, fine.", "Seriously?", "Obviously,", "Whatever.", "Duh.", "Honestly, this is silly."]
RUDE_CLOSE = ["It is not that hard.", "Stop asking such basic questions.", "This is a waste of my time.",
              "Figure it out yourself.", "Nobody cares, really.", "How is that so hard for you?"]
NEUTRAL_LINK = ["Also,", "Then", "After that,", "Next,"]

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


def sentence(text):
    return text[0].upper() + text[1:] + "."


def response(rng, topic, task):
    """One response: tone, relevance and length drawn at random."""
    tips = TIPS[topic]
    if rng.random() < 0.15:  # an answer to another question
        topic = rng.choice([t for t in TIPS if t != topic])
        tips = TIPS[topic]
    tone = rng.choices(["kind", "neutral", "rude"], weights=[0.35, 0.35, 0.30])[0]
    first, second = rng.sample(tips, 2)
    extra = rng.random() < 0.45
    body = [f"To {task}, {first}." if rng.random() < 0.5 else sentence(first)]
    if extra:
        body.append(f"{rng.choice(NEUTRAL_LINK)} {second}.")
    if tone == "kind":
        parts = [rng.choice(KIND_OPEN)] + body + [rng.choice(KIND_CLOSE)]
    elif tone == "rude":
        opener = rng.choice(RUDE_OPEN)
        if opener.endswith(","):
            body[0] = body[0][0].lower() + body[0][1:]
            parts = [opener + " " + body[0]] + body[1:] + [rng.choice(RUDE_CLOSE)]
        else:
            parts = [opener] + body + [rng.choice(RUDE_CLOSE)]
    else:
        parts = body
    return " ".join(parts)


def write_corpus(items, path, rng, per_prompt=3):
    docs = []
    for item in items:
        for _ in range(per_prompt):
            docs.append(f"Q: {item['prompt']}\nA: {response(rng, item['topic'], item['task'])}")
    rng.shuffle(docs)
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(d + "\n<|endoftext|>\n")
    return len(docs)


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
    # The corpus covers every phrasing of every task (the base model learns the request form,
    # not the particular prompts), with several responses each.
    n = write_corpus(items, os.path.join(here, "corpus.txt"), random.Random(7))
    print(f"train {len(train)}, eval {len(evals)}, corpus {n} documents")


if __name__ == "__main__":
    main()
