"""Small corpora in WikiText's own file layout (wiki.train.raw and friends), written by the tests themselves.

WikiText's `.raw` / `.tokens` files hold one Wikipedia paragraph per line, every line starting with a space and
ending with `" \\n"`; headings are `" = Title = "` (an article), `" = = Section = = "`, `" = = = Sub = = = "`, each
with a line holding a single space (`" \\n"`) before and after it. The file starts with such a line.
"""

# (title, [(heading level or None for the lead, heading, [paragraphs])])
ARTICLES = [
    (
        "Valkyria Chronicles III",
        [
            (None, None, ["Senjō no Valkyria 3 is a tactical role @-@ playing video game .", "It came out in 2011 ."]),
            (
                2,
                "Gameplay",
                ["As with previous games , the player commands a unit .", "Battles are fought in turns ."],
            ),
        ],
    ),
    (
        "Tower Building of the Little Rock Arsenal",
        [
            (None, None, ["The Tower Building is a building in Little Rock , Arkansas ."]),
            (2, "History", ["It was built in 1840 ."]),
            (3, "Construction", ["The walls are of brick ."]),
        ],
    ),
    ("Robert Boulter", [(None, None, ["Robert Boulter is an English actor ."])]),
]


def heading(level: int, name: str) -> str:
    """A heading line: level 1 `" = Title = \\n"`, level 2 `" = = Section = = \\n"`, ..."""
    marks = " ".join("=" * level)
    return f" {marks} {name} {marks} \n"


def article_lines(title: str, sections) -> list[str]:
    """The lines of one article, in WikiText's layout."""
    lines = [heading(1, title), " \n"]
    for level, name, paragraphs in sections:
        if level is not None:
            lines += [heading(level, name), " \n"]
        lines += [f" {paragraph} \n" for paragraph in paragraphs]
        lines.append(" \n")
    return lines


def wikitext_text(articles=ARTICLES) -> str:
    """A whole `wiki.*.raw` file: a leading `" \\n"`, then the articles."""
    return " \n" + "".join("".join(article_lines(title, sections)) for title, sections in articles)


def document_level_pages(text: str) -> list[str]:
    """The pages lm-evaluation-harness's `wikitext` task scores, cut from a file as EleutherAI/wikitext_document_level
    cuts them: a page runs from a title line to the line before the next title, its lines joined by `"\\n"`, so the
    line break ending the line before a title belongs to neither page (the last page keeps the file's end)."""
    pages, page = [], []
    for line in text.split("\n"):
        if line.startswith(" = ") and not line.startswith(" = = "):
            pages.append("\n".join(page))
            page = []
        page.append(line)
    pages.append("\n".join(page))
    return [page for page in pages if page.strip()]
