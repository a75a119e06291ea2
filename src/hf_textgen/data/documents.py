"""What one document (one training example) is in a plain-text corpus.

`DataArguments.sample_by` names the reading:

- `paragraph`: the text between blank lines. A line holding only whitespace is blank: WikiText ends every
  paragraph with a line holding a single space (`" \\n"`), and editors leave stray spaces too.
- `line`: every non-blank line.
- `article`: a WikiText article, from one top-level heading (`" = Title = "`) to the next, kept verbatim (section
  headings `" = = Section = = "`, blank lines and all) but for the line break before the next title, as
  lm-evaluation-harness's `wikitext` task scores pages. Text before the first heading, or in a file without
  headings, is one article of its own.
- `document`: the whole file.
- `auto` (the default): `paragraph`, unless the file has no blank line between its lines (one example per line, as
  many corpora are shipped): then `line`, because paragraphs would make the whole file a single example.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

# How much of a file `auto` reads to tell one-example-per-line files from paragraphs: a blank line shows up within
# the first few kB of any paragraph-shaped corpus, and reading more would slow down every load of a large file.
AUTO_PROBE_CHARS = 1 << 20


def is_blank(line: str) -> bool:
    """Whether a line separates paragraphs: it holds nothing but whitespace."""
    return not line.strip()


def is_article_heading(line: str) -> bool:
    """Whether a line is a WikiText top-level heading (`" = Title = "`), not a section (`" = = Section = = "`)."""
    stripped = line.strip()
    return (
        len(stripped) > 4 and stripped.startswith("= ") and stripped.endswith(" =") and not stripped.startswith("= =")
    )


def _has_text(lines: list[str]) -> bool:
    return any(not is_blank(line) for line in lines)


def iter_documents(lines: Iterable[str], sample_by: str, keep_linebreaks: bool = True) -> Iterator[str]:
    """Cut a stream of lines (each ending with its `"\\n"`, as a file yields them) into documents.

    Args:
        lines: The lines of one file (or the rows of a line-per-row dataset such as the Hub's WikiText).
        sample_by: `"paragraph"`, `"line"`, `"article"` or `"document"` (`"auto"` is resolved per file before).
        keep_linebreaks: With `"line"`, keep each line's trailing line break.

    Yields:
        The documents, never blank. Paragraphs lose the line breaks around them but keep those inside; articles
        are the lines verbatim without the line break before the next title; documents are the lines verbatim.
    """
    if sample_by == "line":
        for line in lines:
            if not is_blank(line):
                yield line if keep_linebreaks else line.rstrip("\r\n")
    elif sample_by == "paragraph":
        paragraph: list[str] = []
        for line in lines:
            if not is_blank(line):
                paragraph.append(line)
            elif paragraph:
                yield "".join(paragraph).strip("\r\n")
                paragraph = []
        if paragraph:
            yield "".join(paragraph).strip("\r\n")
    elif sample_by == "article":
        article: list[str] = []
        for line in lines:
            if is_article_heading(line):
                if _has_text(article):
                    # The line break before a title separates two articles and belongs to neither: the pages of
                    # lm-evaluation-harness's wikitext task (EleutherAI/wikitext_document_level) are cut so.
                    yield "".join(article).removesuffix("\n")
                article = []  # blank lines before a title belong to no article
            article.append(line)
        if _has_text(article):
            yield "".join(article)
    elif sample_by == "document":
        document = "".join(lines)
        if not is_blank(document):
            yield document
    else:
        raise ValueError(f"sample_by must be paragraph, line, article or document, got {sample_by!r}")


def separates_paragraphs(lines: Iterable[str]) -> tuple[bool, int]:
    """Whether a blank line stands between two lines of text (leading and trailing blank lines do not count).

    Returns:
        `(found, num_lines)`: `found` as soon as such a blank line is seen; `num_lines` the lines of text read.
    """
    num_lines = 0
    blank_after_text = False
    for line in lines:
        if is_blank(line):
            blank_after_text = num_lines > 0
        else:
            if blank_after_text:
                return True, num_lines + 1
            num_lines += 1
    return False, num_lines
