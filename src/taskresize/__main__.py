"""``python -m taskresize`` (and ``torchrun -m taskresize``) runs the command line."""

from taskresize.cli import main

if __name__ == "__main__":
    main()
