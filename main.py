"""paramedit: ``python main.py [PATH]`` opens the editor; see ``python main.py --help``."""
import sys

from app.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
