"""A synthetic WikiSQL-style task made by code: offline, deterministic by seed, for tests and CPU runs.

Every example gets a fresh table drawn from one of several domains (sports players, cities, films,
cars, elections, ...). A table has 4-6 columns, at least one ``text`` and one ``real`` column, in a
random order, and 5-10 rows of sampled values. The question is generated together with its logical
form:

- aggregation: none, ``MAX``, ``MIN``, ``COUNT``, ``SUM`` or ``AVG`` (numeric aggregations only over
  ``real`` columns; ``COUNT`` over any column);
- 0-2 conditions (most questions have one): ``=`` on text or numeric columns with a value taken from
  a row, ``>``/``<`` on numeric columns with a threshold between the column's values;
- several phrasings per aggregation and operator ("highest", "maximum", "largest" ...).

Splits use disjoint random streams, so validation/test tables and questions are new combinations,
not copies of training ones. Conditions are redrawn until at least one row satisfies them, so no
gold answer is empty (a prediction cannot score by returning nothing). The gold SQL always executes;
`make_wikisql_synthetic` returns
`SqlExample` objects exactly like the real loader does.
"""

from __future__ import annotations

import random

from lora_lab.tasks.text_to_sql.wikisql import LogicalForm, SqlExample, Table, as_number

FIRST = ["John", "Maria", "Ahmed", "Chen", "Olga", "Pierre", "Sofia", "Kenji", "Amara", "Lucas", "Ines", "Tomas",
         "Hana", "Diego", "Nora", "Viktor", "Priya", "Omar", "Elena", "Jonas"]
LAST = ["Smith", "Garcia", "Khan", "Wang", "Petrova", "Dubois", "Rossi", "Tanaka", "Okafor", "Silva", "Moreau",
        "Novak", "Kim", "Lopez", "Berg", "Ivanov", "Patel", "Haddad", "Costa", "Weber"]
CITIES = ["Springfield", "Riverton", "Lakeside", "Fairview", "Greenville", "Kingsport", "Maplewood", "Oakdale",
          "Brookfield", "Clearwater", "Hillcrest", "Westbury", "Northgate", "Ashford", "Millbrook", "Redwater"]
COUNTRIES = ["Norway", "Brazil", "Kenya", "Japan", "Canada", "Peru", "Italy", "Egypt", "Chile", "Poland",
             "Vietnam", "Ghana", "Spain", "India", "Mexico", "Sweden"]
TEAMS = ["Lions", "Eagles", "Sharks", "Wolves", "Tigers", "Falcons", "Bears", "Hawks", "Rangers", "Comets",
         "Pirates", "Giants"]
POSITIONS = ["Guard", "Forward", "Center", "Goalkeeper", "Defender", "Midfielder", "Striker", "Pitcher"]
GENRES = ["Drama", "Comedy", "Thriller", "Documentary", "Horror", "Animation", "Romance", "Western"]
MAKERS = ["Volvo", "Toyota", "Fiat", "Ford", "Skoda", "Honda", "Renault", "Mazda", "Kia", "Opel"]
FUELS = ["Petrol", "Diesel", "Electric", "Hybrid"]
PARTIES = ["Green", "Liberal", "Labour", "Conservative", "Independent", "Progressive"]
WORDS = ["Silent", "Golden", "Broken", "Hidden", "Last", "Crimson", "Distant", "Frozen", "Wild", "Quiet",
         "River", "Garden", "Storm", "Mirror", "Harbor", "Shadow", "Summer", "Iron", "Paper", "Glass"]
MODELS = ["Aria", "Nova", "Vento", "Pulse", "Terra", "Orbit", "Zephyr", "Astra", "Lumen", "Kappa"]


def _person(rng):
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _title(rng):
    return f"The {rng.choice(WORDS)} {rng.choice(WORDS)}"


def _choice(values):
    return lambda rng: rng.choice(values)


def _int(lo, hi):
    return lambda rng: rng.randint(lo, hi)


def _dec(lo, hi):
    return lambda rng: round(rng.uniform(lo, hi), 1)


# domain -> (entity noun, [(column name, type, value sampler)]); the first text column names the entity
DOMAINS = {
    "players": ("player", [
        ("Player", "text", _person), ("Team", "text", _choice(TEAMS)), ("Position", "text", _choice(POSITIONS)),
        ("Country", "text", _choice(COUNTRIES)), ("Games", "real", _int(1, 82)), ("Points", "real", _int(0, 2500)),
        ("Goals", "real", _int(0, 60)), ("Season", "real", _int(1980, 2023)),
    ]),
    "cities": ("city", [
        ("City", "text", _choice(CITIES)), ("Country", "text", _choice(COUNTRIES)), ("Mayor", "text", _person),
        ("Population", "real", _int(2000, 900000)), ("Area", "real", _dec(5, 900)), ("Founded", "real", _int(1100, 1950)),
        ("Elevation", "real", _int(0, 2400)),
    ]),
    "films": ("film", [
        ("Title", "text", _title), ("Director", "text", _person), ("Genre", "text", _choice(GENRES)),
        ("Country", "text", _choice(COUNTRIES)), ("Year", "real", _int(1950, 2023)), ("Runtime", "real", _int(70, 190)),
        ("Rating", "real", _dec(1, 10)), ("Budget", "real", _int(1, 300)),
    ]),
    "cars": ("car", [
        ("Model", "text", _choice(MODELS)), ("Maker", "text", _choice(MAKERS)), ("Fuel", "text", _choice(FUELS)),
        ("Year", "real", _int(1990, 2024)), ("Horsepower", "real", _int(60, 600)), ("Price", "real", _int(9000, 120000)),
        ("Seats", "real", _int(2, 9)),
    ]),
    "elections": ("candidate", [
        ("Candidate", "text", _person), ("Party", "text", _choice(PARTIES)), ("District", "text", _choice(CITIES)),
        ("Votes", "real", _int(100, 90000)), ("Share", "real", _dec(0, 80)), ("Year", "real", _int(1960, 2024)),
    ]),
}

