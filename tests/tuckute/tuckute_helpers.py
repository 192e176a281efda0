"""Constants shared by the Tuckute tests (imported by name; tests/tuckute is on sys.path under pytest)."""

N_EMBD = 32  # width of the tiny GPT-2 (GPT2-XL: 1600)
N_LAYER = 4  # blocks of the tiny GPT-2 (GPT2-XL: 48)

#: mixed lengths (1 to 20+ tokens), punctuation, digits, an emoji at the end, a leading space
SENTENCES = [
    "Taste that fowl and those fish.",
    "I'm progressive and you fall right.",
    "Hi",
    "The audience erupted into laughter and applause while she walked off the stage quietly, holding her notes.",
    "Numbers like 42 and 3.14 appear too!",
    "We had a party 🎉",
    " leading space and trailing space ",
    "Zebra quokka xylophone juggles wildly tonight.",
]

#: six-word sentences (no length warning)
SIX = ["Taste that fowl and those fish.", "I reached over and slowly undid.", "The quick brown fox jumps high."]
