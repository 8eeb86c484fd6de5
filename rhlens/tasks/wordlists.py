"""Word lists the synthetic generators draw from (written for this project).

Every string here is part of the closed word-level world that
:func:`rhlens.tasks.vocab.vocabulary` enumerates, so keep entries to plain words
and simple punctuation. Lists are modest (a few hundred entries at most) but the
combinations (first name x surname, stem x suffix, chunk x chunk) are large
enough that generated examples do not repeat.

>>> len(FIRST_NAMES) > 100 and len(SURNAMES) > 100
True
>>> len(SYMBOL_CHUNKS)
210
"""

FIRST_NAMES = """
Aaron Abigail Adam Adrian Alan Albert Alice Amelia Andrea Andrew Angela Anna
Anthony Arthur Beatrice Benjamin Bernard Bianca Brian Bruno Camille Carla Carlos
Caroline Catherine Cecilia Charles Charlotte Chloe Christopher Clara Daniel David
Diana Diego Dominic Dorothy Edward Eleanor Elena Elias Elizabeth Emily Emma Eric
Esther Ethan Eva Felix Fiona Francesca Frank Gabriel George Grace Hannah Harold
Helen Henry Hugo Ian Irene Isaac Isabel Jack Jacob James Jane Jasmine Javier
Jennifer Joanna John Jonathan Joseph Julia Julian Karen Katherine Kevin Laura
Leo Leonard Lily Lucas Lucia Luis Margaret Maria Marcus Martha Martin Matthew
Maya Michael Miguel Monica Nadia Natalie Nathan Nicholas Nina Noah Olivia Oscar
Patricia Patrick Paul Peter Philip Rachel Rebecca Richard Robert Rosa Ruth
Samuel Sara Sebastian Simon Sofia Sophie Stephen Susan Teresa Thomas Timothy
Victor Victoria Vincent Walter William Yasmin Zoe
""".split()

SURNAMES = """
Abbott Adams Alvarez Anderson Bailey Baker Barnes Becker Bennett Berg Blake
Brooks Brown Bryant Campbell Carter Castillo Chen Clarke Coleman Collins Cooper
Costa Cruz Davies Diaz Dixon Douglas Duarte Edwards Ellis Evans Farrell Ferreira
Fischer Fleming Foster Fraser Garcia Gibson Gomez Graham Grant Gray Hall Hansen
Harper Harris Hayes Henderson Herrera Hoffman Holland Howard Hughes Hunter Jensen
Johnson Jones Kaplan Keller Kelly Kennedy Khan Kim Klein Knight Kowalski Larsen
Lawson Lee Lewis Lindqvist Lopez Marshall Martin Meyer Miller Mitchell Moreno
Morgan Murphy Nakamura Nelson Nguyen Novak Olsen Ortiz Owens Palmer Parker Patel
Pereira Perry Peterson Price Quinn Ramirez Reed Reyes Richter Rivera Roberts
Robinson Rossi Russo Santos Schmidt Scott Shaw Silva Simmons Sullivan Tanaka
Taylor Thompson Torres Turner Vargas Walker Wallace Ward Watson Weber Wells
Whitaker Williams Wilson Wright Young Zimmerman
""".split()

CITIES = """
Amsterdam Athens Atlanta Auckland Baltimore Bangkok Barcelona Berlin Bilbao
Bologna Bordeaux Boston Bristol Brussels Budapest Cairo Calgary Chicago
Copenhagen Cork Dallas Denver Dublin Dundee Edinburgh Florence Geneva Genoa
Glasgow Granada Hamburg Helsinki Houston Istanbul Kyoto Lagos Leeds Leipzig
Lima Lisbon Liverpool London Lyon Madrid Manchester Marseille Melbourne Miami
Milan Montreal Mumbai Munich Nairobi Nantes Naples Osaka Oslo Ottawa Oxford
Palermo Paris Perth Phoenix Porto Prague Quebec Riga Rome Rotterdam Salzburg
Santiago Seattle Seville Sheffield Singapore Sofia Stockholm Sydney Tallinn
Tokyo Toronto Toulouse Turin Utrecht Valencia Vancouver Venice Verona Vienna
Vilnius Warsaw Wellington Winnipeg Zagreb Zurich
""".split()

COUNTRIES = """
Argentina Australia Austria Belgium Brazil Bulgaria Canada Chile Colombia
Croatia Denmark Egypt Estonia Finland France Germany Ghana Greece Hungary
Iceland India Indonesia Ireland Italy Japan Kenya Latvia Lithuania Malaysia
Mexico Morocco Netherlands Nigeria Norway Peru Poland Portugal Romania Scotland
Senegal Serbia Singapore Slovakia Slovenia Spain Sweden Switzerland Thailand
Tunisia Turkey Uganda Ukraine Uruguay Vietnam Wales Zambia
""".split()

OCCUPATIONS = """
accountant actor architect astronomer baker biologist botanist carpenter chemist
chef composer dentist designer diplomat economist editor electrician engineer
farmer firefighter geologist historian illustrator journalist judge lawyer
librarian linguist mathematician mechanic midwife musician nurse painter
pharmacist philosopher photographer physicist pilot playwright plumber poet
potter professor psychologist sailor sculptor surgeon tailor teacher translator
veterinarian violinist weaver writer zoologist
""".split()

