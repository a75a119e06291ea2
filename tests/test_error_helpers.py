"""The shared error helpers every command reports through."""

from hf_textgen.errors import first_line


def test_first_line_keeps_only_the_first_line_and_names_an_empty_error():
    assert first_line(ValueError("  bad value\n  detail the user need not see\n")) == "bad value"
    assert first_line(ValueError()) == "ValueError"
    assert first_line(OSError("   ")) == "OSError"