AGG_WORDS = {
    0: ["What is the {sel}", "Which {sel} has", "Name the {sel}", "Tell me the {sel}"],
    1: ["What is the highest {sel}", "What is the maximum {sel}", "What is the largest {sel}"],
    2: ["What is the lowest {sel}", "What is the minimum {sel}", "What is the smallest {sel}"],
    3: ["How many {sel} entries are there", "What is the number of {sel} entries", "Count the {sel} entries"],
    4: ["What is the total {sel}", "What is the sum of {sel}"],
    5: ["What is the average {sel}", "What is the mean {sel}"],
}
OP_WORDS = {
    0: ["{col} is {val}", "{col} of {val}", "{col} equal to {val}"],
    1: ["{col} greater than {val}", "{col} more than {val}", "{col} above {val}"],
    2: ["{col} less than {val}", "{col} fewer than {val}", "{col} below {val}"],
}


def _make_table(rng: random.Random, table_id: str) -> tuple[Table, str]:
    noun, schema = DOMAINS[rng.choice(sorted(DOMAINS))]
    text_cols = [c for c in schema if c[1] == "text"]
    real_cols = [c for c in schema if c[1] == "real"]
    n_cols = rng.randint(4, min(6, len(schema)))
    chosen = [rng.choice(text_cols), rng.choice(real_cols)]
    rest = [c for c in schema if c not in chosen]
    chosen += rng.sample(rest, n_cols - 2)
    rng.shuffle(chosen)
    rows = tuple(tuple(sampler(rng) for _, _, sampler in chosen) for _ in range(rng.randint(5, 10)))
    return Table(table_id, tuple(c[0] for c in chosen), tuple(c[1] for c in chosen), rows), noun


def _condition(rng: random.Random, table: Table, col: int) -> tuple[int, int, object]:
    values = [row[col] for row in table.rows]
    if table.types[col] == "real" and rng.random() < 0.6:
        lo, hi = int(min(values)), int(max(values))
        if rng.random() < 0.5:
            return col, 1, rng.randint(lo, max(lo, hi - 1))  # some value is above it when hi > lo
        return col, 2, rng.randint(min(lo + 1, hi), hi)
    return col, 0, rng.choice(values)


def _selects_rows(table: Table, conds) -> bool:
    """Does the conjunction hold for at least one row? (Generated gold answers are never empty.)"""
    def holds(row, col, op, value):
        cell = row[col]
        if op == 0:
            return str(cell).casefold() == str(value).casefold()
        return cell > value if op == 1 else cell < value

    return any(all(holds(row, *c) for c in conds) for row in table.rows)


def _spoken(value) -> str:
    """A value as the question states it: numbers as the SQL renders them (67.0 -> 67)."""
    number = as_number(value)
    return repr(number) if number is not None else str(value)


def _make_example(rng: random.Random, table_id: str) -> SqlExample:
    table, noun = _make_table(rng, table_id)
    n = len(table.header)
    real = [i for i in range(n) if table.types[i] == "real"]
    agg = rng.choice([0, 0, 0, 1, 2, 3, 4, 5])
    sel = rng.choice(real) if agg in (1, 2, 4, 5) else rng.randrange(n)
    n_conds = rng.choice([0, 1, 1, 1, 1, 2, 2]) if agg else rng.choice([1, 1, 1, 2])
    cond_cols = rng.sample([i for i in range(n) if i != sel], min(n_conds, n - 1))
    for _ in range(50):
        conds = tuple(_condition(rng, table, c) for c in cond_cols)
        if _selects_rows(table, conds):
            break
    else:  # a single '=' condition on an existing value always selects a row
        conds = ((cond_cols[0], 0, table.rows[0][cond_cols[0]]),)
    lead = rng.choice(AGG_WORDS[agg]).format(sel=table.header[sel].lower())
    phrases = [rng.choice(OP_WORDS[op]).format(col=table.header[c].lower(), val=_spoken(v)) for c, op, v in conds]
    if phrases:
        question = f"{lead} when {' and '.join(phrases)}?" if agg or not lead.startswith("Which") else f"{lead} {' and '.join(phrases)}?"
    else:
        question = f"{lead} in this {noun} table?"
    return SqlExample(question, table, LogicalForm(sel, agg, conds))


def make_wikisql_synthetic(seed: int = 0, train_size: int = 2000, val_size: int = 200, test_size: int = 200) -> dict[str, list[SqlExample]]:
    """Splits ``train`` / ``val`` / ``test`` of `SqlExample`, one fresh table per example."""
    out = {}
    for split, size, offset in (("train", train_size, 0), ("val", val_size, 1), ("test", test_size, 2)):
        rng = random.Random(f"wikisql-synthetic:{seed}:{offset}")
        out[split] = [_make_example(rng, f"syn-{split}-{seed}-{i}") for i in range(size)]
    return out