ORG_STEMS = """
Aurora Beacon Birch Blue Bright Cedar Clear Coastal Crown Delta Eagle Evergreen
Falcon Golden Granite Harbor Highland Horizon Iron Juniper Keystone Lakeside
Liberty Maple Meridian Northwind Oak Orchard Pacific Pinnacle Prairie Redwood
Riverside Sapphire Silver Star Summit Sunrise Thistle Unity Valley Vista
Westfield Willow
""".split()

ORG_SUFFIXES = """
Bank Books Brewing Capital Consulting Foods Foundation Hospital Institute
Insurance Labs Logistics Media Motors Pharmaceuticals Press Records Robotics
Shipping Studios Systems Telecom Textiles University
""".split()

HOBBIES = [
    "chess", "painting", "sailing", "gardening", "cycling", "hiking", "cooking",
    "photography", "fishing", "pottery", "knitting", "astronomy", "birdwatching",
    "rowing", "climbing", "swimming", "dancing", "poetry", "woodworking",
    "calligraphy", "tennis", "running", "skiing", "baking", "beekeeping",
    "origami", "archery", "fencing", "surfing", "singing",
]

FEATURES = [
    "old harbour", "stone bridges", "covered markets", "quiet parks",
    "busy railway station", "annual music festival", "narrow streets",
    "river walks", "public libraries", "botanical garden", "street food",
    "modern museums", "medieval walls", "sandy beaches", "night markets",
    "tram lines", "old cathedral", "wine bars", "football club", "science museum",
]

OBJECTS = [
    "a small boat", "an old piano", "a red bicycle", "a large dog", "a vintage car",
    "a country house", "a rare stamp collection", "a grey cat", "a telescope",
    "a violin", "a garden shed", "a wooden canoe", "a typewriter", "a parrot",
]

SEASONS = ["spring", "summer", "autumn", "winter"]

YEARS = [str(y) for y in range(1800, 2025)]

# Fictional entity names: onset + coda from fixed syllable lists (150 each),
# combined into full names (first x last) for 22,500 fictional people.
_FICT_FIRST_ONSETS = "Zor Bel Quin Thal Vor Mal Keth Dra Ysel Nor Fen Gal Ral Sev Tor".split()
_FICT_FIRST_CODAS = "ani ora eth ion usk avel ira ond ex ith".split()
_FICT_LAST_ONSETS = "Vex Mor Ash Kell Brann Orth Tamm Ul Sarn Pell Hask Drel Wyn Cor Fal".split()
_FICT_LAST_CODAS = "ador ric wen mont ask ivar oth el une aran".split()
_FICT_PLACE_ONSETS = "Bel Kar Ost Vel Thar Ald Mir Ner Sul Gor Eld Tir Quel Dun Ash".split()
_FICT_PLACE_CODAS = "morath dor heim val ora grad wick mere holt sk".split()
_FICT_LAND_ONSETS = "Arv Bryn Cald Dorr Esk Fyr Hal Ist Jor Lum".split()
_FICT_LAND_CODAS = "andia ovar enmark ithia ura".split()

FICT_FIRST_NAMES = [a + b for a in _FICT_FIRST_ONSETS for b in _FICT_FIRST_CODAS]
FICT_SURNAMES = [a + b for a in _FICT_LAST_ONSETS for b in _FICT_LAST_CODAS]
FICT_CITIES = [a + b for a in _FICT_PLACE_ONSETS for b in _FICT_PLACE_CODAS]
FICT_COUNTRIES = [a + b for a in _FICT_LAND_ONSETS for b in _FICT_LAND_CODAS]

FICT_OCCUPATIONS = """
glimmerwright runecarver tidewarden skyreader emberkeeper mistweaver stonesinger
starbinder moonsmith dreamherder frostcaller windtamer lorekeeper thornbinder
gloomwalker sunforger veilcutter brinemaster ashspeaker dawnwatcher
""".split()

FICT_ORG_STEMS = """
Velmora Quorath Istrel Dravenn Solmere Tharnok Ulveth Korrin Belgast Nymar
Ostrava Zephal Morvane Calthis Yrden
""".split()

FICT_ORG_SUFFIXES = """
Guild Conclave Order Syndicate Circle Enclave Covenant Assembly Lodge Compact
""".split()

FICT_HOBBIES = [
    "skyglass", "runeball", "moss singing", "ember dancing", "tide reading",
    "glimmer weaving", "star counting", "frost carving", "cloud herding",
    "lantern racing",
]

FICT_FEATURES = [
    "floating gardens", "singing towers", "crystal canals", "moonlit bazaars",
    "ember fountains", "glass bridges", "mist harbours", "rune gates",
    "silver orchards", "echo caves",
]

FICT_OBJECTS = [
    "a glowing lantern", "a singing shell", "a rune stone", "a frost mirror",
    "a sky compass", "an ember pot", "a moss cloak", "a tide clock",
]

# Symbolic alphabet: consonant + vowel + digit chunks (14 x 5 x 3 = 210).
# Random strings are chunks joined by "-", so each chunk is one vocabulary word.
SYMBOL_CHUNKS = [c + v + d for c in "bdfgklmnprstvz" for v in "aeiou" for d in "147"]

# The repeated filler haystack (Kamradt / Mohtashami style).
FILLER_SENTENCES = [
    "The grass is green.",
    "The sky is blue.",
    "The sun is yellow.",
    "Here we go.",
    "There and back again.",
]

# Short filler phrases used as low-diversity values in the key-value task.
FILLER_VALUES = ["the grass is green", "the sky is blue", "the sun is yellow",
                 "here we go", "there and back again"]
