"""`hf-textgen push`: upload a finished model folder to the Hugging Face Hub in one commit.

The token is read from `--token`, `HF_TOKEN` or the stored login (`hf auth login`); prefer the environment or the
login, since a command-line token is visible to other users of the machine. Set `HF_ENDPOINT` to push to another
Hub-compatible server.
"""

from __future__ import annotations

import argparse

from hf_textgen.errors import UserError


class _Parser(argparse.ArgumentParser):
    """Flag mistakes become a `UserError`: one `error:` line like every other mistake, not a usage block."""

    def error(self, message: str):
        raise UserError(f"{message} (see hf-textgen push --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hf-textgen push",
        description="Upload model, tokenizer, modeling code, metrics and model card to the Hub in one commit.",
    )
    parser.add_argument("--model_path", required=True, help="The model folder (a training --output_dir).")
    parser.add_argument("--repo_id", required=True, help="USER/NAME of the Hub repository (created if missing).")
    parser.add_argument("--private", action="store_true", help="Create the repository private.")
    parser.add_argument("--revision", default=None, help="Branch to commit to, created from main if missing.")
    parser.add_argument("--commit_message", default=None, help="Title of the commit.")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the stored login).")
    card = parser.add_argument_group("model card", "used when push renders README.md (ignored for a hand-written one)")
    card.add_argument("--license", default=None, help="License id for the card (default apache-2.0).")
    card.add_argument("--language", nargs="+", default=None, help="Language code(s) of the training text (en).")
    card.add_argument("--datasets", nargs="+", default=None, help="Hub id(s) of the training data.")
    card.add_argument("--base_model", default=None, help="Hub id of the model this one was fine-tuned from.")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags of `hf-textgen push`; mistakes become one-line `UserError`s."""
    return _parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, push the folder, print where it went and how to load it."""
    return run(parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Push the folder and print where it went and how to load it."""
    from hf_textgen.hub.push import push_model_folder

    result = push_model_folder(
        args.model_path,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        token=args.token,
        license=args.license,
        language=args.language,
        datasets=args.datasets,
        base_model=args.base_model,
    )
    card = "rendered" if result.card_rendered else "kept as is"
    print(f"pushed {len(result.files)} files to {result.repo_url} (commit {result.commit.oid}, model card {card})")
    print(
        f'load it with {result.auto_class}.from_pretrained("{args.repo_id}", trust_remote_code=True, '
        f'revision="{result.commit.oid}")'
    )
    return 0
