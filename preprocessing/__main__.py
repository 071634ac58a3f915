import sys

from preprocessing.cli import preprocess_main

sys.exit(preprocess_main())
