"""Builds examples/data/names.txt, the first names the language-model examples learn from.

Source: the English first-name lists of the Faker package (`faker.providers.person.en`, its
`first_names_female` and `first_names_male` tuples, the names Faker's `en` locale draws from), MIT
licence (Copyright (c) 2012 Daniele Faraglia), so the list may be copied and shipped here. Faker is
needed only to rebuild the file, never to run an example: names.txt is committed, and nothing is
downloaded when the examples run.

What it writes: every name lower-cased, kept only when it is made of the letters a-z alone (names with
accents, apostrophes, hyphens or spaces are left out), without duplicates, sorted, one per line (6,824
names from Faker 40.63.0, 2 to 12 letters).

Rebuild: pip install faker && python examples/data/make_names.py
(a later Faker may hold other names; the file is then different, and so are the examples' figures).
"""
import re
import sys
from pathlib import Path

OUT = Path(__file__).parent / "names.txt"


def names() -> list[str]:
    """The lower-case a-z first names of Faker's English locale, without duplicates, sorted."""
    from faker.providers.person import en  # imported here: only rebuilding the file needs Faker

    given = en.Provider.first_names_female + en.Provider.first_names_male
    return sorted({name.lower() for name in given if re.fullmatch(r"[a-z]+", name.lower())})


def main() -> None:
    found = names()
    OUT.write_text("".join(name + "\n" for name in found), encoding="ascii")
    print(f"wrote {len(found)} names to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
