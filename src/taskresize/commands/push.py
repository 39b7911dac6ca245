"""Upload a trained resizer to the Hugging Face Hub, with a generated model card.

RUN_OR_FILE is a resizer file, a run folder, or a `taskresize compare` output folder (its best/ resizer; the card
then carries the verdict table and the controls the resizer beat). The repository gets resizer.safetensors,
config.json (the resizer's config and provenance) and README.md (the model card, library_name: taskresize).
Load it back anywhere a resizer file is accepted: --resizer hf-hub:ORG/NAME, load_resizer("hf-hub:ORG/NAME").
The token is huggingface_hub's (HF_TOKEN, or `hf auth login`). --output keeps a copy of the files sent;
--dry-run writes them there (default ./push-NAME/) and uploads nothing.

Examples:
  taskresize push runs/learnable --repo my-org/learnable-flowers
  taskresize push out/compare --repo my-org/muller-cub --private
  taskresize push runs/learnable --repo my-org/learnable-flowers --dry-run --output preview/
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="RUN_OR_FILE", help="resizer file, run folder or compare output folder")
    parser.add_argument("--repo", required=True, metavar="ORG/NAME", help="Hugging Face Hub model repository")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--revision", help="branch to push to (default: main)")
    parser.add_argument("--message", help="commit message")
    parser.add_argument("--no-card", action="store_true", help="keep the repository's own README.md")
    parser.add_argument("--output", metavar="DIR", help="also write the files sent into DIR")
    parser.add_argument("--dry-run", action="store_true", help="write the files (to --output, default ./push-NAME/), "
                        "upload nothing")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from taskresize.publish import prepare_push, push_resizer

    if args.dry_run or args.output:
        folder = args.output or f"push-{args.repo.rsplit('/', 1)[-1]}"
        files = prepare_push(args.source, folder, args.repo, card=not args.no_card)
        print(f"{'would upload' if args.dry_run else 'uploading'} to {args.repo}: "
              + ", ".join(str(p) for p in files.files))  # fmt: skip
        if args.dry_run:
            return 0
    url = push_resizer(
        args.source, args.repo, private=args.private, revision=args.revision, commit_message=args.message,
        card=not args.no_card,
    )  # fmt: skip
    print(f"pushed {args.source} to {args.repo}: {url}")
    print(f"load it with --resizer hf-hub:{args.repo} or taskresize.load_resizer('hf-hub:{args.repo}')")
    return 0
