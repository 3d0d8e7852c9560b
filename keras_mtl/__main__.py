import sys

from keras_mtl.cli import main

sys.exit(main())
